"""Missing-value sentinels (-99, -999, 99.99, 9.999e9 ...) detected as spikes at round values."""

from __future__ import annotations

import math

import numpy as np

# Codes that are not runs of nines but are still used for "no value".
_EXTRA_CODES = {-32768.0, -32767.0, 32767.0, 2147483647.0, -2147483648.0, -2147483647.0}
_MAX_PER_SIDE = 3


def looks_like_sentinel(value: float) -> bool:
    """True for the customary "no value" codes: runs of nines (-99, 999.9, 99.99, -9.999e9),
    huge powers of ten (±1e10 and beyond) and integer type limits (-32768 ...)."""
    if not math.isfinite(value) or value == 0:
        return False
    if value in _EXTRA_CODES:
        return True
    magnitude = abs(value)
    if magnitude >= 1e10:
        exponent = math.log10(magnitude)
        if abs(exponent - round(exponent)) < 1e-9:
            return True
    mantissa = f"{magnitude:.6e}".split("e")[0].replace(".", "").rstrip("0")
    # at least two nines (9, 0.9 and 9.9 are too often real values)
    return len(mantissa) >= 2 and set(mantissa) == {"9"}


def mask_sentinels(values: np.ndarray, censored: np.ndarray | None = None
                   ) -> tuple[np.ndarray, list[float], int]:
    """Find missing-value sentinels at the extremes of a numeric column.

    A sentinel sits at the very bottom or top of the column (codes are chosen to be impossible values),
    is a customary code (:func:`looks_like_sentinel`), repeats (at least 2 cells), and stands apart
    from the bulk of the other values in one of three ways:

    - of the opposite sign to every other value (-99 in a column of magnitudes);
    - beyond the 1st-99th percentile range of the other values by more than 3 times its width;
    - separated from the nearest other value by a gap of at least 5% of their full range, and
      repeated at least 3 times.

    A value inside the bulk (a legitimate -99 between -150 and -40) is never masked. Only the
    extremes are examined, so the cost is a few passes over the column.

    Args:
        values: The column as floats (NaN for missing); not modified.
        censored: Limit flags of the column, if any (a limit is never a sentinel).

    Returns:
        The values with sentinels set to NaN (the input array itself when none were found), the
        sentinel values found, and the number of cells masked.
    """
    x = np.asarray(values, dtype=float)
    lowest, highest = (np.fmin.reduce(x), np.fmax.reduce(x)) if len(x) else (np.nan, np.nan)
    if not (looks_like_sentinel(float(lowest)) or looks_like_sentinel(float(highest))):
        return values, [], 0  # the usual case: no code at either end, one pass over the column
    usable = np.isfinite(x)
    if censored is not None:
        usable &= censored == 0
    if usable.sum() < 5:
        return values, [], 0
    found: list[float] = []
    masked = np.zeros(len(x), dtype=bool)
    for side in (-1, 1):
        for _ in range(_MAX_PER_SIDE):
            live = usable & ~masked
            pool = x[live]
            if len(pool) < 5:
                break
            value = float(pool.min() if side < 0 else pool.max())
            if not looks_like_sentinel(value):
                break
            hit = live & (x == value)
            count = int(hit.sum())
            rest = x[live & ~hit]
            if count < 2 or len(rest) < 3 or not _stands_apart(value, count, rest):
                break
            found.append(value)
            masked |= hit
    if not found:
        return values, [], 0
    out = x.copy()
    out[masked] = np.nan
    return out, found, int(masked.sum())


def _stands_apart(value: float, count: int, rest: np.ndarray) -> bool:
    """Whether ``value`` (an extreme of the column) is separate from the bulk ``rest``."""
    lo, hi = float(rest.min()), float(rest.max())
    if value < 0 <= lo or value > 0 >= hi:
        return True
    p_lo, p_hi = np.percentile(rest, [1, 99])
    width = max(p_hi - p_lo, 1e-12 * max(abs(p_hi), abs(p_lo), 1.0))
    if value < p_lo - 3 * width or value > p_hi + 3 * width:
        return True
    gap = lo - value if value < lo else value - hi
    span = max(hi - lo, 1e-12 * max(abs(hi), abs(lo), 1.0))
    return count >= 3 and gap >= 0.05 * span
