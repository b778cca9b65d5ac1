"""How a run ended."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EXIT_STATUSES = ("completed", "step_limit", "token_limit", "time_limit", "interrupted", "provider_error", "error",
                 "no_progress")  # no_progress: no analysis tool succeeded


@dataclass
class RunOutcome:
    """The end of a run.

    Attributes:
        status: One of completed, step_limit, token_limit, time_limit, interrupted, provider_error (the model
            provider refused, kept failing or kept sending unusable replies), error.
            no_progress (no analysis tool succeeded).
        reason: One line saying why the run stopped (empty when completed normally).
        steps: Number of steps taken (model turns, or planner steps for the autopilot).
        tokens: Tokens used (prompt + completion; 0 for the autopilot).
        notes: What the planner understood and decided, for the report.
        controlled: What was controlled for and why, for the report.
        summary: The model's own closing summary (given to finish), if any; model text, not evidence.
        last_model_text: The model's last message when it stopped without finishing (quoted, never used as
            a summary).
        planner: Which planner produced the findings ('autopilot', 'llm', 'hybrid').
        fallback: Why the run fell back to the autopilot's findings (empty when it did not).
        stats: Measurements of the run for run.json (schema sizes, per-step latencies).
        summary_writer: Asks the run's chat model to rewrite the report's summary (a
            :class:`~serendip.agent.summary_rewrite.SummaryWriter`; None without a model or with the setting off).
        summary_rewrite: The verdict on that rewrite, for the report and run.json (see
            :func:`~serendip.agent.summary_rewrite.rewrite_summary`; empty when none was asked for).
    """

    status: str = "completed"
    reason: str = ""
    steps: int = 0
    tokens: int = 0
    notes: list[str] = field(default_factory=list)
    controlled: list[str] = field(default_factory=list)
    summary: str = ""
    last_model_text: str = ""
    planner: str = ""
    fallback: str = ""
    stats: dict = field(default_factory=dict)
    summary_writer: Any = field(default=None, repr=False, compare=False)
    summary_rewrite: dict = field(default_factory=dict)
