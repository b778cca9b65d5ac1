"""How a run stops: the one :class:`Stop` exception and the one budget check shared by both planners
(the autopilot and the LLM loop)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable


class Stop(Exception):
    """Ends a run with an exit status (see :data:`serendip.agent.outcome.EXIT_STATUSES`) and a one-line reason."""

    def __init__(self, status: str, reason: str = "") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Budget:
    """Steps, tokens and wall time of one run, and the check that ends it when one is spent.

    Attributes:
        max_steps: Most steps (model turns, or planner steps for the autopilot).
        max_tokens: Most tokens (prompt + completion, summed over model calls).
        time_limit: Wall-clock seconds.
        clock: Monotonic clock (injectable for tests).
        steps: Steps taken so far.
        tokens: Tokens used so far.
        started: Clock reading at the start.
    """

    max_steps: int
    max_tokens: int
    time_limit: float
    clock: Callable[[], float] = time.monotonic
    steps: int = 0
    tokens: int = 0
    started: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def restart_clock(self) -> None:
        """Count wall time from now."""
        self.started = self.clock()

    @property
    def elapsed(self) -> float:
        """Seconds since the start."""
        return self.clock() - self.started

    @property
    def time_left(self) -> float:
        """Seconds left before the time limit."""
        return self.time_limit - self.elapsed

    def check(self) -> None:
        """Raise :class:`Stop` when the steps, the tokens or the time are spent."""
        if self.steps >= self.max_steps:
            raise Stop("step_limit", f"reached the step limit of {self.max_steps}")
        if self.tokens >= self.max_tokens:
            raise Stop("token_limit", f"used {self.tokens} tokens of the {self.max_tokens} allowed")
        if self.elapsed >= self.time_limit:
            raise Stop("time_limit", f"reached the time limit of {self.time_limit:.0f} s")
