"""Upper and lower limits written as ``<x`` / ``>x`` in a catalogue column."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

_LIMIT = re.compile(r"^\s*([<>])\s*=?\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_NUMBER = re.compile(r"^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*$")


def parse_limits(col: pd.Series) -> tuple[pd.Series, np.ndarray | None, str]:
    """Split limit strings into a number and a censoring flag.

    A text column whose non-missing cells are all numbers or limits (with at least one limit) becomes
    numeric; other columns are returned unchanged.

    Args:
        col: One raw column.

    Returns:
        The (possibly numeric) column, an int8 flag array (-1 upper limit, +1 lower limit, 0 measured)
        or None when the column holds no limits, and a note for the column's metadata.
    """
    if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        return col, None, ""
    values = col.to_numpy(dtype=object)
    flags = np.zeros(len(values), dtype=np.int8)
    numbers = np.full(len(values), np.nan)
    n_limits = 0
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        text = str(v)
        if text.strip() == "":
            continue
        m = _LIMIT.match(text)
        if m:
            flags[i] = -1 if m.group(1) == "<" else 1
            numbers[i] = float(m.group(2))
            n_limits += 1
            continue
        if _NUMBER.match(text):
            numbers[i] = float(text)
            continue
        return col, None, ""
    if n_limits == 0:
        return col, None, ""
    n_upper = int((flags == -1).sum())
    n_lower = int((flags == 1).sum())
    note = f"{n_upper} upper limits ('<x') and {n_lower} lower limits ('>x') kept as values with a censored flag"
    return pd.Series(numbers, index=col.index, name=col.name), flags, note
