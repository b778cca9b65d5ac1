"""Shared statistics: multiple-testing control, effect sizes and resampling stability."""

from __future__ import annotations

import numpy as np


def bh_qvalues(p_values: np.ndarray | list[float]) -> np.ndarray:
    """Benjamini–Hochberg q-values (false discovery rate adjusted p-values), NaN kept as NaN."""
    p = np.asarray(p_values, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return q
    pv = p[ok]
    order = np.argsort(pv)
    ranked = pv[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.clip(ranked, 0, 1)
    q[ok] = out
    return q


def cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    """Standardised mean difference of ``a`` vs ``b`` with a pooled standard deviation."""
    a = a[np.isfinite(a)]
    b = b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    pooled = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    if pooled == 0:
        return 0.0
    return float((a.mean() - b.mean()) / pooled)


def resampling_stability(fit_predict, X: np.ndarray, reference: np.ndarray, rng: np.random.Generator,
                         n_resamples: int = 5, fraction: float = 0.8, max_rows: int = 20_000) -> float:
    """Agreement (adjusted Rand) between a labelling and refits on random subsamples.

    Args:
        fit_predict: ``fit_predict(X_sub, seed) -> labels`` refitting the same method.
        X: The data the reference labels were fitted on.
        reference: The reference labels for ``X``.
        rng: Random generator.
        n_resamples: Number of subsamples.
        fraction: Fraction of rows in each subsample.
        max_rows: Subsample size cap for large tables.

    Returns:
        The mean adjusted Rand index over resamples, restricted to each subsample's rows (0–1; clipped at 0).
    """
    from sklearn.metrics import adjusted_rand_score  # here: the ledger imports this module in the light parent

    n = len(X)
    size = int(min(max(fraction * n, 2), max_rows))
    scores = []
    for i in range(n_resamples):
        idx = rng.choice(n, size=size, replace=False)
        labels = fit_predict(X[idx], int(rng.integers(0, 2**31 - 1)))
        scores.append(adjusted_rand_score(reference[idx], labels))
    return float(max(0.0, np.mean(scores)))
