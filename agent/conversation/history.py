"""Keeping a long conversation within bounds: older turns are summarised, never silently dropped.

The summary is built from the messages themselves (no model call): each earlier user message, each tool
call with its result id and the start of its result, each answer, and the candidates' status, so that the
model can still refer to earlier results by id. The summary is a visible message in the history, and the
transcript records that it was made.
"""

from __future__ import annotations

import json

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from serendip.agent.loop import message_text

SUMMARY_MARK = "[Summary of the earlier conversation]"
HISTORY_BUDGET_CHARS = 200_000
"""About 50k tokens: summarise older turns beyond this (characters, not tokens: no tokenizer offline)."""
KEEP_TURNS = 2


def history_chars(messages: list[BaseMessage]) -> int:
    """Characters in the conversation (text, tool-call arguments and tool results)."""
    total = 0
    for m in messages:
        total += len(message_text(m))
        for c in getattr(m, "tool_calls", None) or []:
            total += len(json.dumps(c.get("args"), default=str))
    return total


def _result_line(content: str, limit: int = 300) -> str:
    try:
        data = json.loads(content)
    except (json.JSONDecodeError, TypeError):
        return content[:limit]
    if not isinstance(data, dict):
        return content[:limit]
    head = f"{data.get('result_id', '')} {data.get('tool', '')}".strip()
    if data.get("ok") is False:
        return f"{head} failed: {str(data.get('error', ''))[:200]}"
    body = json.dumps(data.get("summary", {k: v for k, v in data.items() if k not in ('result_id', 'tool')}),
                      default=str)
    cands = data.get("candidates")
    if cands:
        head += " proposed " + ", ".join(f"{c.get('id')} ({str(c.get('title', ''))[:80]})" for c in cands[:5])
    return f"{head}: {body[:limit]}"


def summarise_messages(messages: list[BaseMessage], ledger=None) -> str:
    """One text that keeps what the model needs from ``messages``: questions, calls with ids, answers."""
    lines = [SUMMARY_MARK, "Earlier turns, condensed. Result ids (R..) and candidate ids (C..) stay valid."]
    for m in messages:
        text = message_text(m)
        if isinstance(m, HumanMessage):
            if text.startswith(SUMMARY_MARK):
                lines += text.splitlines()[2:]
            else:
                lines.append(f"- The user said: {text[:300]}")
        elif isinstance(m, AIMessage):
            for c in m.tool_calls or []:
                lines.append(f"- You called {c.get('name')}({json.dumps(c.get('args'), default=str)[:200]})")
            if text.strip():
                lines.append(f"- You answered: {text.strip()[:400]}")
        elif isinstance(m, ToolMessage):
            lines.append(f"  -> {_result_line(text)}")
    if ledger is not None and ledger.candidates:
        status = ", ".join(f"{c.cid} {c.status}" for c in list(ledger.candidates.values())[-40:])
        lines.append(f"Candidates so far: {status}.")
    return "\n".join(lines)


def condense(messages: list[BaseMessage], turn_starts: list[int], ledger=None,
             budget_chars: int = HISTORY_BUDGET_CHARS, keep_turns: int = KEEP_TURNS
             ) -> tuple[list[BaseMessage], list[int], int] | None:
    """Summarise the turns before the last ``keep_turns`` when the history is over budget.

    Args:
        messages: The conversation: system and table prompts, then the turns.
        turn_starts: Index in ``messages`` of each turn's user message.
        ledger: The findings ledger (candidate statuses go into the summary).
        budget_chars: Size above which older turns are summarised.
        keep_turns: Most recent turns kept word for word.

    Returns:
        (new messages, new turn starts, number of turns summarised), or None when nothing needs doing.
    """
    if history_chars(messages) <= budget_chars or len(turn_starts) <= keep_turns:
        return None
    first, cut = turn_starts[0], turn_starts[-keep_turns]
    summary = HumanMessage(summarise_messages(messages[first:cut], ledger))
    new = messages[:first] + [summary] + messages[cut:]
    shift = cut - first - 1
    starts = [first] + [s - shift for s in turn_starts[-keep_turns:]]
    return new, starts, len(turn_starts) - keep_turns
