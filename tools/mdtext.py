"""Putting strings that came from the table into markdown safely."""

from __future__ import annotations


def code(text: object, limit: int = 80) -> str:
    """Inline-code a string from the table so markdown shows it literally (long names shortened).

    The fence grows past any backticks inside the text; raw HTML is escaped later by the HTML
    renderer, so a column named ``<script>`` stays text.
    """
    s = str(text).replace("\n", " ").replace("\r", " ")
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    fence = "`"
    while fence in s:
        fence += "`"
    pad = " " if s.startswith("`") or s.endswith("`") or not s.strip() else ""
    return f"{fence}{pad}{s}{pad}{fence}"
