"""A case resolved against its table: the table the explorer reads and the truth the scorer checks.

The truth is everything the scorer needs besides the output folder: the table's column names (as the
explorer sees them), a label per row for each known grouping, the rows of each known outlier set, and
the expected trends, data-quality columns and negative controls. It round-trips through JSON
(``truth.json`` next to each eval run) so that any output folder can be rescored later.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from serendip.evals.cases import Case, CaseError, HypothesisSpec, ThresholdSpec
from serendip.tools.loading.names import make_unique_names


@dataclass(frozen=True)
class TrendTruth:
    """An expected trend; ``controls`` is a list of columns or ``"any"``."""

    columns: tuple[str, str]
    sign: int
    controls: tuple[str, ...] | str = ()
    required: bool = True
    known: bool = False

    def label(self) -> str:
        """Short description, e.g. ``a ~ b (+)``."""
        ctrl = "" if self.controls == () else (" | any controls" if self.controls == "any"
                                                else f" | {', '.join(self.controls)}")
        return f"{self.columns[0]} ~ {self.columns[1]} ({'+' if self.sign > 0 else '-'}){ctrl}"


@dataclass(frozen=True)
class GroupTruth:
    """A known grouping: an int label per row, -1 for rows left out of scoring."""

    name: str
    labels: np.ndarray
    metric: str = "ari"
    target: int | None = None
    threshold: float = 0.5
    required: bool = True


@dataclass(frozen=True)
class OutlierTruth:
    """Rows (0-based positions) that should be flagged."""

    name: str
    rows: np.ndarray
    min_f1: float = 0.5
    min_recall: float = 0.0
    required: bool = True


@dataclass
class Truth:
    """What the scorer checks an output folder against."""

    case: str
    n_rows: int
    columns: list[str]
    variant: str = "plain"
    trends: list[TrendTruth] = field(default_factory=list)
    groups: list[GroupTruth] = field(default_factory=list)
    outliers: list[OutlierTruth] = field(default_factory=list)
    data_quality: list[str] = field(default_factory=list)
    dq_min_recall: float = 1.0
    dq_required: bool = True
    negative_controls: list[str] = field(default_factory=list)
    null_table: bool = False
    thresholds: ThresholdSpec = field(default_factory=ThresholdSpec)
    hypotheses: list[HypothesisSpec] = field(default_factory=list)
    description: str = ""
    goal: str = ""

    # ------------------------------------------------------------------ remapping
    def remapped(self, column_map: dict[str, str], permutation: np.ndarray | None = None,
                 variant: str | None = None) -> "Truth":
        """The same truth for a table whose columns were renamed and whose rows were reordered.

        Args:
            column_map: Old column name -> new name (names not in it are kept).
            permutation: New row i is old row ``permutation[i]`` (None = same order).
            variant: Name of the new variant.
        """
        def col(c: str) -> str:
            return column_map.get(c, c)

        def text(s: str) -> str:
            return rename_in_text(s, column_map)

        if permutation is None:
            permutation = np.arange(self.n_rows)
        permutation = np.asarray(permutation, dtype=int)
        if sorted(permutation.tolist()) != list(range(self.n_rows)):
            raise ValueError("the permutation must reorder every row exactly once")
        inverse = np.empty_like(permutation)
        inverse[permutation] = np.arange(len(permutation))
        # Anonymised names hide what a column measures: a literature result cannot be recognised there.
        hidden = (variant or self.variant) == "anonymised"
        trends = [replace(t, columns=(col(t.columns[0]), col(t.columns[1])),
                          controls=t.controls if t.controls == "any" else tuple(col(c) for c in t.controls),
                          known=t.known and not hidden)
                  for t in self.trends]
        groups = [replace(g, labels=np.asarray(g.labels)[permutation]) for g in self.groups]
        outliers = [replace(o, rows=np.sort(inverse[np.asarray(o.rows, dtype=int)])) for o in self.outliers]
        hyps = [HypothesisSpec(context=text(h.context), variables=[col(v) for v in h.variables],
                               relation=text(h.relation)) for h in self.hypotheses]
        return replace(self, columns=[col(c) for c in self.columns], trends=trends, groups=groups, outliers=outliers,
                       data_quality=[col(c) for c in self.data_quality],
                       negative_controls=[col(c) for c in self.negative_controls], hypotheses=hyps,
                       description=text(self.description), goal=text(self.goal),
                       variant=variant or self.variant)

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> dict:
        """Plain JSON types only."""
        return {
            "case": self.case, "variant": self.variant, "n_rows": self.n_rows, "columns": self.columns,
            "trends": [{"columns": list(t.columns), "sign": t.sign,
                        "controls": t.controls if t.controls == "any" else list(t.controls), "required": t.required,
                        "known": t.known}
                       for t in self.trends],
            "groups": [{"name": g.name, "labels": np.asarray(g.labels).astype(int).tolist(), "metric": g.metric,
                        "target": g.target, "threshold": g.threshold, "required": g.required} for g in self.groups],
            "outliers": [{"name": o.name, "rows": np.asarray(o.rows).astype(int).tolist(), "min_f1": o.min_f1,
                          "min_recall": o.min_recall, "required": o.required} for o in self.outliers],
            "data_quality": self.data_quality, "dq_min_recall": self.dq_min_recall, "dq_required": self.dq_required,
            "negative_controls": self.negative_controls, "null_table": self.null_table,
            "thresholds": self.thresholds.model_dump(), "hypotheses": [h.model_dump() for h in self.hypotheses],
            "description": self.description, "goal": self.goal,
        }

    @classmethod
    def from_json(cls, d: dict) -> "Truth":
        """Inverse of :meth:`to_json`."""
        return cls(
            case=d["case"], variant=d.get("variant", "plain"), n_rows=int(d["n_rows"]), columns=list(d["columns"]),
            trends=[TrendTruth(columns=tuple(t["columns"]), sign=int(t["sign"]),
                               controls=t["controls"] if t["controls"] == "any" else tuple(t["controls"]),
                               required=bool(t["required"]), known=bool(t.get("known", False)))
                    for t in d.get("trends", [])],
            groups=[GroupTruth(name=g["name"], labels=np.asarray(g["labels"], dtype=int), metric=g["metric"],
                               target=g["target"], threshold=float(g["threshold"]), required=bool(g["required"]))
                    for g in d.get("groups", [])],
            outliers=[OutlierTruth(name=o["name"], rows=np.asarray(o["rows"], dtype=int), min_f1=float(o["min_f1"]),
                                   min_recall=float(o["min_recall"]), required=bool(o["required"]))
                      for o in d.get("outliers", [])],
            data_quality=list(d.get("data_quality", [])), dq_min_recall=float(d.get("dq_min_recall", 1.0)),
            dq_required=bool(d.get("dq_required", True)), negative_controls=list(d.get("negative_controls", [])),
            null_table=bool(d.get("null_table", False)), thresholds=ThresholdSpec(**d.get("thresholds", {})),
            hypotheses=[HypothesisSpec(**h) for h in d.get("hypotheses", [])],
            description=d.get("description", ""), goal=d.get("goal", ""))

    def save(self, path: str | Path) -> None:
        """Write ``truth.json``."""
        Path(path).write_text(json.dumps(self.to_json()), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "Truth":
        """Read a ``truth.json``."""
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


def rename_in_text(text: str, column_map: dict[str, str]) -> str:
    """Replace whole-word mentions of column names in ``text`` (longest names first, one pass)."""
    if not text or not column_map:
        return text
    names = sorted((n for n in column_map if n), key=len, reverse=True)
    pattern = re.compile(r"(?<![\w.])(" + "|".join(re.escape(n) for n in names) + r")(?![\w])")
    return pattern.sub(lambda m: column_map[m.group(1)], text)


def drop_row_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop a leading unnamed column holding the row numbers 0..N-1 or 1..N, as the explorer's loader does.

    Such a column (written by R's ``write.csv`` or pandas' ``to_csv``) is no data; dropping it here keeps
    the truth's columns equal to the explorer's, and keeps it out of anonymised tables, where shuffled
    row numbers would no longer be recognised and would leak the original order.
    """
    if frame.shape[1] < 2 or len(frame) == 0:
        return frame
    name = frame.columns[0]
    blank = name is None or (isinstance(name, float) and name != name) or str(name).strip() == "" \
        or str(name).startswith("Unnamed: ")
    if not blank:
        return frame
    values = pd.to_numeric(frame.iloc[:, 0], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    if np.isnan(values).any() or values[0] not in (0.0, 1.0) or not np.all(np.diff(values) == 1):
        return frame
    return frame.iloc[:, 1:]


def visible_columns(frame: pd.DataFrame) -> list[str]:
    """Column names as the explorer's loader shows them (blank headers named, duplicates numbered)."""
    names, _ = make_unique_names(list(frame.columns))
    return names


# ---------------------------------------------------------------------- building a case
def source_frame(case: Case) -> tuple[pd.DataFrame, dict]:
    """The case's table as raw values, and the generator's truth (empty for a real table)."""
    from serendip.evals import real_tables
    from serendip.tools import synthetic

    if case.table.generator is not None:
        frame, gen_truth = synthetic.GENERATORS[case.table.generator](**case.table.args)
        return drop_row_numbers(frame), dict(gen_truth)
    path = case.source_file
    if path is None or not path.exists():
        raise CaseError(case.missing_file() or f"{case.name}: no table")
    frame = real_tables.read_table(path)
    if case.table.prepare is not None:
        frame = real_tables.PREPARERS[case.table.prepare](frame).reset_index(drop=True)
    return drop_row_numbers(frame), {}


def build_truth(case: Case, frame: pd.DataFrame, gen_truth: dict) -> Truth:
    """Resolve the case's expectations against its table (rules run here)."""
    from serendip.evals import real_tables

    columns = visible_columns(frame)
    n = len(frame)

    def truth_value(key: str, what: str):
        if key not in gen_truth:
            raise CaseError(f"{case.path}: {what} refers to truth key {key!r}, which generator "
                            f"{case.table.generator!r} does not return (it has: {', '.join(gen_truth)})")
        return gen_truth[key]

    def check_columns(names: list[str], what: str) -> list[str]:
        unknown = [c for c in names if c not in columns]
        if unknown:
            raise CaseError(f"{case.path}: {what} names columns not in the table: {unknown}; "
                            f"columns: {columns[:30]}")
        return list(names)

    trends = []
    for t in case.trends:
        check_columns(list(t.columns) + ([] if t.controls == "any" else list(t.controls)), f"trend {t.label()}")
        trends.append(TrendTruth(columns=tuple(t.columns), sign=int(t.sign),
                                 controls=t.controls if t.controls == "any" else tuple(t.controls),
                                 required=t.required, known=t.known))
    groups = []
    for g in case.groups:
        labels = (truth_value(g.truth, f"group {g.name!r}") if g.truth is not None
                  else real_tables.GROUP_RULES[g.rule](frame))
        labels = np.asarray(labels, dtype=int)
        if labels.shape != (n,):
            raise CaseError(f"{case.path}: group {g.name!r} has {labels.shape} labels for {n} rows")
        groups.append(GroupTruth(name=g.name, labels=labels, metric=g.metric, target=g.target,
                                 threshold=g.threshold, required=g.required))
    outliers = []
    for o in case.outliers:
        if o.rows is not None:
            rows = np.asarray(o.rows, dtype=int)
        elif o.truth is not None:
            rows = np.asarray(truth_value(o.truth, f"outliers {o.name!r}"), dtype=int)
        else:
            rows = np.asarray(real_tables.OUTLIER_RULES[o.rule](frame), dtype=int)
        if len(rows) and (rows.min() < 0 or rows.max() >= n):
            raise CaseError(f"{case.path}: outliers {o.name!r} name rows outside 0..{n - 1}")
        outliers.append(OutlierTruth(name=o.name, rows=np.unique(rows), min_f1=o.min_f1, min_recall=o.min_recall,
                                     required=o.required))
    dq, dq_min, dq_req = [], 1.0, True
    if case.data_quality is not None:
        dq = list(case.data_quality.columns)
        if case.data_quality.truth is not None:
            dq += [c for c in truth_value(case.data_quality.truth, "[data_quality]") if c not in dq]
        dq = check_columns(dq, "[data_quality]")
        dq_min, dq_req = case.data_quality.min_recall, case.data_quality.required
    controls, null_table = [], False
    if case.negative_controls is not None:
        controls = list(case.negative_controls.columns)
        if case.negative_controls.truth is not None:
            controls += [c for c in truth_value(case.negative_controls.truth, "[negative_controls]")
                         if c not in controls]
        controls = check_columns(controls, "[negative_controls]")
        null_table = case.negative_controls.null_table
    return Truth(case=case.name, n_rows=n, columns=columns, trends=trends, groups=groups, outliers=outliers,
                 data_quality=dq, dq_min_recall=dq_min, dq_required=dq_req, negative_controls=controls,
                 null_table=null_table, thresholds=case.thresholds, hypotheses=list(case.hypotheses),
                 description=case.description, goal=case.goal)


@dataclass
class PreparedCase:
    """A case ready to run: the table path to explore, the goal, and the truth."""

    case: Case
    table_path: Path
    goal: str
    truth: Truth

    @property
    def case_id(self) -> str:
        """``name`` or ``name@anon``."""
        return case_id(self.case.name, self.truth.variant == "anonymised")


def case_id(name: str, anonymised: bool) -> str:
    """The id of a case variant in folders and scoreboards."""
    return f"{name}@anon" if anonymised else name


def materialise(case: Case, workdir: str | Path, anonymised: bool = False) -> PreparedCase:
    """Build the case's table and truth; write the table (when it is not a shared file used as is) and truth.json.

    A synthetic, prepared or anonymised table is written as ``table.csv`` in ``workdir`` (limits such as
    '<0.3' and sentinels kept as generated); a real table used as is is read from the shared folder.
    """
    from serendip.evals.anonymise import anonymise

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    frame, gen_truth = source_frame(case)
    truth = build_truth(case, frame, gen_truth)
    if case.table.drop:
        # The labels' columns leave the table after the truth has been read from them.
        missing = [c for c in case.table.drop if c not in frame.columns]
        if missing:
            raise CaseError(f"{case.path}: [table] drop names columns not in the table: {missing}")
        frame = frame.drop(columns=list(case.table.drop))
        truth = replace(truth, columns=visible_columns(frame))
    goal = case.goal
    if anonymised:
        frame, truth, goal = anonymise(frame, truth, goal, seed=case.seed)
    if case.table.generator is not None or case.table.prepare is not None or case.table.drop or anonymised:
        table_path = workdir / "table.csv"
        frame.to_csv(table_path, index=False)
    else:
        table_path = case.source_file
    truth.save(workdir / "truth.json")
    return PreparedCase(case=case, table_path=Path(table_path), goal=goal, truth=truth)
