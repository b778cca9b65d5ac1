"""Runs of a night: their ids, folders and inputs, and the one call that explores each of them.

A run is one ordinary exploration (table × goal × strategy) written to its own folder with the usual
output contract. Its id is derived from the table's sha256, the goal, the strategy and the model, so the
same plan run again finds its runs where it left them: finished ones are skipped, interrupted ones
resumed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from serendip.agent.explore import file_sha256
from serendip.agent.overnight.plan import Plan, Strategy

FINISHED = {"completed", "step_limit", "time_limit", "token_limit", "error"}
"""run.json exit statuses of a run that ended on its own (rerunning it would not change it)."""

FINAL_RECORDS = {"killed", "refused", "failed"}
"""overnight.json statuses that end a run without a finished run.json."""

RECORD = "overnight.json"
SPEC = "overnight_spec.json"
INPUT_DIR = "input"


class RunRefused(Exception):
    """The run cannot be made (a strategy names absent columns, a filter keeps no row); one line."""


class RunSpec(BaseModel):
    """Everything a worker needs to make one run (plain JSON, so it travels to any worker).

    Attributes:
        run_id: Deterministic id (table sha256 + goal + strategy + model + seed).
        table: Absolute path of the source table.
        table_sha256: sha256 of the source table's bytes.
        goal: The plan goal this run explores.
        strategy: How the run is varied.
        out_dir: The run folder (absolute): the exploration's own output, nothing else.
        state_dir: The run's overnight state (record, spec, subset input), beside the run folder.
        model: 'autopilot' or a chat model name.
        base_url: Endpoint of a chat model.
        seed: Seed.
        max_steps: Step limit.
        max_tokens: Token limit.
        time_limit: The run's own wall-clock limit (it stops cleanly).
        tool_time_limit: Limit of one tool call.
        memory_limit_mb: Memory cap of the tool worker.
        isolate_tools: Run tools in the sandbox worker.
        memory_estimate_mb: Memory the run is expected to need.
    """

    model_config = ConfigDict(extra="forbid")
    run_id: str
    table: str
    table_sha256: str
    goal: str
    strategy: Strategy
    out_dir: str
    state_dir: str
    model: str = "autopilot"
    base_url: str | None = None
    seed: int = 0
    max_steps: int = 40
    max_tokens: int = 400_000
    time_limit: float = 1800.0
    tool_time_limit: float = 600.0
    memory_limit_mb: int = 8192
    isolate_tools: bool = True
    memory_estimate_mb: int = 0

    @property
    def run_goal(self) -> str:
        """The goal text the exploration gets (plan goal + strategy)."""
        return self.strategy.goal_text(self.goal)


def run_id(table_sha256: str, goal: str, strategy: Strategy, model: str, seed: int) -> str:
    """A short id that is the same whenever the same table, goal, strategy, model and seed meet."""
    key = json.dumps({"table": table_sha256, "goal": goal, "strategy": strategy.model_dump(mode="json"),
                      "model": model, "seed": seed}, sort_keys=True)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


def safe_stem(name: str, limit: int = 40) -> str:
    """A file-name-safe version of a table stem."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:limit] or "table"


def memory_estimate_mb(path: Path) -> int:
    """Memory a run on this table is expected to need: the stack plus a multiple of the table's size.

    Compressed formats (Parquet) expand more when loaded; derived columns, per-row artifacts and model
    fits add a few copies of the numeric values.
    """
    size_mb = path.stat().st_size / 2**20
    factor = 10.0 if path.suffix.lower() in (".parquet", ".pq", ".xlsx") else 5.0
    return int(400 + factor * size_mb)


def make_runs(plan: Plan, tables: list[Path], out: Path) -> list[RunSpec]:
    """Every run of the plan, in plan order (table, then goal, then strategy)."""
    specs = []
    for table in tables:
        sha = file_sha256(table)
        est = memory_estimate_mb(table)
        for goal in plan.goals:
            for strategy in plan.effective_strategies():
                rid = run_id(sha, goal, strategy, plan.model, plan.seed)
                name = f"{safe_stem(table.stem)}--{strategy.name}--{rid}"
                folder, state = out / "runs" / name, out / "state" / name
                b = plan.budget
                specs.append(RunSpec(run_id=rid, table=str(table.resolve()), table_sha256=sha, goal=goal,
                                     strategy=strategy, out_dir=str(folder.resolve()),
                                     state_dir=str(state.resolve()), model=plan.model,
                                     base_url=plan.base_url, seed=plan.seed, max_steps=b.run_steps,
                                     max_tokens=b.run_tokens, time_limit=strategy.run_time or b.run_time, tool_time_limit=b.tool_time,
                                     memory_limit_mb=b.memory_mb, isolate_tools=plan.isolate_tools,
                                     memory_estimate_mb=est))
    return specs


# ---------------------------------------------------------------------- state of a run folder
def read_json(path: Path) -> dict:
    """A JSON file's object, or {} when it is missing or torn."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def run_state(spec: RunSpec) -> str:
    """'finished', 'interrupted' (a run.json that never reached an exit status) or 'new'."""
    run_dir = Path(spec.out_dir)
    record = read_json(Path(spec.state_dir) / RECORD)
    if record.get("status") in FINAL_RECORDS:
        return "finished"
    info = read_json(run_dir / "run.json")
    if info.get("exit_status") in FINISHED:
        return "finished"
    return "interrupted" if info else "new"


def write_record(spec: RunSpec, status: str, reason: str = "", wall_time_s: float = 0.0) -> dict:
    """Write the run's overnight record (what the digest and a rerun read)."""
    info = read_json(Path(spec.out_dir) / "run.json")
    state_dir = Path(spec.state_dir)
    record = {"run_id": spec.run_id, "status": status, "reason": reason[:300], "table": spec.table,
              "table_sha256": spec.table_sha256, "goal": spec.goal, "run_goal": spec.run_goal,
              "strategy": spec.strategy.model_dump(mode="json"), "folder": Path(spec.out_dir).name,
              "wall_time_s": round(wall_time_s or float(info.get("wall_time_s") or 0.0), 2),
              "tokens": int(info.get("tokens") or 0), "n_findings": int(info.get("n_findings") or 0)}
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / (RECORD + ".tmp")
    tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")
    tmp.replace(state_dir / RECORD)
    return record


def clear_run(spec: RunSpec) -> None:
    """Remove the run's folder and state so it starts cleanly (--redo)."""
    for folder in (Path(spec.out_dir), Path(spec.state_dir)):
        if folder.exists():
            shutil.rmtree(folder)


# ---------------------------------------------------------------------- the run's input table
def prepare_input(spec: RunSpec) -> Path:
    """The table the run explores: the source, or a subset of its columns/rows written in the run folder.

    A feature subset keeps the named columns plus the categorical and flag columns (the follow-up tests
    trends within their levels). A row subset uses the ``select`` tool's filter language. The row
    positions kept are written next to the subset (``source_rows.csv``).

    Raises:
        RunRefused: A named column is absent, or the filter keeps no row.
    """
    strategy = spec.strategy
    keep = strategy.kept_columns()
    if keep is None and strategy.where is None:
        return Path(spec.table)
    from serendip.tools.filter_grammar import FilterSyntaxError, parse_filter
    from serendip.tools.loading import load_table

    table = load_table(spec.table)
    df = table.df
    missing = [c for c in (keep or []) + strategy.control if c not in df.columns]
    if missing:
        raise RunRefused(f"strategy {strategy.name!r} names columns absent from {Path(spec.table).name}: "
                         f"{', '.join(missing[:10])}")
    rows = np.arange(len(df))
    if strategy.where is not None:
        parsed = parse_filter(strategy.where)
        absent = [c for c in parsed.columns if c not in df.columns]
        if absent:
            raise RunRefused(f"the filter of strategy {strategy.name!r} names columns absent from "
                             f"{Path(spec.table).name}: {', '.join(absent[:10])}")
        try:
            mask = parsed.evaluate(lambda name: df[name], {c: table.role(c) for c in parsed.columns})
        except FilterSyntaxError as exc:
            raise RunRefused(f"the filter of strategy {strategy.name!r} cannot be applied: {exc.one_line()}") from None
        rows = np.flatnonzero(mask)
        if len(rows) == 0:
            raise RunRefused(f"the filter of strategy {strategy.name!r} keeps no row of {Path(spec.table).name}")
    if keep is not None:
        extra = [c for c in df.columns if table.role(c) in ("categorical", "flag") and c not in keep]
        subset = df.iloc[rows][list(keep) + strategy.control + extra]
        subset = subset.loc[:, ~subset.columns.duplicated()]
    else:
        subset = df.iloc[rows]
    folder = Path(spec.state_dir) / INPUT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{safe_stem(Path(spec.table).stem)}.parquet"
    subset.reset_index(drop=True).to_parquet(path, index=False)
    (folder / "source_rows.csv").write_text("source_row\n" + "\n".join(map(str, rows.tolist())) + "\n",
                                             encoding="utf-8")
    return path


# ---------------------------------------------------------------------- the one exploration call
def explore_run(spec: RunSpec, table: Path, resume: bool) -> tuple[str, str]:
    """Run one ordinary exploration of ``table`` into the run folder; returns (exit status, reason).

    This is the only place the overnight runner calls the exploration engine (swap for the public
    ``serendip.explore`` API here).

    Raises:
        RunSetupError: The run could not start (bad table, nothing to resume).
    """
    import serendip
    from serendip.agent.settings import Settings

    settings = Settings.resolve({"model": spec.model, "base_url": spec.base_url, "seed": spec.seed,
                                 "max_steps": spec.max_steps, "max_tokens": spec.max_tokens,
                                 "time_limit": spec.time_limit, "tool_time_limit": spec.tool_time_limit,
                                 "memory_limit_mb": spec.memory_limit_mb})
    if not settings.is_autopilot:
        settings.require_key()
    run = serendip.explore(str(table), goal=spec.run_goal, out=spec.out_dir, settings=settings, resume=resume,
                           in_process=not spec.isolate_tools)
    return run.status, run.outcome.reason


def execute_run(spec: RunSpec) -> dict:
    """Make one run in this process: prepare its input, explore (resuming an interrupted attempt), record.

    Returns:
        The run's overnight record.
    """
    from serendip.agent.explore import RunSetupError
    from serendip.agent.settings import SettingsError

    run_dir = Path(spec.out_dir)
    state = run_state(spec)
    if state == "finished":
        return read_json(Path(spec.state_dir) / RECORD) or write_record(
            spec, read_json(run_dir / "run.json").get("exit_status", "error"))
    try:
        table = prepare_input(spec)
    except RunRefused as exc:
        return write_record(spec, "refused", str(exc))
    except Exception as exc:  # the source table cannot be read: record it, the night goes on
        return write_record(spec, "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    resume = state == "interrupted"
    try:
        try:
            status, reason = explore_run(spec, table, resume=resume)
        except RunSetupError:
            if not resume:
                raise
            # the interrupted attempt left nothing usable: start again from a clean folder
            shutil.rmtree(run_dir)
            status, reason = explore_run(spec, table, resume=False)
    except (RunSetupError, SettingsError) as exc:
        return write_record(spec, "failed", str(exc))
    return write_record(spec, status, reason)
