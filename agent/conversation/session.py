"""A conversation about one table: slash commands, questions (answered by a model, or offline for the
common forms), the findings so far, reports, and a saved state that ``--resume`` continues.

Everything a front-end shows arrives as :mod:`~serendip.agent.conversation.events` through one listener;
nothing here prints. Model turns run through the project's one loop (:class:`~serendip.agent.loop.AgentLoop`,
its limits, retries and error handling), one turn at a time on the kept history.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

from langchain_core.messages import (AIMessage, HumanMessage, SystemMessage, ToolMessage, messages_from_dict,
                                     messages_to_dict)

from serendip.agent.conversation import events as ev
from serendip.agent.conversation.commands import COMMANDS, CommandError, parse_command, tool_call_for
from serendip.agent.conversation.engine import Analysis, read_json, session_file
from serendip.agent.conversation.history import HISTORY_BUDGET_CHARS, condense
from serendip.agent.conversation.offline_questions import CONFIGURE_HINT, compose_answer, match_question
from serendip.agent.explore import RunSetupError, default_out_dir
from serendip.agent.loop import AgentLoop, LoopLimits, result_text, tool_error
from serendip.agent.prompts import render, system_prompt, task_prompt
from serendip.tools.engine.jsonsafe import to_jsonable
from serendip.tools.engine.result import ToolResult
from serendip.tools.engine.sandbox import ToolCrash

SESSION_SCHEMA = "serendip.chat/1"
NOTE_CHARS = 3000
"""Bound on each slash-command result passed to the model as a session note."""


class QuitSession(Exception):
    """The user asked to leave (/quit)."""


class ChatSession:
    """One conversation: a table, its live analysis, the model's history and the findings so far.

    Args:
        out_dir: The session folder (default: ``serendip-runs/<table>-<time>`` when a table is loaded).
        model_name: The model's name ('' or 'autopilot' for none: offline answers and slash commands only).
        chat_model: A LangChain chat model (built by the caller from the model settings, or a test double).
        goal: What the user is looking for.
        seed: Seed for every random choice.
        limits: Budgets of one turn (steps, tokens, time) and the retry policy.
        listener: Receives every event.
        analysis_options: Passed to :class:`Analysis` (tool time and memory limits, in_process, ...).
        history_budget_chars: Size of the history above which older turns are summarised.
    """

    def __init__(self, out_dir: str | Path | None = None, *, model_name: str = "", chat_model=None, goal: str = "",
                 seed: int = 0, limits: LoopLimits | None = None, listener: Callable[[ev.Event], None] | None = None,
                 analysis_options: dict | None = None, history_budget_chars: int = HISTORY_BUDGET_CHARS,
                 base_url: str | None = None) -> None:
        self.out_dir = Path(out_dir) if out_dir else None
        self.model_name = "" if model_name in ("", "autopilot", None) else model_name
        self.base_url = base_url
        self.chat_model = chat_model
        self.goal = goal
        self.seed = seed
        self.limits = limits or LoopLimits(max_steps=20, time_limit=900.0)
        self.listener = listener or (lambda event: None)
        self.analysis_options = dict(analysis_options or {})
        self.history_budget_chars = history_budget_chars
        self.analysis: Analysis | None = None
        self.loop: AgentLoop | None = None
        self.turn_starts: list[int] = []
        self.turns: list[dict] = []
        self.pending_notes: list[str] = []
        self._calls = 0
        self._streamed: list[str] = []
        self._kept: dict = {}  # a saved model conversation, kept while no model is configured

    # ------------------------------------------------------------------ basics
    @property
    def has_model(self) -> bool:
        """True when a chat model answers free text."""
        return self.chat_model is not None

    @property
    def columns(self) -> list[dict]:
        """The table's columns (name, role, unit), for completion and offline matching."""
        if self.analysis is None:
            return []
        return list(self.analysis.dataset.get("columns") or []) + [
            {"name": n, "role": "numeric"} for n in self.analysis.dataset.get("derived_columns") or []]

    def emit(self, event: ev.Event) -> None:
        """Send one event to the front-end."""
        self.listener(event)

    def notice(self, text: str, level: str = "info") -> None:
        """A one-line message for the user."""
        self.emit(ev.Notice(level=level, text=text))

    # ------------------------------------------------------------------ table
    def load(self, table: str, resume: bool = False) -> bool:
        """Open ``table`` for the session (a new session folder when another table was open)."""
        if self.analysis is not None:
            self.close()
            self.out_dir, self.loop, self.turn_starts, self.turns, self.pending_notes = None, None, [], [], []
        out = self.out_dir or default_out_dir(table)
        if not resume and out.exists() and session_file(out).exists():
            self.notice(f"{out} already holds a chat session; continue it with: serendip chat --resume {out}", "error")
            return False
        try:
            self.analysis = Analysis(table, out, seed=self.seed, resume=resume, **self.analysis_options).start()
        except RunSetupError as exc:
            self.analysis = None
            self.notice(str(exc), "error")
            return False
        self.out_dir = out
        d = self.analysis.dataset
        self.emit(ev.TableLoaded(path=str(d.get("path") or table), n_rows=int(d.get("n_rows", 0)),
                                 n_columns=int(d.get("n_columns", 0)), columns=list(d.get("columns") or []),
                                 warnings=[str(w) for w in d.get("warnings") or []][:10], out_dir=str(out)))
        self.save()
        return True

    def close(self) -> None:
        """Save and stop the worker."""
        if self.analysis is not None:
            self.save()
            self.analysis.close()

    def _need_table(self) -> bool:
        if self.analysis is None:
            self.notice("no table is open: /load TABLE first", "error")
            return False
        return True

    # ------------------------------------------------------------------ input
    def handle(self, line: str) -> ev.Answer | None:
        """Run one line of input: a slash command or a question. Ctrl-C (KeyboardInterrupt) stops the
        running call; the session stays usable.

        Raises:
            QuitSession: on /quit.
        """
        line = line.strip()
        if not line:
            return None
        try:
            if line.startswith("/"):
                self.command(line)
                return None
            return self.ask(line)
        except KeyboardInterrupt:
            self._after_interrupt()
            return None
        except ToolCrash as exc:  # a bug in a tool or a worker that cannot run: say so, keep the session
            restarted = self.analysis.recover_from_interrupt() if self.analysis else False
            self.notice(f"{exc}" + (" (the tool worker was restarted)" if restarted else ""), "error")
            return None
        finally:
            if self.analysis is not None:
                self.save()

    def command(self, line: str) -> None:
        """Run one slash command."""
        try:
            cmd = parse_command(line)
            if cmd.name == "/quit":
                raise QuitSession()
            if cmd.name == "/help":
                self.emit(ev.HelpShown(commands=[(f"{k} {v[0]}".strip(), v[1]) for k, v in COMMANDS.items()],
                                       model=self.model_name))
                return
            if cmd.name == "/load":
                if not cmd.args:
                    raise CommandError("/load needs a table file: /load TABLE")
                self.load(cmd.rest.strip("'\"") if len(cmd.args) != 1 else cmd.args[0])
                return
            if cmd.name == "/goal":
                if not cmd.rest:
                    self.notice(f"goal: {self.goal or '(none)'}")
                    return
                self.goal = cmd.rest[:2000]
                self.pending_notes.append(f"The user's goal is now: {json.dumps(self.goal)}")
                self.notice(f"goal set: {self.goal}")
                return
            if not self._need_table():
                return
            if cmd.name == "/findings":
                self.emit(ev.FindingsListed(findings=self.analysis.findings,
                                            n_candidates=len(self.analysis.ledger.candidates)))
                return
            if cmd.name == "/report":
                self.report(cmd.args[0] if cmd.args else None)
                return
            planned = tool_call_for(cmd)
            if planned is not None:
                result = self.call_tool(planned.tool, planned.arguments)
                if result.ok and self.has_model:
                    self.pending_notes.append(
                        f"The user ran {cmd.name}: " + result_text(result, self.analysis.candidates_of(result.id),
                                                                    self.analysis.ledger)[:NOTE_CHARS])
        except CommandError as exc:
            self.notice(str(exc), "error")

    def call_tool(self, tool: str, arguments: dict) -> ToolResult:
        """Run one tool for a command or an offline answer, with its events."""
        self._calls += 1
        call_id = f"u{self._calls}"
        self.emit(ev.ToolStarted(call_id=call_id, tool=tool, arguments=to_jsonable(arguments)))
        started = time.monotonic()
        result = self.analysis.call(tool, **arguments)
        self.emit(self._finished_event(call_id, tool, arguments, result, time.monotonic() - started))
        return result

    def _finished_event(self, call_id: str, tool: str, arguments, result: ToolResult | None, elapsed: float,
                        ok: bool = True, content: str = "") -> ev.ToolFinished:
        args = arguments if isinstance(arguments, dict) else {"raw": str(arguments)[:300]}
        if result is None:  # an agent tool (record_finding, ...) or a refused call
            try:
                reply = json.loads(content) if content else {}
            except json.JSONDecodeError:
                reply = {}
            numbers = {k: v for k, v in reply.items() if k in ("recorded", "dismissed", "kind", "title")}
            return ev.ToolFinished(call_id=call_id, tool=tool, arguments=to_jsonable(args), ok=ok,
                                   error=None if ok else str(reply.get("error", ""))[:300], elapsed_s=elapsed,
                                   key_numbers=to_jsonable(numbers))
        return ev.ToolFinished(call_id=call_id, tool=tool, arguments=to_jsonable(args), result_id=result.id,
                               ok=result.ok, error=result.error, elapsed_s=elapsed,
                               key_numbers=ev.key_numbers(tool, result.summary) if result.ok else {},
                               figures=list(result.figures), candidates=self.analysis.candidates_of(result.id))

    # ------------------------------------------------------------------ questions
    def ask(self, text: str) -> ev.Answer:
        """Answer a question: with the model when there is one, else by the offline forms (or the hint)."""
        if not self._need_table():
            return ev.Answer(text="No table is open: /load TABLE first.", answered=False, source="hint")
        self.turns.append({"user": text[:4000]})
        answer = self._ask_model(text) if self.has_model else self._ask_offline(text)
        self.turns[-1].update(answer=answer.text, evidence=answer.evidence, figures=answer.figures,
                              source=answer.source, answered=answer.answered)
        self.analysis.transcript.append({"type": "chat_turn", "user": text[:4000], "answer": answer.text,
                                         "answered": answer.answered, "evidence": answer.evidence,
                                         "source": answer.source})
        self.emit(answer)
        return answer

    def _ask_offline(self, text: str) -> ev.Answer:
        plan = match_question(text, self.columns)
        if plan is None:
            return ev.Answer(text=CONFIGURE_HINT, answered=False, source="hint")
        results = [self.call_tool(c.tool, c.arguments) for c in plan.calls]
        return ev.Answer(text=compose_answer(plan, results), answered=results[0].ok,
                         evidence=[r.id for r in results if r.id],
                         figures=[f for r in results if r.ok for f in r.figures], source="offline")

    def _start_loop(self) -> list:
        self.loop = AgentLoop(self.chat_model, self.analysis.dispatcher, self.analysis.transcript, self.limits,
                              progress=None, on_event=self._on_loop_event)
        thresholds = self.analysis.ledger.thresholds
        system = system_prompt(sorted(self.loop.sandbox_tools), thresholds, self.limits.max_steps)
        return [SystemMessage(system + "\n" + render("chat.md.j2")),
                HumanMessage(task_prompt(self.analysis.dataset, self.goal))]

    def _ask_model(self, text: str) -> ev.Answer:
        opening = self._start_loop() if self.loop is None else []
        self._condense_history()
        if self.pending_notes:
            text = "[Session notes]\n" + "\n".join(f"- {n}" for n in self.pending_notes) + "\n\n" + text
            self.pending_notes = []
        self.turn_starts.append(len(self.loop.messages) + len(opening))
        first_result = self.analysis.dispatcher.count
        self._streamed = []
        try:
            outcome = self.loop.turn(opening + [HumanMessage(text)], max_steps=self.limits.max_steps)
        except Exception as exc:  # noqa: BLE001 - a tool bug or infrastructure failure: keep the session
            self._repair_history("The call failed unexpectedly and was stopped.")
            self.analysis.recover_from_interrupt()
            message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
            return ev.Answer(text=f"The turn failed: {message}", answered=False, source="model")
        ids = [f"R{i}" for i in range(first_result + 1, self.analysis.dispatcher.count + 1)]
        figures = [f for rid in ids if rid in self.analysis.ledger.results
                   for f in self.analysis.ledger.results[rid].figures]
        streamed = bool(self._streamed)
        if outcome.status == "interrupted":
            self._after_interrupt()
            return ev.Answer(text="(stopped)", answered=False, evidence=ids, figures=figures, streamed=streamed,
                             source="model")
        if outcome.status != "completed":
            self._repair_history("The turn stopped at a limit before this call was answered.")
            return ev.Answer(text=f"The turn stopped ({outcome.status}): {outcome.reason}", answered=False,
                             evidence=ids, figures=figures, streamed=streamed, source="model")
        return ev.Answer(text=outcome.summary, answered=bool(outcome.summary), evidence=ids, figures=figures,
                         streamed=streamed, source="model")

    def _on_loop_event(self, kind: str, payload: dict) -> None:
        if kind == "token":
            self._streamed.append(payload["text"])
            self.emit(ev.TextDelta(text=payload["text"]))
        elif kind == "tool_start":
            args = payload.get("arguments")
            self.emit(ev.ToolStarted(call_id=str(payload["call_id"]), tool=payload["tool"],
                                     arguments=to_jsonable(args if isinstance(args, dict) else {"raw": str(args)[:300]})))
        elif kind == "tool_end":
            self.emit(self._finished_event(str(payload["call_id"]), payload["tool"], payload.get("arguments"),
                                           payload.get("result"), payload.get("elapsed_s", 0.0),
                                           ok=bool(payload.get("ok")), content=payload.get("content", "")))
        elif kind == "retry":
            self.notice(f"the model call failed ({payload['error'][:120]}); retrying in {payload['delay_s']:.1f} s",
                        "warning")

    def _condense_history(self) -> None:
        done = condense(self.loop.messages, self.turn_starts, self.analysis.ledger, self.history_budget_chars)
        if done is None:
            return
        before = sum(1 for _ in self.loop.messages)
        self.loop.messages, self.turn_starts, n_turns = done
        self.analysis.transcript.append({"type": "history_summarised", "turns": n_turns,
                                         "messages_before": before, "messages_after": len(self.loop.messages)})
        self.notice(f"the conversation is long: {n_turns} earlier turn{'s' if n_turns != 1 else ''} summarised for "
                    "the model (results keep their ids)", "info")

    # ------------------------------------------------------------------ interrupts
    def _after_interrupt(self) -> None:
        restarted = self.analysis.recover_from_interrupt() if self.analysis else False
        self._repair_history("The user interrupted this call (Ctrl-C); it did not finish.")
        self.notice("stopped" + (" (the tool worker was restarted; the session state is kept)" if restarted else ""),
                    "warning")

    def _repair_history(self, reason: str) -> None:
        """Answer every tool call the model made that has no reply yet, so the history stays valid."""
        if self.loop is None:
            return
        answered = {m.tool_call_id for m in self.loop.messages if isinstance(m, ToolMessage)}
        for m in reversed(self.loop.messages):
            if isinstance(m, AIMessage) and (m.tool_calls or m.invalid_tool_calls):
                for c in list(m.tool_calls) + list(m.invalid_tool_calls):
                    if c.get("id") and c["id"] not in answered:
                        content = tool_error(str(c.get("name")), reason)
                        self.loop.messages.append(ToolMessage(content=content, tool_call_id=c["id"]))
                        self.analysis.transcript.append({"type": "message", "step": self.loop.steps, "role": "tool",
                                                         "tool_call_id": c["id"], "tool": str(c.get("name"))[:60],
                                                         "ok": False, "content": content})
                break
        if self.loop.messages and not isinstance(self.loop.messages[-1], AIMessage):
            self.loop.messages.append(AIMessage(content="(This turn was stopped before I answered.)"))

    # ------------------------------------------------------------------ outputs
    def report(self, out_dir: str | None = None) -> Path | None:
        """Write the report of the session so far."""
        if not self._need_table():
            return None
        try:
            out = self.analysis.report(out_dir, goal=self.goal, model=self.model_name or "none (chat)")
        except RunSetupError as exc:
            self.notice(str(exc), "error")
            return None
        files = [p.name for p in sorted(out.iterdir()) if p.is_file()]
        self.emit(ev.ReportWritten(out_dir=str(out), files=files, n_findings=len(self.analysis.findings)))
        return out

    def save(self) -> None:
        """Write chat.json (atomically): everything ``--resume`` needs besides the workspace."""
        if self.analysis is None or self.out_dir is None:
            return
        ledger = self.analysis.ledger
        state = {"schema": SESSION_SCHEMA, "table": str(self.analysis.table_path), "goal": self.goal,
                 "model": self.model_name, "base_url": self.base_url, "seed": self.seed,
                 "messages": messages_to_dict(self.loop.messages) if self.loop else self._kept.get("messages", []),
                 "turn_starts": self.turn_starts, "steps": self.loop.steps if self.loop else self._kept.get("steps", 0),
                 "tokens": self.loop.tokens if self.loop else self._kept.get("tokens", 0),
                 "pending_notes": self.pending_notes,
                 "turns": self.turns,
                 "candidates": {c.cid: {"status": c.status, "reason": c.reason, "note": c.note,
                                        "title": c.finding.get("title", "")} for c in ledger.candidates.values()}}
        path = session_file(self.out_dir)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(to_jsonable(state), ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def resume(cls, out_dir: str | Path, **options) -> "ChatSession":
        """Continue the session saved in ``out_dir`` (transcript, findings, workspace and the model's history).

        Raises:
            RunSetupError: Nothing to resume there, or its table cannot be opened.
        """
        out_dir = Path(out_dir)
        state = read_json(session_file(out_dir))
        options.setdefault("goal", state.get("goal", ""))
        options.setdefault("seed", int(state.get("seed", 0)))
        session = cls(out_dir, **options)
        if not session.load(str(state.get("table", "")), resume=True):
            raise RunSetupError(f"cannot resume {out_dir}: its table {state.get('table')} cannot be opened")
        for cid, saved in (state.get("candidates") or {}).items():
            cand = session.analysis.ledger.candidates.get(cid)
            if cand is not None:
                cand.status, cand.reason, cand.note = saved.get("status", "open"), saved.get("reason", ""), \
                    saved.get("note", "")
                if saved.get("title"):
                    cand.finding["title"] = saved["title"]
        session.turns = list(state.get("turns") or [])
        session.pending_notes = list(state.get("pending_notes") or [])
        if state.get("messages") and session.has_model:
            session._start_loop()
            session.loop.messages = messages_from_dict(state["messages"])
            session.loop.steps, session.loop.tokens = int(state.get("steps", 0)), int(state.get("tokens", 0))
            session.turn_starts = list(state.get("turn_starts") or [])
        elif state.get("messages"):
            session._kept = {k: state.get(k) for k in ("messages", "steps", "tokens")}
            session.turn_starts = list(state.get("turn_starts") or [])
            session.notice("this session's model conversation is kept but no model is configured now: offline "
                           "answers only", "warning")
        session.notice(f"resumed {out_dir}: {len(session.turns)} earlier questions, "
                       f"{len(session.analysis.ledger.results)} results, {len(session.analysis.findings)} findings")
        return session
