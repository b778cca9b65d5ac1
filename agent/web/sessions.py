"""Uploaded tables and their live sessions: one sandboxed worker per table, a cap on live workers, idle stop.

Layout of the data directory (every name below is chosen by the server; ``ID`` is 16 hex digits)::

    tables/ID/meta.json        the upload's label, size, checksum, time
    tables/ID/input/NAME       the uploaded bytes, read-only, never modified
    tables/ID/profile.json     written by the worker's loader (see :mod:`.profile`)
    tables/ID/findings.json    the session's findings so far (so a stopped session still lists them)
    tables/ID/session/         the conversation's folder (transcript, figures, workspace, chat.json, report)
    tables/ID/runs/RUN/        one full exploration (the files of ``serendip explore``)

A table's conversation is a :class:`~serendip.agent.conversation.session.ChatSession` (the same engine
as ``serendip chat``); its worker is started on first use, stopped after ``idle_timeout`` seconds without
use (the conversation is saved and resumed on the next use), and counts against ``max_workers`` together
with running explorations. Over the cap, the least recently used idle session is stopped to make room; if
none is idle, the request is refused with :class:`Busy` (HTTP 503 with Retry-After).
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from serendip.agent.conversation import events as ev
from serendip.agent.conversation.engine import session_file
from serendip.agent.conversation.session import ChatSession
from serendip.agent.explore import RunSetupError
from serendip.agent.loop import LoopLimits
from serendip.agent.web.profile import load_and_profile
from serendip.tools.engine.jsonsafe import to_jsonable

TABLE_ID = re.compile(r"^[0-9a-f]{16}$")
FIGURE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,120}\.png$")
RETRY_AFTER_S = 10
# Slash commands a page may send: the tool commands and the session's own; never /load (a server path),
# /report DIR (a server folder) or /quit.
WEB_COMMANDS = {"/describe", "/correlate", "/pca", "/umap", "/cluster", "/outliers", "/compare", "/select", "/plot",
                "/findings", "/report", "/goal", "/help"}


class Busy(Exception):
    """No worker can be started now (the cap is reached) or the table is busy; try again later.

    Args:
        message: One line for the user.
        retry_after: Seconds to wait before trying again.
    """

    def __init__(self, message: str, retry_after: int = RETRY_AFTER_S) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class TableError(Exception):
    """A table that cannot be opened or an operation refused; ``status`` is the HTTP status.

    Args:
        status: HTTP status code.
        message: One line for the user.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class WebSettings:
    """How the server runs sessions.

    Attributes:
        data_dir: Where uploads, sessions and runs are kept.
        max_upload_bytes: Largest upload accepted.
        max_workers: Most sandboxed workers alive at once (sessions plus explorations).
        idle_timeout_s: A session's worker is stopped after this many seconds without use.
        evict_after_s: Over the cap, a session idle this long may be stopped to make room.
        tool_time_limit: Wall-clock limit of one tool call in seconds.
        memory_limit_mb: Memory cap of each worker.
        max_steps: Most model steps per chat turn and per exploration.
        turn_time_limit: Wall-clock limit of one chat turn in seconds.
        run_time_limit: Wall-clock limit of one exploration in seconds.
        model: The model's name ('' for none: offline answers, slash commands and the autopilot).
        base_url: OpenAI-compatible endpoint of the model.
        api_key: Key for the endpoint (never written to disk).
        chat_model_factory: Builds a chat model for a new conversation (None when there is no model).
    """

    data_dir: Path
    max_upload_bytes: int = 1024 ** 3
    max_workers: int = 4
    idle_timeout_s: float = 900.0
    evict_after_s: float = 30.0
    tool_time_limit: float = 600.0
    memory_limit_mb: int = 8192
    max_steps: int = 20
    turn_time_limit: float = 900.0
    run_time_limit: float = 3600.0
    model: str = ""
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    chat_model_factory: Callable[[], object] | None = field(default=None, repr=False)


class WorkerSlots:
    """A counter of live workers with a cap (thread-safe).

    Args:
        cap: Most workers at once.
    """

    def __init__(self, cap: int) -> None:
        self.cap = max(1, int(cap))
        self.used = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        """Take a slot if one is free."""
        with self._lock:
            if self.used >= self.cap:
                return False
            self.used += 1
            return True

    def release(self) -> None:
        """Give a slot back."""
        with self._lock:
            self.used = max(0, self.used - 1)


@dataclass
class TableMeta:
    """What is kept about an upload (meta.json).

    Attributes:
        id: The table's id.
        name: The client's filename, as a label.
        stored: The stored file's name inside ``input/``.
        size: Bytes.
        sha256: Checksum of the bytes.
        created: Upload time (UTC, ISO 8601).
        n_rows: Rows (once loaded).
        n_columns: Columns (once loaded).
    """

    id: str
    name: str
    stored: str
    size: int
    sha256: str
    created: str
    n_rows: int = 0
    n_columns: int = 0


def write_json(path: Path, data) -> None:
    """Write JSON atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(to_jsonable(data), ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path, default=None):
    """A JSON file's content, or ``default`` when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def new_id() -> str:
    """A fresh table id (16 hex digits)."""
    return secrets.token_hex(8)


class TableSession:
    """One uploaded table and its conversation (started on demand, stopped when idle).

    Args:
        manager: The owner (for settings, slots and path scrubbing).
        meta: The table's record.
    """

    def __init__(self, manager: "SessionManager", meta: TableMeta) -> None:
        self.manager = manager
        self.meta = meta
        self.folder = manager.tables_dir / meta.id
        self.chat: ChatSession | None = None
        self.lock = threading.Lock()
        self.last_used = time.monotonic()
        self.sink: Callable[[dict], None] | None = None
        self._profile: dict | None = None
        self._load_errors: list[str] = []

    # ------------------------------------------------------------------ files
    @property
    def id(self) -> str:
        """The table's id."""
        return self.meta.id

    @property
    def input_path(self) -> Path:
        """The stored upload."""
        return self.folder / "input" / self.meta.stored

    @property
    def session_dir(self) -> Path:
        """The conversation's folder."""
        return self.folder / "session"

    @property
    def runs_dir(self) -> Path:
        """Where explorations of this table go."""
        return self.folder / "runs"

    @property
    def alive(self) -> bool:
        """True while the session's worker runs."""
        return self.chat is not None

    def profile(self) -> dict:
        """The table's profile (empty until the worker has loaded the table once)."""
        if self._profile is None:
            self._profile = read_json(self.folder / "profile.json", None)
        return self._profile or {}

    def findings(self) -> list[dict]:
        """The session's findings so far (kept on disk, so a stopped session lists them too)."""
        return list(read_json(self.folder / "findings.json", []) or [])

    def summary(self) -> dict:
        """The table as the API lists it."""
        return {"id": self.id, "name": self.meta.name, "rows": self.meta.n_rows, "columns": self.meta.n_columns,
                "size": self.meta.size, "sha256": self.meta.sha256, "created": self.meta.created,
                "state": "running" if self.alive else "stopped", "url": f"/tables/{self.id}"}

    # ------------------------------------------------------------------ events
    def _listen(self, event: ev.Event) -> None:
        if isinstance(event, ev.Notice) and event.level == "error":
            self._load_errors.append(event.text)
        if self.sink is not None:
            self.sink(self.web_event(event))

    def figure_url(self, figure: str) -> str | None:
        """The URL of a session figure (``figures/NAME.png``), or None for anything else."""
        name = str(figure).rsplit("/", 1)[-1]
        if not str(figure).startswith("figures/") or not FIGURE_NAME.match(name):
            return None
        return f"/api/tables/{self.id}/figures/{name}"

    def web_event(self, event: ev.Event) -> dict:
        """An event as the page receives it: server paths replaced by URLs or dropped."""
        data = event.model_dump()
        data.pop("path", None)
        data.pop("out_dir", None)
        if "figures" in data:
            data["figures"] = [u for u in (self.figure_url(f) for f in data["figures"]) if u]
        if isinstance(event, ev.ReportWritten):
            data["report_url"] = f"/tables/{self.id}/runs/session/report.html"
        if isinstance(event, ev.Notice):
            data["text"] = self.manager.scrub(event.text)
        if isinstance(event, ev.FindingsListed):
            data["findings"] = self.web_findings(event.findings, "session")
        return to_jsonable(data, digits=6)

    def web_findings(self, findings: list[dict], run: str) -> list[dict]:
        """Findings with their figures as URLs (``run`` is 'session' or a run id)."""
        out = []
        for f in findings:
            f = dict(f)
            f["figures"] = [f"/tables/{self.id}/runs/{run}/figures/{name}"
                            for name in (str(x).rsplit("/", 1)[-1] for x in f.get("figures") or [])
                            if FIGURE_NAME.match(name)]
            out.append(f)
        return out

    # ------------------------------------------------------------------ lifecycle
    def _chat_options(self) -> dict:
        s = self.manager.settings
        loader = functools.partial(load_and_profile, profile_path=str(self.folder / "profile.json"))
        return {"model_name": s.model, "base_url": s.base_url,
                "chat_model": s.chat_model_factory() if s.chat_model_factory else None,
                "limits": LoopLimits(max_steps=s.max_steps, time_limit=s.turn_time_limit),
                "listener": self._listen,
                "analysis_options": {"tool_time_limit": s.tool_time_limit, "memory_limit_mb": s.memory_limit_mb,
                                     "runner_options": {"loader": loader}}}

    def start(self) -> None:
        """Start the worker (a slot must be held): open the table, or resume the saved conversation.

        Raises:
            TableError: The table cannot be read (400, the loader's one-line message) or the worker
                cannot start (503).
        """
        self._load_errors = []
        try:
            if session_file(self.session_dir).exists():
                chat = ChatSession.resume(self.session_dir, **self._chat_options())
            else:
                chat = ChatSession(self.session_dir, **self._chat_options())
                if not chat.load(str(self.input_path)):
                    message = self._load_errors[-1] if self._load_errors else "the table cannot be read"
                    message = message.replace(repr(self.meta.stored), repr(self.meta.name))
                    raise TableError(400, self.manager.scrub(message))
        except RunSetupError as exc:
            raise TableError(400, self.manager.scrub(str(exc))) from None
        except TableError:
            raise
        except Exception as exc:  # noqa: BLE001 - the worker could not start (ToolCrash, OS limits)
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise TableError(503, self.manager.scrub(f"the tool worker could not start: {first}"[:300])) from None
        self.chat = chat
        self._profile = None
        profile = self.profile()
        if profile and not self.meta.n_rows:
            self.meta.n_rows, self.meta.n_columns = int(profile.get("n_rows", 0)), int(profile.get("n_columns", 0))
            write_json(self.folder / "meta.json", asdict(self.meta))

    def stop(self) -> None:
        """Save the conversation and stop the worker (gives its slot back)."""
        chat, self.chat = self.chat, None
        if chat is None:
            return
        try:
            chat.close()
        finally:
            self.manager.slots.release()

    def keep_findings(self) -> None:
        """Write the session's findings so far to disk."""
        if self.chat is not None and self.chat.analysis is not None:
            write_json(self.folder / "findings.json", self.chat.analysis.findings)

    # ------------------------------------------------------------------ operations
    def begin(self, wait_s: float = 30.0) -> None:
        """Take the table for one operation and make sure its worker runs (the caller must call
        :meth:`end`).

        Raises:
            Busy: Another operation holds the table for longer than ``wait_s``, or no worker slot is free.
            TableError: The worker cannot start.
        """
        if not self.lock.acquire(timeout=wait_s):
            raise Busy("this table is busy with another request; try again shortly")
        try:
            if self.chat is None:
                self.manager.acquire_slot(exclude=self)
                try:
                    self.start()
                except BaseException:
                    self.manager.slots.release()
                    raise
        except BaseException:
            self.lock.release()
            raise
        self.last_used = time.monotonic()

    def end(self) -> None:
        """Finish an operation started with :meth:`begin`."""
        self.sink = None
        try:
            self.keep_findings()
        finally:
            self.last_used = time.monotonic()
            self.lock.release()

    def handle(self, line: str) -> ev.Answer | None:
        """Run one line from the page: a question, or a slash command the page may send (between
        :meth:`begin` and :meth:`end`)."""
        line = line.strip()
        word = line.split(maxsplit=1)[0].lower() if line else ""
        if line.startswith("/") and word not in WEB_COMMANDS:
            self._listen(ev.Notice(level="error", text=f"{word[:40]} is not available here; the page offers "
                                                       + ", ".join(sorted(WEB_COMMANDS))))
            return None
        if word == "/report" and line.split()[1:]:
            self._listen(ev.Notice(level="error", text="/report takes no folder here: the report is written "
                                                       "to the session and linked on the page"))
            return None
        return self.chat.handle(line)


class SessionManager:
    """Every uploaded table, the worker slots and the idle reaper.

    Args:
        settings: How sessions run.
    """

    def __init__(self, settings: WebSettings) -> None:
        self.settings = settings
        self.data_dir = Path(settings.data_dir).resolve()
        self.tables_dir = self.data_dir / "tables"
        self.tables_dir.mkdir(parents=True, exist_ok=True)
        self.slots = WorkerSlots(settings.max_workers)
        self.sessions: dict[str, TableSession] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None
        self._load_existing()

    def _load_existing(self) -> None:
        for folder in sorted(self.tables_dir.iterdir()):
            meta = read_json(folder / "meta.json")
            if not TABLE_ID.match(folder.name) or not isinstance(meta, dict) or meta.get("id") != folder.name:
                continue
            try:
                session = TableSession(self, TableMeta(**meta))
            except TypeError:
                continue
            if session.input_path.is_file():
                self.sessions[folder.name] = session

    def scrub(self, text: str) -> str:
        """A message with server paths taken out (the data directory becomes '…')."""
        text = str(text)
        for prefix in (str(self.data_dir), str(self.settings.data_dir)):
            if prefix and prefix != ".":
                text = text.replace(prefix + os.sep, "").replace(prefix, "…")
        return text

    # ------------------------------------------------------------------ tables
    def get(self, table_id: str) -> TableSession:
        """The table with this id.

        Raises:
            TableError: 404 when there is none.
        """
        with self._lock:
            session = self.sessions.get(table_id) if TABLE_ID.match(table_id or "") else None
        if session is None:
            raise TableError(404, "no table with this id (it may have been deleted)")
        return session

    def list(self) -> list[TableSession]:
        """Every table, newest first."""
        with self._lock:
            return sorted(self.sessions.values(), key=lambda s: s.meta.created, reverse=True)

    def add(self, session: TableSession) -> None:
        """Register a new table."""
        with self._lock:
            self.sessions[session.id] = session

    def delete(self, table_id: str, busy_runs: Callable[[str], bool]) -> None:
        """Stop a table's worker and remove its files.

        Raises:
            TableError: 404 unknown; 409 while an exploration of it runs.
            Busy: Another request holds the table.
        """
        session = self.get(table_id)
        if busy_runs(table_id):
            raise TableError(409, "an exploration of this table is running; delete it when the run has finished")
        if not session.lock.acquire(timeout=30):
            raise Busy("this table is busy with another request; try again shortly")
        try:
            with self._lock:
                self.sessions.pop(table_id, None)
            session.stop()
            shutil.rmtree(session.folder, ignore_errors=True)
        finally:
            session.lock.release()

    # ------------------------------------------------------------------ slots
    def acquire_slot(self, exclude: TableSession | None = None) -> None:
        """Take a worker slot, stopping the least recently used idle session if that makes room.

        Raises:
            Busy: Every slot is held by a session in use (or used in the last ``evict_after_s``) or
                an exploration.
        """
        while not self.slots.try_acquire():
            if not self._evict_one(exclude):
                raise Busy(f"the server is busy: all {self.slots.cap} analysis workers are in use; "
                           f"try again in {RETRY_AFTER_S} s")

    def _evict_one(self, exclude: TableSession | None) -> bool:
        now = time.monotonic()
        candidates = sorted((s for s in self.list() if s is not exclude and s.alive
                             and now - s.last_used >= self.settings.evict_after_s), key=lambda s: s.last_used)
        for session in candidates:
            if session.lock.acquire(blocking=False):
                try:
                    if session.alive:
                        session.stop()
                        return True
                finally:
                    session.lock.release()
        return False

    def reap_idle(self) -> int:
        """Stop every session idle for longer than the idle timeout; returns how many were stopped."""
        stopped = 0
        now = time.monotonic()
        for session in self.list():
            if session.alive and now - session.last_used > self.settings.idle_timeout_s \
                    and session.lock.acquire(blocking=False):
                try:
                    if session.alive:
                        session.stop()
                        stopped += 1
                finally:
                    session.lock.release()
        return stopped

    def start_reaper(self) -> None:
        """Check for idle sessions in the background."""
        interval = max(0.5, min(30.0, self.settings.idle_timeout_s / 4))

        def loop() -> None:
            while not self._stop.wait(interval):
                self.reap_idle()

        self._reaper = threading.Thread(target=loop, name="serendip-idle-reaper", daemon=True)
        self._reaper.start()

    def shutdown(self) -> None:
        """Stop the reaper and every worker (conversations are saved)."""
        self._stop.set()
        for session in self.list():
            if session.lock.acquire(timeout=5):
                try:
                    session.stop()
                finally:
                    session.lock.release()
