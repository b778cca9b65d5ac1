"""The ``transform`` tool: derived columns on a better scale (log10, asinh, rank), for heavy-tailed data."""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import stats as sps

from serendip.tools.engine.registry import tool
from serendip.tools.engine.mdtext import code
from serendip.tools.engine.result import ToolResult


def apply_transform(x: np.ndarray, kind: str) -> tuple[np.ndarray, str]:
    """Transformed values and a note on how non-positive values were handled."""
    if kind == "log10":
        bad = np.isfinite(x) & (x <= 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.where(bad, np.nan, np.log10(np.where(bad, 1.0, x)))
        note = f"{int(bad.sum())} non-positive values set missing" if bad.any() else ""
        return y, note
    if kind == "asinh":
        fin = x[np.isfinite(x)]
        scale = np.median(np.abs(fin - np.median(fin))) if len(fin) else 1.0
        scale = scale if scale > 0 else 1.0
        return np.arcsinh(x / scale), f"asinh(x / {scale:.4g}) (scale = MAD)"
    if kind == "rank":
        y = np.full(len(x), np.nan)
        ok = np.isfinite(x)
        y[ok] = sps.rankdata(x[ok]) / max(ok.sum(), 1)
        return y, "fractional rank in (0, 1]"
    raise ValueError(kind)


def free_name(info: dict, wanted: str, description: str) -> str:
    """``wanted``, or the first of ``wanted_derived``, ``wanted_derived_2`` ... that names no column yet.

    An existing column is never overwritten; a derived column made by the same transform of the same
    column (same description) is reused, so repeating a call adds nothing.
    """
    candidates = [wanted, f"{wanted}_derived"] + [f"{wanted}_derived_{k}" for k in range(2, 10_000)]
    for name in candidates:
        existing = info.get(name)
        if existing is None or (existing.derived and existing.description == description):
            return name
    raise RuntimeError(f"no free column name for {wanted!r}")


def wants_log(x: np.ndarray) -> bool:
    """Whether describe would suggest log10 for these values (positive and heavy-tailed or wide-ranging)."""
    from serendip.tools.describe import numeric_profile

    return numeric_profile(x).get("transform") == "log10"


@tool
def transform(session, columns: list[str], kind: Literal["log10", "asinh", "rank", "auto"] = "log10") -> ToolResult:
    """Add transformed copies of columns (log10, asinh or rank) as new derived columns.

    Use it before PCA, clustering or outlier detection on positive heavy-tailed columns (masses,
    luminosities, fluxes — describe suggests which): log10 puts them on the scale most relations are
    linear on. New columns are named like 'log10_<column>'.

    Args:
        columns: Numeric columns to transform.
        kind: 'log10' (non-positive values become missing), 'asinh' (signed heavy tails; scaled by the
            MAD), 'rank' (fractional ranks), or 'auto' (log10 for the columns where describe suggests it;
            the others are left as they are).
    """
    cols = session.resolve_columns(columns, param="columns", default_all=False)
    made, notes = [], {}
    rows_md = []
    kept = []
    for c in cols:
        x = session.table.df[c].to_numpy(dtype=float, na_value=np.nan)
        how = kind
        if kind == "auto":
            if not wants_log(x):
                kept.append(c)
                continue
            how = "log10"
        y, note = apply_transform(x, how)
        if not np.isfinite(y).any():
            raise session.fail(f"transform with kind={kind!r} leaves no finite value in {c!r}; choose 'asinh' "
                               "for columns with zero or negative values.")
        description = f"{how} of {c}" + (f"; {note}" if note else "")
        name = free_name(session.table.info, f"{how}_{c}", description)
        if name not in session.table.info:
            session.add_derived_column(name, y, description, operation=how, inputs=[c])
        made.append(name)
        if note:
            notes[name] = note
        rows_md.append(f"{code(c)} → {code(name)}" + (f" ({note})" if note else ""))
    summary = {"kind": kind, "new_columns": made, "notes": notes,
               "mapping": {c: n for c, n in zip([c for c in cols if c not in kept], made)}}
    if kind == "auto":
        summary["left_as_is"] = kept
    if not made:
        md = f"**Transform** (auto): no column needed a log scale ({len(kept)} left as they are)."
    else:
        md = f"**Transformed** ({kind}): " + "; ".join(rows_md) + "."
        if kept:
            md += f" Left as they are: {', '.join(code(c) for c in kept[:30])}."
    details = {"mapping": summary["mapping"], "left_as_is": kept}
    return ToolResult(summary=summary, markdown=md, details=details)
