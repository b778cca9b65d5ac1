"""The ``residualize`` tool: remove a known relation y ~ f(x) to expose what lies beneath it."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field
from scipy import stats as sps
from sklearn.linear_model import HuberRegressor

from serendip.tools.engine.registry import tool
from serendip.tools.engine.mdtext import code
from serendip.tools.engine.session import safe_scale
from serendip.tools.engine.result import ToolResult


def binned_median_curve(x: np.ndarray, y: np.ndarray, n_bins: int) -> np.ndarray:
    """Running median of ``y`` in quantile bins of ``x``, interpolated at every ``x``."""
    edges = np.unique(np.quantile(x, np.linspace(0, 1, n_bins + 1)))
    if len(edges) < 3:
        return np.full(len(x), np.median(y))
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    centers, medians = [], []
    for b in range(len(edges) - 1):
        sel = which == b
        if sel.sum() >= 3:
            centers.append(np.median(x[sel]))
            medians.append(np.median(y[sel]))
    if len(centers) < 2:
        return np.full(len(x), np.median(y))
    return np.interp(x, centers, medians)


def _power_of_two_peak(v: np.ndarray) -> float:
    """A power of two near the largest |value| (at most 2**1023): dividing by it is exact and cannot overflow."""
    peak = float(np.max(np.abs(v))) if len(v) else 0.0
    return float(np.ldexp(1.0, min(int(np.frexp(peak)[1]), 1023))) if peak > 0 and np.isfinite(peak) else 1.0


def fit_relation(yv: np.ndarray, Xv: np.ndarray, xnames: list[str], method: str, n_bins: int):
    """Fitted values of y ~ f(x) and the fit's description and coefficients."""
    if method == "binned_median":
        fitted = binned_median_curve(Xv[:, 0], yv, n_bins)
        return fitted, f"running median in {n_bins} quantile bins of {xnames[0]}", {}
    # Both sides standardized without overflow (values may reach the float limit), fitted, scaled back.
    Z, mu, sd = safe_scale(Xv)
    zy, my, sy = safe_scale(yv[:, None])
    zy, my, sy = zy[:, 0], float(my[0]), float(sy[0])
    if len(yv) > 200_000:  # Huber is iterative: fit on a seeded sample, predict all rows
        idx = np.random.default_rng(0).choice(len(yv), 200_000, replace=False)
        reg = HuberRegressor(max_iter=500).fit(Z[idx], zy[idx])
    else:
        reg = HuberRegressor(max_iter=500).fit(Z, zy)
    with np.errstate(over="ignore", invalid="ignore"):
        fitted = reg.predict(Z) * sy + my
        slopes = reg.coef_ * (sy / sd)
        intercept = my + sy * (reg.intercept_ - np.sum(reg.coef_ * (mu / sd)))
    coefs = {c: float(v) for c, v in zip(xnames, slopes)}
    coefs["intercept"] = float(intercept)
    return fitted, f"robust linear fit on {', '.join(xnames)}", coefs


@tool
def residualize(session, y: str | list[str], x: list[str],
                method: Literal["robust_linear", "binned_median"] = "robust_linear",
                name: str | None = None,
                n_bins: Annotated[int, Field(ge=3, le=200)] = 20) -> ToolResult:
    """Control for a known relation: remove y ~ f(x) and add the residuals as new columns.

    Use it when a known trend (luminosity, distance, the star-forming main sequence) dominates, then run
    other tools on the residual columns to look beneath it. Several y columns can be corrected at once.

    Args:
        y: The column to correct, or a list of columns (each corrected on its own).
        x: One or more numeric columns to control for (binned_median uses only the first), or one
            categorical column (field, galaxy, instrument): each level's median offset is then removed.
        method: 'robust_linear' (Huber regression on the x columns) or 'binned_median' (running median
            of y in quantile bins of x; captures non-linear relations).
        name: Name of the new column when one y is given; default 'resid_<y>_vs_<x>'.
        n_bins: Number of quantile bins for binned_median.
    """
    ys = [y] if isinstance(y, str) else list(y)
    if not ys:
        raise session.fail("The 'y' parameter of residualize must name at least one column.")
    ys = session.resolve_columns(ys, param="y", default_all=False)
    xs = session.resolve_columns(x, param="x", default_all=False, roles=("numeric", "categorical", "flag"))
    categorical = [c for c in xs if session.table.role(c) != "numeric"]
    if categorical:
        if len(xs) > 1:
            raise session.fail("The 'x' parameter of residualize takes one categorical column alone (to remove "
                               f"per-level offsets), not mixed with others; got {xs}.")
        return remove_level_offsets(session, ys, xs[0], name)
    if any(c in xs for c in ys):
        raise session.fail(f"The 'x' parameter of residualize must not contain a y column ({[c for c in ys if c in xs]}).")
    if name is not None and len(ys) > 1:
        raise session.fail("The 'name' parameter of residualize can only be used with a single y column.")
    per_column, lines = {}, []
    for yc in ys:
        m = session.matrix([yc] + xs, scaling="none", missing="drop", min_rows=10)
        if m.columns[0] != yc or len(m.columns) < 2:
            raise session.fail(f"residualize cannot use {yc!r} with {xs}: {m.dropped_columns}.")
        yv, Xv = m.X[:, 0], m.X[:, 1:]
        fitted, how, coefs = fit_relation(yv, Xv, m.columns[1:], method, n_bins)
        with np.errstate(over="ignore", invalid="ignore"):
            resid = yv - fitted
        if not np.isfinite(resid).all():
            raise session.fail(f"residualize cannot correct {yc!r}: its residuals exceed the float range (values "
                               f"up to {np.max(np.abs(yv)):.3g}). Transform it first (transform kind='asinh' or "
                               "'log10') and residualize the transformed column.")
        new = name or f"resid_{yc}_vs_{'_'.join(m.columns[1:])}"[:80]
        if new in session.table.info and not session.table.info[new].derived:
            raise session.fail(f"The 'name' parameter of residualize must not overwrite the input column {new!r}.")
        full = np.full(session.table.n_rows, np.nan)
        full[m.rows] = resid
        session.add_derived_column(new, full, f"{yc} minus its {how}", operation="residual", inputs=[yc],
                                   controls=m.columns[1:])
        unit = _power_of_two_peak(yv)
        explained = 1 - np.var(resid / unit) / np.var(yv / unit) if np.var(yv / unit) > 0 else 0.0
        rho = sps.spearmanr(Xv[:, 0], resid).statistic if len(resid) > 2 else float("nan")
        per_column[yc] = {"new_column": new, "n": len(resid), "variance_explained": explained,
                          "coefficients": coefs, "residual_std": float(np.std(resid / unit) * unit),
                          "spearman_resid_vs_first_x": rho}
        coef_text = "; ".join(f"slope on {code(k)} = {v:.4g}" for k, v in coefs.items() if k != "intercept")
        lines.append(f"- {code(yc)} → {code(new)}: the {how.split(' on ')[0].split(' in ')[0]} explains "
                     f"{explained:.1%} of its variance (n = {len(resid)}){'; ' + coef_text if coef_text else ''}.")
    summary = {"method": method, "controls": xs, "columns": per_column,
               "new_columns": [v["new_column"] for v in per_column.values()]}
    md = (f"**Residualized** on {', '.join(code(c) for c in xs)} ({method}):\n\n" + "\n".join(lines))
    return ToolResult(summary=summary, markdown=md)


def remove_level_offsets(session, ys: list[str], by: str, name: str | None) -> ToolResult:
    """Subtract each level's median of ``by`` from every y (then add back the overall median)."""
    rows = session.active_rows
    labels = session.table.df[by].iloc[rows].astype("string").fillna("<missing>").to_numpy(dtype=object)
    per_column, lines = {}, []
    for yc in ys:
        v = session.table.df[yc].iloc[rows].to_numpy(dtype=float, na_value=np.nan)
        ok = np.isfinite(v)
        if ok.sum() < 10:
            raise session.fail(f"residualize needs at least 10 values of {yc!r}; got {int(ok.sum())}.")
        overall = float(np.median(v[ok]))
        out = np.full(len(v), np.nan)
        offsets = {}
        for level in np.unique(labels[ok]):
            sel = ok & (labels == level)
            med = float(np.median(v[sel]))
            offsets[str(level)] = med - overall
            out[sel] = v[sel] - med + overall
        new = name or f"resid_{yc}_vs_{by}"[:80]
        if new in session.table.info and not session.table.info[new].derived:
            raise session.fail(f"The 'name' parameter of residualize must not overwrite the input column {new!r}.")
        full = np.full(session.table.n_rows, np.nan)
        full[rows] = out
        session.add_derived_column(new, full, f"{yc} with the median offset of each level of {by} removed",
                                   operation="level_offsets", inputs=[yc], controls=[by])
        explained = 1 - np.nanvar(out) / np.nanvar(v[ok]) if np.nanvar(v[ok]) > 0 else 0.0
        biggest = sorted(offsets.items(), key=lambda kv: -abs(kv[1]))[:5]
        per_column[yc] = {"new_column": new, "n": int(ok.sum()), "variance_explained": explained,
                          "level_offsets": dict(biggest), "n_levels": len(offsets)}
        shown = ", ".join(f"{code(k)} {v:+.4g}" for k, v in biggest[:3])
        lines.append(f"- {code(yc)} → {code(new)}: per-level offsets explain {explained:.1%} of its variance "
                     f"(largest: {shown}).")
    summary = {"method": "level_median", "controls": [by], "columns": per_column,
               "new_columns": [v["new_column"] for v in per_column.values()]}
    md = f"**Removed per-level offsets** of {code(by)} (median of each level):\n\n" + "\n".join(lines)
    return ToolResult(summary=summary, markdown=md)
