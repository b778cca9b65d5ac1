"""The model's rewrite of the report's opening summary (issue 17): asked once, checked by parsing, shown only
when every number and id in it holds.

When a chat model drove the run (llm or hybrid planner) and the run made progress, the model is asked once,
without tools, to rewrite the template summary (:func:`~serendip.agent.summary.summary_section`) in a few
sentences. The reply replaces nothing: it is shown above the template's lines, labelled as the model's, and
only when every number in it is one the template or a tool result holds, every finding id (F…) is one of the
run's findings and every result id (R…) one of its tool results. Otherwise the template stands alone and the
report says in one line why the rewrite was not used. The verdict is kept in the transcript and run.json;
a resumed run reuses the reply its earlier attempt got for the same template instead of asking again.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from serendip.agent.budget import Stop
from serendip.agent.ledger import Ledger
from serendip.agent.outcome import RunOutcome
from serendip.agent.run_status import NO_PROGRESS, analysis_results_ok
from serendip.agent.summary import NUMBER, summary_section, tool_numbers, unsupported_numbers
from serendip.tools.engine.mdtext import escape_md

if TYPE_CHECKING:  # the model layer (openai, langchain) is loaded only by a run that has a model
    from langchain_core.messages import AIMessage, BaseMessage

    from serendip.agent.models import RetryPolicy

MAX_REWRITE_CHARS = 2000
MIN_TIME_LEFT_S = 30.0
"""Seconds the run must have left to ask (a CPU-served model may take a while to answer)."""
NOT_AFTER = (NO_PROGRESS, "interrupted", "error")
"""Ends of a run after which the model is not asked and the report says nothing of a rewrite."""
NOT_ASKED = {"provider_error": "the model provider failed during the run",
             "token_limit": "the run's token budget was spent"}
"""Ends of a run after which the model is not asked, and why (said in the report)."""
FINDING_ID = re.compile(r"(?<![\w.])F\d+(?!\w)")
RESULT_ID = re.compile(r"(?<![\w.])R\d+(?!\w)")
CODE_SPAN = re.compile(r"`([^`\n]*)`")
MARKDOWN_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


@dataclass
class SummaryWriter:
    """Asks the run's chat model for the rewrite: one request, no tools, through the model adapter's retries.

    Attributes:
        chat_model: The run's LangChain chat model (unbound: no tool is offered).
        policy: Attempts and backoff (the run's).
        log: Appends a record to the transcript (retries and failures are written there).
        time_left: Seconds left in the run's time budget.
        step: The model's last turn (numbers the retry records).
        client_timeout: The client's own per-request timeout in seconds (None: unknown).
    """

    chat_model: Any
    policy: RetryPolicy
    log: Callable[[dict], None]
    time_left: Callable[[], float]
    step: int = 0
    client_timeout: float | None = None

    def ask(self, template: str) -> tuple[str, int, float]:
        """The model's rewrite of ``template``, the tokens the request used and its latency in seconds.

        Raises:
            Stop: The provider refused or kept failing, or the time ran out (see :class:`ModelAdapter`).
        """
        from langchain_core.messages import HumanMessage

        from serendip.agent.models import ModelAdapter
        from serendip.agent.prompts import render

        adapter = ModelAdapter(self.chat_model, self.policy, log=self.log, time_left=self.time_left,
                               client_timeout=self.client_timeout)
        messages = [HumanMessage(render("summary_rewrite.md.j2", summary=template))]
        asked = time.perf_counter()
        ai = adapter.invoke(messages, step=self.step)
        return reply_text(ai), reply_tokens(ai, messages), time.perf_counter() - asked


def reply_text(ai: AIMessage) -> str:
    """The text of the model's reply, whatever its content format."""
    from serendip.agent.loop import message_text

    return message_text(ai).strip()


def reply_tokens(ai: AIMessage, messages: list[BaseMessage]) -> int:
    """Tokens of the request, counted as the loop counts them (:func:`~serendip.agent.loop.count_tokens`)."""
    from serendip.agent.loop import count_tokens

    return count_tokens(ai, messages)[0]


def template_text(findings: list[dict], ledger: Ledger) -> str:
    """The template summary as the model reads it: its lines without the heading, markdown escapes removed."""
    body = "\n".join(summary_section(findings, ledger)[2:]).strip()
    return MARKDOWN_ESCAPE.sub(r"\1", body)


def _numbers_text(reply: str, template: str) -> str:
    """``reply`` with the code spans the template has (column names) blanked; any other code span is opened,
    so that a number cannot hide in backticks."""
    known = set(CODE_SPAN.findall(template))
    return CODE_SPAN.sub(lambda m: " " if m.group(1) in known else f" {m.group(1)} ", reply)


def rewrite_problem(reply: str, template: str, ledger: Ledger, finding_ids: set[str]) -> str:
    """Why ``reply`` cannot stand beside the template ('' when it can).

    Args:
        reply: The model's rewrite.
        template: The template summary it rewrote (see :func:`template_text`).
        ledger: The run's ledger (its tool results hold the numbers a summary may give).
        finding_ids: The ids of the run's findings.
    """
    if not reply:
        return "the model's reply was empty"
    if len(reply) > MAX_REWRITE_CHARS:
        return f"the reply is longer than {MAX_REWRITE_CHARS} characters"
    pool = [float(m.rstrip("%")) for m in NUMBER.findall(template)] + tool_numbers(ledger)
    unsupported = unsupported_numbers(_numbers_text(reply, template), pool)
    if unsupported:
        return f"it gives numbers that neither the summary nor any tool result holds: {_listed(unsupported)}"
    unknown = [f for f in FINDING_ID.findall(reply) if f not in finding_ids]
    if unknown:
        return f"it names findings this run does not have: {_listed(unknown)}"
    missing = [r for r in RESULT_ID.findall(reply) if r not in ledger.results]
    if missing:
        return f"it cites tool results this run does not have: {_listed(missing)}"
    return ""


def _listed(items: list[str], limit: int = 8) -> str:
    unique = list(dict.fromkeys(items))
    return ", ".join(unique[:limit]) + (" …" if len(unique) > limit else "")


def _verdict(reply: str, template: str, ledger: Ledger, findings: list[dict], tokens: int) -> dict:
    problem = rewrite_problem(reply, template, ledger, {str(f.get("id")) for f in findings})
    if problem:
        return {"status": "refused", "reason": problem, "reply": reply[:MAX_REWRITE_CHARS], "tokens": tokens}
    return {"status": "accepted", "text": reply, "tokens": tokens}


def earlier_reply(records: list[dict], template: str) -> dict | None:
    """The last reply an earlier attempt of this run got for the same template (None when it got none)."""
    for record in reversed(records):
        if record.get("type") == "summary_rewrite" and record.get("template") == template and "reply" in record:
            return record
    return None


def rewrite_summary(outcome: RunOutcome, findings: list[dict], ledger: Ledger, transcript) -> dict:
    """Ask the run's model (once) to rewrite the template summary and judge the reply.

    Args:
        outcome: How the run ended; its ``summary_writer`` asks the model (None: no model, or the setting off).
        findings: The report's findings (the template is written from them).
        ledger: The run's ledger.
        transcript: The run's transcript (the exchange is recorded there; an earlier attempt's reply is reused).

    Returns:
        ``{}`` when no rewrite belongs in the report; else ``status`` ('accepted' with ``text``, 'refused' or
        'not_asked' with ``reason``) and the ``tokens`` the request used.
    """
    writer = outcome.summary_writer
    if writer is None or outcome.status in NOT_AFTER or not analysis_results_ok(ledger):
        return {}
    if outcome.status in NOT_ASKED:
        return {"status": "not_asked", "reason": NOT_ASKED[outcome.status], "tokens": 0}
    template = template_text(findings, ledger)
    earlier = earlier_reply(transcript.records(), template)
    if earlier is not None:  # a resumed run: the report is rebuilt from the reply the run already got
        return {**_verdict(str(earlier["reply"]), template, ledger, findings, 0), "reused": True}
    if writer.time_left() < MIN_TIME_LEFT_S:
        return {"status": "not_asked", "reason": f"less than {MIN_TIME_LEFT_S:.0f} s of the run's time was left",
                "tokens": 0}
    try:
        reply, tokens, latency = writer.ask(template)
    except Exception as exc:  # noqa: BLE001 - a failed rewrite leaves the template; it must not lose the report
        from serendip.agent.models import one_line

        why = exc.reason if isinstance(exc, Stop) else one_line(exc, 200)
        verdict = {"status": "refused", "reason": f"the model call failed ({why})", "tokens": 0}
        transcript.append({"type": "summary_rewrite", "template": template, **verdict})
        return verdict
    verdict = _verdict(reply, template, ledger, findings, tokens)
    transcript.append({"type": "summary_rewrite", "template": template, "reply": reply,
                       "latency_s": round(latency, 3), **{k: v for k, v in verdict.items() if k != "reply"}})
    return verdict


def apply_summary_rewrite(outcome: RunOutcome, findings: list[dict], ledger: Ledger, transcript) -> None:
    """:func:`rewrite_summary` into ``outcome.summary_rewrite``, its tokens counted in the run's."""
    outcome.summary_rewrite = rewrite_summary(outcome, findings, ledger, transcript)
    outcome.tokens += int(outcome.summary_rewrite.get("tokens") or 0)


def summary_lines(findings: list[dict], ledger: Ledger, rewrite: dict | None) -> list[str]:
    """The report's 'Summary' section: the model's rewrite when it was accepted (labelled, escaped) above the
    template's lines, or the template and one line saying why the rewrite was not used."""
    lines = summary_section(findings, ledger)
    rewrite = rewrite or {}
    if rewrite.get("status") == "accepted":
        paragraphs = [p for p in re.split(r"\n\s*\n", str(rewrite.get("text") or "")) if p.strip()]
        head = ["*Written by the model from the ledger summary below; every number in it was checked against "
                "that summary and the tool results.*", ""]
        for p in paragraphs:
            head += [escape_md(p.strip()), ""]
        return lines[:2] + head + ["*The ledger summary (template):*", ""] + lines[2:]
    if rewrite.get("status") == "refused":
        return lines + [f"*The model's rewrite of this summary was not used: {escape_md(rewrite.get('reason'))}.*",
                        ""]
    if rewrite.get("status") == "not_asked":
        return lines + [f"*The model was not asked to rewrite this summary: {escape_md(rewrite.get('reason'))}.*",
                        ""]
    return lines

