"""``serendip eval``: run the eval cases (in parallel), score each output folder, write a scoreboard.

Each case runs ``explore()`` in its own worker process; the case's table (synthetic, prepared or
anonymised), its ``truth.json``, the run folder and ``score.json`` go under ``OUT/cases/<case>/``. A case
whose run already finished there is rescored, not rerun (``--redo`` reruns it). A case whose dataset
file is absent is skipped with a message naming the file. The exit code is 0 when every case that ran
passed, 1 otherwise, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import json
import multiprocessing
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from serendip.evals import scoreboard
from serendip.evals.cases import CaseError, load_case, load_cases, select_cases
from serendip.evals.truth import case_id

RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EVAL_TIME_LIMIT = 1800.0
"""Each case's wall-clock limit when no flag, environment variable or config file sets ``time_limit``."""


@dataclass(frozen=True)
class Job:
    """One case variant to run in a worker process (everything it needs, picklable)."""

    case_path: str
    case_name: str
    anonymised: bool
    out_root: str
    settings: Any = None
    in_process: bool = False
    judge: str | None = None
    judge_base_url: str | None = None
    redo: bool = False
    settings: tuple = ()  # issue 9: resolved model settings as (name, value) pairs for ExploreConfig

    @property
    def id(self) -> str:
        return case_id(self.case_name, self.anonymised)

    @property
    def variant(self) -> str:
        return "anonymised" if self.anonymised else "plain"


def finished_run(run_dir: Path) -> bool:
    """True when ``run_dir`` holds a run that ended (findings.json written, run.json not 'running')."""
    try:
        info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return (run_dir / "findings.json").exists() and info.get("exit_status") not in (None, "running")


def run_job(job: Job) -> dict:
    """Prepare, run, score (and judge) one case variant; never raises (errors become an 'error' result)."""
    started = time.monotonic()
    case_dir = Path(job.out_root) / "cases" / job.id
    base = {"case": job.case_name, "variant": job.variant, "case_dir": str(case_dir)}
    try:
        case = load_case(job.case_path)
        missing = case.missing_file()
        if missing:
            return {**base, "status": "skipped", "passed": None, "message": missing, "wall_time_s": 0.0}
        from serendip.evals.scorer import score
        from serendip.evals.truth import materialise

        prepared = materialise(case, case_dir, anonymised=job.anonymised)
        run_dir = case_dir / "run"
        reused = finished_run(run_dir) and not job.redo
        if not reused:
            if run_dir.exists():
                shutil.rmtree(run_dir)
            explore_case(job, prepared.table_path, prepared.goal, case.seed, run_dir)
        result = score(run_dir, prepared.truth)
        result.update(base)
        result["run_dir"] = str(run_dir)
        result["reused_run"] = reused
        if job.judge:
            result["judge"] = judge_case(job, prepared.truth, run_dir)
    except Exception as exc:  # noqa: BLE001 — one broken case must not end the whole eval
        case_dir.mkdir(parents=True, exist_ok=True)
        (case_dir / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
        result = {**base, "status": "error", "passed": False,
                  "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:400]}
    result["wall_time_s"] = round(time.monotonic() - started, 2)
    if result.get("reused_run"):
        try:  # a rescored run reports the time its exploration took, not the rescoring
            info = json.loads((Path(result["run_dir"]) / "run.json").read_text(encoding="utf-8"))
            result["wall_time_s"] = float(info.get("wall_time_s") or result["wall_time_s"])
        except (OSError, json.JSONDecodeError, ValueError):
            pass
    try:
        case_dir.mkdir(parents=True, exist_ok=True)
        (case_dir / "score.json").write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    except OSError:
        pass
    return result


def explore_case(job: Job, table: Path, goal: str, seed: int, run_dir: Path) -> None:
    """Run the explorer on the case's table into ``run_dir`` (quietly), through the public API."""
    import serendip

    settings = job.settings if job.settings is not None else serendip.Settings.defaults()
    serendip.explore(table, goal=goal, out=run_dir, settings=settings.replace(seed=seed), in_process=job.in_process)


def judge_case(job: Job, truth, run_dir: Path) -> dict:
    """The judge's verdict on one run (an 'error' entry if the judge fails)."""
    from serendip.evals.judge import build_judge, judge_findings
    from serendip.evals.scorer import read_output

    try:
        output = read_output(run_dir)
        return judge_findings(build_judge(job.judge, job.judge_base_url), truth, output.findings, job.judge)
    except Exception as exc:  # noqa: BLE001 — the judge is optional; record why it failed
        return {"judge": job.judge, "score": None, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}


# ---------------------------------------------------------------------- progress
class EvalProgress:
    """A progress bar on a terminal; one plain line per finished case otherwise."""

    def __init__(self, total: int, quiet: bool = False, stream=None) -> None:
        from rich.console import Console

        from serendip.agent.progress import interactive

        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.total = total
        self.done = 0
        self.start = time.monotonic()
        self.console = Console(file=self.stream, highlight=False)
        self._bar = None
        if not quiet and interactive(self.stream):
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._bar = Progress(SpinnerColumn(), TextColumn("eval"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console, transient=True)
            self._task = self._bar.add_task("eval", total=total)

    def __enter__(self) -> "EvalProgress":
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def started(self, jobs: list[Job]) -> None:
        """Say what is about to run."""
        self._line(f"running {len(jobs)} case(s): {', '.join(j.id for j in jobs)}")

    def finished(self, result: dict) -> None:
        """One case finished."""
        self.done += 1
        status = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "skipped": "SKIP"}.get(result.get("status"), "?")
        name = case_id(result.get("case", "?"), result.get("variant") == "anonymised")
        extra = result.get("message") or result.get("error") or ""
        if result.get("status") == "fail":
            extra = "; ".join(c["name"] for c in result.get("checks", []) if c["required"] and not c["passed"])
        self._line(f"[{self.done}/{self.total}] {status:5} {name} ({result.get('wall_time_s', 0):.0f} s)"
                   + (f" — {extra}" if extra else ""))
        if self._bar is not None:
            self._bar.advance(self._task)

    def _line(self, text: str) -> None:
        if self.quiet:
            return
        elapsed = time.monotonic() - self.start
        self.console.print(f"[{elapsed:6.1f}s] {text}", markup=False, highlight=False, soft_wrap=True)


# ---------------------------------------------------------------------- running
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "SERENDIP_TOOL_WORKERS")


@contextlib.contextmanager
def thread_limits(n_jobs: int):
    """Share the cores between parallel cases: each worker's BLAS/OpenMP/numba threads, and each run's tool
    workers (``SERENDIP_TOOL_WORKERS``), = cores // jobs.

    Without this every case's worker starts one thread per core, and two parallel cases on two cores ran
    4x slower than one case alone. Spawned workers inherit the environment set here; variables the
    user already set are kept.
    """
    per_job = str(max(1, (os.cpu_count() or 1) // max(1, n_jobs)))
    added = [v for v in THREAD_VARS if v not in os.environ]
    for v in added:
        os.environ[v] = per_job
    try:
        yield
    finally:
        for v in added:
            os.environ.pop(v, None)


def run_jobs(jobs: list[Job], n_jobs: int, progress: EvalProgress) -> list[dict]:
    """Run the jobs, ``n_jobs`` worker processes at a time (0 = in this process, for debugging and tests)."""
    results: list[dict] = []
    if n_jobs <= 0:
        for job in jobs:
            results.append(run_job(job))
            progress.finished(results[-1])
        return results
    ctx = multiprocessing.get_context("spawn")
    with thread_limits(n_jobs), cf.ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx) as pool:
        futures = {pool.submit(run_job, job): job for job in jobs}
        for fut in cf.as_completed(futures):
            job = futures[fut]
            try:
                result = fut.result()
            except Exception as exc:  # noqa: BLE001 — a worker died (out of memory, killed)
                result = {"case": job.case_name, "variant": job.variant, "status": "error", "passed": False,
                          "error": f"worker process failed: {type(exc).__name__}: {str(exc)[:300]}",
                          "wall_time_s": 0.0}
            results.append(result)
            progress.finished(result)
    return results


def build_parser() -> argparse.ArgumentParser:
    """Options of ``serendip eval``."""
    p = argparse.ArgumentParser(prog="serendip eval", description=(
        "Run the eval cases (tables with known results), score each run's findings.json and rows.csv, and "
        "write a scoreboard. Exit code 0 when every case that ran passed."))
    p.add_argument("--model", default=None, help="'autopilot' (default) or a chat model name")
    p.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint of the model")
    p.add_argument("--cases", action="append", default=None, metavar="NAMES",
                   help="case names or shell globs, comma-separated or repeated (default: all cases)")
    variants = p.add_mutually_exclusive_group()
    variants.add_argument("--anonymised", action="store_true",
                          help="run the anonymised variants (columns c1…cN, rows shuffled) instead of the plain ones")
    variants.add_argument("--both", action="store_true", help="run the plain and the anonymised variant of each case")
    p.add_argument("--jobs", type=int, default=1, help="cases run in parallel, one process each (default 1; 0 = in this process)")
    p.add_argument("--out", default="", help="work folder for tables, runs and the scoreboard "
                                             "(default: serendip-runs/eval-<time>)")
    p.add_argument("--fast", action="store_true", help="only the fast cases (a subset for CI)")
    p.add_argument("--write-results", action="store_true", help="also write the markdown scoreboard to evals/RESULTS.md")
    p.add_argument("--judge", default=None, metavar="MODEL",
                   help="score stated hypotheses with this judge model as well (off by default)")
    p.add_argument("--judge-base-url", default=None, help="OpenAI-compatible endpoint of the judge model")
    p.add_argument("--max-steps", type=int, default=None, help="most model turns / planner steps per case (default 40)")
    p.add_argument("--time-limit", type=float, default=None, help="wall-clock limit of each run in seconds (default 1800)")
    p.add_argument("--in-process", action="store_true", help="run tools inside each case's process (no sandbox worker)")
    p.add_argument("--redo", action="store_true", help="rerun cases whose run already finished in --out")
    p.add_argument("--list", action="store_true", help="list the selected cases and exit")
    p.add_argument("--quiet", action="store_true", help="print only the final line")
    g = p.add_argument_group("model settings (default: SERENDIP_* environment, config file, then defaults for the "
                             "endpoint; loopback = a CPU server)")
    g.add_argument("--planner", default=None, choices=("llm", "hybrid", "autopilot"),
                   help="with a model: llm, hybrid (the autopilot's pass first, then the model) or autopilot")
    g.add_argument("--request-timeout", "--timeout", dest="request_timeout", type=float, default=None,
                   help="seconds per model response (600 loopback, 120 hosted)")
    g.add_argument("--max-output-tokens", type=int, default=None, help="most tokens of one model reply")
    g.add_argument("--tool-choice", default=None, choices=("required", "auto", "off"),
                   help="tool_choice sent to the server (default required)")
    g.add_argument("--tool-profile", default=None, choices=("auto", "full", "compact"),
                   help="tool schemas shown to the model (default auto: compact on loopback)")
    return p


def _fail(message: str) -> int:
    print(f"serendip eval: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``serendip eval`` (the CLI passes the arguments after ``eval``)."""
    args = build_parser().parse_args(argv)
    if args.jobs < 0:
        return _fail("--jobs must be 0 or more")
    try:
        cases = select_cases(load_cases(), args.cases, fast=args.fast)
    except CaseError as exc:
        return _fail(str(exc))
    if not cases:
        return _fail("no case selected")
    if args.list:
        for c in cases:
            note = c.missing_file()
            print(f"{c.name}{' [fast]' if c.fast else ''}: {c.description[:100]}" + (f"  ({note})" if note else ""))
        return EXIT_OK
    import serendip

    try:
        settings = serendip.Settings.resolve({"model": args.model, "base_url": args.base_url,
                                              "max_steps": args.max_steps, "time_limit": args.time_limit,
                                              "planner": args.planner, "tool_profile": args.tool_profile,
                                              "tool_choice": args.tool_choice,
                                              "request_timeout": args.request_timeout,
                                              "max_output_tokens": args.max_output_tokens}).require_key()
        if settings.sources["time_limit"] == "default":
            settings = settings.replace(_source="eval default", time_limit=EVAL_TIME_LIMIT)
        if args.judge:
            serendip.Settings.resolve({"model": args.judge, "base_url": args.judge_base_url}).require_key()
    except serendip.SettingsError as exc:
        return _fail(str(exc))
    if args.judge == "autopilot":
        return _fail("--judge needs a chat model name, not 'autopilot'")
    out = Path(args.out) if args.out else Path("serendip-runs") / (
        "eval-" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S"))
    variants = [True] if args.anonymised else [False, True] if args.both else [False]
    jobs = [Job(case_path=c.path, case_name=c.name, anonymised=anon, out_root=str(out), settings=settings,
                in_process=args.in_process, judge=args.judge, judge_base_url=args.judge_base_url, redo=args.redo)
            for c in cases for anon in variants]
    out.mkdir(parents=True, exist_ok=True)
    with EvalProgress(len(jobs), quiet=args.quiet) as progress:
        progress.started(jobs)
        results = run_jobs(jobs, args.jobs, progress)
    board = scoreboard.build(results, meta=run_meta(settings, args, variants))
    _, md = scoreboard.write(board, out)
    if args.write_results:
        RESULTS_MD.write_text(scoreboard.markdown(board), encoding="utf-8")
    tot = board["overall"]
    print(f"{tot['n_passed']}/{tot['n_run']} cases passed"
          + (f", {tot['n_skipped']} skipped" if tot["n_skipped"] else "") + f". Scoreboard: {md}")
    return EXIT_OK if tot["n_run"] and tot["n_passed"] == tot["n_run"] else EXIT_FAILED


def run_meta(settings, args: argparse.Namespace, variants: list[bool]) -> dict:
    """What produced the scoreboard (no secrets)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("serendip")
    except PackageNotFoundError:
        ver = "?"
    return {"model": settings.model, "base_url": settings.base_url, "judge": args.judge, "judge_base_url": args.judge_base_url,
            "seed": "per case (default 0)", "version": ver,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "variants": ", ".join("anonymised" if v else "plain" for v in variants), "fast": args.fast,
            "max_steps": settings.max_steps, "time_limit_s": settings.time_limit, "jobs": args.jobs,
            "cases": args.cases or "all", "planner": settings.planner, "tool_profile": settings.tool_profile}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
