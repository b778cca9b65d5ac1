"""Vectorised pairwise dependence between the columns of a float matrix (NaN = missing).

Correlation matrices are computed over pairwise-complete rows with masked matrix products, so a
1,000-column table costs a few BLAS calls instead of a Python double loop.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps
from threadpoolctl import threadpool_limits

XI_MIN_ROWS = 30
"""Fewest pairwise-complete rows for Chatterjee's xi (its p-value is asymptotic)."""
EXACT_RERANK_BUDGET = 5_000_000
"""Row-pairs of exact Spearman re-ranking spent on pairs with missing values; the rest use each column's
ranks over its own present values (a close approximation when values are missing)."""
EXACT_RERANK_PAIRS = 2000
"""Most pairs re-ranked exactly (each is a Python-level call)."""


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of a 1-D array without NaN, ties given their average rank (like scipy's rankdata).

    scipy.stats.rankdata sorts with a stable merge sort and takes ~4.7 s on 1M x 20; numpy's default
    argsort is ~4x faster and ties are averaged afterwards.
    """
    n = len(x)
    if n == 0:
        return np.empty(0)
    order = np.argsort(x)
    xs = x[order]
    new_value = np.empty(n, dtype=bool)
    new_value[0] = True
    np.not_equal(xs[1:], xs[:-1], out=new_value[1:])
    starts = np.flatnonzero(new_value)
    counts = np.diff(np.append(starts, n))
    ranks = np.empty(n)
    ranks[order] = np.repeat(starts + (counts + 1) / 2.0, counts)
    return ranks


def rank_columns(X: np.ndarray) -> np.ndarray:
    """Average ranks of each column over its present values; missing cells stay NaN."""
    X = np.asfortranarray(X, dtype=float)
    R = np.full(X.shape, np.nan, order="F")
    for j in range(X.shape[1]):
        col = X[:, j]
        present = ~np.isnan(col)
        if present.all():
            R[:, j] = average_ranks(col)
        elif present.any():
            R[present, j] = average_ranks(col[present])
    return R


def _standardized(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Columns centred and scaled over their present values, with missing cells set to 0, and the mask."""
    present = ~np.isnan(X)
    count = present.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, np.nansum(X, axis=0) / np.maximum(count, 1), 0.0)
        Z = np.where(present, X - mean, 0.0)
        sd = np.sqrt((Z ** 2).sum(axis=0) / np.maximum(count, 1))
    Z /= np.where(sd > 0, sd, 1.0)
    return Z, present


def single_threaded_blas(func):
    """Run ``func`` with one BLAS thread.

    The products here are tall and thin ((n x p)^T (n x p)); one thread does 1M x 20 in ~0.02 s, while
    OpenBLAS threads on a busy 2-core machine were measured 50-300x slower (spinning threads).
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return func(*args, **kwargs)

    return wrapper


@single_threaded_blas
def pairwise_corr(A: np.ndarray, B: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation of every column of ``A`` with every column of ``B`` over pairwise-complete rows.

    Args:
        A: (n, p) floats with NaN for missing.
        B: (n, q) floats with NaN for missing; None means ``A`` (a symmetric p x p matrix).

    Returns:
        ``r`` (p, q) with NaN where a pair has fewer than 3 complete rows or no variance, and ``n`` (p, q)
        the number of pairwise-complete rows.
    """
    same = B is None
    Za, Ma = _standardized(A)
    Zb, Mb = (Za, Ma) if same else _standardized(B)
    if Ma.all() and Mb.all():
        n_rows = A.shape[0]
        counts = np.full((A.shape[1], Zb.shape[1]), n_rows, dtype=np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = (Za.T @ Zb) / n_rows
            # Exact rescaling by the realised norms guards against rounding drift past |r| = 1.
            r /= np.sqrt(np.outer((Za ** 2).sum(0), (Zb ** 2).sum(0))) / n_rows
    else:
        # float32 holds 0/1 counts exactly (below 2**24 rows) at half the memory of float64.
        Fa = Ma.astype(np.float32)
        Fb = Fa if same else Mb.astype(np.float32)
        counts = np.rint(Fa.T @ Fb).astype(np.int64)
        Fa64, Fb64 = Fa.astype(float), (Fa.astype(float) if same else Fb.astype(float))
        sum_a = Za.T @ Fb64
        sum_b = sum_a.T if same else Fa64.T @ Zb
        sq_a = (Za ** 2).T @ Fb64
        sq_b = sq_a.T if same else Fa64.T @ (Zb ** 2)
        cross = Za.T @ Zb
        with np.errstate(invalid="ignore", divide="ignore"):
            nn = np.where(counts > 0, counts, np.nan)
            cov = cross - sum_a * sum_b / nn
            var_a = sq_a - sum_a ** 2 / nn
            var_b = sq_b - sum_b ** 2 / nn
            r = cov / np.sqrt(var_a * var_b)
    r = np.where(counts >= 3, r, np.nan)
    with np.errstate(invalid="ignore"):
        r = np.clip(r, -1.0, 1.0)
    return r, counts


def corr_pvalues(r: np.ndarray, n: np.ndarray, n_controls: int = 0) -> np.ndarray:
    """Two-sided p-values of Pearson/Spearman coefficients from Student's t with n - 2 - k degrees of freedom."""
    r = np.asarray(r, dtype=float)
    dof = np.asarray(n, dtype=float) - 2 - n_controls
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.abs(r) * np.sqrt(dof / np.maximum(1.0 - r ** 2, 1e-300))
        p = 2.0 * sps.t.sf(t, np.where(dof >= 1, dof, np.nan))
    p = np.where(np.isfinite(r) & (dof >= 1), p, np.nan)
    return np.clip(p, 0.0, 1.0)


def spearman_pair(x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """Exact Spearman rho of one pair over its complete rows (ranks recomputed on those rows)."""
    ok = ~(np.isnan(x) | np.isnan(y))
    n = int(ok.sum())
    if n < 3:
        return float("nan"), n
    ra, rb = average_ranks(x[ok]), average_ranks(y[ok])
    ra -= ra.mean()
    rb -= rb.mean()
    denom = np.sqrt((ra @ ra) * (rb @ rb))
    return (float(np.clip((ra @ rb) / denom, -1.0, 1.0)) if denom > 0 else float("nan")), n


def kendall_pairs(X: np.ndarray, ia: np.ndarray, ib: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kendall tau-b, p-value and n for each pair of columns (ia[k], ib[k]) over complete rows."""
    tau = np.full(len(ia), np.nan)
    p = np.full(len(ia), np.nan)
    n = np.zeros(len(ia), dtype=np.int64)
    for k, (a, b) in enumerate(zip(ia, ib)):
        x, y = X[:, a], X[:, b]
        ok = ~(np.isnan(x) | np.isnan(y))
        n[k] = int(ok.sum())
        if n[k] >= 3 and np.ptp(x[ok]) > 0 and np.ptp(y[ok]) > 0:
            res = sps.kendalltau(x[ok], y[ok])
            tau[k], p[k] = res.statistic, res.pvalue
    return tau, p, n


@single_threaded_blas
def residualize_columns(Y: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Residuals of each column of ``Y`` after a least-squares fit on ``C`` (plus intercept).

    ``C`` must be complete; each column of ``Y`` is fitted on its own present rows; NaN stays NaN.
    """
    D = np.column_stack([np.ones(len(C)), C])
    out = np.full(Y.shape, np.nan)
    present = ~np.isnan(Y)
    complete = present.all(axis=0)
    if complete.any():
        beta, *_ = np.linalg.lstsq(D, Y[:, complete], rcond=None)
        out[:, complete] = Y[:, complete] - D @ beta
    for j in np.flatnonzero(~complete):
        rows = present[:, j]
        if rows.sum() > D.shape[1]:
            beta, *_ = np.linalg.lstsq(D[rows], Y[rows, j], rcond=None)
            out[rows, j] = Y[rows, j] - D[rows] @ beta
    return out


def xi_pairs(X: np.ndarray, ia: np.ndarray, ib: np.ndarray, rng: np.random.Generator,
             max_rows: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Chatterjee's xi in both directions for each pair, on a seeded sample of rows.

    xi(x -> y) is near 0 for independent columns and near 1 when y is a function of x, monotonic or not
    (y = x**2, a sine), with an asymptotic p-value under independence (no permutations).

    Each pair uses its complete rows, cut down to a shared length bucket (at most 10% fewer rows) so
    that pairs can be computed in batched scipy calls; the rows are in random order, so cutting keeps a
    random subset, and ties in x are broken at random as Chatterjee recommends.

    Returns:
        ``xi`` = max of the two directions, its p-value (two directions, Bonferroni), Spearman rho on the
        same rows (to tell monotonic from non-monotonic dependence), rows used per pair, and the sample size.
    """
    n_total = X.shape[0]
    take = rng.permutation(n_total)[:max_rows]
    S = X[take]
    present = ~np.isnan(S)
    n_pair = (present[:, ia] & present[:, ib]).sum(axis=0)
    xi = np.full(len(ia), np.nan)
    p = np.full(len(ia), np.nan)
    rho = np.full(len(ia), np.nan)
    used = np.zeros(len(ia), dtype=np.int64)
    levels = []
    m = len(S)
    while m >= XI_MIN_ROWS:
        levels.append(m)
        m = int(np.floor(m * 0.9))
    levels = np.array(levels)
    if len(levels) == 0:
        return xi, p, rho, used, len(S)
    # The bucket of a pair: the largest level that its complete rows reach.
    bucket = np.searchsorted(-levels, -n_pair, side="left")
    for b in np.unique(bucket):
        if b >= len(levels):
            continue
        m = int(levels[b])
        members = np.flatnonzero(bucket == b)
        chunk = max(1, 2_000_000 // m)
        for start in range(0, len(members), chunk):
            k = members[start:start + chunk]
            both = present[:, ia[k]] & present[:, ib[k]]
            both &= np.cumsum(both, axis=0) <= m
            rows = np.nonzero(both.T)[1].reshape(len(k), m)
            xa = S[rows, ia[k][:, None]]
            xb = S[rows, ib[k][:, None]]
            ab = sps.chatterjeexi(xa, xb, axis=1)
            ba = sps.chatterjeexi(xb, xa, axis=1)
            xi[k] = np.maximum(ab.statistic, ba.statistic)
            p[k] = np.minimum(1.0, 2.0 * np.minimum(ab.pvalue, ba.pvalue))
            rho[k] = batched_spearman(xa, xb)
            used[k] = m
    return xi, p, rho, used, len(S)


def batched_spearman(xa: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """Spearman rho of each row of ``xa`` with the same row of ``xb`` (complete data)."""
    ra = sps.rankdata(xa, axis=1)
    rb = sps.rankdata(xb, axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ra * rb).sum(axis=1) / np.sqrt((ra ** 2).sum(axis=1) * (rb ** 2).sum(axis=1))


# ----------------------------------------------------------------------------- per-pair statistics
@dataclass
class PairStats:
    """One statistic for every pair (ia[k], ib[k]): effect, pairwise-complete n and two-sided p-value."""

    effect: np.ndarray
    n: np.ndarray
    p: np.ndarray
    notes: list[str] = field(default_factory=list)

    def copy(self) -> "PairStats":
        """An independent copy."""
        return PairStats(self.effect.copy(), self.n.copy(), self.p.copy(), list(self.notes))


def pair_indices(n_columns: int, target_mode: bool) -> tuple[np.ndarray, np.ndarray]:
    """Pairs as column indices: every column with the last one (target mode) or the upper triangle."""
    if target_mode:
        return np.arange(n_columns - 1), np.full(n_columns - 1, n_columns - 1)
    return np.triu_indices(n_columns, 1)


def corr_of_pairs(V: np.ndarray, ia: np.ndarray, ib: np.ndarray, target_mode: bool) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise-complete Pearson r and n of the pairs, from one (cross-)correlation matrix product."""
    if target_mode:
        r, n = pairwise_corr(V[:, :-1], V[:, -1:])
        return r[:, 0], n[:, 0]
    r, n = pairwise_corr(V)
    return r[ia, ib], n[ia, ib]


def spearman_stats(V: np.ndarray, ia: np.ndarray, ib: np.ndarray, target_mode: bool) -> PairStats:
    """Spearman rho of every pair: ranks, then a Pearson matrix product; pairs with missing values are
    re-ranked exactly on their complete rows, strongest first, within a budget."""
    r, n = corr_of_pairs(rank_columns(V), ia, ib, target_mode)
    notes = []
    present = (~np.isnan(V)).sum(axis=0)
    needs_rerank = np.flatnonzero((n < present[ia]) | (n < present[ib]))
    if len(needs_rerank):
        order = needs_rerank[np.argsort(-np.nan_to_num(np.abs(r[needs_rerank]), nan=-1.0), kind="stable")]
        exact = order[np.cumsum(n[order]) <= EXACT_RERANK_BUDGET][:EXACT_RERANK_PAIRS]
        for k in exact:
            r[k], n[k] = spearman_pair(V[:, ia[k]], V[:, ib[k]])
        if len(exact) < len(order):
            notes.append(f"{len(order) - len(exact)} of {len(order)} pairs with missing values use each column's "
                         "ranks over its own present values (an approximation); the strongest are re-ranked exactly")
    return PairStats(r, n, corr_pvalues(r, n), notes)


def correlation_stats(V: np.ndarray, ia: np.ndarray, ib: np.ndarray, target_mode: bool, method: str,
                      rng: np.random.Generator, max_rows: int) -> PairStats:
    """Spearman, Pearson or Kendall for every pair over pairwise-complete rows (Kendall on <= max_rows rows)."""
    if method == "spearman":
        return spearman_stats(V, ia, ib, target_mode)
    if method == "pearson":
        r, n = corr_of_pairs(V, ia, ib, target_mode)
        return PairStats(r, n, corr_pvalues(r, n))
    notes = []
    if len(V) > max_rows:
        V = V[np.sort(rng.choice(len(V), size=max_rows, replace=False))]
        notes.append(f"Kendall tau computed on a seeded sample of {max_rows} rows")
    tau, p, n = kendall_pairs(V, ia, ib)
    return PairStats(tau, n, p, notes)


def partial_stats(V: np.ndarray, C: np.ndarray, ia: np.ndarray, ib: np.ndarray, target_mode: bool,
                  method: str) -> PairStats:
    """Partial correlation given complete controls ``C``: residualise ranks (Spearman) or values (Pearson)
    on the controls, then correlate the residuals (t-test with n - 2 - k degrees of freedom)."""
    if method == "spearman":
        V, C = rank_columns(V), rank_columns(C)
    r, n = corr_of_pairs(residualize_columns(V, C), ia, ib, target_mode)
    return PairStats(r, n, corr_pvalues(r, n, n_controls=C.shape[1]))


def weaker_of(a: PairStats, b: PairStats, pairs: np.ndarray) -> tuple[PairStats, PairStats]:
    """For the pairs in ``pairs``, take from ``a`` or ``b`` whichever has the larger p-value (the weaker
    evidence); returns the chosen statistics and the ones not chosen."""
    chosen, other = a.copy(), b.copy()
    pa, pb = np.nan_to_num(a.p[pairs], nan=2.0), np.nan_to_num(b.p[pairs], nan=2.0)
    use_b = pairs[pb > pa]
    for src, dst in ((b, chosen), (a, other)):
        dst.effect[use_b], dst.n[use_b], dst.p[use_b] = src.effect[use_b], src.n[use_b], src.p[use_b]
    return chosen, other
