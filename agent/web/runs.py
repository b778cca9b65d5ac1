"""Full explorations started from the page: :func:`serendip.agent.explore.explore` in a background thread,
its progress lines kept as events that any number of clients can follow (server-sent events).

A run writes the folder of ``serendip explore`` under ``tables/ID/runs/RUN``; its worker holds one of the
server's worker slots until it ends. Runs found on disk at start-up are listed with the status their
run.json gives (a run the server did not see finish is 'interrupted').
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from serendip.agent.explore import ExploreConfig, RunSetupError, explore
from serendip.agent.progress import Progress
from serendip.agent.web.sessions import SessionManager, TableError, TableSession, read_json

RUN_ID = re.compile(r"^[0-9a-f]{12}$")
MAX_EVENTS = 2000


@dataclass
class RunState:
    """One exploration, as the page follows it.

    Attributes:
        id: The run's id.
        table_id: The table explored.
        folder: The run's output folder.
        goal: The goal given.
        status: 'running', then explore's exit status ('completed', 'error', 'time_limit', ...).
        reason: Why it ended, when not completed.
        events: Progress lines and the final event, in order.
        started: Start time (epoch seconds).
    """

    id: str
    table_id: str
    folder: Path
    goal: str = ""
    status: str = "running"
    reason: str = ""
    events: list[dict] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def done(self) -> bool:
        """True once the run has ended."""
        return self.status != "running"

    def add(self, event: dict) -> None:
        """Append an event (bounded: the oldest progress lines go first)."""
        with self.lock:
            event = {"seq": len(self.events) + 1, "elapsed_s": round(time.time() - self.started, 1), **event}
            self.events.append(event)
            if len(self.events) > MAX_EVENTS:
                del self.events[1:len(self.events) - MAX_EVENTS + 1]

    def events_since(self, seq: int) -> list[dict]:
        """Events after sequence number ``seq``."""
        with self.lock:
            return [e for e in self.events if e["seq"] > seq]


class RunProgress(Progress):
    """explore's progress display, turned into run events.

    Args:
        run: The run the lines belong to.
    """

    def __init__(self, run: RunState) -> None:
        super().__init__(quiet=True, live=False)
        self.run = run

    def step(self, text: str) -> None:
        """A step started."""
        self.run.add({"kind": "step", "text": str(text)[:300]})

    def done(self, text: str) -> None:
        """A step finished."""
        self.run.add({"kind": "done", "text": str(text)[:300]})


class RunManager:
    """Starts explorations and remembers them.

    Args:
        sessions: The tables and the worker slots.
    """

    def __init__(self, sessions: SessionManager) -> None:
        self.sessions = sessions
        self.runs: dict[str, RunState] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        for table in sessions.list():
            self._load_existing(table)

    def _load_existing(self, table: TableSession) -> None:
        if not table.runs_dir.is_dir():
            return
        for folder in table.runs_dir.iterdir():
            if not RUN_ID.match(folder.name):
                continue
            info = read_json(folder / "run.json", {}) or {}
            status = info.get("exit_status") or "interrupted"
            run = RunState(id=folder.name, table_id=table.id, folder=folder, goal=str(info.get("goal") or ""),
                           status="interrupted" if status == "running" else status,
                           reason=str(info.get("reason") or ""))
            try:
                run.started = folder.stat().st_mtime
            except OSError:
                pass
            self.runs[run.id] = run

    def busy(self, table_id: str) -> bool:
        """True while an exploration of the table runs."""
        with self._lock:
            return any(r.table_id == table_id and not r.done for r in self.runs.values())

    def of_table(self, table_id: str) -> list[RunState]:
        """The table's runs, newest first."""
        with self._lock:
            return sorted((r for r in self.runs.values() if r.table_id == table_id), key=lambda r: -r.started)

    def get(self, table_id: str, run_id: str) -> RunState:
        """One run of a table.

        Raises:
            TableError: 404 when there is none.
        """
        with self._lock:
            run = self.runs.get(run_id) if RUN_ID.match(run_id or "") else None
        if run is None or run.table_id != table_id:
            raise TableError(404, "no run with this id for this table")
        return run

    def forget_table(self, table_id: str) -> None:
        """Drop the runs of a deleted table."""
        with self._lock:
            for rid in [r.id for r in self.runs.values() if r.table_id == table_id]:
                self.runs.pop(rid, None)

    def start(self, table: TableSession, goal: str) -> RunState:
        """Start an exploration of ``table`` in the background.

        Raises:
            TableError: 409 when one already runs for this table.
            Busy: No worker slot is free.
        """
        if self.busy(table.id):
            raise TableError(409, "an exploration of this table is already running; follow it or wait for it")
        self.sessions.acquire_slot()
        run_id = secrets.token_hex(6)
        run = RunState(id=run_id, table_id=table.id, folder=table.runs_dir / run_id, goal=goal)
        with self._lock:
            self.runs[run.id] = run
        s = self.sessions.settings
        cfg = ExploreConfig(table=str(table.input_path), goal=goal, out=str(run.folder),
                            model=s.model or "autopilot", base_url=s.base_url, api_key=s.api_key,
                            max_steps=max(s.max_steps, 40), time_limit=s.run_time_limit,
                            tool_time_limit=s.tool_time_limit, memory_limit_mb=s.memory_limit_mb)
        run.add({"kind": "started", "text": f"exploring {table.meta.name}" + (f" — goal: {goal}" if goal else "")})
        thread = threading.Thread(target=self._run, args=(run, cfg, table), name=f"serendip-run-{run.id}",
                                  daemon=True)
        self._threads.append(thread)
        thread.start()
        return run

    def _run(self, run: RunState, cfg: ExploreConfig, table: TableSession) -> None:
        try:
            run.folder.parent.mkdir(parents=True, exist_ok=True)
            outcome, _ = explore(cfg, progress=RunProgress(run))
            run.reason = outcome.reason or ""
            status = outcome.status
        except RunSetupError as exc:
            run.reason, status = self.sessions.scrub(str(exc)), "error"
        except Exception as exc:  # noqa: BLE001 - report it on the page; the server keeps serving
            first = str(exc).splitlines()[0] if str(exc) else ""
            run.reason, status = self.sessions.scrub(f"{type(exc).__name__}: {first}"[:300]), "error"
        finally:
            self.sessions.slots.release()
        findings = read_json(run.folder / "findings.json", {}) or {}
        n = len(findings.get("findings") or []) if isinstance(findings, dict) else 0
        run.add({"kind": "end", "status": status, "reason": self.sessions.scrub(run.reason), "n_findings": n,
                 "report_url": self.report_url(run) if (run.folder / "report.html").exists() else None})
        run.status = status  # after the end event: a follower that sees the run done has every event

    def report_url(self, run: RunState) -> str:
        """Where the run's HTML report is served."""
        return f"/tables/{run.table_id}/runs/{run.id}/report.html"

    def describe(self, run: RunState, table: TableSession, with_findings: bool = True) -> dict:
        """The run as the API shows it."""
        out = {"id": run.id, "table_id": run.table_id, "goal": run.goal, "status": run.status,
               "reason": self.sessions.scrub(run.reason),
               "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.started)),
               "events_url": f"/api/tables/{run.table_id}/runs/{run.id}/events",
               "report_url": self.report_url(run) if run.done and (run.folder / "report.html").exists() else None}
        if with_findings and run.done:
            data = read_json(run.folder / "findings.json", {}) or {}
            out["findings"] = table.web_findings(list(data.get("findings") or []) if isinstance(data, dict) else [],
                                                 run.id)
        return out

    def wait_all(self, timeout: float = 5.0) -> None:
        """Wait a little for running explorations (at shutdown)."""
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
