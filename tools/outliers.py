"""The ``outliers`` tool: flag rows that are unusual overall or that break a tight relation."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import Field
from scipy import stats as sps
from sklearn.covariance import MinCovDet
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor

from serendip.tools.engine.mdtext import code
from serendip.tools.plot import figure_context, marker_size, plain_text, plt, save_figure
from serendip.tools.engine.registry import tool
from serendip.tools.engine.result import ToolResult

SMALL_FRACTION = 0.05
"""Largest flagged fraction proposed as an outlier finding (more is a population, not outliers); a
handful of rows (up to SMALL_COUNT, and at most MAX_FRACTION) also counts in a small table."""
SMALL_COUNT = 10
MAX_FRACTION = 0.15
MIN_ROWS = 10
MIN_FINDING_STRENGTH = 0.5

DEFAULT_THRESHOLD = {"isolation_forest": 4.0, "lof": 1.5, "mahalanobis": 4.0, "off_relation": 4.0}
THRESHOLD_BOUNDS = {"isolation_forest": (2.0, 50.0), "lof": (1.05, 100.0), "mahalanobis": (2.0, 30.0),
                    "off_relation": (2.0, 100.0)}
THRESHOLD_MEANING = {
    "isolation_forest": "robust z-score of the isolation-forest anomaly score",
    "lof": "local outlier factor (local density of the neighbours over the row's own; ~1 for inliers)",
    "mahalanobis": "normal-tail sigma equivalent of the robust Mahalanobis distance (chi-squared tail)",
    "off_relation": "absolute residual from the robust fit, in robust sigma (1.4826 x MAD)",
}
LOF_EXACT_MAX_ROWS = 20_000
LOF_FIT_ROWS = 10_000
MCD_FIT_ROWS = 5_000
THEIL_SEN_ROWS = 2_000
SPEARMAN_ROWS = 20_000
MAX_RELATIONS = 3
MIN_RELATION_RHO = 0.6
DUPLICATE_RHO = 0.999
FIGURE_INLIERS = 20_000
MAX_DETAILED = 200
"""Flagged rows explained in the result's details (the summary shows max_flagged_examples of them)."""
TOO_MANY_NOTE = ("Too many rows flagged to call them outliers (no finding proposed): the data are probably "
                 "skewed, heavy-tailed or made of several populations for this method. Log-transform skewed "
                 "columns, raise the threshold, use contamination, or look for groups instead.")
FIGURE_FLAGGED = 5_000


def robust_sigma(values: np.ndarray) -> float:
    """1.4826 x median absolute deviation, falling back to the IQR and the standard deviation."""
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return 0.0
    med = np.median(v)
    sigma = 1.4826 * float(np.median(np.abs(v - med)))
    if sigma <= 0:
        q75, q25 = np.percentile(v, [75, 25])
        sigma = float(q75 - q25) / 1.349
    if sigma <= 0:
        sigma = float(np.std(v))
    return sigma


def sample_positions(session, n: int, size: int, salt: int) -> np.ndarray:
    """A sorted seeded sample of ``size`` positions out of ``n`` (all when n <= size)."""
    if n <= size:
        return np.arange(n)
    return np.sort(session.rng(salt).choice(n, size=size, replace=False))


# --------------------------------------------------------------------------- global detectors
def score_isolation_forest(session, X: np.ndarray) -> tuple[np.ndarray, str]:
    """Anomaly score (higher = more isolated) of every row."""
    forest = IsolationForest(n_estimators=200, random_state=session.seed, n_jobs=1).fit(X)
    return -forest.score_samples(X), "isolation forest (200 trees of 256-row subsamples)"


def score_lof(session, X: np.ndarray) -> tuple[np.ndarray, str]:
    """Local outlier factor of every row; on big tables fitted on a sample and scored as novelty."""
    n = len(X)
    k = int(min(20, n - 1))
    if n <= LOF_EXACT_MAX_ROWS:
        lof = LocalOutlierFactor(n_neighbors=k).fit(X)
        return -lof.negative_outlier_factor_, f"local outlier factor ({k} neighbours, all {n} rows)"
    fit_rows = sample_positions(session, n, LOF_FIT_ROWS, salt=11)
    lof = LocalOutlierFactor(n_neighbors=k, novelty=True).fit(X[fit_rows])
    scores = np.empty(n)
    rest = np.ones(n, dtype=bool)
    rest[fit_rows] = False
    # Training rows would count themselves as a neighbour under novelty scoring: use their fitted LOF.
    scores[fit_rows] = -lof.negative_outlier_factor_
    rest_rows = np.flatnonzero(rest)
    for start in range(0, len(rest_rows), 50_000):
        chunk = rest_rows[start:start + 50_000]
        scores[chunk] = -lof.score_samples(X[chunk])
    return scores, (f"local outlier factor ({k} neighbours) against a seeded sample of {len(fit_rows)} rows; "
                    "the other rows scored as novelties")


def score_mahalanobis(session, X: np.ndarray) -> tuple[np.ndarray, str]:
    """Robust Mahalanobis distance of every row from a Minimum Covariance Determinant fit."""
    n, p = X.shape
    if n < 2 * p + 2:
        raise session.fail(f"mahalanobis needs at least {2 * p + 2} rows for {p} columns; got {n}. Use fewer "
                           "columns or method='isolation_forest'.")
    fit_rows = sample_positions(session, n, MCD_FIT_ROWS, salt=12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mcd = MinCovDet(random_state=session.seed).fit(X[fit_rows])
    evals, evecs = np.linalg.eigh(mcd.covariance_)
    floor = max(float(evals.max()), 1e-300) * 1e-9
    # Floor tiny eigenvalues so a column that is constant in the robust core does not make distances infinite.
    evals = np.maximum(evals, floor)
    proj = (X - mcd.location_) @ evecs
    dist = np.sqrt(np.einsum("ij,ij->i", proj / evals, proj))
    where = "all rows" if len(fit_rows) == n else f"a seeded sample of {len(fit_rows)} rows"
    return dist, f"robust Mahalanobis distance (Minimum Covariance Determinant fitted on {where})"


def mahalanobis_cut(threshold: float, p: int) -> float:
    """Distance whose chi-squared(p) tail probability equals the two-sided normal tail at ``threshold`` sigma."""
    alpha = 2 * sps.norm.sf(threshold)
    return float(np.sqrt(sps.chi2.isf(alpha, p)))


# --------------------------------------------------------------------------- relation detector
@dataclass
class RelationFit:
    """A robust fit of y on x over the rows where both are present.

    Attributes:
        x: Name of the predictor column.
        y: Name of the response column.
        fit: 'linear' (Theil-Sen) or 'binned_median'.
        rows: Table positions of the fitted rows.
        x_values: x at ``rows`` (log10 x when ``x_log``).
        y_values: y at ``rows`` (log10 y when ``y_log``).
        expected: Fitted y at ``rows``.
        z: Residual in robust sigma at ``rows``.
        sigma: Robust sigma of the residuals.
        rho: Spearman correlation of x and y (on a sample of at most 20,000 rows).
        tightness: 1 - (residual sigma / robust sigma of y)^2, a robust R^2.
        curve: (x, fitted y, local sigma) along the fitted curve, for the figure.
        note: How the fit was made.
        x_log: Whether x was fitted as log10.
        y_log: Whether y was fitted as log10.
    """

    x: str
    y: str
    fit: str
    rows: np.ndarray
    x_values: np.ndarray
    y_values: np.ndarray
    expected: np.ndarray
    z: np.ndarray
    sigma: float
    rho: float
    tightness: float
    curve: tuple[np.ndarray, np.ndarray, np.ndarray]
    note: str
    x_log: bool = False
    y_log: bool = False

    def raw_x(self, i: int) -> float:
        """x of fitted row ``i`` in the column's own units."""
        return float(10 ** self.x_values[i]) if self.x_log else float(self.x_values[i])

    def raw_y(self, value: float) -> float:
        """A fitted-scale y value in the column's own units."""
        return float(10 ** value) if self.y_log else float(value)


def quantile_edges(x: np.ndarray, rows_per_bin: int, max_bins: int) -> np.ndarray:
    """Bin edges at quantiles of ``x`` (about ``rows_per_bin`` rows a bin), refined in the tails."""
    n = len(x)
    n_bins = int(np.clip(n // rows_per_bin, 4, max_bins))
    tails = np.array([1e-4, 5e-4, 0.002, 0.01])
    tails = tails[tails * n >= 25]
    qs = np.union1d(np.linspace(0, 1, n_bins + 1), np.concatenate([tails, 1 - tails]))
    return np.unique(np.quantile(x, qs))


def bin_index(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each ``x`` (values beyond the edges go to the end bins)."""
    return np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)


def curve_knots(x: np.ndarray, y: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Median x and median y in each bin of x with 5+ rows (None when x has too few distinct values)."""
    if len(edges) < 4:
        return None
    which = bin_index(x, edges)
    order = np.argsort(which, kind="stable")
    bounds = np.searchsorted(which[order], np.arange(len(edges)))
    cx, cy = [], []
    for b in range(len(edges) - 1):
        sel = order[bounds[b]:bounds[b + 1]]
        if len(sel) >= 5:
            cx.append(np.median(x[sel]))
            cy.append(np.median(y[sel]))
    cx_arr, idx = np.unique(np.asarray(cx), return_index=True)
    if len(cx_arr) < 3:
        return None
    return cx_arr, np.asarray(cy)[idx]


def eval_curve(knots: tuple[np.ndarray, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Piecewise-linear curve through the knots, extended linearly beyond the end knots."""
    cx, cy = knots
    out = np.interp(x, cx, cy)
    lo, hi = x < cx[0], x > cx[-1]
    out[lo] = cy[0] + (x[lo] - cx[0]) * (cy[1] - cy[0]) / (cx[1] - cx[0])
    out[hi] = cy[-1] + (x[hi] - cx[-1]) * (cy[-1] - cy[-2]) / (cx[-1] - cx[-2])
    return out


def local_sigma(x: np.ndarray, resid: np.ndarray, edges: np.ndarray, global_sigma: float) -> np.ndarray:
    """Robust sigma of the residuals in each bin of x (the global one for bins under 25 rows), floored."""
    sig = np.full(max(len(edges) - 1, 1), global_sigma)
    if len(edges) < 3:
        return sig
    which = bin_index(x, edges)
    order = np.argsort(which, kind="stable")
    bounds = np.searchsorted(which[order], np.arange(len(edges)))
    for b in range(len(edges) - 1):
        r = resid[order[bounds[b]:bounds[b + 1]]]
        if len(r) >= 25:
            sig[b] = robust_sigma(r)
    # A floor keeps a bin of identical values from making every small residual "extreme".
    return np.maximum(sig, 0.25 * global_sigma)


LOG_DECADES = 1.5
"""A strictly positive column spanning this many decades (1st to 99th percentile) is fitted as log10."""


def spans_decades(values: np.ndarray) -> bool:
    """Strictly positive and spanning LOG_DECADES or more between the 1st and 99th percentiles."""
    if len(values) == 0 or values.min() <= 0:
        return False
    lo, hi = np.quantile(values, [0.01, 0.99])
    return bool(hi >= 10 ** LOG_DECADES * lo)


def fit_relation(session, x: str, y: str, fit: str, rows: np.ndarray, log_scale: str = "auto") -> RelationFit:
    """Robustly fit y on x over ``rows`` and express every residual in robust sigma.

    With ``log_scale='auto'`` a strictly positive column spanning 1.5 decades or more is fitted as
    log10 (power laws become lines, and multiplicative scatter becomes even).
    """
    m = session.matrix([x, y], scaling="none", missing="drop", min_rows=MIN_ROWS, rows=rows)
    if m.columns != [x, y]:
        raise session.fail(f"outliers cannot relate {y!r} to {x!r}: {m.dropped_columns}.")
    xv, yv = m.X[:, 0], m.X[:, 1]
    x_log = log_scale == "auto" and spans_decades(xv)
    y_log = log_scale == "auto" and spans_decades(yv)
    if x_log:
        xv = np.log10(xv)
    if y_log:
        yv = np.log10(yv)
    n = len(xv)
    ts = sample_positions(session, n, THEIL_SEN_ROWS, salt=21)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        slope, intercept = sps.theilslopes(yv[ts], xv[ts])[:2]
    # Bins and the running median use every row (O(n log n)): sparse tails need all the rows they have.
    edges = quantile_edges(xv, rows_per_bin=50, max_bins=200)
    lin_sigma = robust_sigma(yv - (intercept + slope * xv))
    knots = curve_knots(xv, yv, edges) if n >= 60 else None
    chosen = "linear"
    if knots is not None and fit != "linear":
        bin_sigma = robust_sigma(yv - eval_curve(knots, xv))
        if fit == "binned_median" or bin_sigma < 0.8 * lin_sigma:
            chosen = "binned_median"
    elif fit == "binned_median":
        raise session.fail(f"The 'fit' parameter of outliers cannot be 'binned_median' here: {x!r} has too few rows "
                           "or distinct values for quantile bins. Use fit='linear'.")
    if chosen == "linear":
        def predict(v):
            return intercept + slope * v
        cx = np.linspace(np.min(xv), np.max(xv), 50)
        note = (f"Theil-Sen line {'log10 y' if y_log else 'y'} = {intercept:.4g} + {slope:.4g} "
                f"{'log10 x' if x_log else 'x'} (fitted on {len(ts)} rows)")
    else:
        def predict(v):
            return eval_curve(knots, v)
        cx = np.unique(np.concatenate([[np.min(xv)], knots[0], [np.max(xv)]]))
        note = (f"running median of {'log10 y' if y_log else 'y'} in {len(knots[0])} quantile bins of "
                f"{'log10 x' if x_log else 'x'}")
    expected = predict(xv)
    resid = yv - expected
    sigma = robust_sigma(resid)
    if sigma <= 0:
        sigma = float(np.mean(np.abs(resid))) * 1.2533 or np.finfo(float).tiny
    sigma_edges = quantile_edges(xv, rows_per_bin=250, max_bins=100)
    bins_sigma = local_sigma(xv, resid, sigma_edges, sigma)
    local = bool(np.any(bins_sigma != sigma))
    if local:
        z = resid / bins_sigma[bin_index(xv, sigma_edges)]
        note += "; residuals scaled by the robust sigma in quantile bins of x"
    else:
        z = resid / sigma
    sp = sample_positions(session, n, SPEARMAN_ROWS, salt=23)
    rho = float(sps.spearmanr(xv[sp], yv[sp]).statistic)
    y_sigma = robust_sigma(yv)
    tightness = float(1 - (sigma / y_sigma) ** 2) if y_sigma > 0 else float("nan")
    curve_sigma = bins_sigma[bin_index(cx, sigma_edges)] if local else np.full(len(cx), sigma)
    return RelationFit(x=x, y=y, fit=chosen, rows=m.rows, x_values=xv, y_values=yv, expected=expected, z=z,
                       sigma=sigma, rho=rho, tightness=tightness, curve=(cx, predict(cx), curve_sigma), note=note,
                       x_log=x_log, y_log=y_log)


def strongest_relations(session, columns: list[str], rows: np.ndarray) -> tuple[list[tuple[str, str, float]], dict]:
    """The few most monotonic column pairs (top |Spearman| on a sample), skipping near-duplicates."""
    sample = rows[sample_positions(session, len(rows), SPEARMAN_ROWS, salt=24)]
    frame = session.table.df.iloc[sample][columns]
    usable = [c for c in columns if frame[c].notna().sum() >= 10 and frame[c].nunique() > 1]
    info = {"n_columns_searched": len(usable), "n_rows_sampled": len(sample)}
    if len(usable) < 2:
        return [], info
    corr = frame[usable].rank().corr(method="pearson", min_periods=10).to_numpy()
    iu = np.triu_indices(len(usable), k=1)
    vals = corr[iu]
    order = np.argsort(-np.nan_to_num(np.abs(vals), nan=-1), kind="stable")
    chosen: list[tuple[str, str, float]] = []
    skipped: list[list] = []
    for k in order:
        r = float(vals[k])
        if not np.isfinite(r) or abs(r) < MIN_RELATION_RHO or len(chosen) >= MAX_RELATIONS:
            break
        a, b = usable[iu[0][k]], usable[iu[1][k]]
        if abs(r) >= DUPLICATE_RHO:
            if len(skipped) < 5:
                skipped.append([a, b, r])
            continue
        chosen.append((a, b, r))
    if skipped:
        info["skipped_near_duplicates"] = skipped
    finite = np.abs(vals[np.isfinite(vals)])
    info["max_abs_spearman"] = float(finite.max()) if len(finite) else None
    return chosen, info


# --------------------------------------------------------------------------- the tool
@tool
def outliers(session, columns: list[str] | None = None,
             method: Literal["isolation_forest", "lof", "mahalanobis", "off_relation"] = "isolation_forest",
             contamination: Annotated[float | None, Field(gt=0, le=0.5)] = None,
             threshold: Annotated[float | None, Field(gt=1, le=100)] = None,
             x: str | None = None, y: str | None = None,
             fit: Literal["auto", "linear", "binned_median"] = "auto",
             log_scale: Literal["auto", "none"] = "auto",
             missing: Literal["drop", "impute"] = "drop",
             max_flagged_examples: Annotated[int, Field(ge=1, le=50)] = 10) -> ToolResult:
    """Flag unusual rows, explain each by its most deviant features, and save the flags per row.

    Use a global method to find rows unlike the rest ('isolation_forest': fast, any shape;
    'mahalanobis': robust covariance, best for roughly elliptical data and leverage points; 'lof':
    rows in locally sparse regions, e.g. between clusters). Use 'off_relation' to find rows that break a
    tight relation between two columns (y against x) even though each value is ordinary on its own —
    global methods miss these. Without x and y, 'off_relation' tests the few strongest monotonic
    relations among the columns. Rows are flagged above a threshold, or the top `contamination`
    fraction; the summary explains the top rows, and a finding is proposed when the flagged rows are
    a small fraction (at most 5%, or a handful of up to 10 rows and 15% in a small table).

    Args:
        columns: Numeric columns to use (default: all numeric columns). For 'off_relation' without x/y,
            the columns searched for relations.
        method: 'isolation_forest', 'lof', 'mahalanobis' or 'off_relation'.
        contamination: Flag exactly this fraction of rows with the highest scores (0-0.5]; overrides
            the threshold (give one or the other).
        threshold: Flagging cut; its unit depends on the method: isolation_forest = robust z of the
            anomaly score (default 4, range 2-50); lof = local outlier factor (default 1.5, range
            1.05-100); mahalanobis = sigma-equivalent of the chi-squared tail (default 4, range 2-30);
            off_relation = |residual| in robust sigma (default 4, range 2-100).
        x: For 'off_relation': the predictor column.
        y: For 'off_relation': the column expected to follow x.
        fit: For 'off_relation': 'linear' (Theil-Sen line), 'binned_median' (running median, for curved
            relations) or 'auto' (the running median when it fits clearly better).
        log_scale: For 'off_relation': 'auto' fits a strictly positive column spanning 1.5 decades or more as
            log10 (power laws become lines); 'none' fits the values as they are.
        missing: 'drop' rows missing any used column (default), or 'impute' missing cells with the median
            (global methods only).
        max_flagged_examples: Number of flagged rows explained in the summary (1-50).
    """
    if contamination is not None and threshold is not None:
        raise session.fail("Give either 'contamination' or 'threshold' to outliers, not both.")
    if method != "off_relation" and (x is not None or y is not None):
        raise session.fail(f"The 'x' and 'y' parameters of outliers apply only to method='off_relation' "
                           f"(got method={method!r}). Use method='off_relation' to test rows against y ~ x.")
    if threshold is not None:
        lo, hi = THRESHOLD_BOUNDS[method]
        if not lo <= threshold <= hi:
            raise session.fail(f"The 'threshold' parameter of outliers must be a float in [{lo}, {hi}] for "
                               f"method={method!r} ({THRESHOLD_MEANING[method]}). Got {threshold!r} instead.")
    cut_value = threshold if threshold is not None else DEFAULT_THRESHOLD[method]
    if method == "off_relation":
        return relation_outliers(session, columns, x, y, fit, log_scale, contamination, cut_value,
                                 max_flagged_examples)
    return global_outliers(session, columns, method, contamination, cut_value, missing, max_flagged_examples)


def flag_rows(scores: np.ndarray, cut: float, contamination: float | None) -> tuple[np.ndarray, float]:
    """Flags and the score cut actually used (top fraction when ``contamination`` is given)."""
    if contamination is not None:
        k = int(np.floor(contamination * len(scores)))
        if k == 0:
            return np.zeros(len(scores), dtype=bool), float("inf")
        order = np.argsort(-scores, kind="stable")
        flags = np.zeros(len(scores), dtype=bool)
        flags[order[:k]] = True
        return flags, float(scores[order[k - 1]])
    return scores > cut, cut


def global_outliers(session, columns, method, contamination, threshold, missing, n_examples) -> ToolResult:
    """Isolation forest, LOF or robust Mahalanobis over several columns."""
    cols = session.resolve_columns(columns, param="columns", roles=("numeric",))
    m = session.matrix(cols, scaling="robust", missing=missing, min_rows=MIN_ROWS)
    n, p = m.X.shape
    if method == "isolation_forest":
        scores, how = score_isolation_forest(session, m.X)
        center, spread = float(np.median(scores)), robust_sigma(scores)
        cut = center + threshold * (spread if spread > 0 else 1.0)
        score_name = "isolation-forest anomaly score"
    elif method == "lof":
        scores, how = score_lof(session, m.X)
        cut = threshold
        score_name = "local outlier factor"
    else:
        scores, how = score_mahalanobis(session, m.X)
        cut = mahalanobis_cut(threshold, p)
        score_name = "robust Mahalanobis distance"
    flags, cut_used = flag_rows(scores, cut, contamination)
    n_flagged = int(flags.sum())
    flag_name = session.save_artifact(session.artifact_name(f"{method}_flag"), flags.astype(np.int8), rows=m.rows,
                                      fill=0)
    score_art = session.save_artifact(session.artifact_name(f"{method}_score"), scores.astype(float), rows=m.rows)
    # m.X is already a robust z-score per column: (value - median) / (IQR / 1.349).
    order = np.flatnonzero(flags)[np.argsort(-scores[flags], kind="stable")]
    explained = []
    for i in order[:MAX_DETAILED]:
        top = np.argsort(-np.abs(m.X[i]), kind="stable")[:3]
        explained.append({"row": int(m.rows[i]), "score": float(scores[i]),
                          "deviant": [{"column": m.columns[j], "value": float(m.X[i, j] * m.scale[j] + m.center[j]),
                                       "robust_z": float(m.X[i, j])} for j in top]})
    examples = explained[:n_examples]
    top_features = deviant_feature_counts(m.X[flags], m.columns)
    rule = (f"top {contamination:.3g} fraction of rows by {score_name}" if contamination is not None else
            f"{score_name} > {cut_used:.4g}")
    summary = {"method": method, "n_flagged": n_flagged, "fraction": n_flagged / n, "n_scored": n,
               "n_columns": p, "columns": m.columns[:20] + (["..."] if p > 20 else []), "rule": rule,
               "threshold": None if contamination is not None else threshold,
               "threshold_unit": THRESHOLD_MEANING[method],
               "score": score_name, "how": how, "flag_artifact": flag_name, "score_artifact": score_art,
               "top_examples": examples, "most_deviant_columns_among_flagged": top_features,
               "selection": session.selection_label}
    if m.dropped_columns:
        summary["dropped_columns"] = dict(list(m.dropped_columns.items())[:10])
    if m.n_dropped_rows:
        summary["n_rows_dropped_missing"] = m.n_dropped_rows
    if n_flagged and not is_small(n_flagged, n):
        summary["note"] = TOO_MANY_NOTE
    figures = []
    if n_flagged:
        figures.append(global_figure(session, m, flags, scores, method))
    findings = []
    if is_small(n_flagged, n):
        excess = float(np.median(scores[flags]) / cut_used - 1) if cut_used > 0 and np.isfinite(cut_used) else 0.0
        frac = n_flagged / n
        featured = [f["column"] for f in top_features[:3]]
        findings.append({
            "kind": "outlier",
            "title": f"{n_flagged} unusual rows ({method.replace('_', ' ')}), most deviant in "
                     f"{', '.join(featured)}"[:200],
            "summary": f"{n_flagged} of {n} rows ({frac:.2%}) flagged by {how}; rule: {rule}. "
                       f"The flagged rows deviate most in {', '.join(featured)}.",
            "columns": [c for c in featured] + [c for c in m.columns if c not in featured][: max(0, 10 - len(featured))],
            "stats": {"n_flagged": n_flagged, "method": method, "fraction": frac, "n": n,
                      "threshold": None if contamination is not None else threshold,
                      "contamination": contamination, "score_cut": cut_used},
            "labels": flag_name, "figures": figures, "novelty": "candidate",
            "score": finding_score(frac, excess),
        })
    md = global_markdown(summary, examples, how, rule)
    return ToolResult(summary=summary, markdown=md, figures=figures, artifacts=[flag_name, score_art],
                      findings=findings, details={"flagged_examples": explained})


def deviant_feature_counts(Z: np.ndarray, names: list[str]) -> list[dict]:
    """How often each column is a flagged row's most deviant one, with the median |robust z| (top 5)."""
    if len(Z) == 0:
        return []
    top = np.argmax(np.abs(Z), axis=1)
    counts = np.bincount(top, minlength=len(names))
    med = np.median(np.abs(Z), axis=0)
    order = np.lexsort((-med, -counts))
    return [{"column": names[j], "n_rows_most_deviant": int(counts[j]), "median_abs_robust_z": float(med[j])}
            for j in order[:5] if counts[j] > 0 or med[j] > 0]


def is_small(n_flagged: int, n: int) -> bool:
    """Whether ``n_flagged`` of ``n`` rows are few enough to be outliers rather than a population."""
    return 0 < n_flagged <= max(SMALL_FRACTION * n, min(SMALL_COUNT, MAX_FRACTION * n))


def finding_score(fraction: float, excess: float) -> float:
    """0-1: higher for fewer flagged rows that lie further beyond the cut."""
    rarity = 1 - min(fraction / SMALL_FRACTION, 1.0)
    return float(np.clip(0.3 + 0.4 * rarity + 0.3 * min(max(excess, 0.0), 1.0), 0, 1))


def table_cell(text: str) -> str:
    """Text safe inside a markdown table cell (GFM: a pipe, even in a code span, must be escaped)."""
    return text.replace("|", "\\|")


def global_markdown(summary: dict, examples: list[dict], how: str, rule: str) -> str:
    """Report text for a global method."""
    lines = [f"**Outliers** by {how} over {summary['n_columns']} columns and {summary['n_scored']} rows: "
             f"{summary['n_flagged']} rows flagged ({summary['fraction']:.2%}); rule: {rule}."]
    if examples:
        lines += ["", "| row | score | most deviant columns (value, robust z) |", "| --- | --- | --- |"]
        for ex in examples:
            dev = "; ".join(f"{table_cell(code(d['column']))} = {d['value']:.4g} (z {d['robust_z']:+.1f})"
                            for d in ex["deviant"])
            lines.append(f"| {ex['row']} | {ex['score']:.3g} | {dev} |")
    return "\n".join(lines)


def global_figure(session, m, flags: np.ndarray, scores: np.ndarray, method: str) -> str:
    """The flagged rows on the two columns where they deviate most (a histogram for one column)."""
    Z = m.X
    med = np.median(np.abs(Z[flags]), axis=0)
    pick = np.argsort(-med, kind="stable")[:2]
    inl = np.flatnonzero(~flags)
    inl = inl[sample_positions(session, len(inl), FIGURE_INLIERS, salt=31)]
    fl = np.flatnonzero(flags)
    fl = fl[np.argsort(-scores[fl], kind="stable")[:FIGURE_FLAGGED]]
    values = Z * m.scale + m.center
    with figure_context():
        fig, ax = plt.subplots(figsize=(6.4, 5.2))
        if len(pick) == 1:
            j = pick[0]
            edges = np.histogram_bin_edges(values[:, j], bins=60)
            ax.hist(values[inl, j], bins=edges, color="tab:blue", alpha=0.7, label="not flagged")
            ax.hist(values[fl, j], bins=edges, color="tab:red", alpha=0.9, label=f"flagged ({len(fl)})")
            ax.set_xlabel(plain_text(m.columns[j]))
            ax.set_ylabel("rows")
        else:
            a, b = pick
            ax.scatter(values[inl, a], values[inl, b], s=marker_size(len(inl)), color="tab:blue", alpha=0.4, linewidths=0,
                       label="not flagged", rasterized=True)
            ax.scatter(values[fl, a], values[fl, b], s=14, color="tab:red", alpha=0.9, linewidths=0,
                       label=f"flagged ({int(flags.sum())})", rasterized=True)
            ax.set_xlabel(plain_text(m.columns[a]))
            ax.set_ylabel(plain_text(m.columns[b]))
        ax.legend(fontsize=8)
        ax.set_title(f"Outliers ({method.replace('_', ' ')}) on their two most deviant columns", fontsize=9)
        return save_figure(session, fig, f"outliers_{method}")


def relation_outliers(session, columns, x, y, fit, log_scale, contamination, threshold, n_examples) -> ToolResult:
    """Rows far from a robust fit of y on x, for one given pair or the strongest few pairs."""
    rows = session.active_rows
    if len(rows) < MIN_ROWS:
        raise session.fail(f"outliers needs at least {MIN_ROWS} rows for off_relation; got {len(rows)} "
                           f"{'(the table or selection is empty)' if len(rows) == 0 else ''}. Widen the selection.")
    search_info: dict = {}
    if x is not None or y is not None:
        if x is None or y is None:
            raise session.fail("The 'x' and 'y' parameters of outliers go together: give both, or neither to let "
                               "off_relation pick the strongest relations among the columns.")
        x = session.resolve_column(x, param="x", roles=("numeric",))
        y = session.resolve_column(y, param="y", roles=("numeric",))
        if x == y:
            raise session.fail("The 'x' and 'y' parameters of outliers must name two different columns.")
        pairs = [(x, y)]
    else:
        cols = session.resolve_columns(columns, param="columns", roles=("numeric",))
        found, search_info = strongest_relations(session, cols, rows)
        pairs = [(a, b) for a, b, _ in found]
        if not pairs:
            summary = {"method": "off_relation", "n_flagged": 0, "fraction": 0.0, "relations_tested": [],
                       "search": search_info,
                       "note": f"No pair of columns has |Spearman| >= {MIN_RELATION_RHO} (below near-duplicates at "
                               f"{DUPLICATE_RHO}); there is no tight relation to break. Give x and y to test a pair."}
            md = ("**Off-relation outliers**: no tight monotonic relation among the columns searched "
                  f"(largest |Spearman| {search_info.get('max_abs_spearman')}); nothing tested.")
            return ToolResult(summary=summary, markdown=md)
    fits = [fit_relation(session, a, b, fit, rows, log_scale) for a, b in pairs]
    n_table = session.table.n_rows
    z_all = np.full((len(fits), n_table), np.nan)
    for k, f in enumerate(fits):
        z_all[k, f.rows] = np.abs(f.z)
    covered = np.isfinite(z_all).any(axis=0)
    best_pair = np.zeros(n_table, dtype=int)
    best_pair[covered] = np.nanargmax(np.where(np.isfinite(z_all[:, covered]), z_all[:, covered], -1), axis=0)
    score = np.full(n_table, np.nan)
    score[covered] = z_all[best_pair[covered], np.flatnonzero(covered)]
    scored_rows = np.flatnonzero(covered)
    flags_scored, cut_used = flag_rows(score[scored_rows], threshold, contamination)
    flags = np.zeros(n_table, dtype=np.int8)
    flags[scored_rows[flags_scored]] = 1
    n_scored = len(scored_rows)
    n_flagged = int(flags.sum())
    flag_name = session.save_artifact(session.artifact_name("off_relation_flag"), flags)
    score_art = session.save_artifact(session.artifact_name("off_relation_score"), score)
    artifacts = [flag_name, score_art]
    positions = [pd.Index(f.rows) for f in fits]
    flagged_rows = np.flatnonzero(flags)
    flagged_rows = flagged_rows[np.argsort(-score[flagged_rows], kind="stable")]
    explained = []
    for r in flagged_rows[:MAX_DETAILED]:
        k = int(best_pair[r])
        f = fits[k]
        i = positions[k].get_loc(r)
        explained.append({"row": int(r), "score": float(score[r]), "relation": f"{f.y[:40]} vs {f.x[:40]}",
                          "x": f.raw_x(i), "y": f.raw_y(f.y_values[i]), "expected_y": f.raw_y(f.expected[i]),
                          "residual": float(f.y_values[i] - f.expected[i]), "residual_sigma": float(f.z[i])})
        if f.y_log:
            explained[-1]["residual_unit"] = "dex"
    examples = explained[:n_examples]
    relations = []
    figures = []
    findings = []
    fig = relation_figure(session, fits, flags, threshold if contamination is None else None)
    figures.append(fig)
    rule = (f"top {contamination:.3g} fraction of rows by |residual| in robust sigma" if contamination is not None
            else f"|residual| > {threshold:g} robust sigma")
    for k, f in enumerate(fits):
        pair_flags = np.zeros(n_table, dtype=np.int8)
        if contamination is not None:
            fk = flags[f.rows].astype(bool) & (np.abs(f.z) >= cut_used)
        else:
            fk = np.abs(f.z) > cut_used
        pair_flags[f.rows[fk]] = 1
        nk = int(pair_flags.sum())
        rel = {"x": f.x, "y": f.y, "fit": f.fit, "scale": scale_name(f), "spearman": f.rho, "robust_r2": f.tightness,
               "residual_sigma": f.sigma, "n": len(f.rows), "n_flagged": nk, "fit_note": f.note}
        relations.append(rel)
        # A relation worth breaking: monotonic (Spearman) or tight around a curve (robust R^2).
        if not is_small(nk, len(f.rows)) or max(abs(f.rho), f.tightness) < MIN_FINDING_STRENGTH:
            continue
        label = flag_name
        if len(fits) > 1:
            label = session.save_artifact(session.artifact_name(f"off_relation_flag_{k + 1}"), pair_flags)
            artifacts.append(label)
        excess = float(np.median(np.abs(f.z[fk])) / cut_used - 1) if cut_used > 0 else 0.0
        findings.append({
            "kind": "outlier",
            "title": f"{nk} rows off the {f.y} vs {f.x} relation"[:200],
            "summary": f"{f.y} follows {f.x} tightly (Spearman {f.rho:+.2f}, robust R^2 {f.tightness:.2f}; "
                       f"{f.note}), but {nk} of {len(f.rows)} rows lie beyond {cut_used:.3g} robust sigma "
                       f"(sigma = {f.sigma:.3g}) from it.",
            "columns": [f.x, f.y],
            "stats": {"n_flagged": nk, "method": "off_relation", "fraction": nk / len(f.rows), "n": len(f.rows),
                      "relation_columns": [f.x, f.y], "relation_strength": f.rho, "spearman": f.rho,
                      "robust_r2": f.tightness, "fit": f.fit, "scale": scale_name(f), "residual_threshold": cut_used,
                      "residual_sigma": f.sigma},
            "labels": label, "figures": figures, "novelty": "candidate",
            "score": float(finding_score(nk / len(f.rows), excess) * min(1.0, max(abs(f.rho), f.tightness) / 0.8)),
        })
    summary = {"method": "off_relation", "n_flagged": n_flagged, "fraction": n_flagged / max(n_scored, 1),
               "n_scored": n_scored, "rule": rule, "relations_tested": relations,
               "flag_artifact": flag_name, "score_artifact": score_art, "top_examples": examples,
               "selection": session.selection_label}
    if search_info:
        summary["search"] = search_info
    if n_flagged and not findings and not any(is_small(r["n_flagged"], r["n"]) for r in relations):
        summary["note"] = TOO_MANY_NOTE
    md = relation_markdown(summary, relations, examples, rule)
    return ToolResult(summary=summary, markdown=md, figures=figures, artifacts=artifacts, findings=findings,
                      details={"flagged_examples": explained})


def scale_name(f: RelationFit) -> str:
    """'linear', 'log10 x', 'log10 y' or 'log10 x and y'."""
    if f.x_log and f.y_log:
        return "log10 x and y"
    if f.x_log or f.y_log:
        return "log10 x" if f.x_log else "log10 y"
    return "linear"


def relation_markdown(summary: dict, relations: list[dict], examples: list[dict], rule: str) -> str:
    """Report text for off_relation."""
    lines = [f"**Off-relation outliers** ({rule}): {summary['n_flagged']} of {summary['n_scored']} rows flagged."]
    for r in relations:
        lines.append(f"- {code(r['y'])} vs {code(r['x'])}: Spearman {r['spearman']:+.2f}, robust R² "
                     f"{r['robust_r2']:.2f}, {r['fit_note']}; residual sigma {r['residual_sigma']:.3g}; "
                     f"{r['n_flagged']} flagged of {r['n']}.")
    if examples:
        lines += ["", "| row | relation | x | y | expected y | residual (sigma) |", "| --- | --- | --- | --- | --- | --- |"]
        for ex in examples:
            lines.append(f"| {ex['row']} | {table_cell(code(ex['relation']))} | {ex['x']:.4g} | {ex['y']:.4g} | "
                         f"{ex['expected_y']:.4g} | {ex['residual_sigma']:+.1f} |")
    return "\n".join(lines)


def relation_figure(session, fits: list[RelationFit], flags: np.ndarray, threshold: float | None) -> str:
    """Each tested relation with its fit, the threshold band and the flagged rows highlighted."""
    with figure_context():
        fig, axes = plt.subplots(1, len(fits), figsize=(5.2 * len(fits), 4.6), squeeze=False)
        for ax, f in zip(axes[0], fits):
            fl = flags[f.rows].astype(bool)
            inl = np.flatnonzero(~fl)
            inl = inl[sample_positions(session, len(inl), FIGURE_INLIERS, salt=32)]
            out = np.flatnonzero(fl)
            out = out[np.argsort(-np.abs(f.z[out]), kind="stable")[:FIGURE_FLAGGED]]
            ax.scatter(f.x_values[inl], f.y_values[inl], s=marker_size(len(inl)), color="tab:blue", alpha=0.4, linewidths=0,
                       label="not flagged", rasterized=True)
            ax.scatter(f.x_values[out], f.y_values[out], s=16, color="tab:red", alpha=0.9, linewidths=0,
                       label=f"flagged ({int(fl.sum())})", rasterized=True)
            cx, cy, csig = f.curve
            ax.plot(cx, cy, color="black", linewidth=1.2, label=f"robust fit ({f.fit.replace('_', ' ')})")
            if threshold is not None:
                for sgn in (-1, 1):
                    ax.plot(cx, cy + sgn * threshold * csig, color="black", linewidth=0.8, linestyle="--")
            ax.set_xlabel(("log10 " if f.x_log else "") + plain_text(f.x))
            ax.set_ylabel(("log10 " if f.y_log else "") + plain_text(f.y))
            ax.set_title(plain_text(f"{f.y} vs {f.x}", 70) + f"\nSpearman {f.rho:+.2f}", fontsize=9)
            ax.legend(fontsize=7)
        return save_figure(session, fig, "outliers_off_relation")
