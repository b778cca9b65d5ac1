"""Subspace search methods: which columns depend on others, and compact clumps in 2-D column pairs.

A clump of a few per cent of the rows in two columns of many (a co-moving star cluster in proper motion)
is diluted to nothing when all standardised columns are clustered at once. Here each candidate pair is
searched on its own, in copula space (each column replaced by its normal scores, so the marginals are
fixed), and a clump counts only as an excess over the null that keeps each column's marginal and the
pair's rank correlation (a Gaussian copula):

- pairs are chosen by their dependence (binned mutual information of the ranks, which sees clumps and
  curved relations as well as trends, tested by a G-test with Benjamini–Hochberg over the pairs); columns
  that depend on nothing are left out and said so;
- HDBSCAN looks for compact clumps in one random half of the rows;
- each clump's region (an ellipse around its members) is then counted in the *other* half and compared
  with the count the null predicts (sample splitting: the region was chosen without those rows, so the
  Poisson p-value of the excess is honest and can enter the run-wide FDR);
- stability is the agreement (Jaccard) between the region's rows in the second half and the best
  matching clump found independently in that half.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as sps
from scipy.special import ndtri
from sklearn.cluster import HDBSCAN

MI_BINS = 10
MI_ROWS = 5000
DEPENDENCE_Q = 0.01
"""Pairs whose G-test q-value (Benjamini–Hochberg over all pairs) is at most this depend on each other."""
SEARCH_ROWS = 4000
"""Rows per half in the clump search (HDBSCAN in 2-D is fast at this size)."""
NULL_DRAWS = 200_000
MIN_CONTRAST = 2.0
"""A clump must hold at least twice the rows the null predicts in its region."""
MAX_CLUMP_FRACTION = 0.4
REGION_QUANTILE = 0.9
"""The region of a clump: the ellipse holding this fraction of its members (Mahalanobis radius)."""


def normal_scores(x: np.ndarray) -> np.ndarray:
    """Normal scores of the finite values (ranks mapped through the inverse normal CDF); NaN stays NaN."""
    out = np.full(len(x), np.nan)
    ok = np.isfinite(x)
    if ok.sum() < 3:
        return out
    r = sps.rankdata(x[ok])
    out[ok] = ndtri(r / (ok.sum() + 1))
    return out


def rank_mutual_information(X: np.ndarray, bins: int = MI_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Mutual information (nats) between columns' ranks binned into ``bins`` equal-count bins, and its
    p-value under independence (G-test: 2·n·MI follows χ² with (bins−1)² degrees of freedom);
    pairwise-complete rows.

    Returns:
        (p, p) mutual information and (p, p) p-values (1 where too few rows).
    """
    n, p = X.shape
    B = np.full((n, p), -1, dtype=np.int64)
    for j in range(p):
        ok = np.isfinite(X[:, j])
        if ok.sum() >= bins:
            r = sps.rankdata(X[ok, j]) / (ok.sum() + 1)
            B[ok, j] = np.minimum((r * bins).astype(np.int64), bins - 1)
    mi = np.zeros((p, p))
    pv = np.ones((p, p))
    for a in range(p):
        for b in range(a + 1, p):
            ok = (B[:, a] >= 0) & (B[:, b] >= 0)
            m = int(ok.sum())
            if m < 5 * bins:
                continue
            joint = np.bincount(B[ok, a] * bins + B[ok, b], minlength=bins * bins).reshape(bins, bins) / m
            pa, pb = joint.sum(1), joint.sum(0)
            nz = joint > 0
            value = max(float(np.sum(joint[nz] * np.log(joint[nz] / np.outer(pa, pb)[nz]))), 0.0)
            mi[a, b] = mi[b, a] = value
            pv[a, b] = pv[b, a] = float(sps.chi2.sf(2 * m * value, (bins - 1) ** 2))
    return mi, pv


def mi_bins(n: int) -> int:
    """Bins per column: about 50 rows per bin on each axis, between 4 and :data:`MI_BINS`."""
    return int(np.clip(n // 50, 4, MI_BINS))


def _ellipse(P: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    mu = P.mean(axis=0)
    cov = np.cov(P, rowvar=False) + 1e-6 * np.eye(2)
    inv = np.linalg.inv(cov)
    d2 = np.einsum("ij,jk,ik->i", P - mu, inv, P - mu)
    return mu, inv, float(np.quantile(d2, REGION_QUANTILE))


def in_region(P: np.ndarray, region: tuple[np.ndarray, np.ndarray, float]) -> np.ndarray:
    mu, inv, r2 = region
    d2 = np.einsum("ij,jk,ik->i", P - mu, inv, P - mu)
    return d2 <= r2


def robust_scaled(V: np.ndarray) -> np.ndarray:
    """Columns centred on the median and divided by the interquartile range (1 where it is 0)."""
    q1, med, q3 = np.percentile(V, [25, 50, 75], axis=0)
    iqr = np.where(q3 - q1 > 0, q3 - q1, 1.0)
    return (V - med) / iqr


def null_draws(V: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Rows from the null that keeps each column's distribution and the pair's rank correlation: a Gaussian
    copula with the normal-score correlation, mapped back through each column's empirical quantiles."""
    U = np.column_stack([normal_scores(V[:, 0]), normal_scores(V[:, 1])])
    rho = float(np.corrcoef(U[:, 0], U[:, 1])[0, 1])
    Z = rng.multivariate_normal(np.zeros(2), np.array([[1.0, rho], [rho, 1.0]]), size=size)
    P = sps.norm.cdf(Z)
    return np.column_stack([sorted_quantiles(np.sort(V[:, j]), P[:, j]) for j in range(2)])


def sorted_quantiles(ordered: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``np.quantile(values, probs)`` (its default linear method) from the sorted values: one sort instead of
    a partition per probability, which took 40 s for 4,000 draws from 100k rows."""
    position = np.clip(probs, 0.0, 1.0) * (len(ordered) - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def clumps_in_pair(V: np.ndarray, rng: np.random.Generator, min_fraction: float) -> list[dict]:
    """Clumps in one pair of columns (rows with both values).

    The search runs in the columns' own units (robustly scaled), where a clump is compact; the expected
    count of a region comes from :func:`null_draws`.

    Args:
        V: (n, 2) values.
        rng: Seeded generator (halves, null draws).
        min_fraction: Smallest clump as a fraction of the rows searched.

    Returns:
        Per clump: ``region`` (ellipse in scaled units), ``scale`` (how to scale any rows of the pair),
        ``contrast`` (observed/expected in the held-out half), ``p_value`` (Poisson, held-out half),
        ``stability`` (Jaccard in the held-out half), ``fraction``.
    """
    n = len(V)
    if n < 100:
        return []
    q1, med, q3 = np.percentile(V, [25, 50, 75], axis=0)
    iqr = np.where(q3 - q1 > 0, q3 - q1, 1.0)
    S = (V - med) / iqr
    perm = rng.permutation(n)
    half = n // 2
    A, B = S[perm[:half]], S[perm[half:2 * half]]
    if len(A) > SEARCH_ROWS:
        A = A[rng.choice(len(A), SEARCH_ROWS, replace=False)]
    if len(B) > SEARCH_ROWS:
        B = B[rng.choice(len(B), SEARCH_ROWS, replace=False)]
    mcs = max(15, int(round(min_fraction * len(A))))
    lab_a = HDBSCAN(min_cluster_size=mcs, min_samples=mcs // 2 or 1, copy=True).fit_predict(A)
    found = [g for g in np.unique(lab_a) if g >= 0 and (lab_a == g).sum() <= MAX_CLUMP_FRACTION * len(A)]
    if not found:
        return []
    null = (null_draws(V, NULL_DRAWS, rng) - med) / iqr
    lab_b = HDBSCAN(min_cluster_size=max(15, int(round(min_fraction * len(B)))), min_samples=mcs // 2 or 1,
                    copy=True).fit_predict(B)
    out = []
    for g in found:
        region = _ellipse(A[lab_a == g])
        expected = float(in_region(null, region).mean() * len(B))
        inside_b = in_region(B, region)
        observed = int(inside_b.sum())
        if expected <= 0:
            expected = 0.5 / NULL_DRAWS * len(B)
        contrast = observed / expected
        p = float(sps.poisson.sf(observed - 1, expected)) if observed > 0 else 1.0
        jacc = 0.0
        for h in np.unique(lab_b[lab_b >= 0]):
            m = lab_b == h
            union = int((m | inside_b).sum())
            if union:
                jacc = max(jacc, float((m & inside_b).sum() / union))
        out.append({"region": region, "scale": (med, iqr), "contrast": float(contrast), "expected": expected,
                    "observed": observed, "p_value": max(p, 1e-300), "stability": jacc,
                    "fraction": observed / len(B)})
    return out


def members(V: np.ndarray, clump: dict) -> np.ndarray:
    """Rows of the pair (n, 2) inside a clump's region."""
    med, iqr = clump["scale"]
    return in_region((V - med) / iqr, clump["region"])
