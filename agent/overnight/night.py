"""``serendip overnight PLAN.toml``: run the plan, follow up the top candidates, write the digest."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from rich.console import Console

from serendip.agent.overnight.digest import collect, label_novelty, remember_night, write_digest
from serendip.agent.overnight.executor import Budgets, cluster_slots, execute
from serendip.agent.overnight.plan import Plan, PlanError, load_plan
from serendip.agent.overnight.runs import RECORD, RunSpec, clear_run, make_runs, read_json, run_state, write_record
from serendip.agent.progress import interactive

FAILED = {"failed", "killed", "refused", "error", "not_started"}


class NightProgress:
    """Plain log lines when not on a terminal; a live view of the running runs on one."""

    def __init__(self, total: int, live: bool | None = None, quiet: bool = False,
                 console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.live = interactive() if live is None else live
        self.quiet = quiet
        self.start = time.monotonic()
        self.total = total
        self._progress = None
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> "NightProgress":
        if self.live and not self.quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(), console=self.console)
            self._progress.__enter__()
            self._overall = self._progress.add_task("runs", total=self.total)
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def log(self, text: str) -> None:
        """One log line."""
        if self.quiet:
            return
        line = f"[{time.monotonic() - self.start:7.1f}s] {text}"
        if self._progress is not None:
            self._progress.console.print(line, markup=False, highlight=False)
        else:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def event(self, kind: str, spec: RunSpec, record: dict | None) -> None:
        """A run started or ended."""
        name = Path(spec.out_dir).name
        if kind == "start":
            self.log(f"start {name}")
            if self._progress is not None:
                self._tasks[name] = self._progress.add_task(name, total=None)
            return
        rec = record or {}
        reason = f" ({rec.get('reason')})" if rec.get("reason") else ""
        self.log(f"end   {name}: {rec.get('status')}{reason}"[:300])
        if self._progress is not None:
            if name in self._tasks:
                self._progress.remove_task(self._tasks.pop(name))
            self._progress.advance(self._overall)


def default_out(plan_path: Path) -> Path:
    """serendip-overnight/<plan stem> in the current folder (stable, so a rerun resumes)."""
    return Path("serendip-overnight") / plan_path.stem


def follow_up_candidates(out: Path, plan: Plan, candidates, progress: NightProgress) -> None:
    """Re-test the top candidates (by strength × novelty), grouped per run; results cached per run."""
    from serendip.agent.overnight.followup import follow_up

    if not plan.followup.enabled or plan.followup.top == 0:
        return
    chosen = sorted((c for c in candidates if c.finding.get("kind") in ("trend", "group", "outlier")),
                    key=lambda c: (-(c.strength * (1.0 if c.novelty == "new" else 0.4)), c.signature))[: plan.followup.top]
    by_run: dict[str, list] = {}
    for c in chosen:
        by_run.setdefault(c.run["folder"], []).append(c)
    for folder, cands in by_run.items():
        cache_path = out / "followup" / f"{folder}.json"
        cache = read_json(cache_path)
        todo = [c.finding for c in cands if c.finding["id"] not in cache]
        if todo:
            progress.log(f"follow-up of {len(todo)} candidate(s) of {folder}")

            finished: list[str] = []

            def done(finding: dict, result: dict) -> None:  # called within this iteration, on this run's todo
                finished.append(finding["id"])
                progress.log(f"  {len(finished)}/{len(todo)} {result['label']}: {str(finding.get('title', ''))[:90]}")

            try:
                # the run's re-tests are kept together (their evidence ids number one transcript), so they are
                # saved when all of them are done
                results = follow_up(out / "runs" / folder, todo, out / "followup" / folder, seed=plan.seed,
                                    min_level_rows=plan.followup.min_level_rows, on_result=done)
            except Exception as exc:  # one run's follow-up failing leaves its candidates untested
                progress.log(f"follow-up of {folder} failed: {type(exc).__name__}: {str(exc)[:200]}")
                results = {}
            cache.update(results)
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            cache_path.write_text(json.dumps(cache, indent=1, default=str), encoding="utf-8")
        for c in cands:
            c.followup = cache.get(c.finding["id"])


def memory_folder(flag: str | None, plan: Plan, plan_path: Path) -> str | None:
    """The knowledge store of the night: --memory, else the plan's ``memory`` (relative to the plan), else the
    default store (as for ``serendip explore``); None for 'none'."""
    from serendip.agent.knowledge.store import default_memory_dir

    value = flag if flag is not None else plan.memory
    if value is not None and value.strip().lower() in ("none", "off", ""):
        return None
    if value is None:
        return str(default_memory_dir())
    path = Path(value).expanduser()
    if flag is None and not path.is_absolute():
        path = plan_path.parent / path
    return str(path.resolve())


def run_night(plan_path: str, out: str | None = None, jobs: int | None = None, redo: bool = False,
              cluster: str | None = None, quiet: bool = False, memory: str | None = None) -> int:
    """Run a plan end to end; returns the exit code (0 unless every run failed, 2 for a bad plan).

    Args:
        plan_path: The plan (TOML).
        out: Output folder (default: serendip-overnight/<plan stem>).
        jobs: Runs at a time.
        redo: Redo finished runs.
        cluster: Address of a Dask scheduler to send runs to.
        quiet: Print only the result line.
        memory: Knowledge store folder ('none': the shipped known results only, nothing remembered).
    """
    from serendip.agent.knowledge.run_hook import KnowledgeOpenError
    from serendip.agent.overnight.memory import NightMemory

    try:
        plan, tables = load_plan(plan_path)
    except PlanError as exc:
        print(f"serendip: error: {exc}", file=sys.stderr)
        return 2
    try:
        night_memory = NightMemory(memory_folder(memory, plan, Path(plan_path)))
    except KnowledgeOpenError as exc:
        print(f"serendip: error: {exc}", file=sys.stderr)
        return 2
    out_dir = Path(out) if out else default_out(Path(plan_path))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"serendip: error: cannot create output folder {out_dir}: {exc.strerror}", file=sys.stderr)
        return 2
    out_dir = out_dir.resolve()
    specs = make_runs(plan, tables, out_dir)
    if redo:
        for s in specs:
            clear_run(s)
    finished = [s for s in specs if run_state(s) == "finished"]
    todo = [s for s in specs if s not in finished]
    if cluster and jobs is None:
        try:
            jobs = cluster_slots(cluster)
        except Exception as exc:
            print(f"serendip: error: cannot reach the Dask scheduler at {cluster}: {str(exc)[:200]}", file=sys.stderr)
            return 2
    jobs = max(1, jobs or 1)
    b = plan.budget
    progress = NightProgress(total=len(todo), quiet=quiet)
    with progress:
        progress.log(f"{len(specs)} runs ({len(tables)} tables × {len(plan.goals)} goals × "
                     f"{len(plan.effective_strategies())} strategies); {len(finished)} already finished, "
                     f"{len(todo)} to run with {jobs} at a time" + (f" on {cluster}" if cluster else ""))
        for s in finished:
            if not (Path(s.state_dir) / RECORD).exists():
                write_record(s, read_json(Path(s.out_dir) / "run.json").get("exit_status", "error"))
        log = execute(todo, jobs, Budgets(total_time=b.total_time, total_tokens=b.total_tokens, grace=b.grace),
                      cluster=cluster, on_event=progress.event)
        not_started = {r["run_id"]: r for r in log.records if r.get("status") == "not_started"}
        records = [not_started.get(s.run_id) or read_json(Path(s.state_dir) / RECORD) for s in specs]
        records = [r for r in records if r]
        done = [r for r in records if r.get("status") != "not_started"]
        candidates = collect(out_dir, done)
        label_novelty(out_dir, candidates, night_memory, [Path(s.out_dir).name for s in specs])
        follow_up_candidates(out_dir, plan, candidates, progress)
        write_digest(out_dir, candidates, records)
        stored = remember_night(out_dir, done, night_memory)
        progress.log(f"digest: {out_dir / 'index.html'} ({len(candidates)} candidates)"
                     + (f"; {stored} findings remembered in {night_memory.folder}" if night_memory.folder else ""))
    if records and all(r.get("status") in FAILED for r in records):
        print("serendip: error: every run failed; see " + str(out_dir / "index.md"), file=sys.stderr)
        return 1
    print(f"Digest: {out_dir / 'index.html'}  (also index.md, summary.md in {out_dir})")
    return 0
