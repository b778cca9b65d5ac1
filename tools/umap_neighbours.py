"""Exact nearest neighbours for UMAP from scikit-learn, in place of pynndescent's approximate ones.

umap-learn finds neighbours with pynndescent from 4,096 rows on. Five of pynndescent's numba functions take
the distance function as an argument; numba keys their on-disk cache by that argument's type, which is new
in every process, so each process compiled them again (and appended one more entry to the cache): measured
21 s of every exploration's UMAP warm-up on 2 cores, with a warm cache. For the tables Serendip embeds (a
seeded sample of at most ``max_fit_rows`` rows, at most a few hundred columns) scikit-learn's exact
neighbour search takes a few seconds and nothing is compiled; the neighbours are exact rather than
approximate.

Exact search costs one distance per (placed row, fitted row) pair: about 150 million pairs per second on one
core here (20 columns), so it is used while the pairs stay under :data:`EXACT_MAX_PAIRS` (~20 s, what the
compilation costs); beyond that (a million rows placed on a 20,000-row map) pynndescent's compilation is
the cheaper of the two, and umap-learn's own search is used.

umap-learn takes them through its documented ``precomputed_knn=(indices, distances, search_index)``; the
search index is :class:`ExactNeighbourIndex`, which answers ``UMAP.transform``'s queries the way pynndescent's
index does (``query(X, k, epsilon)`` → ``(indices, distances)``).
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors


EXACT_MAX_PAIRS = 3_000_000_000
EXACT_MEASURED_DIMS = 20
"""The pair rate was measured at 20 columns; with more, each distance costs proportionally more."""


def use_exact(n_rows: int, n_fit: int, n_dims: int = EXACT_MEASURED_DIMS) -> bool:
    """Whether a map of ``n_rows`` rows in ``n_dims`` columns, fitted on ``n_fit`` of them, gets exact
    neighbours (see the module)."""
    return n_rows * n_fit * max(n_dims, EXACT_MEASURED_DIMS) <= EXACT_MAX_PAIRS * EXACT_MEASURED_DIMS


class ExactNeighbourIndex:
    """Euclidean nearest neighbours of the fitted rows, queried by ``UMAP.transform``."""

    _angular_trees = False
    """Read by umap-learn to choose the query's epsilon (unused: the search is exact)."""

    def __init__(self, fitted: np.ndarray):
        self._search = NearestNeighbors().fit(np.asarray(fitted, dtype=np.float32))

    def nearest(self, X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest fitted rows of each row of ``X``: (indices int32, distances float32), nearest first."""
        distances, indices = self._search.kneighbors(np.asarray(X, dtype=np.float32), n_neighbors=k)
        return indices.astype(np.int32), distances.astype(np.float32)

    def query(self, X: np.ndarray, k: int, epsilon: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """pynndescent's query signature, as ``UMAP.transform`` calls it (``epsilon`` is for approximate search)."""
        return self.nearest(X, k)


def precomputed_knn(fitted: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray, ExactNeighbourIndex]:
    """umap-learn's ``precomputed_knn`` for ``fitted``: each row's neighbours (itself first) and the index."""
    index = ExactNeighbourIndex(fitted)
    indices, distances = index.nearest(fitted, n_neighbors)
    return indices, distances, index


def neighbour_arguments(fitted: np.ndarray, n_neighbors: int, exact: bool) -> dict:
    """``umap.UMAP`` keyword arguments for the neighbour search of a map fitted on ``fitted``.

    Exact: the precomputed neighbours and their index; otherwise pynndescent's search. Approximation is forced
    in both cases, so umap-learn never takes its small-data branch (all pairwise distances from a Python loop,
    then again for every transformed row) and uses the neighbours given, whatever the sample's size.
    """
    return {"precomputed_knn": precomputed_knn(fitted, n_neighbors) if exact else (None, None, None),
            "force_approximation_algorithm": True}

