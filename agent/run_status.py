"""Honest outcomes of a model-driven run: did any analysis happen?

A run in which no analysis tool returned a result (the model wrote prose, wrote calls that could not be
read, or called only ``finish``) has learnt nothing about the table. It ends with the status
``no_progress`` whatever the loop's own reason was, so that the command exits non-zero and the report
says what happened instead of drawing conclusions from an empty ledger.
"""

from __future__ import annotations

from serendip.agent.outcome import RunOutcome

NO_PROGRESS = "no_progress"
# Statuses that already name a failure more precisely than "no progress" would.
KEEP_STATUSES = ("error", "provider_error", "interrupted", "token_limit", "time_limit")
MAX_QUOTED_CHARS = 2000


def analysis_results_ok(ledger) -> int:
    """Number of analysis tool calls that returned a result (not an error)."""
    return sum(1 for r in ledger.results.values() if r.ok)


def judge_progress(outcome: RunOutcome, ledger, last_model_text: str = "") -> RunOutcome:
    """Mark ``outcome`` as ``no_progress`` when no analysis tool succeeded; say why in one line.

    Args:
        outcome: How the loop ended.
        ledger: The run's ledger (its results are the analysis tool calls).
        last_model_text: The model's last message, kept (bounded) to be quoted in the report.
    """
    if last_model_text:
        outcome.last_model_text = last_model_text.strip()[:MAX_QUOTED_CHARS]
    if outcome.status in KEEP_STATUSES or analysis_results_ok(ledger):
        return outcome
    tried = len(ledger.results)
    if tried:
        why = f"the model called analysis tools {tried} time{'s' if tried != 1 else ''} but every call was refused"
    else:
        why = "the model did not call any analysis tool"
    loop_reason = outcome.reason or ("it called finish" if outcome.status == "completed" else outcome.status)
    outcome.reason = f"{why} ({loop_reason})"
    outcome.status = NO_PROGRESS
    return outcome
