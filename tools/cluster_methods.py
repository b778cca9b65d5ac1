"""Clustering methods behind the ``cluster`` tool: fit on a sample with a choice of k, assign every row,
refit for stability, and compare against featureless reference data to tell groups from mere partitions."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.cluster import HDBSCAN, KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import pairwise_distances, pairwise_distances_argmin, silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KNeighborsClassifier

KMEANS_INIT = 3
SILHOUETTE_ROWS = 2000
"""Rows on which silhouettes are computed (quadratic cost)."""
NULL_REFERENCES = 3
NULL_RELATIVE_MARGIN = 0.10
NULL_ABSOLUTE_MARGIN = 0.01
"""A grouping's silhouette must exceed the best one found in featureless reference data by 10% (and by
0.01): the margin is relative because silhouettes shrink with the number of noisy dimensions."""
AGGLOMERATIVE_MAX_ROWS = 5000
"""Ward linkage needs the full distance matrix: it is fitted on at most this many rows."""
STRUCTURE_AXES = 5
"""The structure check is also run in this many leading principal axes, where noisy extra dimensions
no longer drown the silhouette."""
HDBSCAN_MAX_DIMS = 5
SMALLEST_GROUP_FRACTION = 0.02
ROWS_PER_DIMENSION = 10
"""A group of 2% of the rows should hold 10 rows per dimension in the sample the groups are fitted on: what
a full covariance needs (the ratio :func:`serendip.tools.cluster.gmm_covariance` asks of the whole sample)."""
MODEL_MIN_ROWS = 10_000
MODEL_MAX_ROWS = 20_000
"""Bounds of the fitted sample: at least 10,000 rows (a 1% group still has 100), at most 20,000 (BIC, the
stability refits and the density tree then cost as much as they tell)."""


def model_rows(n_dims: int) -> int:
    """Rows of the seeded sample on which k is chosen and stability measured, for ``n_dims`` dimensions.

    Sized by what the statistics need rather than by the table: ``ROWS_PER_DIMENSION`` rows per dimension in
    a group of ``SMALLEST_GROUP_FRACTION`` of the rows, within [``MODEL_MIN_ROWS``, ``MODEL_MAX_ROWS``]. The
    other rows are assigned to the fitted groups (in chunks).
    """
    needed = int(np.ceil(ROWS_PER_DIMENSION * max(n_dims, 1) / SMALLEST_GROUP_FRACTION))
    return int(min(max(needed, MODEL_MIN_ROWS), MODEL_MAX_ROWS))


@dataclass
class Grouping:
    """A fitted grouping of the sample rows.

    Attributes:
        method: 'kmeans', 'gmm', 'agglomerative' or 'hdbscan'.
        labels: Label per fitted row (-1 = noise, hdbscan only).
        assign: Function giving labels for any rows of the same space.
        refit: ``refit(X, seed) -> labels``: the same method with the same settings, for stability.
        selection: How the number of groups was chosen (criterion, per-k scores, chosen k).
        single_group: True when the selection criterion itself prefers one group (GMM BIC at k=1,
            HDBSCAN finding fewer than two clusters).
        model: The fitted mixture (gmm only; gives posterior probabilities for the overlap).
    """

    method: str
    labels: np.ndarray
    assign: Callable[[np.ndarray], np.ndarray]
    refit: Callable[[np.ndarray, int], np.ndarray]
    selection: dict = field(default_factory=dict)
    single_group: bool = False
    model: object = None

    @property
    def n_groups(self) -> int:
        """Number of groups, noise excluded."""
        return int(len(np.unique(self.labels[self.labels >= 0])))


def quiet(func):
    """Run ``func`` with sklearn's convergence chatter silenced (reported through the results instead)."""
    def wrapped(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            return func(*args, **kwargs)
    return wrapped


def silhouette(Z: np.ndarray, labels: np.ndarray, distances: np.ndarray | None = None) -> float | None:
    """Mean silhouette of the non-noise rows, or None with fewer than two groups.

    Args:
        Z: The rows.
        labels: Their groups (-1 = noise).
        distances: ``pairwise_distances(Z)`` when several groupings of the same rows are scored: computing
            them once instead of for every grouping was two thirds of the silhouettes' time.
    """
    ok = labels >= 0
    uniq = np.unique(labels[ok])
    if len(uniq) < 2 or ok.sum() <= len(uniq):
        return None
    if distances is None:
        return float(silhouette_score(Z[ok], labels[ok]))
    D = distances if ok.all() else distances[np.ix_(ok, ok)]
    return float(silhouette_score(D, labels[ok], metric="precomputed"))


def kmeans_fit(X: np.ndarray, k: int, seed: int, n_init: int = KMEANS_INIT) -> KMeans:
    return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(X)


@quiet
def select_kmeans(Z: np.ndarray, ks: list[int], seed: int, sil_idx: np.ndarray) -> Grouping:
    """K-means for each k in ``ks``; the k with the best silhouette (on ``sil_idx`` rows) wins."""
    fits, scores = {}, {}
    D = pairwise_distances(Z[sil_idx]) if len(ks) > 1 else None
    for k in ks:
        fits[k] = kmeans_fit(Z, k, seed)
        scores[k] = silhouette(Z[sil_idx], fits[k].labels_[sil_idx], D)
    best = max(ks, key=lambda k: (scores[k] if scores[k] is not None else -2, -k))
    model = fits[best]
    return Grouping("kmeans", model.labels_.astype(np.int64), assign=model.predict,
                    refit=quiet(lambda X, s: kmeans_fit(X, best, s).labels_),
                    selection=_selection("silhouette" if len(ks) > 1 else "fixed", scores, best, "higher is better"))


def gmm_fit(X: np.ndarray, k: int, seed: int, covariance_type: str = "full") -> GaussianMixture:
    return GaussianMixture(n_components=k, covariance_type=covariance_type, random_state=seed,
                           reg_covar=1e-5).fit(X)


@quiet
def select_gmm(Z: np.ndarray, ks: list[int], seed: int, covariance_type: str = "full") -> Grouping:
    """Gaussian mixtures for each k in ``ks``; the lowest BIC wins (k=1 means no groups)."""
    fits, scores = {}, {}
    for k in ks:
        fits[k] = gmm_fit(Z, k, seed, covariance_type)
        scores[k] = float(fits[k].bic(Z))
    best = min(ks, key=lambda k: (scores[k], k))
    model = fits[best]
    sel = _selection("BIC" if len(ks) > 1 else "fixed", scores, best, "lower is better")
    sel["at_upper_bound"] = bool(len(ks) > 1 and best == max(ks))
    sel["covariance_type"] = covariance_type
    return Grouping("gmm", model.predict(Z).astype(np.int64), assign=model.predict,
                    refit=quiet(lambda X, s: gmm_fit(X, best, s, covariance_type).predict(X)), selection=sel,
                    single_group=best == 1, model=model)


def ward_labels(X: np.ndarray, k: int) -> np.ndarray:
    return fcluster(linkage(X, method="ward"), t=k, criterion="maxclust").astype(np.int64) - 1


def select_agglomerative(Z: np.ndarray, ks: list[int], sil_idx: np.ndarray) -> Grouping:
    """Ward linkage cut at each k in ``ks``; the best silhouette wins; other rows go to the nearest centroid."""
    tree = linkage(Z, method="ward")
    labels, scores = {}, {}
    D = pairwise_distances(Z[sil_idx]) if len(ks) > 1 else None
    for k in ks:
        labels[k] = fcluster(tree, t=k, criterion="maxclust").astype(np.int64) - 1
        scores[k] = silhouette(Z[sil_idx], labels[k][sil_idx], D)
    best = max(ks, key=lambda k: (scores[k] if scores[k] is not None else -2, -k))
    lab = labels[best]
    centroids = np.vstack([Z[lab == g].mean(axis=0) for g in range(int(lab.max()) + 1)])
    return Grouping("agglomerative", lab, assign=lambda X: pairwise_distances_argmin(X, centroids),
                    refit=lambda X, s: ward_labels(X, best),
                    selection=_selection("silhouette" if len(ks) > 1 else "fixed", scores, best, "higher is better"))


def hdbscan_fit(X: np.ndarray, min_cluster_size: int) -> np.ndarray:
    return HDBSCAN(min_cluster_size=min_cluster_size, copy=True).fit_predict(X).astype(np.int64)


def run_hdbscan(Z: np.ndarray, min_cluster_size: int) -> Grouping:
    """HDBSCAN (density-based; finds its own number of groups and leaves noise as -1); other rows get the
    label of their nearest fitted neighbours."""
    lab = hdbscan_fit(Z, min_cluster_size)
    n_noise = int((lab < 0).sum())
    n_groups = int(len(np.unique(lab[lab >= 0])))
    knn = KNeighborsClassifier(n_neighbors=min(5, len(Z))).fit(Z, lab)
    return Grouping("hdbscan", lab, assign=knn.predict, refit=lambda X, s: hdbscan_fit(X, min_cluster_size),
                    selection={"criterion": "density (HDBSCAN)", "min_cluster_size": min_cluster_size,
                               "chosen": n_groups, "noise_fraction": n_noise / max(len(lab), 1)},
                    single_group=n_groups < 2)


def _selection(criterion: str, scores: dict, best: int, note: str) -> dict:
    return {"criterion": criterion, "scores": {str(k): v for k, v in scores.items()}, "chosen": int(best),
            "note": note}


def box_reference(Z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Featureless data with the extent of ``Z``: uniform in the box spanned by its principal axes
    (the reference distribution of Tibshirani et al.'s gap statistic)."""
    mu = Z.mean(axis=0)
    _, _, Vt = np.linalg.svd(Z - mu, full_matrices=False)
    P = (Z - mu) @ Vt.T
    return rng.uniform(P.min(axis=0), P.max(axis=0), size=P.shape) @ Vt + mu


@quiet
def null_silhouette(Z: np.ndarray, ks: list[int], rng: np.random.Generator) -> float:
    """The best k-means silhouette over ``ks`` reached in featureless reference data (max over references)."""
    best = -1.0
    for _ in range(NULL_REFERENCES):
        R = box_reference(Z, rng)
        seed = int(rng.integers(0, 2**31 - 1))
        D = pairwise_distances(R) if len(ks) > 1 else None
        for k in ks:
            if k >= len(R):
                continue
            s = silhouette(R, kmeans_fit(R, k, seed, n_init=1).labels_, D)
            if s is not None:
                best = max(best, s)
    return best


def beats_null(observed: float | None, null: float | None) -> bool:
    """True when a grouping's silhouette clearly exceeds the featureless reference's."""
    if observed is None:
        return False
    if null is None:
        return True
    return observed > max(null * (1 + NULL_RELATIVE_MARGIN), null + NULL_ABSOLUTE_MARGIN)


def without_noise(Z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Labels with noise rows (-1) given their nearest grouped neighbours' label.

    The structure check scores a full partition: leaving noise out would drop exactly the boundary rows
    and flatter a density method against the reference.
    """
    noise = labels < 0
    if not noise.any() or noise.all():
        return labels
    knn = KNeighborsClassifier(n_neighbors=min(5, int((~noise).sum()))).fit(Z[~noise], labels[~noise])
    out = labels.copy()
    out[noise] = knn.predict(Z[noise])
    return out


def structure_check(Z: np.ndarray, labels: np.ndarray, ks: list[int], rng: np.random.Generator,
                    nulls: dict[str, float] | None = None) -> dict:
    """Do the groups separate better than featureless data of the same extent?

    The silhouette of ``labels`` is compared with the best k-means silhouette over ``ks`` in uniform
    reference data, in all dimensions and, when there are more than :data:`STRUCTURE_AXES`, in the leading
    principal axes too; the groups pass when either comparison clears the margin.

    Args:
        Z: The rows the silhouettes are computed on.
        labels: The grouping to check.
        ks: Numbers of groups the reference data are clustered into.
        rng: Draws the reference data.
        nulls: Reference silhouettes by space, filled on first use: they depend on ``Z``, ``ks`` and the
            rng's seed, not on the labels, so the groupings of one call share them (a third of a cluster
            call's time on a large table was spent drawing the same references again).

    Returns:
        ``supported``, the ``silhouette`` and ``null_silhouette`` of the most favourable comparison, and
        every comparison under ``checks``.
    """
    from serendip.tools.pca import principal_components

    spaces = [("all dimensions", Z)]
    if Z.shape[1] > STRUCTURE_AXES:
        spaces.append((f"first {STRUCTURE_AXES} principal axes", principal_components(Z).scores(Z, STRUCTURE_AXES)))
    checks = []
    for name, S in spaces:
        observed = silhouette(S, labels)
        if nulls is not None and name in nulls:
            null = nulls[name]
        else:
            null = null_silhouette(S, ks, rng)
            if nulls is not None:
                nulls[name] = null
        checks.append({"space": name, "silhouette": observed, "null_silhouette": null,
                       "passed": beats_null(observed, null)})

    def margin(c: dict) -> float:
        if c["silhouette"] is None:
            return -np.inf
        return c["silhouette"] - c["null_silhouette"] * (1 + NULL_RELATIVE_MARGIN)

    best = max(checks, key=margin)
    return {"supported": any(c["passed"] for c in checks), "silhouette": best["silhouette"],
            "null_silhouette": best["null_silhouette"], "checks": checks}
