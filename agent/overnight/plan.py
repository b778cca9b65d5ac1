"""The overnight plan: a TOML file validated with pydantic before anything runs.

The smallest plan is one line, ``tables = ["a.csv", "survey/*.fits"]``; everything else has a default.
"""

from __future__ import annotations

import glob
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from serendip.tools.filter_grammar import FilterSyntaxError, parse_filter

DEFAULT_GOAL = "find trends, groups and outliers"


class PlanError(Exception):
    """A plan that cannot run; the message is one line naming the key."""


class Strategy(BaseModel):
    """One way to vary a run.

    Attributes:
        name: Short name used in folder names and the digest.
        columns: Feature subset: the run sees only these columns.
        control: Known relations / columns to control for (residualized before looking again).
        where: Row subset, in the safe filter language of the ``select`` tool (never evaluated as Python).
        cluster_on: A clustering space: the run sees only these columns and looks for groups.
        goal: Words added to the run's goal (e.g. "find outliers").
        run_time: This strategy's own wall-clock limit per run in seconds (default: the budget's run_time).
    """

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9_.-]+$")
    columns: list[str] | None = None
    control: list[str] = Field(default_factory=list)
    where: str | None = None
    cluster_on: list[str] | None = None
    goal: str = ""
    run_time: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> "Strategy":
        if self.where is not None:
            try:
                parse_filter(self.where)
            except FilterSyntaxError as exc:
                raise ValueError(f"'where' is not a valid filter: {exc.one_line()}") from None
        if self.columns is not None and self.cluster_on is not None:
            raise ValueError("give 'columns' or 'cluster_on', not both")
        for key in ("columns", "cluster_on"):
            value = getattr(self, key)
            if value is not None and len(value) < 2:
                raise ValueError(f"'{key}' needs at least two columns")
        return self

    def kept_columns(self) -> list[str] | None:
        """Columns the run may see (None = all)."""
        return self.cluster_on if self.cluster_on is not None else self.columns

    def goal_text(self, goal: str) -> str:
        """The run's goal: the plan goal, then the strategy's words and controls."""
        parts = [goal.strip().rstrip(".")] if goal.strip() else []
        if self.cluster_on is not None:
            parts.append("find groups")
        if self.goal.strip():
            parts.append(self.goal.strip().rstrip("."))
        if self.control:
            # one clause, joined with "and": the goal reader splits clauses at commas
            parts.append("control for " + " and ".join(self.control))
        return ". ".join(parts)


class Budget(BaseModel):
    """Limits per run and for the whole night.

    Attributes:
        run_time: Wall-clock seconds per run (the run stops cleanly; its process is killed after a grace).
        total_time: Wall-clock seconds for the whole night: no run starts after it, running runs get
            only what remains.
        run_steps: Most planner steps / model turns per run.
        run_tokens: Most tokens per LLM run.
        total_tokens: No run starts once the finished runs used this many tokens.
        tool_time: Wall-clock seconds per tool call.
        memory_mb: Memory cap of each run's tool worker.
        grace: Seconds past run_time before the run's process is killed.
    """

    model_config = ConfigDict(extra="forbid")
    run_time: float = Field(default=1800.0, gt=0)
    total_time: float = Field(default=8 * 3600.0, gt=0)
    run_steps: int = Field(default=40, ge=1)
    run_tokens: int = Field(default=400_000, ge=1)
    total_tokens: int | None = Field(default=None, ge=1)
    tool_time: float = Field(default=600.0, gt=0)
    memory_mb: int = Field(default=8192, ge=256)
    grace: float = Field(default=60.0, ge=0)


class Followup(BaseModel):
    """The follow-up round.

    Attributes:
        enabled: Re-test the top candidates after the first pass.
        top: How many candidates (across all runs, after deduplication) to re-test.
        min_level_rows: Smallest level of a categorical worth a within-level test.
    """

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    top: int = Field(default=10, ge=0, le=200)
    min_level_rows: int = Field(default=20, ge=5)


class Plan(BaseModel):
    """A night's work.

    Attributes:
        tables: Table paths or globs (relative to the plan file).
        goals: Goals; every table is explored once per goal and strategy.
        strategies: Ways to vary the runs (default: an open look and a look for groups).
        model: 'autopilot' or a chat model name.
        base_url: OpenAI-compatible endpoint for a chat model.
        seed: Seed of every run.
        isolate_tools: Run each run's tools in the memory-capped sandbox worker (off: in the run's process).
        memory: Knowledge store folder (relative to the plan) that tells known and earlier-seen candidates
            from new ones (default: the store ``serendip explore`` uses; 'none' = the shipped known results
            only, nothing remembered). ``--memory`` overrides it.
        budget: Limits.
        followup: The follow-up round.
    """

    model_config = ConfigDict(extra="forbid")
    tables: list[str] = Field(min_length=1)
    goals: list[str] = Field(default_factory=lambda: [DEFAULT_GOAL], min_length=1)
    strategies: list[Strategy] = Field(default_factory=list, alias="strategy")
    model: str = "autopilot"
    base_url: str | None = None
    seed: int = 0
    isolate_tools: bool = True
    memory: str | None = None
    budget: Budget = Field(default_factory=Budget)
    followup: Followup = Field(default_factory=Followup)

    @model_validator(mode="after")
    def _unique_names(self) -> "Plan":
        names = [s.name for s in self.strategies]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"strategy names must be unique; repeated: {', '.join(dup)}")
        return self

    def effective_strategies(self) -> list[Strategy]:
        """The plan's strategies, or the defaults when it gives none."""
        return self.strategies or default_strategies()


def default_strategies() -> list[Strategy]:
    """An open exploration, and one that looks for groups and outliers beneath the dominant trends."""
    return [Strategy(name="open"), Strategy(name="groups", goal="find groups and outliers")]


def _location(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "plan"


def one_line_error(exc: ValidationError) -> str:
    """The first validation problem as one line naming the key."""
    err = exc.errors()[0]
    key = _location(err.get("loc", ()))
    if err.get("type") == "extra_forbidden":
        return f"unknown key '{key}' in the plan"
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    got = err.get("input")
    shown = "" if isinstance(got, dict) or got is None else f" (got {repr(got)[:60]})"
    return f"bad value for '{key}': {msg}{shown}".replace("\n", " ")


def parse_plan(text: str) -> Plan:
    """Validate plan TOML text.

    Raises:
        PlanError: Bad TOML, an unknown key or a bad value.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"the plan is not valid TOML: {str(exc).splitlines()[0]}") from None
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        raise PlanError(one_line_error(exc)) from None


def expand_tables(patterns: list[str], base: Path) -> list[Path]:
    """Table files matching the plan's paths and globs (relative to ``base``), sorted, no repeats.

    Raises:
        PlanError: A pattern matches no file.
    """
    found: list[Path] = []
    for pattern in patterns:
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        matches = sorted(Path(p) for p in glob.glob(full, recursive=True) if Path(p).is_file())
        if not matches:
            raise PlanError(f"bad value for 'tables': {pattern!r} matches no file")
        for m in matches:
            if m.resolve() not in {f.resolve() for f in found}:
                found.append(m)
    return found


def load_plan(path: str | Path) -> tuple[Plan, list[Path]]:
    """Read, validate and expand a plan file.

    Returns:
        The plan and its table files.

    Raises:
        PlanError: The file is missing or the plan is invalid.
    """
    p = Path(path)
    if not p.is_file():
        raise PlanError(f"plan not found: {path}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"cannot read the plan {path}: {exc}") from None
    plan = parse_plan(text)
    return plan, expand_tables(plan.tables, p.parent)
