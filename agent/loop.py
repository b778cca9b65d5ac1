"""The LLM agent loop: ask the model, run the tools it calls, send back the results, until it finishes
or a limit is reached.

Our own explicit loop (in the manner of mini-swe-agent), not a framework agent: one model call per
step through a LangChain chat model with the tools bound; every tool call answered by a ToolMessage
(results, and errors the model can fix: unknown tool, arguments that are not JSON or of the wrong
type); control flow by the shared :class:`~serendip.agent.budget.Stop` exception carrying the exit
status and the shared :class:`~serendip.agent.budget.Budget` check; model calls (and their retries) through
the model layer's :class:`~serendip.agent.models.ModelAdapter`; every message appended to the transcript as the run goes, so that
``--resume`` can rebuild the conversation and the Dispatcher can replay finished tool calls.
"""

from __future__ import annotations

import difflib
import json
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from langchain_core.messages import (AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage,
                                     message_chunk_to_message)

from serendip.agent.agent_tools import AGENT_TOOLS, agent_tool_schemas, call_agent_tool
from serendip.agent.budget import Budget, Stop
from serendip.agent.models import ModelAdapter, RetryPolicy
from serendip.agent.outcome import RunOutcome
from serendip.agent.prompts import reminder_prompt, wrap_up_prompt
from serendip.agent.settings import Settings
from serendip.agent.reply_cut import why_reply_is_done  # issue 9
from serendip.agent.text_tool_calls import native_format_note, recover_text_calls  # issue 9
from serendip.tools.engine.jsonsafe import SUMMARY_LIMIT, dumps, to_jsonable

MAX_CANDIDATES_SHOWN = 15
MAX_CALLS_PER_TURN = 10
_DEFAULT = {name: f.default for name, f in Settings.model_fields.items()}


@dataclass
class LoopLimits:
    """Budgets and retry policy of one LLM run (defaults: those of :class:`~serendip.agent.settings.Settings`).

    Attributes:
        max_steps: Most model turns.
        max_tokens: Most tokens (prompt + completion, summed over calls).
        time_limit: Wall-clock seconds.
        max_tries: Attempts per model call when the provider fails transiently (see :class:`RetryPolicy`).
        retry_base_delay: First backoff delay in seconds (doubled at each retry).
        retry_max_delay: Longest single backoff delay.
        wrap_up_steps: Tell the model to wrap up when this many turns are left ...
        wrap_up_fraction: ... or when this fraction of the token or time budget is spent.
        max_tool_failures: Failed calls of one tool in a row after which further calls to it are refused.
    """

    max_steps: int = _DEFAULT["max_steps"]
    max_tokens: int = _DEFAULT["max_tokens"]
    time_limit: float = _DEFAULT["time_limit"]
    max_tries: int = _DEFAULT["max_retries"]
    retry_base_delay: float = _DEFAULT["retry_base_delay"]
    retry_max_delay: float = _DEFAULT["retry_max_delay"]
    wrap_up_steps: int = _DEFAULT["wrap_up_steps"]
    wrap_up_fraction: float = _DEFAULT["wrap_up_fraction"]
    max_tool_failures: int = _DEFAULT["max_tool_failures"]

    @classmethod
    def from_settings(cls, settings: Settings) -> "LoopLimits":
        """The loop's share of the run's settings."""
        return cls(max_steps=settings.max_steps, max_tokens=settings.max_tokens, time_limit=settings.time_limit,
                   max_tries=settings.max_retries, retry_base_delay=settings.retry_base_delay,
                   retry_max_delay=settings.retry_max_delay, wrap_up_steps=settings.wrap_up_steps,
                   wrap_up_fraction=settings.wrap_up_fraction, max_tool_failures=settings.max_tool_failures)

    def retry_policy(self) -> RetryPolicy:
        """How the model adapter retries."""
        return RetryPolicy(self.max_tries, self.retry_base_delay, self.retry_max_delay)


def _number_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def message_text(message: BaseMessage) -> str:
    """The text of a message whatever its content format."""
    content = message.content
    if isinstance(content, str):
        return content
    return message.text if hasattr(message, "text") else str(content)


def safe(text: Any, limit: int = 80) -> str:
    """A string for the progress display: control characters escaped, bounded."""
    return json.dumps(str(text), ensure_ascii=True)[1:-1][:limit]


def candidates_brief(ledger, ids: list[str]) -> list[dict]:
    """What the model needs to cite candidates: id, kind, title, columns and the key statistics."""
    keys = ("effect", "q_value", "n", "n_groups", "stability", "n_flagged", "method")
    out = []
    for cid in ids[:MAX_CANDIDATES_SHOWN]:
        f = ledger.candidates[cid].finding
        stats = {k: v for k, v in (f.get("stats") or {}).items() if k in keys}
        out.append({"id": cid, "kind": f.get("kind"), "title": str(f.get("title", ""))[:160],
                    "columns": list(f.get("columns") or [])[:6], "novelty": f.get("novelty", "candidate"),
                    "stats": stats})
    return out


STATE_CHANGING_TOOLS = frozenset({"select", "derive", "transform", "residualize"})
"""Tools that change the table or the row selection, after which repeating a call may give another answer."""
METHOD_ORDER = ("describe", "correlate", "pca", "cluster", "outliers")
"""The usual order of the first analysis calls (the system prompt's)."""


def result_text(result, candidate_ids: list[str], ledger, limit: int = SUMMARY_LIMIT) -> str:
    """The ToolMessage text of a sandbox result: its model face (summary bounded to ``limit`` characters), with
    the ids of the candidates it proposed."""
    payload = json.loads(result.for_model(limit))
    if candidate_ids:
        payload.pop("candidate_findings", None)
        payload["candidates"] = candidates_brief(ledger, candidate_ids)
        if len(candidate_ids) > MAX_CANDIDATES_SHOWN:
            payload["more_candidates"] = len(candidate_ids) - MAX_CANDIDATES_SHOWN
    return dumps(to_jsonable(payload))


def count_tokens(ai: AIMessage, messages: list[BaseMessage], extra_chars: int = 0) -> tuple[int, bool]:
    """Tokens of one model call from the reply's usage metadata, else about four characters a token (the
    messages, the reply and ``extra_chars`` more); and whether that is an estimate."""
    usage = ai.usage_metadata or {}
    total = usage.get("total_tokens") or (usage.get("input_tokens", 0) + usage.get("output_tokens", 0))
    if total:
        return int(total), False
    chars = sum(len(message_text(m)) for m in messages) + len(message_text(ai)) + extra_chars
    return max(1, chars // 4), True


def tool_error(name: str, message: str) -> str:
    """The ToolMessage text of a call refused before reaching any tool."""
    return dumps({"tool": str(name)[:60], "ok": False, "error": message})


class AgentLoop:
    """One conversation between a chat model and the tools.

    Args:
        chat_model: A LangChain chat model that supports ``bind_tools``.
        dispatcher: Runs sandbox tool calls and keeps the ledger (see :class:`~serendip.agent.dispatch.Dispatcher`).
        transcript: The run's transcript.
        limits: Budgets and retry policy.
        progress: Progress display (None for silence).
        clock: Monotonic clock (injectable for tests).
        sleep: Sleep function (injectable for tests).
        tool_choice: Sent with every request ('required', 'auto'; None = not sent). Dropped for the rest of
            the run if the server refuses it.
        schemas: The sandbox tools' schemas as shown to the model (a profile, see
            :mod:`~serendip.agent.tool_profiles`; default: the runner's full schemas).
        agent_schemas: The agent tools' schemas as shown to the model (default: full).
        on_event: Called as ``on_event(kind, payload)`` for front-ends (chat, web): 'token' (``{"text"}``,
            the answer streamed as it is written; set it and the model is streamed), 'tool_start'
            (``{"call_id", "tool", "arguments"}``), 'tool_end' (the same plus ``ok``, ``elapsed_s``,
            ``result`` (a ToolResult, sandbox tools only) and ``content``) and 'retry' (``{"error", "delay_s"}``).
        cut_padding: Stream every reply and stop reading it once it holds a complete text call followed only by
            padding (small local models, see :mod:`~serendip.agent.reply_cut`).
        result_chars: Most characters of a tool result's summary in the model's context (small local models
            have contexts of a few thousand tokens).
    """

    def __init__(self, chat_model, dispatcher, transcript, limits: LoopLimits | None = None, progress=None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 tool_choice: str | None = None, schemas: list[dict] | None = None,
                 agent_schemas: list[dict] | None = None,
                 on_event: Callable[[str, dict], None] | None = None, cut_padding: bool = False,
                 result_chars: int = SUMMARY_LIMIT) -> None:
        self.dispatcher = dispatcher
        self.transcript = transcript
        self.limits = limits or LoopLimits()
        self.progress = progress
        self.clock = clock
        self.sleep = sleep
        self.sandbox_schemas = list(schemas if schemas is not None else dispatcher.runner.tool_schemas())
        self.sandbox_tools = {s["function"]["name"] for s in self.sandbox_schemas}
        self.schemas = self.sandbox_schemas + (agent_schemas if agent_schemas is not None else agent_tool_schemas())
        self.tool_names = sorted(self.sandbox_tools) + list(AGENT_TOOLS)
        # issue 9: tool_choice asks servers that can (OpenAI, vLLM, llama.cpp --jinja) to force well-formed calls
        self.chat_model = chat_model
        self.tool_choice = tool_choice
        self.model = self._bind()
        self.last_model_text = ""
        self.latencies: list[float] = []
        self.budget = Budget(self.limits.max_steps, self.limits.max_tokens, self.limits.time_limit, clock=clock)
        self.adapter = ModelAdapter(self.model, self.limits.retry_policy(), log=transcript.append,
                                    time_left=lambda: self.budget.time_left, sleep=sleep, raw_model=chat_model,
                                    on_retry=self._on_retry,
                                    client_timeout=_number_or_none(getattr(chat_model, "request_timeout", None)))
        self.messages: list[BaseMessage] = []
        self.failures: dict[str, int] = {}
        self.summary = ""
        self.finished = False
        self.no_tool_streak = 0
        self.cut_padding = cut_padding  # small local models: stream and stop reading once the reply only pads
        self.replies_cut = 0
        self.result_chars = result_chars
        self.calls_made: dict[str, str] = {}
        self.warned = False
        self._replaying = False
        self._logged_calls: set[str] = set()
        self.on_event = on_event
        self.answer_ends_turn = False

    @property
    def steps(self) -> int:
        """Model turns taken."""
        return self.budget.steps

    @steps.setter
    def steps(self, value: int) -> None:
        self.budget.steps = value

    @property
    def tokens(self) -> int:
        """Tokens used."""
        return self.budget.tokens

    @tokens.setter
    def tokens(self, value: int) -> None:
        self.budget.tokens = value

    def _bind(self):
        if self.tool_choice:
            return self.chat_model.bind_tools(self.schemas, tool_choice=self.tool_choice)
        return self.chat_model.bind_tools(self.schemas)

    # ------------------------------------------------------------------ public
    def run(self, messages: list[BaseMessage]) -> RunOutcome:
        """Start a conversation from ``messages`` (system and task prompts) and run it to the end."""
        for m in messages:
            self._append(m)
        return self._drive()

    def resume(self, records: list[dict]) -> RunOutcome:
        """Rebuild the conversation from transcript records, replaying finished tool calls, and go on."""
        return self._drive(records)

    def turn(self, messages: list[BaseMessage], max_steps: int | None = None,
             max_tokens: int | None = None) -> RunOutcome:
        """One turn of a conversation (chat): add ``messages`` to the history and run until the model
        answers in text (or calls finish), with the step and token budgets counted for this turn alone
        (default: the loop's limits). The history is kept for the next turn; the answer is the outcome's
        ``summary``."""
        base = self.limits
        self.limits = replace(base, max_steps=self.steps + (max_steps or base.max_steps),
                              max_tokens=self.tokens + (max_tokens or base.max_tokens))
        self.answer_ends_turn, self.finished, self.warned, self.no_tool_streak = True, False, False, 0
        self.summary = ""
        try:
            for m in messages:
                self._append(m)
            return self._drive()
        finally:
            self.limits = base

    # ------------------------------------------------------------------ the loop
    def _drive(self, records: list[dict] | None = None) -> RunOutcome:
        self.budget.restart_clock()
        status, reason = "completed", ""
        try:
            if records is not None:
                self._rebuild(records)
            while not self.finished:
                self.budget.check()
                self._maybe_wrap_up()
                self._step()
        except Stop as stop:
            status, reason = stop.status, stop.reason
        except KeyboardInterrupt:
            status, reason = "interrupted", "interrupted by the user"
        return RunOutcome(status=status, reason=reason, steps=self.steps, tokens=self.tokens, summary=self.summary)

    def _step(self) -> None:
        n = self.steps + 1
        self._say("step", f"step {n}/{self.limits.max_steps}: waiting for the model")
        asked = time.perf_counter()
        ai = self._query()
        latency = time.perf_counter() - asked
        self.latencies.append(latency)
        self.steps = n
        used, estimated = self._count_tokens(ai)
        self.tokens += used
        ai, recovered = recover_text_calls(ai, self.tool_names, n)  # issue 9: calls written as text
        for i, call in enumerate(list(ai.tool_calls) + list(ai.invalid_tool_calls)):
            call["id"] = call.get("id") or f"call_{n}_{i}"  # some local servers omit ids; replies must match
        self._log_ai(ai, used, estimated, latency=latency, recovered=recovered)
        self.messages.append(ai)
        self._handle_turn(ai)
        if recovered:
            self._append(HumanMessage(native_format_note(len(recovered))), kind="format_note")

    def _handle_turn(self, ai: AIMessage) -> None:
        """Answer every tool call of a model turn (or remind it to use tools)."""
        calls = list(ai.tool_calls) + list(ai.invalid_tool_calls)
        if not calls and self.answer_ends_turn:
            self.summary = message_text(ai).strip()
            raise Stop("completed", "answered")
        if not calls:
            self.no_tool_streak += 1
            self.last_model_text = message_text(ai).strip()  # issue 9: quoted as model text, never a summary
            if self.no_tool_streak >= 2:
                raise Stop("completed", "the model stopped calling tools")
            if not self._replaying:
                self._append(HumanMessage(reminder_prompt()), kind="reminder")
            return
        self.no_tool_streak = 0
        n_valid = len(ai.tool_calls)
        for i, call in enumerate(calls):
            if i >= MAX_CALLS_PER_TURN:
                self._refuse(call, f"Only {MAX_CALLS_PER_TURN} tool calls are run per turn; this one was not. "
                                   "Make fewer calls per turn.")
            elif i >= n_valid:
                self._answer(call.get("name"), call.get("args") if call.get("args") is not None else "", call["id"],
                             parse_error=call.get("error") or "invalid tool call")
            else:
                self._answer(call["name"], call.get("args"), call["id"])
        if self.finished:
            raise Stop("completed", "")

    def _answer(self, name, arguments, call_id: str, parse_error: str | None = None) -> None:
        """Run one tool call and append its ToolMessage."""
        record: dict[str, Any] = {"tool_call_id": call_id, "tool": str(name)[:60]}
        event = {"call_id": call_id, "tool": str(name)[:60], "arguments": arguments}
        self._emit("tool_start", event)
        started, result = time.monotonic(), None
        if not isinstance(name, str) or name not in self.sandbox_tools and name not in AGENT_TOOLS:
            close = difflib.get_close_matches(str(name), self.tool_names, n=2, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            content = tool_error(str(name), f"There is no tool named {str(name)[:60]!r}.{hint} "
                                            f"Tools: {', '.join(self.tool_names)}.")
            record["ok"] = False
            self._say("done", f"step {self.steps}: unknown tool {safe(name, 40)}")
        elif name in AGENT_TOOLS:
            reply = call_agent_tool(self.dispatcher, name, arguments)
            content = reply.content
            record["ok"] = reply.ok
            if reply.finished:
                self.finished = True
                self.summary = reply.summary
            self._say("done", f"step {self.steps}: {name} {'ok' if reply.ok else 'refused'}")
        elif self.failures.get(name, 0) >= self.limits.max_tool_failures:
            content = tool_error(name, f"{name} failed {self.failures[name]} times in a row, so it is not run again "
                                       "in this run. Use another tool, or record, dismiss and finish.")
            record["ok"] = False
            record["refused"] = "repeated_failures"
            self._say("done", f"step {self.steps}: {name} refused after {self.failures[name]} failures in a row")
        elif (earlier := self._earlier_result(name, arguments)) is not None:
            self.failures[name] = self.failures.get(name, 0) + 1
            content = tool_error(name, f"This exact call was already made and nothing has changed since: its result "
                                       f"is {earlier}, above. Do not repeat it; call the next tool instead "
                                       f"(not yet called: {', '.join(self._not_yet_called()) or 'finish'}).")
            record["ok"] = False
            record["refused"] = "repeated_call"
            self._say("done", f"step {self.steps}: {name} refused, a repeat of {earlier}")
        else:
            result = self.dispatcher.call(name, arguments, self.steps)
            self.failures[name] = 0 if result.ok else self.failures.get(name, 0) + 1
            content = result_text(result, self.dispatcher.candidate_ids.get(result.id, []), self.dispatcher.ledger,
                                  self.result_chars)
            record.update(ok=result.ok, result_id=result.id)
            if result.ok:
                self._remember_call(name, arguments, result.id)
            self._say("done", f"step {self.steps}: {result.id} {name} "
                              f"{'ok' if result.ok else 'error: ' + safe(result.error, 60)}")
        if parse_error:
            record["parse_error"] = str(parse_error)[:300]
        if "result_id" not in record:
            record["content"] = content
        self._append(ToolMessage(content=content, tool_call_id=call_id), role="tool", extra=record)
        self._emit("tool_end", {**event, "ok": record["ok"], "elapsed_s": time.monotonic() - started,
                                "result": result, "content": content})

    # ------------------------------------------------------------------ repeated calls
    @staticmethod
    def _call_key(name: str, arguments) -> str:
        return name + json.dumps(arguments, sort_keys=True, default=str)

    def _earlier_result(self, name: str, arguments) -> str | None:
        """The id of a successful earlier call identical to this one with nothing changed since (small models
        repeat their first call turn after turn), or None."""
        return self.calls_made.get(self._call_key(name, arguments))

    def _remember_call(self, name: str, arguments, result_id: str) -> None:
        if name in STATE_CHANGING_TOOLS:  # the table changed: every earlier call may now give another answer
            self.calls_made.clear()
        else:
            self.calls_made[self._call_key(name, arguments)] = result_id

    def _not_yet_called(self) -> list[str]:
        """The usual next tools that have not run successfully yet, in the order of the method."""
        done = {r.tool for r in self.dispatcher.ledger.results.values() if r.ok}
        return [t for t in METHOD_ORDER if t in self.sandbox_tools and t not in done]

    def _refuse(self, call: dict, message: str) -> None:
        content = tool_error(str(call.get("name")), message)
        self._append(ToolMessage(content=content, tool_call_id=call["id"]), role="tool",
                     extra={"tool_call_id": call["id"], "tool": str(call.get("name"))[:60], "ok": False,
                            "content": content})

    # ------------------------------------------------------------------ the model call
    def _query(self) -> AIMessage:
        """One model call; the model layer retries provider faults and raises Stop when they persist."""
        try:
            return self.adapter.invoke(self.messages, step=self.steps, call=self._call)
        except Stop as stop:
            if stop.status == "provider_error" and self._drop_tool_choice(stop.reason):
                return self.adapter.invoke(self.messages, step=self.steps, call=self._call)
            raise


    def _drop_tool_choice(self, reason: str) -> bool:
        """When the server refuses ``tool_choice`` (a refusal naming it), stop sending it and say so."""
        if not self.tool_choice or ("tool_choice" not in reason and "tool choice" not in reason.lower()):
            return False
        self.transcript.append({"type": "tool_choice_dropped", "step": self.steps + 1,
                                "tool_choice": self.tool_choice, "error": reason})
        self._say("done", f"the server refused tool_choice={self.tool_choice}; going on without it")
        self.tool_choice = None
        self.model = self._bind()
        self.adapter.chat_model = self.model
        return True

    def _call(self, messages: list[BaseMessage], **kwargs) -> AIMessage:
        """One request to the model (the adapter retries it): streamed when a front-end listens."""
        if self.on_event is None and not self.cut_padding:
            return self.model.invoke(messages, **kwargs)
        return self._stream(messages, **kwargs)

    def _stream(self, messages: list[BaseMessage], **kwargs) -> AIMessage:
        """One streamed model call: each piece of text goes to ``on_event('token', ...)`` as it arrives.

        The client's timeout bounds each wait for the next piece, not the whole reply; a reply still coming
        when ``timeout`` (the time the run has left, see ModelAdapter) has passed is closed and the run
        stops with ``time_limit``.
        """
        merged = None
        text_so_far = ""
        deadline = time.monotonic() + kwargs["timeout"] if kwargs.get("timeout") else None
        if self.cut_padding:
            kwargs = {"stream_usage": True, **kwargs}  # token counts of replies read to the end
        stream = self.model.stream(messages, **kwargs)
        for chunk in stream:
            if deadline is not None and time.monotonic() > deadline:
                stream.close()
                raise Stop("time_limit", "reached the time limit while the model was still replying")
            text = chunk.content if isinstance(chunk.content, str) else message_text(chunk)
            if text:
                self._emit("token", {"text": text})
                text_so_far += text
            merged = chunk if merged is None else merged + chunk
            why = (why_reply_is_done(text_so_far, self.tool_names)
                   if self.cut_padding and text and not getattr(chunk, "tool_call_chunks", None) else None)
            if why:
                stream.close()  # closes the HTTP response: the server stops generating
                self.replies_cut += 1
                self.transcript.append({"type": "reply_cut", "step": self.steps + 1, "chars": len(text_so_far),
                                        "why": why})
                break
        if merged is None:
            return AIMessage(content="")
        message = message_chunk_to_message(merged)
        return message if isinstance(message, AIMessage) else AIMessage(content=message_text(message))

    def _on_retry(self, text: str) -> None:
        self._say("done", safe(text, 160))
        self._emit("retry", {"error": text})

    def _emit(self, kind: str, payload: dict) -> None:
        if self.on_event is not None and not self._replaying:
            self.on_event(kind, payload)

    def _count_tokens(self, ai: AIMessage) -> tuple[int, bool]:
        """Tokens of a call (see :func:`count_tokens`); the schemas sent count in an estimate."""
        calls = sum(len(json.dumps(c.get("args"), default=str)) for c in ai.tool_calls)
        return count_tokens(ai, self.messages, extra_chars=len(dumps(self.schemas)) + calls)

    # ------------------------------------------------------------------ limits
    def _maybe_wrap_up(self) -> None:
        """Once, when the budget is nearly spent, tell the model to record, dismiss and finish."""
        if self.warned or self.steps == 0:
            return
        lim = self.limits
        left = lim.max_steps - self.steps
        # Replies of a small model on a CPU take minutes: count the turns that fit in the time left too,
        # from the slowest reply so far, so that the last one that fits is the one that finishes.
        slowest = max(self.latencies, default=0.0)
        fit = int(self.budget.time_left // slowest) if slowest > 0 else left
        reason = ""
        if fit < left and fit <= lim.wrap_up_steps:
            fit = max(fit, 1)
            reason = (f"about {fit} more repl{'ies' if fit != 1 else 'y'} fit{'' if fit != 1 else 's'} in the "
                      f"{self.budget.time_left:.0f} s left, at {slowest:.0f} s per reply so far"
                      + ("; do all three in your next reply" if fit == 1 else ""))
        elif left <= lim.wrap_up_steps:
            reason = f"{left} turn{'s' if left != 1 else ''} left"
        elif self.tokens >= lim.wrap_up_fraction * lim.max_tokens:
            reason = f"{self.tokens} of {lim.max_tokens} tokens used"
        elif self.budget.elapsed >= lim.wrap_up_fraction * lim.time_limit:
            reason = f"{self.budget.elapsed:.0f} of {lim.time_limit:.0f} s used"
        if reason:
            self.warned = True
            self._append(HumanMessage(wrap_up_prompt(reason, self.dispatcher.ledger)), kind="wrap_up")

    # ------------------------------------------------------------------ transcript
    def _append(self, message: BaseMessage, role: str | None = None, kind: str | None = None,
                extra: dict | None = None) -> None:
        """Add a message to the conversation and (unless it is being rebuilt) to the transcript."""
        self.messages.append(message)
        role = role or {"system": "system", "human": "user"}.get(message.type, message.type)
        if self._replaying and (role != "tool" or extra["tool_call_id"] in self._logged_calls):
            return
        record = {"type": "message", "step": self.steps, "role": role}
        if kind:
            record["kind"] = kind
        if extra:
            record.update(extra)
        else:
            record["content"] = message_text(message)
        self.transcript.append(record)

    def _log_ai(self, ai: AIMessage, used: int, estimated: bool, latency: float | None = None,
                recovered: list | None = None) -> None:
        usage = dict(ai.usage_metadata or {})
        extra: dict[str, Any] = {}
        if latency is not None:  # issue 9: per-step latency and token counts
            extra["latency_s"] = round(latency, 3)
            extra["prompt_tokens"] = usage.get("input_tokens")
            extra["completion_tokens"] = usage.get("output_tokens")
        if recovered:
            extra["recovered_from_text"] = [r.source for r in recovered]
        self.transcript.append({
            "type": "message", "step": self.steps, "role": "assistant", "content": message_text(ai),
            "tool_calls": [{"id": c.get("id"), "name": c.get("name"), "args": c.get("args")} for c in ai.tool_calls],
            "invalid_tool_calls": [{"id": c.get("id"), "name": c.get("name"), "args": c.get("args"),
                                    "error": str(c.get("error") or "")[:300]} for c in ai.invalid_tool_calls],
            "usage": dict(ai.usage_metadata or {}), "tokens": used, "tokens_estimated": estimated,
            "model": (ai.response_metadata or {}).get("model_name"),
            "finish_reason": (ai.response_metadata or {}).get("finish_reason"), **extra})

    def _rebuild(self, records: list[dict]) -> None:
        """Replay the logged conversation: messages as they were, tool calls through the Dispatcher
        (finished ones answered from their stored results) and the agent tools (the ledger's decisions)."""
        messages = [r for r in records if r.get("type") == "message"]
        self._logged_calls = {r.get("tool_call_id") for r in messages if r.get("role") == "tool"}
        self._replaying = True
        try:
            for r in messages:
                role = r.get("role")
                if role in ("system", "user"):
                    cls = SystemMessage if role == "system" else HumanMessage
                    self.messages.append(cls(r.get("content") or ""))
                    self.warned = self.warned or r.get("kind") == "wrap_up"
                elif role == "assistant":
                    ai = AIMessage(
                        content=r.get("content") or "",
                        tool_calls=[{"id": c.get("id"), "name": c.get("name") or "", "args": c.get("args") or {},
                                     "type": "tool_call"} for c in r.get("tool_calls") or []],
                        invalid_tool_calls=[{"id": c.get("id"), "name": c.get("name"), "args": c.get("args"),
                                             "error": c.get("error"), "type": "invalid_tool_call"}
                                            for c in r.get("invalid_tool_calls") or []])
                    self.steps += 1
                    self.tokens += int(r.get("tokens") or 0)
                    self.messages.append(ai)
                    self._handle_turn(ai)
        finally:
            self._replaying = False
        if self.steps:
            self._say("done", f"resumed after step {self.steps}: {self.dispatcher.replayed} tool calls replayed")

    def _say(self, how: str, text: str) -> None:
        if self.progress is not None:
            getattr(self.progress, how)(text)
