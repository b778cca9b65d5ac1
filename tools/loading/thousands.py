"""Numbers written with thousands separators (``4,767.2``, ``1,250,000``), as spreadsheets export them.

A comma-separated file quotes such cells, so they arrive as text. A text column becomes numeric when every
non-missing cell is a plain number or a number grouped by commas in threes, and the grouping is certain:
some cell has two groups (``1,250,000``) or a decimal point after its groups (``4,767.2``), or another cell
has a decimal point (``980.5``), so the point is the decimal mark. ``1,234`` beside ``17`` could be a decimal
comma (1.234), so such a column is left as it is.
"""

from __future__ import annotations

import re

import pandas as pd

_GROUPED = re.compile(r"^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_PLAIN = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")
_CERTAIN = re.compile(r"^[-+]?\d{1,3}(?:,\d{3}){2,}(?:\.\d+)?$|^[-+]?\d{1,3}(?:,\d{3})+\.\d+$")


def parse_thousands(col: pd.Series) -> tuple[pd.Series, str]:
    """The column as numbers when its text is numbers with thousands separators, with a note; else unchanged.

    Args:
        col: One raw column.

    Returns:
        The (possibly numeric) column and a note for the column's metadata ('' when unchanged).
    """
    if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col) \
            or isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_datetime64_any_dtype(col):
        return col, ""
    present = col.notna()
    if not present.any():
        return col, ""
    text = col[present].astype(str).str.strip()
    grouped = text.str.match(_GROUPED)
    if not grouped.any() or not bool((grouped | text.str.match(_PLAIN)).all()):
        return col, ""
    point_is_decimal = bool(text[~grouped].str.contains(".", regex=False).any())
    if not (text[grouped].str.match(_CERTAIN).any() or point_is_decimal):
        return col, ""
    numbers = pd.to_numeric(text.str.replace(",", "", regex=False), errors="coerce")
    out = pd.Series(float("nan"), index=col.index, dtype="float64")
    out[present] = numbers.astype("float64")
    example = text[grouped].iloc[0]
    return out, f"{int(grouped.sum())} numbers written with thousands separators (as in '{example}') read as numbers"
