"""Isolation-forest scores with numpy alone, from a forest scikit-learn fitted on the sample.

Why hand-written: the full-row scoring runs on Dask workers that may have 256 MB each, and importing
scikit-learn alone takes about 85 MiB of that (measured: a worker with numpy and pyarrow holds ~92 MiB,
~217 MiB once ``sklearn.ensemble`` is imported, where a 256 MB worker pauses). The fitted trees are
exported as plain arrays and walked level by level here; the score is scikit-learn's
(``-IsolationForest.score_samples``: 2 ** (-mean path length / c(max_samples))), checked against it in the
tests.
"""

from __future__ import annotations

import numpy as np

EULER_GAMMA = 0.5772156649015329


def average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): the mean path length of an unsuccessful search in a binary search tree of n points."""
    n = np.asarray(n, dtype=float)
    out = np.zeros_like(n)
    two = n == 2
    big = n > 2
    out[two] = 1.0
    out[big] = 2.0 * (np.log(n[big] - 1.0) + EULER_GAMMA) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def export_forest(forest, n_features: int) -> dict:
    """A fitted ``sklearn.ensemble.IsolationForest`` as numpy arrays per tree (picklable without scikit-learn).

    A leaf points to itself with an infinite threshold, so a row that reached it stays there while the
    walk goes on level by level; a node's feature is the column of the full feature matrix
    (scikit-learn may give each tree a permutation of them).
    """
    subsample = getattr(forest, "_max_features", n_features) != n_features
    trees = []
    for est, feats in zip(forest.estimators_, forest.estimators_features_):
        t = est.tree_
        leaf = t.children_left == -1
        own = np.arange(t.node_count)
        f = np.maximum(t.feature, 0)
        trees.append({"left": np.where(leaf, own, t.children_left).astype(np.intp),
                      "right": np.where(leaf, own, t.children_right).astype(np.intp),
                      "feature": (np.asarray(feats)[f] if subsample else f).astype(np.intp),
                      "threshold": np.where(leaf, np.inf, t.threshold),
                      "leaf_path": average_path_length(t.n_node_samples), "max_depth": int(t.max_depth)})
    return {"trees": trees, "denominator": len(trees) * float(average_path_length(np.array([forest.max_samples_]))[0])}


def forest_scores(model: dict, X: np.ndarray) -> np.ndarray:
    """Anomaly score of each row (higher = more isolated), equal to ``-IsolationForest.score_samples(X)``.

    Each tree is walked one level at a time over all rows; the path length is the number of levels that
    moved the row plus c(n) of its leaf's training rows.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)  # scikit-learn's trees compare float32 values
    n, p = X.shape
    flat = X.ravel()
    base = np.arange(n, dtype=np.intp) * p
    total = np.zeros(n)
    for tree in model["trees"]:
        left, right, feature, threshold = tree["left"], tree["right"], tree["feature"], tree["threshold"]
        node = np.zeros(n, dtype=np.intp)
        for _ in range(tree["max_depth"]):
            value = flat[base + feature[node]]
            nxt = np.where(value <= threshold[node], left[node], right[node])
            total += nxt != node
            node = nxt
        total += tree["leaf_path"][node]
    return 2.0 ** (-total / model["denominator"])
