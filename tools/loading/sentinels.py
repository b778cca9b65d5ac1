"""Missing-value sentinels (-99, -999, 99.99, 9.999e9 ...) detected as spikes at round values."""

from __future__ import annotations

import numpy as np
import pandas as pd

_CANDIDATES = [-99.0, -999.0, -9999.0, -99999.0, 99.0, 999.0, 9999.0, 99999.0, 99.99, 999.99,
               -99.99, -9.99, 9.999e9, -9.999e9, 1e10, -1e10, 1e20, -1e20, 1e30, -1e30, 9.99e9]


def mask_sentinels(col: pd.Series, censored: np.ndarray | None = None) -> tuple[pd.Series, list[float], int]:
    """Mask cells equal to a sentinel value that forms a spike away from the bulk of the column.

    A value counts as a sentinel when it is one of the customary catalogue codes, it repeats (at least
    2 cells and 0.1% of values), and it lies far outside the bulk: beyond the 1st–99th percentile range of
    the other values by more than 3 times that range's width, or of opposite sign to a one-signed bulk.

    Args:
        col: A numeric (float) column.
        censored: Limit flags of the column, if any (limits are never treated as sentinels).

    Returns:
        The masked column, the sentinel values found, and the number of masked cells.
    """
    x = col.to_numpy(dtype=float, copy=True)
    finite = np.isfinite(x)
    if finite.sum() < 5:
        return col, [], 0
    found: list[float] = []
    mask = np.zeros(len(x), dtype=bool)
    for value in _CANDIDATES:
        hit = finite & np.isclose(x, value, rtol=1e-9, atol=0)
        if censored is not None:
            hit &= censored == 0
        count = int(hit.sum())
        if count < 2 or count < 0.001 * finite.sum():
            continue
        rest = x[finite & ~hit & ~mask]
        if len(rest) < 3:
            continue
        lo, hi = np.percentile(rest, [1, 99])
        width = max(hi - lo, 1e-12 * max(abs(hi), abs(lo), 1.0))
        far = value < lo - 3 * width or value > hi + 3 * width
        sign_break = (value < 0 and lo >= 0) or (value > 0 and hi <= 0)
        if far or sign_break:
            found.append(value)
            mask |= hit
    if not found:
        return col, [], 0
    x[mask] = np.nan
    return pd.Series(x, index=col.index, name=col.name), found, int(mask.sum())
