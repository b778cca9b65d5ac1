"""Column names: blank or duplicated headers made unique, control characters removed."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def _header_text(raw: object) -> str:
    """The header cell as a one-line string ('' for a blank cell)."""
    if raw is None or (isinstance(raw, float) and raw != raw):
        return ""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    text = _CONTROL.sub(" ", str(raw)).strip()
    # pandas writes "Unnamed: 3" for a blank header cell; treat it as blank.
    if re.fullmatch(r"Unnamed: \d+(_level_\d+)?", text):
        return ""
    return text


def make_unique_names(names: list[object]) -> tuple[list[str], list[str]]:
    """Return unique, non-blank, one-line string names and the warnings describing any change.

    A blank header becomes ``column_<position>`` (1-based); a repeated name gets ``_2``, ``_3`` ... in
    order of appearance, never colliding with a name written elsewhere in the header. Names are
    otherwise kept exactly (any characters, any length): they are data, never code.

    Args:
        names: Header cells as read from the file (any type; None or NaN for blanks).
    """
    texts = [_header_text(raw) for raw in names]
    taken = {t for t in texts if t}
    out: list[str] = []
    warnings: list[str] = []
    used: set[str] = set()
    for i, (raw, text) in enumerate(zip(names, texts)):
        if text == "":
            base = f"column_{i + 1}"
            name, k = base, 2
            while name in used or name in taken:
                name, k = f"{base}_{k}", k + 1
            warnings.append(f"column {i + 1} has a blank name; called it {name!r}")
        else:
            name = text
            if name in used:
                k = 2
                while f"{text}_{k}" in used or f"{text}_{k}" in taken:
                    k += 1
                name = f"{text}_{k}"
                warnings.append(f"duplicate column name {_short(text)!r} (column {i + 1}) renamed to {_short(name)!r}")
            elif isinstance(raw, str) and text != raw and raw.strip() != text:
                warnings.append(f"column {i + 1}: line breaks or control characters removed from its name")
        used.add(name)
        out.append(name)
    return out, warnings


def _short(text: str, limit: int = 80) -> str:
    """A name cut to ``limit`` characters for a message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
