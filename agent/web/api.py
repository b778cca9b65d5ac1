"""The JSON API under ``/api``, which the page itself uses and scripts can call (see ``/docs``).

Errors are JSON ``{"error": "one line"}`` with a 4xx status (503 with Retry-After when the server is busy).
Long operations stream server-sent events: ``POST /api/tables/{id}/ask/stream`` (a chat turn: tool calls,
text as the model writes it, the answer) and ``GET /api/tables/{id}/runs/{run}/events`` (an exploration's
progress, then its end with the report's URL).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import threading
import time
from dataclasses import asdict

from fastapi import APIRouter, Body, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from serendip.agent.conversation import events as ev
from serendip.agent.web.runs import RunManager
from serendip.agent.web.sessions import (FIGURE_NAME, SessionManager, TableError, TableMeta, TableSession, new_id,
                                         write_json)
from serendip.agent.web.uploads import UploadError, receive_upload
from serendip.tools.engine.jsonsafe import to_jsonable

TOOL_NAME = re.compile(r"^[a-z_]{1,40}$")
KEEPALIVE_S = 15.0
UPLOAD_SCHEMA = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary",
                            "description": "the table: CSV/TSV, Parquet, Excel .xlsx, FITS or VOTable"}}}}}}}


class AskRequest(BaseModel):
    """A question about the table, or one of the page's slash commands (``/describe``, ``/cluster`` ...)."""

    question: str = Field(min_length=1, max_length=4000, description="the question, in plain words")


class ExploreRequest(BaseModel):
    """A full exploration of the table."""

    goal: str = Field("", max_length=2000, description="what to look for, in plain language")


def sse(event: dict) -> str:
    """One server-sent event: its kind as the event name, the event as JSON data."""
    return f"event: {event.get('kind', 'message')}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def build_router(sessions: SessionManager, runs: RunManager) -> APIRouter:
    """The ``/api`` routes over the given tables and runs."""
    router = APIRouter(prefix="/api")

    async def in_table(table: TableSession, work):
        """Run ``work(table)`` in a thread while holding the table with its worker started."""
        def run():
            table.begin()
            try:
                return work(table)
            finally:
                table.end()
        return await run_in_threadpool(run)

    def findings_of(table: TableSession) -> list[dict]:
        return table.web_findings(table.findings(), "session")

    # ------------------------------------------------------------------ server
    @router.get("/status")
    def status() -> dict:
        """The server's model, worker use and upload limit."""
        s = sessions.settings
        return {"model": s.model or None, "workers": {"used": sessions.slots.used, "cap": sessions.slots.cap},
                "max_upload_bytes": s.max_upload_bytes, "idle_timeout_s": s.idle_timeout_s,
                "tables": len(sessions.list())}

    # ------------------------------------------------------------------ tables
    @router.post("/tables", status_code=201, openapi_extra=UPLOAD_SCHEMA)
    async def upload_table(request: Request) -> JSONResponse:
        """Upload a table (multipart field ``file``): it is stored untouched, loaded in its own sandboxed
        worker and profiled. Returns ``{id, name, rows, columns, profile}``; a file that cannot be read
        gets the loader's one-line message (400), one over the size limit 413."""
        await run_in_threadpool(sessions.acquire_slot)
        table_id = new_id()
        folder = sessions.tables_dir / table_id
        started = False
        try:
            (folder / "input").mkdir(parents=True)
            received = await receive_upload(request.headers, request.stream(), folder / "input",
                                            sessions.settings.max_upload_bytes)
            if received.size == 0:
                raise TableError(400, f"Cannot load {received.name!r}: the file is empty")
            received.path.chmod(0o444)
            meta = TableMeta(id=table_id, name=received.name, stored=received.path.name, size=received.size,
                             sha256=received.sha256, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            write_json(folder / "meta.json", asdict(meta))
            table = TableSession(sessions, meta)

            def start() -> None:
                with table.lock:
                    table.start()
            await run_in_threadpool(start)
            started = True
            sessions.add(table)
        except UploadError as exc:
            raise TableError(exc.status, exc.message) from None
        finally:
            if not started:
                sessions.slots.release()
                await run_in_threadpool(shutil.rmtree, folder, True)
        body = {**table.summary(), "profile": table.profile()}
        return JSONResponse(to_jsonable(body, digits=6), status_code=201, headers={"Location": f"/api/tables/{table_id}"})

    @router.get("/tables")
    def list_tables() -> dict:
        """Every uploaded table (newest first), running or stopped."""
        return {"tables": [{**t.summary(), "runs": len(runs.of_table(t.id))} for t in sessions.list()]}

    @router.get("/tables/{table_id}")
    def get_table(table_id: str) -> dict:
        """One table with its profile."""
        table = sessions.get(table_id)
        return to_jsonable({**table.summary(), "profile": table.profile()}, digits=6)

    @router.delete("/tables/{table_id}")
    async def delete_table(table_id: str) -> dict:
        """Stop the table's worker and delete its files (the upload, the session and its runs)."""
        await run_in_threadpool(sessions.delete, table_id, runs.busy)
        runs.forget_table(table_id)
        return {"deleted": table_id}

    # ------------------------------------------------------------------ questions and tools
    @router.post("/tables/{table_id}/ask")
    async def ask(table_id: str, body: AskRequest) -> dict:
        """Answer a question the way ``serendip ask`` does (with the model, or by the offline question
        forms when there is none), or run a slash command. Returns ``{answer, answered, source, evidence,
        figures, findings, tool_calls, notices}``."""
        table = sessions.get(table_id)

        def work(t: TableSession) -> dict:
            events: list[dict] = []
            t.sink = events.append
            try:
                answer = t.handle(body.question)
            except Exception as exc:  # noqa: BLE001 - a tool bug or a dead worker: restart on next use
                t.stop()
                raise TableError(500, sessions.scrub(f"the call failed unexpectedly: {exc}".splitlines()[0])[:300])
            notices = [e for e in events if e["kind"] == "notice"]
            calls = [e for e in events if e["kind"] == "tool_finished"]
            if answer is None:
                errors = [n for n in notices if n["level"] == "error"] + [c for c in calls if not c["ok"]]
                text, answered, source, evidence, figures = "", not errors, "command", \
                    [c["result_id"] for c in calls if c["result_id"]], [f for c in calls for f in c["figures"]]
            else:
                answer_event = t.web_event(answer)
                text, answered, source = answer.text, answer.answered, answer.source
                evidence, figures = answer.evidence, answer_event["figures"]
            t.keep_findings()
            reports = [e["report_url"] for e in events if e["kind"] == "report"]
            return {"answer": text, "answered": answered, "source": source, "evidence": evidence,
                    "figures": figures, "findings": findings_of(t), "tool_calls": calls, "notices": notices,
                    **({"report_url": reports[-1]} if reports else {})}

        return await in_table(table, work)

    @router.post("/tables/{table_id}/ask/stream")
    async def ask_stream(table_id: str, body: AskRequest) -> StreamingResponse:
        """Like ``/ask``, as server-sent events: ``tool_started``, ``tool_finished`` (tool, arguments,
        duration, key numbers, figure URLs), ``text_delta`` (the model's answer as it is written),
        ``notice``, ``answer``, ``findings``, ``report``, then ``end`` (with the findings so far)."""
        table = sessions.get(table_id)
        await run_in_threadpool(table.begin)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        def sink(event: dict) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, event)

        def work() -> None:
            table.sink = sink
            ok = True
            try:
                table.handle(body.question)
            except Exception as exc:  # noqa: BLE001 - reported on the page; the worker restarts on next use
                ok = False
                sink({"kind": "notice", "level": "error",
                      "text": sessions.scrub(f"the call failed unexpectedly: {exc}".splitlines()[0])[:300]})
                table.stop()
            finally:
                try:
                    table.end()
                finally:
                    sink({"kind": "end", "ok": ok, "findings": findings_of(table)})

        threading.Thread(target=work, name=f"serendip-ask-{table_id}", daemon=True).start()

        async def stream():
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except asyncio.TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                yield sse(event)
                if event.get("kind") == "end":
                    return

        return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)

    @router.post("/tables/{table_id}/tools/{tool}")
    async def call_tool(table_id: str, tool: str, arguments: dict = Body(default_factory=dict)) -> dict:
        """Run one analysis tool with JSON arguments (``describe``, ``correlate``, ``pca``, ``umap``,
        ``cluster``, ``outliers``, ``compare``, ``residualize``, ``select``, ``plot``, ``transform``) in the
        table's sandboxed worker. Returns the result's id, key numbers, summary, figure URLs and the ids of
        the candidate findings it proposed; a call that cannot run gets its message (400)."""
        if not TOOL_NAME.match(tool):
            raise TableError(404, "no tool with this name")
        table = sessions.get(table_id)

        def work(t: TableSession) -> dict:
            result = t.chat.call_tool(tool, arguments)
            if not result.ok:
                raise TableError(400, sessions.scrub(result.error or "the call failed"))
            t.keep_findings()
            return to_jsonable({"result_id": result.id, "tool": result.tool, "ok": True,
                                "elapsed_s": round(result.elapsed or 0.0, 3),
                                "key_numbers": ev.key_numbers(tool, result.summary), "summary": result.summary,
                                "figures": [u for u in (t.figure_url(f) for f in result.figures) if u],
                                "candidates": t.chat.analysis.candidates_of(result.id)}, digits=6)

        return await in_table(table, work)

    @router.get("/tables/{table_id}/findings")
    def findings(table_id: str) -> dict:
        """The session's findings so far (run-wide q-values, thresholds applied) and each exploration
        with its findings and report link."""
        table = sessions.get(table_id)
        return {"session": findings_of(table),
                "session_report_url": (f"/tables/{table_id}/runs/session/report.html"
                                       if (table.session_dir / "report.html").exists() else None),
                "runs": [runs.describe(r, table) for r in runs.of_table(table_id)]}

    @router.post("/tables/{table_id}/report")
    async def write_report(table_id: str) -> dict:
        """Write the report of the session so far (the files of ``serendip explore``); returns its URL."""
        table = sessions.get(table_id)

        def work(t: TableSession) -> dict:
            out = t.chat.report()
            if out is None:
                raise TableError(500, "the report could not be written")
            return {"report_url": f"/tables/{table_id}/runs/session/report.html",
                    "n_findings": len(t.chat.analysis.findings)}

        return await in_table(table, work)

    @router.get("/tables/{table_id}/figures/{name}")
    def figure(table_id: str, name: str) -> FileResponse:
        """A figure of the table's session (PNG)."""
        table = sessions.get(table_id)
        path = table.session_dir / "figures" / name
        if not FIGURE_NAME.match(name) or not path.is_file():
            raise TableError(404, "no such figure")
        return FileResponse(path, media_type="image/png")

    # ------------------------------------------------------------------ explorations
    @router.post("/tables/{table_id}/explore", status_code=202)
    async def explore(table_id: str, body: ExploreRequest = Body(default_factory=ExploreRequest)) -> JSONResponse:
        """Start a full exploration (the autopilot, or the model when one is configured) in the background.
        Returns the run's id and where to follow it: ``events_url`` (server-sent events: ``step``,
        ``done``, then ``end`` with the report's URL) and ``/api/tables/{id}/runs/{run}``."""
        table = sessions.get(table_id)
        run = await run_in_threadpool(runs.start, table, body.goal.strip())
        return JSONResponse(runs.describe(run, table, with_findings=False), status_code=202,
                            headers={"Location": f"/api/tables/{table_id}/runs/{run.id}"})

    @router.get("/tables/{table_id}/runs")
    def list_runs(table_id: str) -> dict:
        """The table's explorations, newest first."""
        table = sessions.get(table_id)
        return {"runs": [runs.describe(r, table, with_findings=False) for r in runs.of_table(table_id)]}

    @router.get("/tables/{table_id}/runs/{run_id}")
    def get_run(table_id: str, run_id: str) -> dict:
        """One exploration: its status, progress so far, and (when done) its findings and report link."""
        table = sessions.get(table_id)
        run = runs.get(table_id, run_id)
        return {**runs.describe(run, table), "events": run.events_since(0)}

    @router.get("/tables/{table_id}/runs/{run_id}/events")
    async def run_events(table_id: str, run_id: str, request: Request, after: int = 0) -> StreamingResponse:
        """An exploration's progress as server-sent events, from the start (or after event ``after``, or
        the ``Last-Event-ID``), ending with ``end``."""
        table = sessions.get(table_id)
        run = runs.get(table_id, run_id)
        last = request.headers.get("last-event-id", "")
        seq = int(last) if last.isdigit() else max(0, after)

        async def stream():
            nonlocal seq
            idle = 0.0
            while True:
                done = run.done  # read first: the end event is added before the status changes
                new = run.events_since(seq)
                for event in new:
                    seq = event["seq"]
                    yield f"id: {seq}\n" + sse(event)
                if done:
                    if not run.events:  # a run found on disk at start-up
                        yield sse({"kind": "end", "status": run.status, "reason": run.reason,
                                   "report_url": runs.describe(run, table, with_findings=False)["report_url"]})
                    return
                await asyncio.sleep(0.25)
                idle = 0.0 if new else idle + 0.25
                if idle >= KEEPALIVE_S:
                    idle = 0.0
                    yield ": keep-alive\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)

    return router
