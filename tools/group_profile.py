"""Describing a grouping: what separates each group from the rest, and whether the groups merely repeat a
categorical column (field, instrument, survey) that was in the table all along."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.stats import chi2_contingency
from sklearn.metrics import adjusted_rand_score

COINCIDENCE_ARI = 0.5
COINCIDENCE_CRAMERS_V = 0.7
COINCIDENCE_P = 1e-3
MAX_LEVELS = 200
"""Categoricals with more levels than this are not compared (they behave like identifiers)."""
MAX_INTEGER_CODE_LEVELS = 12
"""An integer-valued numeric column with at most this many values is treated as a code (field 1, 2, 3)."""


def relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0, 1, ... from the largest group down (ties by old label); -1 stays -1."""
    labels = np.asarray(labels)
    uniq, counts = np.unique(labels[labels >= 0], return_counts=True)
    order = sorted(range(len(uniq)), key=lambda i: (-counts[i], uniq[i]))
    mapping = np.full(int(uniq.max()) + 1 if len(uniq) else 1, -1, dtype=np.int64)
    for new, i in enumerate(order):
        mapping[uniq[i]] = new
    out = np.full(len(labels), -1, dtype=np.int64)
    ok = labels >= 0
    out[ok] = mapping[labels[ok]]
    return out


def group_effects(values: np.ndarray, labels: np.ndarray, n_groups: int, block: int = 4) -> np.ndarray:
    """Cohen's d (pooled sd) of each group against the rest of the labelled rows, NaN-aware.

    Args:
        values: (n, p) raw feature values (NaN = missing).
        labels: Group per row (-1 = in no group; such rows are in neither side).
        n_groups: Number of groups (labels 0..n_groups-1).
        block: Columns processed at a time (bounds the temporary memory on big tables).

    Returns:
        (n_groups, p) standardised differences; NaN where a side has fewer than two values.
    """
    keep = labels >= 0
    lab = labels[keep]
    onehot = np.zeros((len(lab), n_groups))
    onehot[np.arange(len(lab)), lab] = 1.0
    p = values.shape[1]
    n_g, s_g, q_g = (np.zeros((n_groups, p)) for _ in range(3))
    for j0 in range(0, p, block):
        V = values[keep, j0:j0 + block]
        # Centering keeps the sums of squares accurate for columns far from zero (masses ~1e10); a median
        # of a few thousand rows is as good a center as any and much cheaper on big tables.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            center = np.nan_to_num(np.nanmedian(V[:: max(1, len(V) // 5000)], axis=0))
        fin = np.isfinite(V)
        V0 = np.where(fin, V - center, 0.0)
        n_g[:, j0:j0 + block] = onehot.T @ fin
        s_g[:, j0:j0 + block] = onehot.T @ V0
        q_g[:, j0:j0 + block] = onehot.T @ (V0 * V0)
    n_r, s_r, q_r = n_g.sum(0) - n_g, s_g.sum(0) - s_g, q_g.sum(0) - q_g
    with np.errstate(divide="ignore", invalid="ignore"):
        m_g, m_r = s_g / n_g, s_r / n_r
        ss_g = np.maximum(q_g - n_g * m_g ** 2, 0)
        ss_r = np.maximum(q_r - n_r * m_r ** 2, 0)
        pooled = np.sqrt((ss_g + ss_r) / (n_g + n_r - 2))
        d = (m_g - m_r) / pooled
    d = np.where(pooled > 0, d, 0.0)
    return np.where((n_g >= 2) & (n_r >= 2), d, np.nan)


def group_profiles(values: np.ndarray, labels: np.ndarray, columns: list[str], d: np.ndarray,
                   top: int = 4) -> list[dict]:
    """Per group: size, its most distinctive features (largest |d|) with direction and medians.

    Args:
        values: (n, p) raw feature values for the labelled rows (NaN = missing).
        labels: Group per row (-1 = in no group).
        columns: Feature names.
        d: (n_groups, p) effects from :func:`group_effects`.
        top: Features listed per group.
    """
    n_groups = len(d)
    n_labelled = int((labels >= 0).sum())
    out = []
    for g in range(n_groups):
        in_g = labels == g
        rest = (labels >= 0) & ~in_g
        order = [j for j in np.argsort(-np.nan_to_num(np.abs(d[g]), nan=-1), kind="stable")[:top]
                 if np.isfinite(d[g, j])]
        feats = []
        for j in order:
            feats.append({"feature": columns[j], "d": float(d[g, j]),
                          "direction": "higher" if d[g, j] > 0 else "lower",
                          "median": _nanmedian(values[in_g, j]), "median_rest": _nanmedian(values[rest, j])})
        out.append({"group": g, "size": int(in_g.sum()), "fraction": float(in_g.sum() / max(n_labelled, 1)),
                    "distinctive": feats})
    return out


def most_separating_features(d: np.ndarray, n: int = 2) -> list[int]:
    """Indices of the ``n`` features with the largest |d| in any group (distinct features)."""
    d = np.nan_to_num(np.abs(d), nan=0.0)
    return [int(j) for j in np.argsort(-d.max(axis=0), kind="stable")[:n]]


def _nanmedian(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(np.median(x)) if len(x) else None


def coincidence_candidates(table, exclude: set[str]) -> list[str]:
    """Columns a grouping might merely repeat: categoricals, flags and small integer codes."""
    out = []
    for name in table.columns:
        if name in exclude:
            continue
        role = table.role(name)
        if role in ("categorical", "flag"):
            out.append(name)
        elif role == "numeric":
            col = table.df[name].to_numpy(dtype=float, na_value=np.nan)
            fin = col[np.isfinite(col)]
            if len(fin) and np.all(np.mod(fin, 1) == 0):
                n_levels = len(np.unique(fin))
                if 2 <= n_levels <= MAX_INTEGER_CODE_LEVELS and n_levels < 0.5 * len(fin):
                    out.append(name)
    return out


def corrected_cramers_v(chi2: float, shape: tuple[int, int], n: int) -> float:
    """Cramér's V with Bergsma's (2013) small-sample correction: the plain V of a few rows spread over
    many levels is large even for unrelated columns."""
    r, k = shape
    if n < 2 or min(r, k) < 2:
        return 0.0
    phi2 = max(0.0, chi2 / n - (k - 1) * (r - 1) / (n - 1))
    r_c = r - (r - 1) ** 2 / (n - 1)
    k_c = k - (k - 1) ** 2 / (n - 1)
    denom = min(k_c - 1, r_c - 1)
    return float(np.sqrt(phi2 / denom)) if denom > 0 else 0.0


def categorical_coincidence(table, rows: np.ndarray, labels: np.ndarray, columns: list[str]) -> list[dict]:
    """Agreement of a grouping with each categorical column: adjusted Rand, Cramér's V and a chi-square p.

    Args:
        table: The :class:`~serendip.tools.engine.table.Table`.
        rows: Table positions of the labelled rows.
        labels: Group per row of ``rows`` (-1 = in no group; left out).
        columns: Candidate columns (see :func:`coincidence_candidates`).

    Returns:
        One entry per comparable column, strongest first, with ``strong`` set when ARI ≥ 0.5 or the
        bias-corrected Cramér's V ≥ 0.7, and the chi-square p-value is below 0.001.
    """
    out = []
    grouped = labels >= 0
    for name in columns:
        series = table.df[name].iloc[rows[grouped]]
        ok = series.notna().to_numpy()
        if ok.sum() < 10:
            continue
        codes, levels = pd.factorize(series[ok], sort=True)
        if not 2 <= len(levels) <= MAX_LEVELS:
            continue
        lab = labels[grouped][ok]
        if len(np.unique(lab)) < 2:
            continue
        contingency = pd.crosstab(lab, codes).to_numpy()
        ari = float(adjusted_rand_score(codes, lab))
        chi2 = chi2_contingency(contingency)
        v = corrected_cramers_v(float(chi2.statistic), contingency.shape, int(ok.sum()))
        p = float(chi2.pvalue)
        out.append({"column": name, "adjusted_rand": ari, "cramers_v": v, "p_value": p, "n": int(ok.sum()),
                    "n_levels": int(len(levels)),
                    "strong": bool((ari >= COINCIDENCE_ARI or v >= COINCIDENCE_CRAMERS_V) and p < COINCIDENCE_P)})
    out.sort(key=lambda e: -max(e["adjusted_rand"], e["cramers_v"]))
    return out
