"""Column names: blank or duplicated headers made unique."""

from __future__ import annotations


def make_unique_names(names: list[object]) -> tuple[list[str], list[str]]:
    """Return unique, non-blank string names and the warnings describing any change.

    Args:
        names: Header cells as read from the file (any type; None or NaN for blanks).
    """
    out: list[str] = []
    warnings: list[str] = []
    seen: set[str] = set()
    for i, raw in enumerate(names):
        text = "" if raw is None or (isinstance(raw, float) and raw != raw) else str(raw).strip()
        if text.startswith("Unnamed:") or text == "":
            base = f"column_{i + 1}"
            if text == "" or text.startswith("Unnamed:"):
                warnings.append(f"column {i + 1} has a blank name; called it {base!r}")
        else:
            base = text
        name = base
        k = 2
        while name in seen:
            name = f"{base}_{k}"
            k += 1
        if name != base:
            warnings.append(f"duplicate column name {base!r} renamed to {name!r}")
        seen.add(name)
        out.append(name)
    return out, warnings
