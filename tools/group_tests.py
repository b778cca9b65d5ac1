"""Tests of a grouping against one population: are these overlapping populations, or one population cut up?

Silhouettes against uniform reference data are the right check for "is there any clustered structure", but
the wrong null for overlapping populations (two overlapping Gaussians always lose to it). Here a grouping
is tested against a single population:

- **Separation (dip) test.** Each group and its nearest neighbouring group are projected on their
  discriminant direction (Fisher's linear discriminant; the data themselves in one dimension) and
  Hartigan's dip test (``diptest`` package) asks whether that projection is unimodal. One population cut
  in two stays unimodal on any line, skewed or not; two populations leave a dip. The grouping's p-value is
  the largest over the neighbouring pairs (an intersection-union test: every group must be separated from
  its nearest neighbour).
- **Parametric bootstrap of the likelihood ratio** of a k-component Gaussian mixture against k−1
  components (McLachlan 1987): the null distribution is simulated from the fitted (k−1)-component model.
  A Gaussian null is rejected by any skewed population, so the columns are first power-transformed
  (Yeo–Johnson), and a heavy-tailed population is told from two populations by Ashman's D (the
  separation of the component means in pooled standard deviations) of at least 2.
- **Posterior predictive valley check** of a grouping that only the likelihood ratio supports. Components
  fitted to one flat-topped population (uniform, triangular) sit side by side, and the mixture then
  implies a valley between neighbours that the data do not show. Samples drawn from the fitted mixture
  give the valley depth the model predicts; when the observed valley is shallower than the model allows,
  the mixture describes the shape of one population, not k populations, and the likelihood ratio does
  not count (a posterior predictive check, Gelman, Meng & Stern 1996). The dip statistic was tried for
  this and lacks the power: at 1,500 rows a uniform's dip sits at the 5th percentile of the dips of its
  4-component fit.
- **Overlap**: the expected misclassification rate between components (mean of 1 − the largest posterior
  probability), 0 for disjoint groups and up to 1 − 1/k for indistinguishable ones.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats as sps
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

MAX_DIP_ROWS = 3000
"""Rows per dip test: beyond a few thousand rows the test flags the mild non-unimodality of rounded or
censored values; a seeded subsample keeps it about the shape of the distribution."""
BOOTSTRAP_ROWS = 1000
BOOTSTRAP_REPLICATES = 19
BOOTSTRAP_MAX_PARAMETERS = 16
"""The bootstrap refits two mixtures per replicate: it is run only up to k × dimensions of this size."""
SEPARATION_ALPHA = 0.01
"""Local decision level of the separation test (the p-value also enters the run-wide FDR)."""
PREDICTIVE_REPLICATES = 99
"""Samples drawn from the fitted mixture by the predictive valley check (each is a draw and a predict)."""
PREDICTIVE_ROWS = 5000
PREDICTIVE_ALPHA = 0.05
VALLEY_HALF_WIDTH = 0.15
"""Half-width of the valley and peak bands, as a fraction of the distance between the two component means."""
MIN_ASHMAN_D = 2.0
"""Smallest separation of component means, in pooled standard deviations, for a clean split (Ashman, Bird &
Zepf 1994)."""


def dip_pvalue(x: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """Hartigan's dip statistic and its p-value (asymptotic table) for 1-D values, on at most
    :data:`MAX_DIP_ROWS` seeded rows. Ties (rounded values) are broken by jitter far below the spacing of
    the data so they do not fake a multimodal staircase."""
    import diptest

    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) > MAX_DIP_ROWS:
        x = rng.choice(x, MAX_DIP_ROWS, replace=False)
    if len(x) < 10 or np.ptp(x) == 0:
        return 0.0, 1.0
    diffs = np.diff(np.unique(x))
    step = float(diffs.min()) if len(diffs) else 1.0
    x = x + rng.uniform(-0.5, 0.5, len(x)) * step
    dip, p = diptest.diptest(np.sort(x))
    return float(dip), float(p)


def discriminant_projection(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Rows of A and B projected on Fisher's discriminant direction between them."""
    if A.shape[1] == 1:
        return np.concatenate([A[:, 0], B[:, 0]])
    diff = A.mean(axis=0) - B.mean(axis=0)
    cov = np.cov(A, rowvar=False) * (len(A) - 1) + np.cov(B, rowvar=False) * (len(B) - 1)
    cov = cov / max(len(A) + len(B) - 2, 1)
    cov = cov + 1e-6 * np.trace(cov) / len(cov) * np.eye(len(cov))
    w = np.linalg.solve(cov, diff)
    return np.concatenate([A @ w, B @ w])


def _component_cov(model: GaussianMixture, j: int) -> np.ndarray:
    """Full covariance matrix of component j whatever the mixture's covariance type."""
    c, d = model.covariances_, model.means_.shape[1]
    kind = model.covariance_type
    if kind == "full":
        return c[j]
    if kind == "diag":
        return np.diag(c[j])
    if kind == "spherical":
        return np.eye(d) * c[j]
    return c


def component_ashman_d(model: GaussianMixture, g: int, h: int) -> float:
    """Ashman's D of mixture components g and h: the distance of their means on Fisher's discriminant
    direction, in units of the components' own (fitted) spreads along it.

    Computed from the fitted components, not from the rows each is assigned: cutting any single
    population in two leaves hard-assigned halves about 2.5 standard deviations apart, whereas the
    components fitted to one skewed or heavy-tailed population sit on top of each other (D well below 2).
    """
    d = model.means_.shape[1]
    diff = model.means_[g] - model.means_[h]
    cov_g, cov_h = _component_cov(model, g), _component_cov(model, h)
    pooled = cov_g + cov_h
    pooled = pooled + 1e-9 * np.trace(pooled) / d * np.eye(d)
    w = np.linalg.solve(pooled, diff)
    spread = float(np.sqrt(max((w @ cov_g @ w + w @ cov_h @ w) / 2.0, 1e-300)))
    return float(abs(w @ diff) / spread)


def separation_test(Z: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                    model: GaussianMixture | None = None) -> dict | None:
    """Dip test of each group against its nearest neighbouring group on their discriminant direction.

    Args:
        Z: (n, d) coordinates the grouping was made in.
        labels: Group per row (-1 = in no group, left out).
        rng: Seeded generator (subsampling and tie-breaking).
        model: The fitted mixture whose components the labels number (then Ashman's D is taken from the
            components, see :func:`component_ashman_d`; otherwise from the assigned rows).

    Returns:
        ``{"test", "p_value", "pairs": [{"groups", "dip", "p_value"}], "separated"}`` or None with fewer
        than two groups of at least 5 rows.
    """
    groups = [g for g in np.unique(labels[labels >= 0]) if (labels == g).sum() >= 5]
    if len(groups) < 2:
        return None
    centers = {g: Z[labels == g].mean(axis=0) for g in groups}
    scale = Z[labels >= 0].std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    pairs = set()
    for g in groups:
        others = [h for h in groups if h != g]
        nearest = min(others, key=lambda h: float(np.sum(((centers[g] - centers[h]) / scale) ** 2)))
        pairs.add(tuple(sorted((int(g), int(nearest)))))
    out = []
    for g, h in sorted(pairs):
        A, B = Z[labels == g], Z[labels == h]
        proj = discriminant_projection(A, B)
        a, b = proj[:len(A)], proj[len(A):]
        if model is not None and max(g, h) < len(model.means_):
            d = component_ashman_d(model, int(g), int(h))
        else:
            spread = np.sqrt((a.var() + b.var()) / 2)
            d = float(abs(a.mean() - b.mean()) / spread) if spread > 0 else float("inf")
        dip, p = dip_pvalue(proj, rng)
        out.append({"groups": [g, h], "dip": dip, "p_value": p, "ashman_d": d})
    p_max = max(e["p_value"] for e in out)
    return {"test": "Hartigan dip test on the discriminant direction of each group and its nearest neighbour "
                    "(largest p over the pairs)", "p_value": float(p_max), "pairs": out,
            "min_ashman_d": float(min(e["ashman_d"] for e in out)),
            "separated": bool(p_max <= SEPARATION_ALPHA)}


def power_transformed(Z: np.ndarray) -> np.ndarray:
    """Each column Yeo–Johnson transformed (maximum likelihood) and standardised: one skewed population
    becomes close to one Gaussian, so the likelihood-ratio test does not mistake skewness for groups."""
    from sklearn.preprocessing import PowerTransformer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return PowerTransformer(method="yeo-johnson", standardize=True).fit_transform(Z)


def _valley_counts(X: np.ndarray, labels: np.ndarray, pairs: list[tuple]) -> tuple[int, float]:
    """Rows in the middle band between each pair's component means and half the rows in the bands around
    the two means, summed over the pairs (bands :data:`VALLEY_HALF_WIDTH` × 2 of the distance wide, on the
    pair's discriminant direction)."""
    middle, peaks = 0, 0.0
    for g, h, w, lo, span in pairs:
        t = (X[(labels == g) | (labels == h)] @ w - lo) / span
        middle += int(np.count_nonzero(np.abs(t - 0.5) <= VALLEY_HALF_WIDTH))
        peaks += (np.count_nonzero(np.abs(t) <= VALLEY_HALF_WIDTH)
                  + np.count_nonzero(np.abs(t - 1) <= VALLEY_HALF_WIDTH)) / 2.0
    return middle, peaks


def converged_mixture(model: GaussianMixture, X: np.ndarray) -> GaussianMixture:
    """``model`` refitted on X to a tight tolerance, starting from its own components (same numbering).

    Groupings are chosen with scikit-learn's default tolerance, which can stop EM far from the optimum
    (weights 0.63/0.37 for populations of 0.8/0.2); a model check must judge the mixture at its best fit.
    """
    if model.covariance_type != "full":
        return model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(n_components=len(model.weights_), covariance_type="full", tol=1e-5, max_iter=500,
                               reg_covar=1e-5, weights_init=model.weights_, means_init=model.means_,
                               precisions_init=model.precisions_, random_state=0).fit(X)


def predictive_valley_check(Z: np.ndarray, model: GaussianMixture, separation: dict, rng: np.random.Generator,
                            replicates: int = PREDICTIVE_REPLICATES) -> dict:
    """Whether the fitted mixture reproduces the valleys between neighbouring groups that it implies.

    For each pair tested by :func:`separation_test`, the rows the model assigns to the pair are put on the
    components' discriminant direction (component h at 0, g at 1). The valley ratio is the number of rows
    in the middle bands over the number in the bands around the means, summed over the pairs (one
    statistic, so one test however many groups). Samples of the same size drawn from ``model`` give its
    predictive distribution; the predictive p-value is the fraction of samples (observed included) with a
    ratio at least the observed one. A flat population tiled by components fills the valleys the mixture
    predicts (ratio near 1 against ~0.7 for components 3 standard deviations apart).

    Returns:
        ``{"test", "p_value", "valley_ratio", "simulated_median", "replicates", "consistent"}``:
        ``consistent`` is False when the valleys are shallower than the mixture allows (p at most
        :data:`PREDICTIVE_ALPHA`).
    """
    X0 = Z if len(Z) <= PREDICTIVE_ROWS else Z[rng.choice(len(Z), PREDICTIVE_ROWS, replace=False)]
    model = converged_mixture(model, X0)
    pairs = []
    for pair in separation["pairs"]:
        g, h = (int(v) for v in pair["groups"])
        if max(g, h) >= len(model.means_):
            continue
        pooled = _component_cov(model, g) + _component_cov(model, h)
        pooled = pooled + 1e-9 * np.trace(pooled) / len(pooled) * np.eye(len(pooled))
        w = np.linalg.solve(pooled, model.means_[g] - model.means_[h])
        lo = float(model.means_[h] @ w)
        span = float(model.means_[g] @ w) - lo
        if span > 0:
            pairs.append((g, h, w, lo, span))
    middle, peaks = _valley_counts(X0, model.predict(X0), pairs)
    if not pairs or peaks == 0:
        return {"test": "posterior predictive valley check", "p_value": 1.0, "consistent": True,
                "replicates": 0}
    observed = middle / peaks
    ratios = []
    for _ in range(replicates):
        X = sample_mixture(model, len(X0), rng)
        m, pk = _valley_counts(X, model.predict(X), pairs)
        if pk > 0:
            ratios.append(m / pk)
    p = (1 + sum(r >= observed for r in ratios)) / (len(ratios) + 1)
    return {"test": "posterior predictive check: the valleys between neighbouring groups in samples drawn from "
                    "the fitted mixture against the observed valleys",
            "p_value": float(p), "valley_ratio": float(observed),
            "simulated_median": float(np.median(ratios)) if ratios else None, "replicates": len(ratios),
            "consistent": bool(p > PREDICTIVE_ALPHA)}


def decide(separation: dict | None, bootstrap: dict | None) -> tuple[bool, float | None, str]:
    """Whether a grouping is a set of (possibly overlapping) populations, its p-value and the test named.

    Populations when the dip test rejects unimodality, or when the bootstrap likelihood ratio (after a
    power transform) rejects k−1 components, every group sits at least :data:`MIN_ASHMAN_D` pooled
    standard deviations from its nearest neighbour (Ashman et al. 1994: a mere scale mixture or a heavy
    tail has its components on top of each other) and the mixture reproduces the observed valleys (the
    ``predictive`` check of :func:`predictive_valley_check`, carried by the bootstrap's result: components
    side by side in one flat-topped population do not). The p-value is Bonferroni-corrected for the two
    tests.
    """
    if separation is None:
        return False, None, ""
    p_dip = separation["p_value"]
    lr_counts = (bootstrap is not None and separation["min_ashman_d"] >= MIN_ASHMAN_D
                 and bootstrap.get("predictive", {}).get("consistent", True))
    p_lr = bootstrap["p_value"] if lr_counts else 1.0
    p = float(min(1.0, 2 * min(p_dip, p_lr)))
    test = "dip test" if p_dip <= p_lr else "bootstrap likelihood ratio with Ashman's D"
    return p <= SEPARATION_ALPHA, p, test


def mixture_overlap(model: GaussianMixture, Z: np.ndarray) -> float:
    """Expected misclassification rate between the mixture's components: mean of 1 − max posterior."""
    post = model.predict_proba(Z)
    return float(np.mean(1.0 - post.max(axis=1)))


def _fit(X: np.ndarray, k: int, seed: int, cov: str, n_init: int = 1) -> GaussianMixture:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # A tight tolerance: the default stops EM early enough to leave k components below k−1 in likelihood.
        return GaussianMixture(n_components=k, covariance_type=cov, random_state=seed, reg_covar=1e-5,
                               n_init=n_init, tol=1e-5, max_iter=300).fit(X)


def _log_ratio(X: np.ndarray, k: int, seed: int, cov: str) -> float:
    """2·(log L_k − log L_{k−1}); k components nest k−1, so a worse local optimum counts as no gain."""
    null, alt = _fit(X, k - 1, seed, cov), _fit(X, k, seed, cov, n_init=2)
    return max(0.0, 2.0 * len(X) * (alt.score(X) - null.score(X)))


def sample_mixture(model: GaussianMixture, n: int, rng: np.random.Generator) -> np.ndarray:
    """n rows drawn from a fitted mixture with ``rng`` (GaussianMixture.sample reuses its own fixed seed)."""
    counts = rng.multinomial(n, model.weights_)
    d = model.means_.shape[1]
    parts = []
    for j, m in enumerate(counts):
        if model.covariance_type == "full":
            cov = model.covariances_[j]
        elif model.covariance_type == "diag":
            cov = np.diag(model.covariances_[j])
        elif model.covariance_type == "spherical":
            cov = np.eye(d) * model.covariances_[j]
        else:
            cov = model.covariances_
        parts.append(rng.multivariate_normal(model.means_[j], cov, size=m))
    return np.vstack(parts)[rng.permutation(n)]


def bootstrap_lr_test(Z: np.ndarray, k: int, rng: np.random.Generator, cov: str = "full",
                      replicates: int = BOOTSTRAP_REPLICATES) -> dict | None:
    """Parametric bootstrap of the likelihood ratio of k vs k−1 Gaussian components.

    The null distribution of 2·(log L_k − log L_{k−1}) is simulated from the fitted (k−1)-component model
    on at most :data:`BOOTSTRAP_ROWS` seeded rows. With few replicates the tail beyond the largest
    simulated value is taken from a gamma distribution fitted to the replicates (the statistic is
    approximately a scaled chi-square), so that strong evidence gets a small p-value rather than 1/(B+1).

    Returns:
        ``{"test", "k", "statistic", "p_value", "p_empirical", "replicates"}`` or None when k < 2.
    """
    if k < 2:
        return None
    X = Z if len(Z) <= BOOTSTRAP_ROWS else Z[rng.choice(len(Z), BOOTSTRAP_ROWS, replace=False)]
    seed = int(rng.integers(0, 2**31 - 1))
    null = _fit(X, k - 1, seed, cov, n_init=3)
    observed = _log_ratio(X, k, seed, cov)
    sims = []
    for b in range(replicates):
        sims.append(_log_ratio(sample_mixture(null, len(X), rng), k, seed + b + 1, cov))
    sims = np.asarray(sims)
    p_emp = float((1 + np.sum(sims >= observed)) / (replicates + 1))
    p = p_emp
    if observed > sims.max() and sims.std() > 0:
        mean, var = sims.mean(), sims.var(ddof=1)
        shape, scale = mean ** 2 / var, var / mean
        p = float(min(p_emp, sps.gamma.sf(observed, shape, scale=scale)))
    return {"test": f"parametric bootstrap likelihood ratio, {k} vs {k - 1} Gaussian components",
            "k": int(k), "statistic": float(observed), "p_value": max(p, 1e-300), "p_empirical": p_emp,
            "replicates": int(replicates), "rows": int(len(X))}
