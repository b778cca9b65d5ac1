"""A small Google-style docstring reader: the summary and the ``Args:`` descriptions."""

from __future__ import annotations

import inspect
import re

_SECTION = re.compile(r"^(Args|Arguments|Parameters|Returns|Return|Raises|Yields|Examples?|Notes?|Attributes|See Also):\s*$")
_ARG = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its description and per-argument descriptions.

    Args:
        doc: The raw docstring.

    Returns:
        The text before the first section, and a mapping of argument name to its description.
    """
    text = inspect.cleandoc(doc or "")
    lines = text.splitlines()
    description: list[str] = []
    args: dict[str, str] = {}
    section = None
    current = None
    arg_indent = None
    for line in lines:
        m = _SECTION.match(line.strip())
        if m and (len(line) - len(line.lstrip())) == 0:
            section = m.group(1)
            current = None
            arg_indent = None
            continue
        if section is None:
            description.append(line)
            continue
        if section not in ("Args", "Arguments", "Parameters"):
            continue
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        am = _ARG.match(line.strip())
        if am and (arg_indent is None or indent <= arg_indent):
            arg_indent = indent
            current = am.group(1).lstrip("*")
            args[current] = am.group(3).strip()
        elif current is not None:
            args[current] = (args[current] + " " + line.strip()).strip()
    return "\n".join(description).strip(), args
