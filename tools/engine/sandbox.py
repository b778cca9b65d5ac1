"""The sandbox: tools run in one long-lived worker process per session that holds the table.

One worker per session means the table is loaded once and UMAP's numba compilation is paid once. The
parent (the agent) sends calls over a pipe and enforces the limits:

- wall clock: a call that runs past ``time_limit_s`` is stopped by killing the worker, which is then
  restarted (the table is reloaded and :meth:`Session.restore` brings back derived columns and the
  selection from the workspace); the call comes back as an error result the model can act on;
- memory: the worker caps its own address space with ``RLIMIT_AS``, so an oversized allocation raises
  :class:`MemoryError` inside the tool; the worker is then restarted and the call comes back as an error
  result. RLIMIT_AS counts reserved virtual memory, not resident memory; measured on the target machine,
  the whole stack (numpy, pandas, scikit-learn, matplotlib, umap/numba/llvmlite with 2 threads) reserves
  0.8 GB after import and peaks at 2.3 GB of virtual memory during a UMAP fit, far below the default cap
  of 8 GB, so the cap is workable and catches runaway allocations as a clean Python exception instead of
  the kernel's OOM killer. A worker that dies while close to the cap (C code that aborts on a failed
  allocation) is reported the same way; one killed by a signal while far below the cap (a user, a
  supervisor, the system's OOM killer under pressure from other processes) is reported as killed by
  that signal. A table that does not fit the cap while loading is a bad input (``TableLoadError``).

The run's time limit reaches the worker as a deadline: a call gets the smaller of its own limit and the
time the run has left, and a call stopped by the deadline does not restart the worker.

Anything else raised inside the worker is a bug: the worker answers with the exception's type and a
one-line message (the traceback goes to ``.workspace/worker.log``, never to the model) and the parent
raises :class:`ToolCrash`, which ends the run.

Workers are forked from multiprocessing's forkserver, a single-threaded process started once (with the
thread-count variables of :func:`worker_environment` set before numpy loads) that has imported the
scientific stack and the tool modules (:mod:`serendip.tools.engine.worker_preload`): a worker is ready in
a fraction of a second instead of ~4 s of imports, and shares those pages with its siblings. Each worker
then applies its own environment (its thread count, numba's cache) before numba is imported, and limits
OpenMP through threadpoolctl. Where there is no forkserver (Windows, macOS's default) the 'spawn' method
is used. As with any spawn-based code, a script that starts a runner must do so under
``if __name__ == "__main__":``; the ``serendip`` command and pytest do.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import multiprocessing
import multiprocessing.util  # noqa: F401  (registered before our atexit hook, so ours runs first)
import os
import signal
import sys
import threading
import time
import traceback
import types
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from serendip.tools.engine.argsize import bounded_arguments
from serendip.tools.engine.errors import TableLoadError
from serendip.tools.engine.numba_cache import cache_dir, start_warm_up
from serendip.tools.engine.result import ToolResult

if TYPE_CHECKING:
    from serendip.tools.engine.table import Table
    from serendip.tools.engine.thresholds import Thresholds

WORKER_LOG = "worker.log"
START_TIMEOUT_S = 900.0
"""Longest wait for a worker to import the stack and load the table."""
POLL_INTERVAL_S = 0.2
MAX_CONSECUTIVE_DEATHS = 3
"""Unexplained worker deaths in a row after which the sandbox gives up with :class:`ToolCrash`."""
PARALLEL_VARIABLES = ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS")
"""Thread pools sized to the usable CPUs: OpenMP (scikit-learn's KMeans, ...) and numba (UMAP)."""
SERIAL_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""BLAS runs single-threaded. Measured on the 2-core target machine with other work running, 2-thread
OpenBLAS made X.T @ X of a 1M x 20 array take 13-31 s instead of 0.02 s (its threads spin-wait when the
CPUs are shared), a 10k x 500 Gram matrix 6x slower and an SVD 3x slower; the tools' BLAS calls are on
tall, narrow arrays where a second thread gains little even on an idle machine."""
NEAR_CAP_FRACTION = 0.85
"""A worker that dies with at least this fraction of its address-space cap reserved died of memory."""


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one tool call.

    Attributes:
        time_limit_s: Wall-clock seconds a single call may run.
        memory_limit_mb: Address-space cap of the worker process, in MiB (RLIMIT_AS).
    """

    time_limit_s: float = 600
    memory_limit_mb: int = 8192

    def __post_init__(self) -> None:
        if not self.time_limit_s > 0:
            raise ValueError(f"time_limit_s must be positive; got {self.time_limit_s!r}")
        if not self.memory_limit_mb >= 512:
            raise ValueError(f"memory_limit_mb must be at least 512 (the libraries alone reserve ~1 GB); "
                             f"got {self.memory_limit_mb!r}")


class ToolCrash(RuntimeError):
    """A tool raised an unexpected exception (a bug) or the worker cannot run; the run must end.

    Attributes:
        tool: Name of the tool being called ('' when the worker failed outside a call).
        exc_type: Name of the exception raised in the worker.
    """

    def __init__(self, message: str, tool: str = "", exc_type: str = "") -> None:
        super().__init__(message)
        self.tool = tool
        self.exc_type = exc_type


def one_line(text: str, limit: int = 300) -> str:
    """The first non-empty line of ``text``, cut to ``limit`` characters."""
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()[:limit]
    return ""


# ====================================================================== worker side
def _is_memory_error(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, MemoryError):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _watch_parent() -> None:
    """Exit when the parent is gone, so a killed agent never leaves a busy worker behind.

    multiprocessing hands the worker the read end of a pipe held by the process that asked for it (with
    spawn and with the forkserver alike): end of file on it means that process has died.
    """
    parent = multiprocessing.parent_process()
    forked_by = os.getppid()
    while True:
        time.sleep(1.0)
        gone = not parent.is_alive() if parent is not None else os.getppid() != forked_by
        if gone:
            os._exit(3)


def _apply_environment(environment: dict[str, str]) -> None:
    """The parent's environment as it was when the worker was asked for (what a spawned interpreter would
    have seen), with the worker's own thread counts and numba cache: set before numba is first imported.
    OpenMP and BLAS, loaded with scikit-learn and numpy in the forkserver, are limited through threadpoolctl."""
    if not environment:
        return
    os.environ.clear()
    os.environ.update(environment)
    from threadpoolctl import threadpool_limits

    for var, api in (("OMP_NUM_THREADS", "openmp"), ("OPENBLAS_NUM_THREADS", "blas")):
        if environment.get(var, "").isdigit():
            threadpool_limits(limits=int(environment[var]), user_api=api)


def _redirect_output(log_path: Path) -> None:
    """Send the worker's stdout/stderr (library warnings, numba chatter) to the workspace log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _cap_address_space(memory_limit_mb: int) -> None:
    import resource

    cap = int(memory_limit_mb) * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY and hard < cap:
        cap = hard
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _load_table(config: dict) -> "Table":
    if config.get("table") is not None:
        return config["table"]
    loader = config.get("loader")
    if loader is None:
        from serendip.tools.loading import load_table as loader
    return loader(config["table_path"])


def _too_big(config: dict) -> str:
    """The one-line refusal of a table that does not fit the worker's memory cap."""
    name = Path(config.get("table_path") or "the table").name
    return (f"Cannot load {name!r}: it does not fit the tool worker's memory cap of {config['memory_limit_mb']} MB; "
            "raise --memory-limit or use a smaller table")


def _failure_message(exc: BaseException) -> tuple[str, str]:
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc  # KeyError's str() is a repr
    return type(exc).__name__, one_line(str(text))


def _worker_main(conn) -> None:
    """Entry point of the worker process: set limits, load the table, then serve calls until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it closes us
    threading.Thread(target=_watch_parent, daemon=True).start()
    for path in conn.recv():  # sys.path first: unpickling the config may import from there
        if path not in sys.path:
            sys.path.insert(0, path)
    config = conn.recv()
    _apply_environment(config.get("environment", {}))
    workspace = Path(config["workdir"]) / ".workspace"
    _redirect_output(workspace / WORKER_LOG)
    print(f"--- worker {os.getpid()} starting {time.strftime('%Y-%m-%d %H:%M:%S')}", flush=True)
    try:
        _cap_address_space(config["memory_limit_mb"])
        from serendip.tools.engine.overview import table_overview
        from serendip.tools.engine.registry import REGISTRY, call_tool, load_builtin_tools
        from serendip.tools.engine.session import Session

        load_builtin_tools()  # import the tool modules now so that calls are timed on their work only
        for module in config.get("extra_tool_modules", []):
            importlib.import_module(module)
        try:
            table = _load_table(config)
        except TableLoadError as exc:
            conn.send(("load_error", str(exc)))
            return
        except MemoryError:
            traceback.print_exc()
            conn.send(("load_error", _too_big(config)))
            return
        session = Session(table, config["workdir"], seed=config["seed"], thresholds=config["thresholds"])
        os.chdir(session.workspace)
        schemas = [spec.openai_tool() for spec in REGISTRY.values()]
        conn.send(("ready", {"schemas": schemas, "info": table_overview(session.table)}))
        if config.get("warm_up") and "umap" in REGISTRY:
            start_warm_up(session.table.n_rows)  # compiles UMAP's numba code while the first calls run
    except BaseException as exc:  # noqa: BLE001  (the parent must hear why the worker cannot start)
        traceback.print_exc()
        kind = "memory" if _is_memory_error(exc) else "crash"
        conn.send((kind, *_failure_message(exc)))
        return

    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        command = message[0]
        if command == "close":
            return
        try:
            if command in ("info", "call"):
                session.refresh()  # other workers of the run may have derived columns or saved artifacts
            if command == "info":
                reply = ("ok", table_overview(session.table))
            elif command == "call":
                _, name, arguments, result_id = message
                reply = ("ok", call_tool(session, name, arguments, result_id=result_id).to_dict())
            else:
                reply = ("crash", "ValueError", f"unknown worker command {command!r}")
        except BaseException as exc:  # noqa: BLE001  (reported to the parent, which decides)
            traceback.print_exc()
            reply = ("memory" if _is_memory_error(exc) else "crash", *_failure_message(exc))
            sys.stdout.flush()
        conn.send(reply)


# ====================================================================== parent side
_ENVIRONMENT_LOCK = threading.Lock()
PRELOAD_MODULE = "serendip.tools.engine.worker_preload"
_forkserver_ready = False


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    """``values`` set in this process's environment for the block (hold :data:`_ENVIRONMENT_LOCK`)."""
    saved = {var: os.environ.get(var) for var in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


@contextlib.contextmanager
def _caller_script_hidden():
    """The caller's ``__main__`` out of sight while a worker starts (hold :data:`_ENVIRONMENT_LOCK`).

    multiprocessing runs the main script again in every spawned or forkserver child, so a user's script
    that calls ``serendip.explore`` at top level (no ``if __name__ == "__main__":``) would start workers
    from inside its workers and fail. A worker needs nothing from that script.
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


def _context():
    """The multiprocessing context workers start from: a forkserver with the tools preloaded, else spawn.

    The forkserver is started here, once per process, with :func:`worker_environment` in its environment
    (BLAS single-threaded before numpy loads). ``SERENDIP_WORKER_START=spawn`` asks for fresh interpreters.
    """
    global _forkserver_ready
    if (os.environ.get("SERENDIP_WORKER_START", "").strip().lower() == "spawn"
            or "forkserver" not in multiprocessing.get_all_start_methods()):
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    with _ENVIRONMENT_LOCK:
        if not _forkserver_ready:
            import multiprocessing.forkserver as forkserver

            ctx.set_forkserver_preload([PRELOAD_MODULE])
            with _environment(worker_environment()):
                forkserver.ensure_running()
            _forkserver_ready = True
    return ctx
def start_worker_server() -> None:
    """Start the forkserver now, so that its imports (about 4 s) overlap the caller's own work.

    Workers ask for it anyway; calling this early only saves time. A no-op with the spawn start.
    """
    _context()


_LIVE_WORKERS: dict[int, tuple] = {}
"""(process, connection) of every running worker, by id of the process object."""


def _stop_worker(process, conn) -> None:
    """Kill and reap one worker (idempotent)."""
    if _LIVE_WORKERS.pop(id(process), None) is None:
        return
    if process.is_alive():
        process.kill()
    process.join(timeout=10)
    try:
        process.close()
    except ValueError:
        pass
    conn.close()


@atexit.register
def _stop_live_workers() -> None:
    # Registered after multiprocessing's exit hook, so it runs before it: that hook would otherwise wait
    # forever for a worker that is still busy or waiting for its next call.
    for process, conn in list(_LIVE_WORKERS.values()):
        _stop_worker(process, conn)


def worker_environment(n_threads: int | None = None) -> dict[str, str]:
    """Environment variables the worker needs set before numpy/numba are imported.

    OpenMP and numba pools are sized to ``n_threads`` (default: the CPUs this process may use) and BLAS
    is single-threaded (see :data:`SERIAL_VARIABLES`); values the user already set are kept.
    """
    try:
        n_cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n_cpus = os.cpu_count() or 1
    n_cpus = max(1, int(n_threads)) if n_threads else n_cpus
    env = {var: str(n_cpus) for var in PARALLEL_VARIABLES if var not in os.environ}
    env.update({var: "1" for var in SERIAL_VARIABLES if var not in os.environ})
    if "NUMBA_CACHE_DIR" not in os.environ:  # one on-disk cache shared by every worker (see numba_cache)
        env["NUMBA_CACHE_DIR"] = str(cache_dir())
    return env


def _vm_size_kb(pid: int) -> int:
    """Reserved virtual memory of process ``pid`` in KiB (0 when unknown)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class WorkerRunner:
    """Runs tool calls in a sandboxed worker process that holds the session's table.

    Args:
        table_path: The table file, loaded in the worker with ``load_table`` (ignored when ``table`` is given).
        workdir: The run directory; the worker works inside ``workdir/.workspace``.
        seed: Session seed.
        limits: Time and memory limits per call.
        thresholds: Reporting thresholds for the session.
        table: An already loaded table, sent to the worker (and resent on every restart).
        extra_tool_modules: Modules the worker imports at start to register more tools (tests).
        extra_sys_path: Directories prepended to the worker's ``sys.path`` (to find those modules).
        loader: A picklable (module-level) function ``path -> Table`` used instead of ``load_table``.
        warm_up: Compile UMAP's numba code in a background thread of the worker as soon as it is ready
            (see :mod:`~serendip.tools.engine.numba_cache`); for runs that will probably embed.
        n_threads: OpenMP/numba threads of the worker (default: the usable CPUs; a pool of several
            workers shares them out).
    """

    def __init__(self, table_path: str | None, workdir: str | Path, seed: int = 0,
                 limits: SandboxLimits = SandboxLimits(), thresholds: "Thresholds | None" = None,
                 table: "Table | None" = None, extra_tool_modules: list[str] | None = None,
                 extra_sys_path: list[str] | None = None,
                 loader: Callable[[str], "Table"] | None = None, warm_up: bool = False,
                 n_threads: int | None = None) -> None:
        if table is None and not table_path:
            raise ValueError("WorkerRunner needs a table_path or a table")
        self.table_path = str(Path(table_path).resolve()) if table_path and table is None else table_path
        self.workdir = Path(workdir).resolve()
        self.seed = int(seed)
        self.limits = limits
        self.thresholds = thresholds
        self.table = table
        self.extra_tool_modules = list(extra_tool_modules or [])
        self.extra_sys_path = [str(Path(p).resolve()) for p in (extra_sys_path or [])]
        self.loader = loader
        self.warm_up = bool(warm_up)
        self.n_threads = n_threads
        self.restarts = 0
        self.deadline: float | None = None
        """``time.monotonic()`` value by which every call must end (the run's time limit); None: no deadline."""
        self._process = None
        self._conn = None
        self._stopper = None
        self._schemas: list[dict] = []
        self._info: dict = {}
        self._deaths_in_a_row = 0
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    @property
    def pid(self) -> int | None:
        """Process id of the running worker (None when stopped)."""
        return self._process.pid if self._process is not None else None

    def is_alive(self) -> bool:
        """True while a worker process is running."""
        return self._process is not None and self._process.is_alive()

    def start(self) -> "WorkerRunner":
        """Spawn the worker and wait until it has loaded the table.

        Raises:
            TableLoadError: The table file cannot be read.
            ToolCrash: The worker could not start.
        """
        if self.is_alive():
            return self
        self._closed = False
        self.workdir.mkdir(parents=True, exist_ok=True)
        ctx = _context()
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        process = ctx.Process(target=_worker_main, args=(child_conn,),
                              name="serendip-worker", daemon=False)
        with _ENVIRONMENT_LOCK, _environment(worker_environment(self.n_threads)), _caller_script_hidden():
            process.start()  # the lock: pools start workers from threads
        child_conn.close()
        self._process, self._conn = process, parent_conn
        # Stop the worker when this runner is garbage-collected or the interpreter exits, even without close().
        _LIVE_WORKERS[id(process)] = (process, parent_conn)
        self._stopper = weakref.finalize(self, _stop_worker, process, parent_conn)
        self._stopper.atexit = False  # at exit _stop_live_workers runs, and before multiprocessing's hook
        config = {"workdir": str(self.workdir), "seed": self.seed, "thresholds": self.thresholds,
                  "memory_limit_mb": self.limits.memory_limit_mb, "table_path": self.table_path,
                  "table": self.table, "loader": self.loader, "extra_tool_modules": self.extra_tool_modules,
                  "warm_up": self.warm_up, "environment": {**os.environ, **worker_environment(self.n_threads)}}
        try:
            parent_conn.send(self.extra_sys_path)
            parent_conn.send(config)
        except (BrokenPipeError, EOFError, OSError):
            pass  # the worker already died; reported below
        reply = self._wait(START_TIMEOUT_S)
        if reply is not None and reply[0] == "died" and self._died_of_memory(reply):
            self.kill()
            raise TableLoadError(_too_big(config))
        if reply is None or reply[0] in ("timeout", "died"):
            how = "did not start in time" if reply and reply[0] == "timeout" else "stopped while starting"
            self.kill()
            raise ToolCrash(f"The tool worker {how}; see {self.workdir / '.workspace' / WORKER_LOG}.")
        kind = reply[0]
        if kind == "load_error":
            self.kill()
            raise TableLoadError(reply[1])
        if kind in ("crash", "memory"):
            self.kill()
            what = "ran out of memory" if kind == "memory" else "failed"
            raise ToolCrash(f"The tool worker {what} while starting: {reply[1]}: {reply[2]}", exc_type=reply[1])
        self._schemas = reply[1]["schemas"]
        self._info = reply[1]["info"]
        return self

    def close(self) -> None:
        """Stop the worker (politely, then by force) and release the pipe; safe to call twice."""
        self._closed = True
        process, conn = self._process, self._conn
        if process is None:
            return
        if process.is_alive() and conn is not None:
            try:
                conn.send(("close",))
            except (BrokenPipeError, EOFError, OSError):
                pass
            process.join(timeout=5)
        self.kill()

    def kill(self) -> None:
        """Stop the worker at once (SIGKILL) and reap it."""
        process, conn, stopper = self._process, self._conn, self._stopper
        self._process = self._conn = self._stopper = None
        if stopper is not None:
            stopper.detach()
        if process is not None:
            _stop_worker(process, conn)

    def restart(self) -> None:
        """Kill the worker and start a fresh one (the session state is restored from the workspace).

        Raises:
            ToolCrash: The runner was closed meanwhile (from another thread, as a pool does at the end of
                a run): no new worker is started.
        """
        self.kill()
        if self._closed:
            raise ToolCrash("The tool worker was closed while a call was running.")
        self.restarts += 1
        self.start()

    def __enter__(self) -> "WorkerRunner":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ messages
    def _wait(self, timeout: float) -> tuple | None:
        """The worker's next reply, or ('timeout',) / ('died', exitcode, last_vm_kb)."""
        process, conn = self._process, self._conn
        deadline = time.monotonic() + timeout
        last_vm_kb = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return ("timeout",)
            try:
                if conn.poll(min(POLL_INTERVAL_S, remaining)):
                    return conn.recv()
            except (EOFError, OSError):
                process.join(timeout=5)
                return ("died", process.exitcode, last_vm_kb)
            if not process.is_alive():
                if conn.poll(0):  # it answered, then exited
                    try:
                        return conn.recv()
                    except (EOFError, OSError):
                        pass
                return ("died", process.exitcode, last_vm_kb)
            last_vm_kb = _vm_size_kb(process.pid) or last_vm_kb

    def _request(self, message: tuple, timeout: float) -> tuple:
        try:
            self._conn.send(message)
        except (BrokenPipeError, EOFError, OSError):
            self._process.join(timeout=5)
            return ("died", self._process.exitcode, 0)
        return self._wait(timeout)

    # ------------------------------------------------------------------ API
    def call(self, name: str, arguments: dict | str | None, result_id: str) -> ToolResult:
        """Run one tool call in the worker.

        Returns:
            The tool's result; a call stopped by a limit or by the worker's death comes back as an
            error result (and the worker is restarted).

        Raises:
            ToolCrash: The tool raised an unexpected exception, or the worker keeps dying.
        """
        started = time.monotonic()
        time_limit, by_deadline = self.limits.time_limit_s, False
        if self.deadline is not None and self.deadline - started < time_limit:
            time_limit, by_deadline = self.deadline - started, True
        if time_limit <= 0:
            return self._failed(f"The call to {name} was not run: the run's time limit is reached.",
                                name, arguments, result_id, started)
        if not self.is_alive():
            self.start()
        reply = self._request(("call", name, arguments, result_id), time_limit)
        kind = reply[0]
        if kind == "ok":
            self._deaths_in_a_row = 0
            return ToolResult.from_dict(reply[1])
        if kind == "crash":
            raise ToolCrash(f"Tool {name!r} crashed with {reply[1]}: {reply[2]}", tool=name, exc_type=reply[1])
        limit_hint = "Try fewer rows/columns or a cheaper method."
        if kind == "timeout" and by_deadline:
            self.kill()  # the run is over: no restart (the next call, if any, starts a worker)
            return self._failed(f"The call to {name} was stopped at the run's time limit ({time_limit:.0f} s were "
                                "left when it started).", name, arguments, result_id, started)
        if kind == "timeout":
            message = (f"The call to {name} exceeded its time limit of {self.limits.time_limit_s:g} s and was "
                       f"stopped; the worker was restarted. {limit_hint}")
        elif kind == "memory" or self._died_of_memory(reply):
            message = (f"The call to {name} exceeded its memory limit of {self.limits.memory_limit_mb} MB and was "
                       f"stopped; the worker was restarted. {limit_hint}")
        else:
            self._deaths_in_a_row += 1
            how = _death_cause(reply[1])
            if self._deaths_in_a_row >= MAX_CONSECUTIVE_DEATHS:
                self.kill()
                raise ToolCrash(f"The tool worker died {self._deaths_in_a_row} calls in a row "
                                f"(last: {name}, {how}).", tool=name)
            message = (f"The call to {name} failed because the worker process stopped unexpectedly "
                       f"({how}); the worker was restarted. Retry, or use other arguments or another tool.")
        self.restart()
        return self._failed(message, name, arguments, result_id, started)

    @staticmethod
    def _failed(message: str, name: str, arguments: Any, result_id: str, started: float) -> ToolResult:
        result = ToolResult.failure(message, tool=str(name)[:60], arguments=bounded_arguments(_arguments_dict(arguments)))
        result.id = result_id
        result.elapsed = time.monotonic() - started
        return result

    def _died_of_memory(self, reply: tuple) -> bool:
        """A death is put down to memory only when the worker had reserved nearly all of its cap; a worker
        killed by a signal from outside (a user, a supervisor) is reported as killed, whatever the signal."""
        if reply[0] != "died":
            return False
        last_vm_kb = reply[2]
        cap_kb = self.limits.memory_limit_mb * 1024
        return last_vm_kb >= NEAR_CAP_FRACTION * cap_kb

    def tool_schemas(self) -> list[dict]:
        """OpenAI-format specs of the tools registered in the worker."""
        if not self.is_alive() and not self._schemas:
            self.start()
        return list(self._schemas)

    def table_info(self) -> dict:
        """Overview of the worker's table (size, columns with roles and units, load notes, sha256, format)."""
        if not self.is_alive():
            self.start()
        reply = self._request(("info",), 60.0)
        if reply[0] == "ok":
            self._info = reply[1]
            return reply[1]
        if reply[0] == "crash":
            raise ToolCrash(f"Describing the table failed with {reply[1]}: {reply[2]}", exc_type=reply[1])
        self.restart()
        return dict(self._info)


def _death_cause(exitcode: int | None) -> str:
    """'killed by signal SIGKILL (from outside this program)', 'exit code 7', ... for a worker's exit code."""
    if exitcode is None:
        return "exit status unknown"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"killed by signal {name} from outside this program (a user, a supervisor or the system's OOM killer)"
    return f"exit code {exitcode}"


def _arguments_dict(arguments: Any) -> dict:
    if isinstance(arguments, dict):
        return arguments
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments)
        except (json.JSONDecodeError, RecursionError):
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}
