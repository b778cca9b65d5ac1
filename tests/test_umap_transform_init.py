"""The vectorised starting positions of UMAP's transform equal umap-learn's own loop."""

from __future__ import annotations

import numpy as np
import scipy.sparse

from serendip.tools import umap_transform_init
from serendip.tools.engine.numba_cache import import_umap
from serendip.tools.umap_neighbours import ExactNeighbourIndex, precomputed_knn, use_exact


def test_equals_umap_learn_with_empty_rows_and_exact_duplicates():
    umap = import_umap()
    library = umap_transform_init.library_init_graph_transform
    assert umap.umap_.init_graph_transform is umap_transform_init.init_graph_transform
    assert library is not None and library.__module__ == "umap.umap_"

    rng = np.random.default_rng(0)
    n_new, n_fit = 400, 300
    dense = np.where(rng.random((n_new, n_fit)) < 0.05, rng.random((n_new, n_fit)), 0.0).astype(np.float32)
    dense[7] = 0  # no neighbours
    dense[11, [3, 40]] = 1.0  # two exact duplicates: the first in stored order wins
    dense[12, 50] = 1.0
    graph = scipy.sparse.csr_matrix(dense)
    embedding = rng.normal(size=(n_fit, 2)).astype(np.float32)
    before = (graph.data.copy(), graph.indices.copy())

    ours = umap_transform_init.init_graph_transform(graph, embedding)
    theirs = library(graph, embedding)

    assert ours.dtype == np.float32 and ours.shape == (n_new, 2)
    assert np.isnan(ours[7]).all() and np.isnan(theirs[7]).all()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ours[11], embedding[3])
    np.testing.assert_array_equal(ours[12], embedding[50])
    np.testing.assert_array_equal(graph.data, before[0])  # the graph is not modified
    np.testing.assert_array_equal(graph.indices, before[1])


def test_transform_places_new_rows_next_to_their_twins():
    """End to end through umap-learn's transform, with the exact neighbour index the umap tool gives it: a row
    near a fitted row lands near that row's group on the map."""
    umap = import_umap()
    rng = np.random.default_rng(1)
    X = np.vstack([c + rng.normal(size=(2100, 5)) for c in (np.zeros(5), np.full(5, 8.0))])  # >= 4096 rows
    model = umap.UMAP(n_neighbors=15, random_state=0, transform_seed=0, n_epochs=30,
                      precomputed_knn=precomputed_knn(X, 15)).fit(X)
    placed = model.transform(X[[0, 2500]] + 0.01)
    groups = [model.embedding_[:2100].mean(axis=0), model.embedding_[2100:].mean(axis=0)]
    assert np.linalg.norm(placed[0] - groups[0]) < np.linalg.norm(placed[0] - groups[1])
    assert np.linalg.norm(placed[1] - groups[1]) < np.linalg.norm(placed[1] - groups[0])


def test_exact_index_answers_like_a_brute_force_search():
    rng = np.random.default_rng(2)
    fitted, queries = rng.normal(size=(500, 4)), rng.normal(size=(50, 4))
    indices, distances = ExactNeighbourIndex(fitted).query(queries, 7, epsilon=0.12)
    full = np.linalg.norm(queries[:, None, :] - fitted[None, :, :], axis=2)
    assert indices.dtype == np.int32 and distances.dtype == np.float32
    np.testing.assert_array_equal(indices, np.argsort(full, axis=1)[:, :7])
    np.testing.assert_allclose(distances, np.sort(full, axis=1)[:, :7], rtol=1e-5)
    own, own_d = precomputed_knn(fitted, 5)[:2]
    assert (own[:, 0] == np.arange(500)).all() and (own_d[:, 0] == 0).all()  # each row is its own nearest


def test_exact_neighbours_while_cheaper_than_compiling_pynndescent():
    assert use_exact(100_000, 10_000)
    assert not use_exact(1_000_000, 10_000)
    assert use_exact(10_000, 10_000, 500) and not use_exact(100_000, 20_000, 500)  # wide tables cost more per pair
