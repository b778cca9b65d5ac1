"""Several sandbox workers for one run, so that independent tool calls run at the same time.

A :class:`WorkerPool` has the interface of :class:`~serendip.tools.engine.sandbox.WorkerRunner`
(``call``, ``table_info``, ``tool_schemas``, ``deadline``, ``close``) plus :meth:`WorkerPool.submit`,
which queues a call and returns a :class:`concurrent.futures.Future` at once. Each worker process has
one thread in the parent that takes queued calls in order and runs them; the first worker starts before
the run does, the others start in the background (each parses the table itself) and take calls once
they are ready. A tool can be pinned to one worker: an ``explore`` run sends UMAP to the last worker,
the only one that warms UMAP's numba code up (see :mod:`~serendip.tools.engine.numba_cache`), so two
processes never compile it at once on a cold cache.

All workers of a run share its workspace. A worker reads the derived columns and artifacts the others
wrote before each call (:meth:`Session.refresh <serendip.tools.engine.session.Session.refresh>`), and
every tool is seeded by the session seed and the call's own id, so a call gives the same result
whichever worker runs it. The caller must only submit calls whose inputs are already made (the
dispatcher logs results in id order, see :meth:`Dispatcher.submit
<serendip.agent.dispatch.Dispatcher.submit>`): the transcript and the report are then identical to a
run with one worker.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future
from typing import Callable

from serendip.tools.engine.result import ToolResult

WORKERS_VARIABLE = "SERENDIP_TOOL_WORKERS"
"""Environment variable: tool worker processes per run (default: the usable CPUs, at most MAX_WORKERS)."""
MAX_WORKERS = 4
"""Each worker holds its own copy of the table: more would multiply the memory for little gain."""


def usable_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """Worker processes per run: ``SERENDIP_TOOL_WORKERS`` when set (at least 1), else the usable CPUs
    (at most :data:`MAX_WORKERS`)."""
    text = os.environ.get(WORKERS_VARIABLE, "").strip()
    if text:
        try:
            return max(1, int(text))
        except ValueError:
            raise ValueError(f"{WORKERS_VARIABLE} must be a whole number of worker processes; got {text!r}") from None
    return max(1, min(MAX_WORKERS, usable_cpus()))


class WorkerPool:
    """Runs tool calls on ``n_workers`` sandbox workers made by ``make_worker``.

    Args:
        make_worker: ``index -> WorkerRunner`` (not started); every worker must work on the same table,
            run folder and seed.
        n_workers: Worker processes (1: every call runs on one worker, in submission order).
        pinned: Tool name -> index of the worker that runs it (e.g. UMAP on the worker that warmed it up);
            other calls go to the first free worker.
    """

    def __init__(self, make_worker: Callable[[int], object], n_workers: int = 1,
                 pinned: dict[str, int] | None = None) -> None:
        if n_workers < 1:
            raise ValueError(f"n_workers must be at least 1; got {n_workers!r}")
        self.workers = [make_worker(i) for i in range(n_workers)]
        self.pinned = {name: index for name, index in (pinned or {}).items() if 0 <= index < n_workers}
        self._jobs: list[tuple] = []
        self._ready = threading.Condition()
        self._dead: set[int] = set()
        self._threads: list[threading.Thread] = []
        self._deadline: float | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "WorkerPool":
        """Start the first worker (waiting for it: table errors surface here) and the others in the background."""
        if self._threads:
            return self
        self.workers[0].start()
        for index in range(len(self.workers)):
            thread = threading.Thread(target=self._serve, args=(index,), daemon=True, name=f"serendip-pool-{index}")
            thread.start()
            self._threads.append(thread)
        return self

    def _take(self, index: int) -> tuple | None:
        """The next job for worker ``index`` (None when the pool closes)."""
        with self._ready:
            while True:
                if self._closed:
                    return None
                for position, job in enumerate(self._jobs):
                    wanted = job[2]
                    if wanted is None or wanted == index or wanted in self._dead:
                        return self._jobs.pop(position)
                self._ready.wait()

    def _serve(self, index: int) -> None:
        """Take queued calls and run them on worker ``index`` until the pool closes."""
        worker = self.workers[index]
        if index > 0:
            try:
                worker.start()
            except Exception:  # noqa: BLE001  (a helper that cannot start leaves the calls to the others)
                with self._ready:
                    self._dead.add(index)
                    self._ready.notify_all()
                return
        while True:
            job = self._take(index)
            if job is None:
                return
            future, work = job[0], job[1]
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(work(worker))
            except BaseException as exc:  # noqa: BLE001  (re-raised in the caller by future.result())
                future.set_exception(exc)

    def close(self) -> None:
        """Stop every worker; calls still queued are cancelled."""
        with self._ready:
            if self._closed:
                return
            self._closed = True
            left, self._jobs = self._jobs, []
            self._ready.notify_all()
        for future, *_ in left:  # a caller waiting on a call never taken must not wait forever
            future.cancel()
        for thread in self._threads:
            thread.join(timeout=0.5)
        for worker in self.workers:
            worker.close()

    def __enter__(self) -> "WorkerPool":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ API
    @property
    def deadline(self) -> float | None:
        """``time.monotonic()`` value by which every call must end; set on every worker."""
        return self._deadline

    @deadline.setter
    def deadline(self, value: float | None) -> None:
        self._deadline = value
        for worker in self.workers:
            worker.deadline = value

    @property
    def restarts(self) -> int:
        """Worker restarts so far, all workers together."""
        return sum(getattr(w, "restarts", 0) for w in self.workers)

    def _queue(self, work: Callable[[object], object], wanted: int | None = None, urgent: bool = False) -> Future:
        if not self._threads:
            self.start()
        future: Future = Future()
        with self._ready:
            if self._closed:
                future.cancel()
                return future
            job = (future, work, wanted, urgent)
            if urgent:  # after the other urgent jobs, before every job queued ahead
                position = next((i for i, queued in enumerate(self._jobs) if not queued[3]), len(self._jobs))
                self._jobs.insert(position, job)
            else:
                self._jobs.append(job)
            self._ready.notify_all()
        return future

    def submit(self, name: str, arguments: dict | str | None, result_id: str, urgent: bool = False) -> Future:
        """Queue one call for the next free worker (or its pinned one); the future holds its ToolResult (or
        raises ToolCrash).

        Args:
            urgent: The caller is waiting for this call: it goes before the calls queued ahead (not urgent).
        """
        return self._queue(lambda worker: worker.call(name, arguments, result_id), self.pinned.get(name), urgent)

    def call(self, name: str, arguments: dict | str | None, result_id: str) -> ToolResult:
        """Run one call on the next free worker and wait for it."""
        return self.submit(name, arguments, result_id).result()

    def tool_schemas(self) -> list[dict]:
        """OpenAI-format specs of the tools (from the first worker)."""
        return self.workers[0].tool_schemas()

    def table_info(self) -> dict:
        """Overview of the table, derived columns included (from the next free worker)."""
        return self._queue(lambda worker: worker.table_info()).result()


def tool_worker_pool(cfg, out, table_path, planned: bool) -> WorkerPool:
    """The tool workers of one ``explore`` run.

    Args:
        cfg: The run configuration (seed, limits, thresholds).
        out: The run folder.
        table_path: The table file.
        planned: The autopilot plans the run (it submits independent steps ahead): use
            :func:`default_workers` workers; a model-driven run calls one tool at a time and gets one.
    """
    from serendip.tools.engine.sandbox import SandboxLimits, WorkerRunner

    limits = SandboxLimits(time_limit_s=cfg.tool_time_limit, memory_limit_mb=cfg.memory_limit_mb)
    n_workers = default_workers() if planned else 1
    threads = max(1, usable_cpus() // n_workers) if n_workers > 1 else None

    embedder = n_workers - 1  # the last worker to start: it has the most time to warm UMAP up

    def make_worker(index: int) -> WorkerRunner:
        # Only the autopilot's plan is known to embed; a model may never call UMAP, so its run is not taxed.
        return WorkerRunner(str(table_path), out, seed=cfg.seed, limits=limits, thresholds=cfg.thresholds,
                            warm_up=planned and index == embedder, n_threads=threads)

    return WorkerPool(make_worker, n_workers, pinned={"umap": embedder})
