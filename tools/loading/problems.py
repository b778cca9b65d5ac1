"""The reason a file cannot be read as a table, raised inside the loaders and reported as one line."""

from __future__ import annotations


class BadTable(Exception):
    """The input file is unusable; the message says why in one line (without the file name)."""


def one_line(exc: BaseException | str, limit: int = 200) -> str:
    """An exception's message flattened to one line and cut to ``limit`` characters."""
    text = " ".join(str(exc).split()) or (type(exc).__name__ if isinstance(exc, BaseException) else "")
    return text if len(text) <= limit else text[: limit - 1] + "…"
