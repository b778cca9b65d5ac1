"""Progress display: a live status line on a terminal, clean one-line logs otherwise."""

from __future__ import annotations

import os
import sys
import time

from rich.console import Console


def interactive(stream=None) -> bool:
    """True when output goes to a terminal and TTY_INTERACTIVE is not 0."""
    if os.environ.get("TTY_INTERACTIVE", "") == "0" or os.environ.get("CI"):
        return False
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


class Progress:
    """Reports what a run is doing.

    Args:
        console: Where to print (stderr by default).
        live: Animate a status line (True only on an interactive terminal).
        quiet: Print nothing but errors.
    """

    def __init__(self, console: Console | None = None, live: bool | None = None, quiet: bool = False) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.live = interactive() if live is None else live
        self.quiet = quiet
        self.start = time.monotonic()
        self._status = None

    def __enter__(self) -> "Progress":
        if self.live and not self.quiet:
            self._status = self.console.status("starting…")
            self._status.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._status is not None:
            self._status.__exit__(*exc)
            self._status = None

    def step(self, text: str) -> None:
        """A new step has started."""
        if self.quiet:
            return
        elapsed = time.monotonic() - self.start
        if self._status is not None:
            self._status.update(f"[{elapsed:5.0f}s] {text}")
        else:
            self.console.print(f"[{elapsed:6.1f}s] {text}", markup=False, highlight=False, soft_wrap=True)

    def done(self, text: str) -> None:
        """A step finished (printed as a log line in both modes)."""
        if self.quiet:
            return
        elapsed = time.monotonic() - self.start
        self.console.print(f"[{elapsed:6.1f}s] {text}", markup=False, highlight=False, soft_wrap=True)
