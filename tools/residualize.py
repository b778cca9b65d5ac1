"""The ``residualize`` tool: remove a known relation y ~ f(x) to expose what lies beneath it."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field
from scipy import stats as sps
from sklearn.linear_model import HuberRegressor

from serendip.tools.registry import tool
from serendip.tools.result import ToolResult


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


@tool
def residualize(session, y: str, x: list[str], method: Literal["robust_linear", "binned_median"] = "robust_linear",
                name: str | None = None,
                n_bins: Annotated[int, Field(ge=3, le=200)] = 20) -> ToolResult:
    """Control for a known relation: remove y ~ f(x) and add the residuals as a new column.

    Use it when a known trend (luminosity, distance, the star-forming main sequence) dominates, then run
    other tools on the residual column to look beneath it.

    Args:
        y: The column to correct.
        x: One or more columns to control for (binned_median uses only the first).
        method: 'robust_linear' (Huber regression on the x columns) or 'binned_median' (running median
            of y in quantile bins of x; captures non-linear relations).
        name: Name of the new column; default 'resid_<y>_vs_<x>'.
        n_bins: Number of quantile bins for binned_median.
    """
    y = session.resolve_column(y, param="y", roles=("numeric",))
    xs = session.resolve_columns(x, param="x", default_all=False)
    if y in xs:
        raise session.fail(f"The 'x' parameter of residualize must not contain y ({y!r}).")
    m = session.matrix([y] + xs, scaling="none", missing="drop", min_rows=10)
    if m.columns[0] != y or len(m.columns) < 2:
        raise session.fail(f"residualize cannot use {y!r} or {xs}: {m.dropped_columns}.")
    yv, Xv = m.X[:, 0], m.X[:, 1:]
    if method == "binned_median":
        fitted = binned_median_curve(Xv[:, 0], yv, n_bins)
        desc = f"{y} minus its running median in {n_bins} bins of {m.columns[1]}"
        coef_text = ""
        coefs = {}
    else:
        mu, sd = Xv.mean(axis=0), Xv.std(axis=0)
        sd = np.where(sd > 0, sd, 1)
        reg = HuberRegressor(max_iter=500).fit((Xv - mu) / sd, yv)
        fitted = reg.predict((Xv - mu) / sd)
        slopes = reg.coef_ / sd
        coefs = {c: float(s) for c, s in zip(m.columns[1:], slopes)}
        intercept = float(reg.intercept_ - np.sum(reg.coef_ * mu / sd))
        coefs["intercept"] = intercept
        desc = f"{y} minus a robust linear fit on {', '.join(m.columns[1:])}"
        coef_text = "; ".join(f"slope on {k} = {v:.4g}" for k, v in coefs.items() if k != "intercept")
    resid = yv - fitted
    new = name or f"resid_{y}_vs_{'_'.join(m.columns[1:])}"[:80]
    if new in session.table.info and not session.table.info[new].derived:
        raise session.fail(f"The 'name' parameter of residualize must not overwrite the input column {new!r}.")
    full = np.full(session.table.n_rows, np.nan)
    full[m.rows] = resid
    session.add_derived_column(new, full, desc)
    explained = 1 - np.var(resid) / np.var(yv) if np.var(yv) > 0 else 0.0
    rho = sps.spearmanr(Xv[:, 0], resid).statistic if len(resid) > 2 else float("nan")
    summary = {"new_column": new, "method": method, "n": len(resid), "variance_explained": explained,
               "coefficients": coefs, "residual_std": float(np.std(resid)),
               "spearman_resid_vs_first_x": rho, "description": desc}
    md = (f"**Residualized** `{y}` on {', '.join(f'`{c}`' for c in m.columns[1:])} ({method}, n={len(resid)}): "
          f"the relation explains {explained:.1%} of the variance of `{y}`. {coef_text} "
          f"New column `{new}`.")
    return ToolResult(summary=summary, markdown=md)
