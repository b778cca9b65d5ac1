"""Dispatching tool calls for a run: ids, the sandbox, the transcript, the ledger, and replay on resume.

Calls can be submitted ahead (:meth:`Dispatcher.submit`) to run at the same time on a
:class:`~serendip.tools.engine.pool.WorkerPool`; their ids are given in submission order and their results
enter the transcript and the ledger in that order, whichever finishes first, so a run with several
workers writes the same transcript and report as a run with one.
"""

from __future__ import annotations

from concurrent.futures import Future

from serendip.agent.ledger import Ledger
from serendip.agent.transcript import Transcript
from serendip.tools.engine.argsize import argument_size_problem, check_argument_size
from serendip.tools.engine.errors import ToolInputError
from serendip.tools.engine.jsonsafe import to_jsonable
from serendip.tools.engine.registry import get_spec, validate_arguments
from serendip.tools.engine.result import ToolResult


class Dispatcher:
    """Sends each tool call to the runner and keeps its result everywhere it belongs.

    On resume, a call identical (same id, tool and validated arguments) to one a previous attempt
    finished is answered from the stored result instead of being recomputed.

    Args:
        runner: A started WorkerRunner or LocalRunner.
        ledger: The run's findings ledger.
        transcript: The run's transcript.
        stored: Results of a previous attempt of this run, by id (empty for a fresh run).
    """

    def __init__(self, runner, ledger: Ledger, transcript: Transcript, stored: dict[str, ToolResult] | None = None):
        self.runner = runner
        self.ledger = ledger
        self.transcript = transcript
        self.stored = stored or {}
        self.count = 0
        self.last_step = 0
        self.replayed = 0
        self.candidate_ids: dict[str, list[str]] = {}
        self._pending: list[Pending] = []

    def next_id(self) -> str:
        """The id the next result will get."""
        return f"R{self.count + 1}"

    def _same_call(self, stored: ToolResult, name: str, arguments) -> bool:
        if stored.tool != str(name)[:60]:
            return False
        if argument_size_problem(arguments):  # refused unread, then and now
            return stored.error is not None and not stored.arguments
        try:
            args = validate_arguments(get_spec(name), arguments)
        except ToolInputError:
            return stored.error is not None and stored.arguments == (arguments if isinstance(arguments, dict) else {})
        return to_jsonable(args) == to_jsonable(stored.arguments)

    def _refuse_oversized(self, name: str, arguments, rid: str) -> ToolResult | None:
        """A refusal, made here without sending anything to the worker, for arguments over the size bounds."""
        try:
            check_argument_size(str(name), arguments)
        except ToolInputError as exc:
            result = ToolResult.failure(str(exc), tool=str(name)[:60])
            result.id = rid
            return result
        return None

    def call(self, name: str, arguments: dict | str | None, step: int, by: str | None = None) -> ToolResult:
        """Run (or replay) one call and record it; returns the result with its candidates registered.

        Args:
            by: Who made the call when it is not the planner itself (``"report"`` for the steps the report
                takes after a model's loop); written into the call's transcript record.
        """
        return self.submit(name, arguments, step, by=by).result()

    def submit(self, name: str, arguments: dict | str | None, step: int, urgent: bool = False,
               by: str | None = None) -> "Pending":
        """Give the call the next id and start it (on a free worker when the runner is a pool; at once
        otherwise); the returned handle's ``result()`` waits for it and for every call submitted before it,
        and records them in submission order.

        Submit ahead only calls whose inputs exist already: a call must not need a derived column or an
        artifact that a call still pending makes.

        Args:
            urgent: The caller waits for this call now: a pool runs it before the calls queued ahead of it
                (ids, transcript and ledger keep the submission order).
            by: Who made the call, when not the planner (see :meth:`call`).
        """
        self.last_step = max(self.last_step, int(step))
        rid = self.next_id()
        stored = self.stored.get(rid)
        replayed = stored is not None and self._same_call(stored, name, arguments)
        if replayed:
            future = _done(stored)
            self.replayed += 1
        else:
            self.stored = {}  # the run diverged from the stored attempt: recompute from here on
            refusal = self._refuse_oversized(name, arguments, rid)
            future = _done(refusal) if refusal is not None else self._start(name, arguments, rid, urgent)
        self.count += 1
        pending = Pending(self, rid, int(step), replayed, future, by=by)
        self._pending.append(pending)
        return pending

    def _start(self, name: str, arguments, rid: str, urgent: bool = False) -> Future:
        submit = getattr(self.runner, "submit", None)
        if submit is not None:
            return submit(name, arguments, rid, urgent=urgent)
        future: Future = Future()
        try:
            future.set_result(self.runner.call(name, arguments, rid))
        except Exception as exc:  # noqa: BLE001  (re-raised by Pending.result, in order)
            future.set_exception(exc)
        # KeyboardInterrupt propagates from here: a stopped call is not a result and takes no id.
        return future

    def flush(self) -> None:
        """Wait for every submitted call and record them in order."""
        if self._pending:
            self._pending[-1].result()

    def _record_finished(self) -> None:
        """Record the calls at the head of the queue that have finished (never waits)."""
        while self._pending and self._pending[0].future.done():
            self._record_through(self._pending[0])

    def _record_through(self, target: "Pending") -> None:
        while self._pending and not target.recorded:
            pending = self._pending.pop(0)  # popped first: a crashed call must not block the calls after it
            result = pending.future.result()  # a ToolCrash is raised here, in id order
            pending.recorded, pending.value = True, result
            self.transcript.log_result(result, pending.step, replayed=pending.replayed, by=pending.by)
            self.candidate_ids[pending.rid] = self.ledger.add_result(result)


class Pending:
    """A submitted call: ``result()`` waits for it and records it (and those submitted before it)."""

    def __init__(self, dispatcher: Dispatcher, rid: str, step: int, replayed: bool, future: Future,
                 by: str | None = None) -> None:
        self.dispatcher = dispatcher
        self.by = by
        self.rid = rid
        self.step = step
        self.replayed = replayed
        self.future = future
        self.recorded = False
        self.value: ToolResult | None = None

    def result(self) -> ToolResult:
        """The call's result, once it and every earlier call are recorded."""
        if not self.recorded:
            self.dispatcher._record_through(self)
        return self.value

    def own_result(self) -> ToolResult:
        """The call's result as soon as this call has finished, even while calls submitted before it still
        run; those are recorded (in order) later. A failed call waits for the earlier ones, so crashes are
        still raised in id order. For planners that read only the returned result, never the ledger."""
        if self.recorded:
            return self.value
        try:
            value = self.future.result()
        except Exception:  # noqa: BLE001  (raised below, in id order)
            return self.result()
        self.dispatcher._record_finished()
        return self.value if self.recorded else value


def _done(result: ToolResult) -> Future:
    future: Future = Future()
    future.set_result(result)
    return future
