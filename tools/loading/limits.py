"""Upper and lower limits written as ``<x`` / ``>x`` in a catalogue column."""

from __future__ import annotations

import numpy as np
import pandas as pd

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_LIMIT = rf"^\s*(<=?|>=?|≤|≥)\s*({_NUMBER})\s*$"


def parse_limits(col: pd.Series) -> tuple[pd.Series, np.ndarray | None, str]:
    """Split limit strings into a number and a censoring flag.

    A text column whose non-missing cells are all numbers or limits (``<0.3``, ``>=12``, ``≤5``),
    with at least one limit, becomes a float column; any other column is returned unchanged.
    Numeric columns are returned at once (the check only costs anything on text columns).

    Args:
        col: One raw column.

    Returns:
        The (possibly numeric) column, an int8 flag array (-1 upper limit, +1 lower limit, 0 measured)
        or None when the column holds no limits, and a note for the column's metadata.
    """
    if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col) \
            or isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_datetime64_any_dtype(col):
        return col, None, ""
    present = col.notna()
    if not present.any():
        return col, None, ""
    text = col[present].astype(str).str.strip()
    starts = text.str[:1]
    if not starts.isin(["<", ">", "≤", "≥"]).any():
        return col, None, ""
    parts = text.str.extract(_LIMIT)
    is_limit = parts[0].notna()
    plain = pd.to_numeric(text.where(~is_limit), errors="coerce")
    if bool((~is_limit & plain.isna()).any()):
        return col, None, ""
    numbers = plain.where(~is_limit, pd.to_numeric(parts[1], errors="coerce")).astype("float64")
    direction = parts[0].str[:1].map({"<": -1, "≤": -1, ">": 1, "≥": 1}).fillna(0)
    flags = np.zeros(len(col), dtype=np.int8)
    flags[present.to_numpy()] = direction.to_numpy(dtype=np.int8)
    values = np.full(len(col), np.nan)
    values[present.to_numpy()] = numbers.to_numpy()
    n_upper = int((flags == -1).sum())
    n_lower = int((flags == 1).sum())
    note = (f"{n_upper} upper limits ('<x') and {n_lower} lower limits ('>x') kept as values "
            "with a censored flag")
    return pd.Series(values, index=col.index, name=col.name), flags, note
