"""Eval cases: a table, a goal and the results an honest explorer should report, one TOML file each.

A case names its table (a synthetic generator with arguments, or a file under the shared datasets
folder, optionally reduced by a named preparer, with ``drop = [...]`` naming label columns that the truth
rules read and the explorer never sees), the goal given to the explorer, and what is known:

- ``[[trends]]``: column pairs with the sign of their monotonic relation (and what they are controlled for;
  ``known = true`` when it is a literature result that the findings must label ``known``);
- ``[[groups]]``: a truth label per row, from the generator's truth (``truth = "groups"``) or a named rule
  in :mod:`serendip.evals.real_tables` (``rule = "sdss_sf_vs_agn"``); scored by adjusted Rand index, or by
  the F1 of one target class (``metric = "target_f1"``);
- ``[[outliers]]``: rows that should be flagged (``truth``, ``rule`` or literal 0-based ``rows``);
- ``[data_quality]``: columns a data-quality finding must name;
- ``[negative_controls]``: columns that relate to nothing, or ``null_table = true`` when nothing at all
  should be found;
- ``[thresholds]``: what counts as a pass;
- ``[[hypotheses]]``: known results in words, for the optional judge.

Every check is required for a pass unless it says ``required = false`` (then it is scored and shown only).
Rules are referenced by name and never evaluated from strings.
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

CASES_DIR = Path(__file__).resolve().parent / "cases"


class CaseError(ValueError):
    """A case file is unreadable or invalid; the message names the file and the problem."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableSpec(_Spec):
    """Where the case's table comes from: exactly one of ``generator`` or ``file``."""

    generator: str | None = None
    args: dict[str, int | float | str | bool] = Field(default_factory=dict)
    file: str | None = None
    prepare: str | None = None
    drop: list[str] = Field(default_factory=list)
    """Columns removed before exploring, after the truth rules have read them (published labels)."""

    @model_validator(mode="after")
    def _one_source(self) -> "TableSpec":
        if (self.generator is None) == (self.file is None):
            raise ValueError("[table] needs exactly one of 'generator' (a synthetic table) or 'file' "
                             "(a path under the shared datasets folder)")
        if self.generator is not None and self.prepare is not None:
            raise ValueError("[table] 'prepare' applies to a 'file', not to a generator")
        if self.file is not None and self.args:
            raise ValueError("[table] 'args' applies to a 'generator', not to a file")
        if self.file is not None and (Path(self.file).is_absolute() or ".." in Path(self.file).parts):
            raise ValueError("[table] 'file' must be a relative path inside the shared datasets folder")
        return self


class TrendSpec(_Spec):
    """A monotonic relation between two columns.

    ``known``: a result of the literature, so the findings that recover it must be labelled
    ``novelty = "known"`` (checked on the plain variant only: anonymised names hide what a column measures).
    ``controls``: ``[]`` = only an uncontrolled finding counts; a list = the finding must control for
    exactly those columns; ``"any"`` = controlled or not.
    """

    columns: tuple[str, str]
    sign: Literal[-1, 1]
    controls: list[str] | Literal["any"] = Field(default_factory=list)
    required: bool = True
    known: bool = False

    @field_validator("columns")
    @classmethod
    def _distinct(cls, v: tuple[str, str]) -> tuple[str, str]:
        if v[0] == v[1]:
            raise ValueError("a trend needs two different columns")
        return v

    def label(self) -> str:
        """Short description, e.g. ``a ~ b (+)``."""
        ctrl = "" if self.controls == [] else (" | any controls" if self.controls == "any"
                                                else f" | {', '.join(self.controls)}")
        return f"{self.columns[0]} ~ {self.columns[1]} ({'+' if self.sign > 0 else '-'}){ctrl}"


class _TruthSource(_Spec):
    truth: str | None = None
    rule: str | None = None


class GroupSpec(_TruthSource):
    """A known grouping of the rows."""

    name: str = "groups"
    metric: Literal["ari", "target_f1"] = "ari"
    target: int | None = None
    min_ari: Annotated[float, Field(ge=-1, le=1)] | None = None
    min_f1: Annotated[float, Field(ge=0, le=1)] | None = None
    required: bool = True

    @model_validator(mode="after")
    def _check(self) -> "GroupSpec":
        if (self.truth is None) == (self.rule is None):
            raise ValueError(f"group {self.name!r} needs exactly one of 'truth' (a generator truth key) or 'rule'")
        if self.metric == "ari" and (self.min_ari is None or self.target is not None or self.min_f1 is not None):
            raise ValueError(f"group {self.name!r} with metric 'ari' needs 'min_ari' (and no 'target'/'min_f1')")
        if self.metric == "target_f1" and (self.target is None or self.min_f1 is None or self.min_ari is not None):
            raise ValueError(f"group {self.name!r} with metric 'target_f1' needs 'target' and 'min_f1'")
        return self

    @property
    def threshold(self) -> float:
        """The minimum score for a pass."""
        return float(self.min_ari if self.metric == "ari" else self.min_f1)


class OutlierSpec(_TruthSource):
    """Rows that an outlier finding should flag."""

    name: str = "outliers"
    rows: list[Annotated[int, Field(ge=0)]] | None = None
    min_f1: Annotated[float, Field(ge=0, le=1)] = 0.5
    min_recall: Annotated[float, Field(ge=0, le=1)] = 0.0
    required: bool = True

    @model_validator(mode="after")
    def _one_source(self) -> "OutlierSpec":
        if sum(x is not None for x in (self.truth, self.rule, self.rows)) != 1:
            raise ValueError(f"outliers {self.name!r} need exactly one of 'truth', 'rule' or 'rows'")
        return self


class DataQualitySpec(_Spec):
    """Columns that data-quality findings must name."""

    columns: list[str] = Field(default_factory=list)
    truth: str | None = None
    min_recall: Annotated[float, Field(ge=0, le=1)] = 1.0
    required: bool = True


class NegativeControlSpec(_Spec):
    """Columns that relate to nothing, or a whole table with nothing to find."""

    columns: list[str] = Field(default_factory=list)
    truth: str | None = None
    null_table: bool = False


class ThresholdSpec(_Spec):
    """What counts as a pass."""

    q_max: Annotated[float, Field(gt=0, le=1)] = 0.05
    min_trend_recall: Annotated[float, Field(ge=0, le=1)] = 1.0
    max_false_discoveries: Annotated[int, Field(ge=0)] = 0
    max_wrong_sign: Annotated[int, Field(ge=0)] = 0
    min_stability: Annotated[float, Field(ge=0, le=1)] = 0.6


class HypothesisSpec(_Spec):
    """A known result in words (DiscoveryBench style): in which context, between which variables, what relation."""

    context: str
    variables: list[str]
    relation: str


class Case(_Spec):
    """One eval case (see the module docstring for the file format)."""

    name: str
    description: str = ""
    goal: str = ""
    fast: bool = False
    tags: list[str] = Field(default_factory=list)
    seed: int = 0
    table: TableSpec
    trends: list[TrendSpec] = Field(default_factory=list)
    groups: list[GroupSpec] = Field(default_factory=list)
    outliers: list[OutlierSpec] = Field(default_factory=list)
    data_quality: DataQualitySpec | None = None
    negative_controls: NegativeControlSpec | None = None
    thresholds: ThresholdSpec = Field(default_factory=ThresholdSpec)
    hypotheses: list[HypothesisSpec] = Field(default_factory=list)
    path: str = ""

    @model_validator(mode="after")
    def _references(self) -> "Case":
        from serendip.evals import real_tables
        from serendip.tools import synthetic

        if self.table.generator is not None and self.table.generator not in synthetic.GENERATORS:
            raise ValueError(f"unknown generator {self.table.generator!r}; known: {', '.join(sorted(synthetic.GENERATORS))}")
        if self.table.prepare is not None and self.table.prepare not in real_tables.PREPARERS:
            raise ValueError(f"unknown preparer {self.table.prepare!r}; known: {', '.join(sorted(real_tables.PREPARERS))}")
        synthetic_case = self.table.generator is not None
        for g in self.groups:
            if g.rule is not None and g.rule not in real_tables.GROUP_RULES:
                raise ValueError(f"group {g.name!r}: unknown rule {g.rule!r}; known: {', '.join(sorted(real_tables.GROUP_RULES))}")
            if g.truth is not None and not synthetic_case:
                raise ValueError(f"group {g.name!r}: 'truth' needs a generator; use a 'rule' for a file")
        for o in self.outliers:
            if o.rule is not None and o.rule not in real_tables.OUTLIER_RULES:
                raise ValueError(f"outliers {o.name!r}: unknown rule {o.rule!r}; known: {', '.join(sorted(real_tables.OUTLIER_RULES))}")
            if o.truth is not None and not synthetic_case:
                raise ValueError(f"outliers {o.name!r}: 'truth' needs a generator; use a 'rule' or 'rows'")
        for spec in (self.data_quality, self.negative_controls):
            if spec is not None and spec.truth is not None and not synthetic_case:
                raise ValueError("'truth' in [data_quality] / [negative_controls] needs a generator")
        names = [g.name for g in self.groups] + [o.name for o in self.outliers]
        if len(names) != len(set(names)):
            raise ValueError("group and outlier expectations need distinct names")
        if not (self.trends or self.groups or self.outliers or self.data_quality or self.negative_controls):
            raise ValueError("a case must expect something: trends, groups, outliers, data_quality or negative_controls")
        return self

    @property
    def source_file(self) -> Path | None:
        """The shared dataset file of a real case (None for a synthetic case)."""
        if self.table.file is None:
            return None
        from serendip.evals.real_tables import dataset_path

        return dataset_path(self.table.file)

    def missing_file(self) -> str | None:
        """A message naming the absent dataset file, or None when the case can run."""
        path = self.source_file
        if path is not None and not path.exists():
            return f"skipped: dataset file {path} is absent (set SERENDIP_DATASETS to the shared datasets folder)"
        return None


def load_case(path: str | Path) -> Case:
    """Read and validate one case file; its ``name`` defaults to the file name without ``.toml``."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CaseError(f"{path}: cannot read the case: {str(exc).splitlines()[0]}") from None
    data.setdefault("name", path.stem)
    data["path"] = str(path)
    try:
        return Case.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'case'}: {e['msg']}" for e in exc.errors())
        raise CaseError(f"{path}: {problems}") from None


def load_cases(folder: str | Path | None = None) -> list[Case]:
    """Every case in ``folder`` (the packaged cases by default), sorted by name; names must be unique."""
    folder = Path(folder) if folder is not None else CASES_DIR
    cases = [load_case(p) for p in sorted(folder.glob("*.toml"))]
    seen: dict[str, str] = {}
    for c in cases:
        if c.name in seen:
            raise CaseError(f"{c.path}: case name {c.name!r} is also used by {seen[c.name]}")
        seen[c.name] = c.path
    return sorted(cases, key=lambda c: c.name)


def select_cases(cases: list[Case], patterns: list[str] | None = None, fast: bool = False) -> list[Case]:
    """Cases whose name matches any pattern (exact names or shell globs; comma-separated lists allowed).

    Raises:
        CaseError: A pattern matches no case.
    """
    chosen = [c for c in cases if c.fast] if fast else list(cases)
    if not patterns:
        return chosen
    wanted = [p.strip() for item in patterns for p in item.split(",") if p.strip()]
    out: list[Case] = []
    for pattern in wanted:
        hits = [c for c in chosen if fnmatch.fnmatchcase(c.name, pattern)]
        if not hits:
            known = ", ".join(c.name for c in chosen)
            raise CaseError(f"no case matches {pattern!r}; cases: {known}")
        out.extend(c for c in hits if c not in out)
    return out
