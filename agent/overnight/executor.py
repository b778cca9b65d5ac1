"""Running a night's runs in parallel: local worker processes or a Dask cluster, within budgets.

Each run is one child process (see :mod:`worker`) started by a guard that waits for it with a hard
timeout (the run's own time limit plus a grace) and kills its whole process group when it hangs. The
guard is a plain function, so the same code runs locally (one thread per slot) and on a Dask worker
(``--cluster``). A run that fails, hangs or is refused is recorded; the others go on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from serendip.agent.overnight.runs import SPEC, RunSpec, read_json, write_record, RECORD


def run_guarded(spec_json: str, hard_timeout: float) -> dict:
    """Run one spec in a child process, killing it after ``hard_timeout`` seconds; returns its record.

    Args:
        spec_json: The RunSpec as JSON.
        hard_timeout: Seconds after which the run's process group is killed.
    """
    spec = RunSpec.model_validate_json(spec_json)
    state_dir = Path(spec.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    spec_path = state_dir / SPEC
    spec_path.write_text(spec_json, encoding="utf-8")
    log = open(state_dir / "worker.log", "ab")
    started = time.monotonic()
    env = dict(os.environ, TTY_INTERACTIVE="0", MPLBACKEND="Agg")
    proc = subprocess.Popen([sys.executable, "-m", "serendip.agent.overnight.worker", str(spec_path), str(os.getpid())],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, env=env)
    try:
        rc = proc.wait(timeout=hard_timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        return write_record(spec, "killed", f"still running after {hard_timeout:.0f} s (its time limit plus the "
                            "grace): its process was killed; partial results are in its folder",
                            time.monotonic() - started)
    finally:
        log.close()
    record = read_json(state_dir / RECORD)
    if rc != 0 or not record:
        tail = (state_dir / "worker.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
        return write_record(spec, "failed", f"the run's process exited with code {rc}"
                            + (f": {tail[0][:200]}" if tail else ""), time.monotonic() - started)
    return record


def available_memory_mb() -> int:
    """Memory the machine can still give (MemAvailable), in MB."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") / 2**20)


@dataclass
class Budgets:
    """What the whole night may spend.

    Attributes:
        total_time: Seconds for the night.
        total_tokens: Tokens for the night (None = no limit).
        grace: Seconds past a run's time limit before it is killed.
        memory_mb: Memory the runs may take together (default: what the machine has available).
    """

    total_time: float
    total_tokens: int | None = None
    grace: float = 60.0
    memory_mb: int | None = None


@dataclass
class NightLog:
    """What happened to each run, in the order they ended."""

    records: list[dict] = field(default_factory=list)


def _local_submit(jobs: int):
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="run")

    def submit(spec_json: str, timeout: float) -> Future:
        return pool.submit(run_guarded, spec_json, timeout)

    return submit, pool.shutdown


def _dask_submit(address: str, jobs: int):
    from distributed import Client

    client = Client(address, timeout="30s")
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="dask-run")

    def remote(spec_json: str, timeout: float) -> dict:
        return client.submit(run_guarded, spec_json, timeout, pure=False).result()

    def submit(spec_json: str, timeout: float) -> Future:
        return pool.submit(remote, spec_json, timeout)

    def close(wait: bool = True) -> None:
        pool.shutdown(wait=wait)
        client.close()

    return submit, close


def cluster_slots(address: str) -> int:
    """Threads the Dask cluster offers (used as the default number of parallel runs)."""
    from distributed import Client

    with Client(address, timeout="30s") as client:
        return max(1, sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()))


def execute(specs: list[RunSpec], jobs: int, budgets: Budgets, cluster: str | None = None,
            on_event: Callable[[str, RunSpec, dict | None], None] | None = None) -> NightLog:
    """Run ``specs`` with at most ``jobs`` at a time; every run ends with a record.

    Runs start in order while slots, memory and the night's budget allow. A run that would not fit in
    memory even alone is refused with the reason. Once the night's time or tokens are spent no run
    starts (those left are recorded as 'not_started' in the log but not on disk, so the next night
    runs them); a running run gets at most what remains of the night as its own time limit, so it
    stops cleanly with its partial results.

    Args:
        specs: Runs to make (finished ones already removed).
        jobs: Parallel runs.
        budgets: The night's limits.
        cluster: Address of a Dask scheduler (None = local processes).
        on_event: Called with ('start' | 'end', spec, record) as runs start and end.
    """
    on_event = on_event or (lambda *a: None)
    log = NightLog()
    night_start = time.monotonic()
    capacity = budgets.memory_mb if budgets.memory_mb is not None else available_memory_mb()
    submit, close = _dask_submit(cluster, jobs) if cluster else _local_submit(jobs)
    pending = list(specs)
    running: dict[Future, RunSpec] = {}
    tokens = 0
    try:
        while pending or running:
            while pending and len(running) < jobs:
                spec = pending[0]
                remaining = budgets.total_time - (time.monotonic() - night_start)
                spent_tokens = budgets.total_tokens is not None and tokens >= budgets.total_tokens
                if remaining <= 1 or spent_tokens:
                    why = "the night's token budget is spent" if spent_tokens else "the night's time budget is spent"
                    for s in pending:
                        rec = {"run_id": s.run_id, "status": "not_started", "reason": why, "folder": Path(s.out_dir).name}
                        log.records.append(rec)
                        on_event("end", s, rec)
                    pending = []
                    break
                # the machine's memory is checked here, where the run starts (a cluster worker has its own)
                if not cluster and spec.memory_estimate_mb > capacity:
                    rec = write_record(spec, "refused", f"needs about {spec.memory_estimate_mb} MB but only "
                                       f"{capacity} MB of memory are available")
                    pending.pop(0)
                    log.records.append(rec)
                    on_event("end", spec, rec)
                    continue
                in_use = sum(s.memory_estimate_mb for s in running.values())
                if not cluster and running and in_use + spec.memory_estimate_mb > capacity:
                    break  # wait for a running run to free memory
                pending.pop(0)
                run = spec.model_copy(update={"time_limit": min(spec.time_limit, remaining)})
                fut = submit(run.model_dump_json(), run.time_limit + budgets.grace)
                running[fut] = run
                on_event("start", run, None)
            if not running:
                continue
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in done:
                spec = running.pop(fut)
                try:
                    rec = fut.result()
                except Exception as exc:  # the guard itself failed (e.g. the cluster went away)
                    rec = write_record(spec, "failed", f"{type(exc).__name__}: {str(exc)[:200]}")
                tokens += int(rec.get("tokens") or 0)
                log.records.append(rec)
                on_event("end", spec, rec)
    finally:
        close(wait=True)
    return log
