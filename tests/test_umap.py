"""The umap tool: one small seeded fit (slow: numba compiles on first use) checked for determinism and for
keeping separated blobs apart; the map-reading helpers (drivers, region medians) tested without UMAP."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serendip.tools.engine.registry import call_tool
from serendip.tools.umap_embed import cell_name, embedding_drivers, region_medians


def test_drivers_rank_features_by_spearman_with_the_axes():
    r = np.random.default_rng(0)
    E = r.normal(size=(3000, 2))
    values = np.column_stack([np.exp(E[:, 0]) + 0.01 * r.normal(size=3000),  # monotone in umap1
                              -E[:, 1] + 0.5 * r.normal(size=3000),           # falls along umap2
                              r.normal(size=3000)])
    values[:10, 0] = np.nan
    drivers = embedding_drivers(values, ["mass", "age", "noise"], E, r, max_rows=2000)
    assert [d["feature"] for d in drivers] == ["mass", "age", "noise"]
    assert drivers[0]["rho_umap1"] > 0.99 and abs(drivers[0]["rho_umap2"]) < 0.1
    assert drivers[1]["rho_umap2"] < -0.8 and abs(drivers[2]["strength"]) < 0.1


def test_region_medians_describe_each_part_of_the_map():
    r = np.random.default_rng(1)
    E = r.uniform(0, 3, size=(9000, 2))
    mass = np.floor(E[:, 0]) + 10 * np.floor(E[:, 1])  # constant within each cell of a 3x3 grid
    regions = region_medians(mass[:, None], ["mass"], E, ["mass"], grid=3)
    assert len(regions) == 9 and abs(sum(reg["fraction"] for reg in regions) - 1) < 1e-9
    by_name = {reg["region"]: reg["medians"]["mass"] for reg in regions}
    assert by_name["bottom left"] == 0 and by_name["top right"] == 22 and by_name["middle center"] == 11
    assert cell_name(5, 3) == "middle right" and cell_name(0, 4).startswith("umap1 bin 1/4")


def test_bad_arguments_are_refused_before_any_fit(make_session):
    df = pd.DataFrame({"a": np.arange(30.0), "b": np.arange(30.0) ** 2})
    res = call_tool(make_session(df), "umap", {"n_neighbors": 1})
    assert not res.ok and "'n_neighbors' parameter of umap" in res.error
    res = call_tool(make_session(df), "umap", {"columns": ["a", "nope"]})
    assert not res.ok and "unknown column" in res.error


@pytest.mark.slow
def test_seeded_map_is_deterministic_and_keeps_blobs_apart(make_session):
    r = np.random.default_rng(2)
    truth = np.repeat([0, 1], 250)
    X = r.normal(size=(500, 5))
    X[truth == 1, 0] += 8.0
    df = pd.DataFrame(X, columns=["lum", "b", "c", "d", "e"])
    s1, s2 = make_session(df, seed=5), make_session(df, seed=5)
    r1 = call_tool(s1, "umap", {"n_neighbors": 15}, result_id="R2")
    r2 = call_tool(s2, "umap", {"n_neighbors": 15}, result_id="R2")
    assert r1.ok, r1.error
    assert r1.summary["embedding"] == "R2_umap" and r1.artifacts == ["R2_umap1", "R2_umap2"]
    E1 = np.column_stack([s1.load_artifact(a) for a in r1.artifacts])
    E2 = np.column_stack([s2.load_artifact(a) for a in r2.artifacts])
    assert np.array_equal(E1, E2)
    # Separated blobs stay separated: (nearly) every point is closer to its own blob's centre. UMAP may strand
    # a stray point or two (the exact layout moves with floating-point detail such as the scaling's rounding).
    centres = np.array([E1[truth == g].mean(axis=0) for g in (0, 1)])
    nearest = np.argmin(((E1[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
    assert (nearest == truth).mean() >= 0.99
    assert r1.summary["top_driver"] == "lum"
    assert r1.summary["fit_rows"] == 500 and r1.summary["transformed_rows"] == 0
    assert r1.figures and (s1.workdir / r1.figures[0]).exists()
