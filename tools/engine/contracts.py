"""Typed contracts between the tools and their readers (the ledger, the autopilot, the report writers,
the scorer): findings, the findings.json document, derived-column provenance and the tool summaries
that planners read. Each is a pydantic model; :func:`findings_json_schema` emits the JSON Schema of
findings.json (DESIGN.md §1).

The models accept extra keys (tools add statistics freely, and a newer writer may add fields), but the
keys they declare are typed: a reader gets a ``float`` or ``None`` where it expects a number, never a
guessed key.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

FINDINGS_SCHEMA = "serendip.findings/1"
STAT_CONTROL_KEYS = ("controls", "control", "within", "group_by", "by")
"""Keys of a finding's statistics that name columns it controls for."""
FindingKind = Literal["trend", "group", "outlier", "data_quality"]
Novelty = Literal["candidate", "known", "seen", "systematic"]


class ContractError(ValueError):
    """A document does not follow its contract; the message is one line naming the first problem."""


def _open(**kwargs) -> ConfigDict:
    return ConfigDict(extra="allow", populate_by_name=True, **kwargs)


# ---------------------------------------------------------------------- provenance
class DerivedColumn(BaseModel):
    """Where a column made during the session came from (recorded when it is made, never parsed from its name).

    Attributes:
        name: The new column.
        operation: What made it: 'log10', 'asinh', 'rank' (transform), 'residual' (regression on numeric
            controls) or 'level_offsets' (per-level medians of a categorical removed).
        inputs: The columns it was computed from directly (may themselves be derived).
        base_columns: The input table's columns behind ``inputs`` (derived ones followed to their roots).
        controls: The input table's columns it controls for (including those its inputs controlled for).
        description: One line for people.
    """

    model_config = _open()

    name: str
    operation: str
    inputs: list[str] = Field(default_factory=list)
    base_columns: list[str] = Field(default_factory=list)
    controls: list[str] = Field(default_factory=list)
    description: str = ""


def resolve_provenance(columns: list[str], derived: dict[str, DerivedColumn]) -> tuple[list[str], list[str]]:
    """The base column of each of ``columns`` (aligned; a table column is its own base) and the controls
    they carry, from the provenance records in ``derived``."""
    bases, controls = [], []
    for c in columns:
        d = derived.get(c)
        bases.append(d.base_columns[0] if d is not None and d.base_columns else c)
        for k in (d.controls if d is not None else []):
            if k not in controls:
                controls.append(k)
    return bases, controls


def finding_provenance(finding: dict, derived: dict[str, DerivedColumn]) -> tuple[list[str], list[str]]:
    """A finding's base columns (aligned with its columns) and every table column it controls for: those
    its derived columns carry and those its statistics name (followed to their base columns)."""
    columns = [str(c) for c in finding.get("columns") or []]
    bases, controls = resolve_provenance(columns, derived)
    stats = finding.get("stats") or {}
    for key in STAT_CONTROL_KEYS:
        value = stats.get(key)
        named = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else []
        for c in resolve_provenance([str(v) for v in named], derived)[0]:
            if c not in controls:
                controls.append(c)
    return bases, controls


# ---------------------------------------------------------------------- findings
class FindingStats(BaseModel):
    """The statistics of a finding (DESIGN.md §1); tools may add more keys."""

    model_config = _open()

    method: str | None = None
    effect: float | None = None
    sign: int | None = None
    n: int | None = None
    p_value: float | None = None
    q_value: float | None = None
    n_groups: int | None = None
    sizes: list[int] | None = None
    stability: float | None = None
    n_flagged: int | None = None
    controls: list[str] | None = None


class FindingFamily(BaseModel):
    """What joins the members of a family finding (trends restating one phenomenon, issue 17).

    Attributes:
        kind: 'shared_driver' (trends that are one dominant component seen pair by pair), 'near_duplicates'
            (trends among columns that are pairwise near-duplicates, e.g. one flux in several apertures) or
            'versions' (the same quantities related with and without controls).
        driver: The column the dominant component follows (shared_driver), or the near-duplicate most tied to the
            others (near_duplicates).
        variance_ratio: The share of variance of that component (PCA's, shared_driver).
        explained: For a driver found by residualizing on it: the least and most of a column's variance it
            explains alone (the fits' R²).
        evidence: The PCA (or residualize) result that found the driver.
        members: Ids of the member findings; each is listed in the document too, with ``member_of``.
    """

    model_config = _open()

    kind: Literal["shared_driver", "near_duplicates", "versions"]
    driver: str | None = None
    variance_ratio: float | None = None
    explained: list[float] | None = None
    evidence: str | None = None
    members: list[str] = Field(default_factory=list)


class Finding(BaseModel):
    """One finding of findings.json.

    Attributes:
        id: ``F1``, ``F2`` ... in rank order (empty for a tool's candidate).
        kind: trend, group, outlier or data_quality.
        title: One line.
        summary: A few sentences.
        columns: The columns it is about, as the tools named them (derived columns included).
        base_columns: The input table's column behind each of ``columns`` (aligned with it).
        controls: The input table's columns it controls for (from provenance and the statistics).
        stats: Its statistics.
        labels: The rows.csv column holding its per-row labels (groups, outliers).
        evidence: Ids of the tool results it rests on.
        figures: Figure paths relative to the run folder.
        novelty: candidate (maybe new), known (matches a published result: see ``novelty_detail``), seen (found
            by an earlier run) or systematic.
        novelty_detail: The match behind the label (known result and citation, or the earlier run).
        score: Rank score in 0-1.
        interpretation: The model's interpretation, when it recorded one.
        family: For a family finding, what joins its members (it is ranked once, for them all).
        member_of: For a member of a family, the family's id.
    """

    model_config = _open()

    id: str = ""
    kind: FindingKind
    title: str = ""
    summary: str = ""
    columns: list[str] = Field(default_factory=list)
    base_columns: list[str] | None = None
    controls: list[str] | None = None
    stats: FindingStats = Field(default_factory=FindingStats)
    labels: str | None = None
    evidence: list[str] = Field(default_factory=list)
    figures: list[str] = Field(default_factory=list)
    novelty: Novelty = "candidate"
    novelty_detail: dict[str, Any] | None = None
    score: float | None = None
    interpretation: str | None = None
    family: FindingFamily | None = None
    member_of: str | None = None


class DatasetInfo(BaseModel):
    """The table a run read."""

    model_config = _open()

    path: str = ""
    sha256: str = ""
    n_rows: int = 0
    n_columns: int = 0


class RunInfo(BaseModel):
    """What produced the findings."""

    model_config = _open(protected_namespaces=())

    model: str = ""
    seed: int | None = None
    goal: str = ""
    exit_status: str = ""


class FindingsDocument(BaseModel):
    """findings.json (schema ``serendip.findings/1``)."""

    model_config = _open()

    schema_: str = Field(FINDINGS_SCHEMA, alias="schema")
    dataset: DatasetInfo = Field(default_factory=DatasetInfo)
    run: RunInfo = Field(default_factory=RunInfo)
    findings: list[Finding] = Field(default_factory=list)

    def to_json_dict(self) -> dict[str, Any]:
        """Plain JSON (by alias, unset optional keys left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def findings_json_schema() -> dict[str, Any]:
    """The JSON Schema of findings.json."""
    schema = FindingsDocument.model_json_schema(by_alias=True)
    schema["$id"] = FINDINGS_SCHEMA
    return schema


def parse_findings_document(data: Any) -> FindingsDocument:
    """Validate a findings.json document.

    Raises:
        ContractError: It does not follow the contract (one line naming the first problem).
    """
    try:
        return FindingsDocument.model_validate(data)
    except ValidationError as exc:
        raise ContractError(contract_problem(exc)) from None


def contract_problem(exc: ValidationError) -> str:
    """The first problem of a validation error in one line: where, what, and the value."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "document"
    return f"{where}: {err.get('msg', 'invalid')} (got {repr(err.get('input'))[:80]})"


# ---------------------------------------------------------------------- tool summaries
class DominantComponent(BaseModel):
    """PCA's flag that its first component dominates, and the column that follows it most closely."""

    model_config = _open()

    driver: str | None = None
    driver_correlation: float | None = None
    variance_ratio: float | None = None
    rule: str | None = None


class PrincipalComponent(BaseModel):
    """One principal component in a PCA summary."""

    model_config = _open()

    top_loadings: dict[str, float] = Field(default_factory=dict)


class PcaSummary(BaseModel):
    """The part of pca's summary planners read."""

    model_config = _open()

    dominant: DominantComponent | None = None
    components: list[PrincipalComponent] = Field(default_factory=list)


class DerivingSummary(BaseModel):
    """The summary of a tool that adds columns (transform, residualize)."""

    model_config = _open()

    new_columns: list[str] = Field(default_factory=list)
    mapping: dict[str, str] = Field(default_factory=dict)
    controls: list[str] = Field(default_factory=list)


class EmbeddingSummary(BaseModel):
    """The part of umap's summary planners read."""

    model_config = _open()

    embedding: str | None = None
    artifacts: list[str] = Field(default_factory=list)


def read_summary(model: type[BaseModel], summary: dict) -> BaseModel:
    """``summary`` read through a summary model (a summary that does not fit gives the model's defaults)."""
    try:
        return model.model_validate(summary or {})
    except ValidationError:
        return model()
