"""Dispatching tool calls for a run: ids, the sandbox, the transcript, the ledger, and replay on resume."""

from __future__ import annotations

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

    def call(self, name: str, arguments: dict | str | None, step: int) -> ToolResult:
        """Run (or replay) one call and record it; returns the result with its candidates registered."""
        self.last_step = max(self.last_step, int(step))
        rid = self.next_id()
        stored = self.stored.get(rid)
        replayed = stored is not None and self._same_call(stored, name, arguments)
        if replayed:
            result = stored
            self.replayed += 1
        else:
            self.stored = {}  # the run diverged from the stored attempt: recompute from here on
            result = self._refuse_oversized(name, arguments, rid) or self.runner.call(name, arguments, rid)
        self.count += 1
        self.transcript.log_result(result, step, replayed=replayed)
        self.candidate_ids[rid] = self.ledger.add_result(result)
        return result
