"""How a run ended."""

from __future__ import annotations

from dataclasses import dataclass, field

EXIT_STATUSES = ("completed", "step_limit", "token_limit", "time_limit", "interrupted", "provider_error", "error")


@dataclass
class RunOutcome:
    """The end of a run.

    Attributes:
        status: One of completed, step_limit, token_limit, time_limit, interrupted, provider_error (the model
            provider refused, kept failing or kept sending unusable replies), error.
        reason: One line saying why the run stopped (empty when completed normally).
        steps: Number of steps taken (model turns, or planner steps for the autopilot).
        tokens: Tokens used (prompt + completion; 0 for the autopilot).
        notes: What the planner understood and decided, for the report.
        controlled: What was controlled for and why, for the report.
        summary: The model's own closing summary, if any.
    """

    status: str = "completed"
    reason: str = ""
    steps: int = 0
    tokens: int = 0
    notes: list[str] = field(default_factory=list)
    controlled: list[str] = field(default_factory=list)
    summary: str = ""
