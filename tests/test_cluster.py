"""The cluster tool: planted groups recovered, noise not reported, stability, profiles, categorical
coincidence, reuse of a UMAP embedding, sampling of big tables, and a real table (penguins)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from serendip.tools.engine.registry import call_tool
from conftest import shared_dataset

CENTERS = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 1.0], [0.0, 6.0, -1.0]])


def planted_groups(n_per: int = 150, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    r = np.random.default_rng(seed)
    truth = np.repeat(np.arange(3), n_per)
    X = CENTERS[truth] + r.normal(size=(len(truth), 3))
    return pd.DataFrame(X, columns=["a", "b", "c"]), truth


def group_findings(result) -> list[dict]:
    return [f for f in result.findings if f["kind"] == "group"]


@pytest.mark.parametrize("method", ["kmeans", "gmm", "auto"])
def test_planted_groups_recovered_and_reported(method, make_session):
    df, truth = planted_groups()
    session = make_session(df)
    res = call_tool(session, "cluster", {"method": method})
    assert res.ok, res.error
    s = res.summary
    assert s["verdict"] == "groups" and s["n_groups"] == 3
    labels = session.load_artifact(s["labels"])
    assert labels.dtype.kind == "i" and len(labels) == len(df)
    assert adjusted_rand_score(truth, labels) >= 0.9
    assert s["stability"] >= 0.9
    assert s["silhouette"] > s["null_silhouette"]
    [finding] = group_findings(res)
    assert finding["labels"] == s["labels"] and finding["stats"]["n_groups"] == 3
    assert sorted(finding["stats"]["sizes"], reverse=True) == finding["stats"]["sizes"]
    assert sum(finding["stats"]["sizes"]) == len(df)
    assert finding["figures"] and (session.workdir / finding["figures"][0]).exists()
    # The group centred at b = 6 is described by a higher b.
    g = int(np.bincount(labels[truth == 2]).argmax())
    top = s["groups"][g]["distinctive"][0]
    assert top["feature"] == "b" and top["direction"] == "higher" and top["d"] > 2
    assert top["median"] > top["median_rest"]


@pytest.mark.parametrize("method", ["agglomerative", "hdbscan"])
def test_other_methods_recover_separated_groups(method, make_session):
    df, truth = planted_groups(n_per=120, seed=1)
    session = make_session(df)
    res = call_tool(session, "cluster", {"method": method})
    assert res.ok, res.error
    labels = session.load_artifact(res.summary["labels"])
    grouped = labels >= 0
    assert grouped.mean() > 0.8
    assert adjusted_rand_score(truth[grouped], labels[grouped]) >= 0.9
    assert res.summary["verdict"] == "groups"


def test_gaussian_noise_gives_low_stability_and_no_group(make_session):
    r = np.random.default_rng(3)
    df = pd.DataFrame(r.normal(size=(800, 5)), columns=list("abcde"))
    res = call_tool(make_session(df), "cluster", {"method": "kmeans"})
    assert res.ok, res.error
    assert res.summary["stability"] < 0.6
    assert res.summary["verdict"] in ("no_structure", "unstable")
    assert not group_findings(res)


def test_gmm_on_noise_prefers_one_component(make_session):
    r = np.random.default_rng(4)
    df = pd.DataFrame(r.normal(size=(600, 3)), columns=list("abc"))
    res = call_tool(make_session(df), "cluster", {"method": "gmm"})
    assert res.ok, res.error
    s = res.summary
    assert s["n_groups"] == 1 and s["verdict"] == "no_structure" and s["labels"] is None
    assert "single" in s["reason"] and not res.findings and not res.artifacts


def test_uniform_noise_partition_is_stable_but_not_reported(make_session):
    # k-means cuts a uniform square into reproducible quadrants: stability alone would call them groups.
    r = np.random.default_rng(5)
    df = pd.DataFrame(r.uniform(size=(600, 2)), columns=["x", "y"])
    res = call_tool(make_session(df), "cluster", {"method": "kmeans"})
    assert res.ok, res.error
    assert res.summary["verdict"] == "no_structure"
    assert "featureless" in res.summary["reason"]
    assert not group_findings(res)


def test_groups_coinciding_with_a_field_are_flagged(make_session):
    r = np.random.default_rng(6)
    n = 400
    field = np.where(np.arange(n) < 200, "north", "south")
    offset = np.where(field == "north", 0.0, 5.0)
    df = pd.DataFrame({"x": r.normal(size=n) + offset, "y": r.normal(size=n) + offset, "field": field,
                       "tile": r.choice(["t1", "t2", "t3"], size=n)})
    res = call_tool(make_session(df), "cluster", {"method": "kmeans"})
    assert res.ok, res.error
    dq = [f for f in res.findings if f["kind"] == "data_quality"]
    assert [f["columns"] for f in dq] == [["field"]]
    assert dq[0]["stats"]["adjusted_rand"] > 0.9 and dq[0]["labels"] == res.summary["labels"]
    by_col = {c["column"]: c for c in res.summary["coincidence"]}
    assert by_col["field"]["strong"] and not by_col["tile"]["strong"]
    assert {t[0] for t in res.tests} == {"cluster:coincidence:field", "cluster:coincidence:tile", "cluster:separation"}
    assert "`field`" in res.markdown


def test_rows_with_missing_values_get_label_minus_one(make_session):
    df, truth = planted_groups(n_per=100, seed=7)
    df.loc[[0, 5, 150], "a"] = np.nan
    session = make_session(df)
    res = call_tool(session, "cluster", {"method": "kmeans", "k": 3})
    assert res.ok, res.error
    labels = session.load_artifact(res.summary["labels"])
    assert (labels[[0, 5, 150]] == -1).all() and (np.delete(labels, [0, 5, 150]) >= 0).all()
    assert res.summary["k_selection"]["criterion"] == "fixed"


def test_big_table_is_fitted_on_a_sample_and_fully_assigned(make_session):
    df, truth = planted_groups(n_per=1000, seed=8)
    session = make_session(df)
    res = call_tool(session, "cluster", {"method": "kmeans", "max_fit_rows": 1000, "k_max": 5})
    assert res.ok, res.error
    assert any("sample of 1000 of 3000" in note for note in res.summary["notes"])
    assert res.summary["k_selection"]["fit_rows"] == 1000
    labels = session.load_artifact(res.summary["labels"])
    assert (labels >= 0).all() and adjusted_rand_score(truth, labels) >= 0.95


def test_clusters_an_existing_umap_embedding(make_session):
    df, truth = planted_groups(n_per=100, seed=9)
    session = make_session(df)
    r = np.random.default_rng(9)
    emb = np.array([[0, 0], [10, 0], [0, 10]])[truth] + r.normal(scale=0.5, size=(len(truth), 2))
    session.save_artifact("R1_umap1", emb[:, 0])
    session.save_artifact("R1_umap2", emb[:, 1])
    res = call_tool(session, "cluster", {"space": "umap", "embedding": "R1_umap"})
    assert res.ok, res.error
    assert res.summary["method"] == "hdbscan" and "UMAP" in res.summary["auto_choice"]
    labels = session.load_artifact(res.summary["labels"])
    grouped = labels >= 0
    assert adjusted_rand_score(truth[grouped], labels[grouped]) >= 0.95
    # The groups are still described by the table's features.
    assert {p["distinctive"][0]["feature"] for p in res.summary["groups"]} <= {"a", "b", "c"}


def test_pca_space(make_session):
    # Six noisy copies of two latent coordinates that carry three groups: two components hold the groups.
    r = np.random.default_rng(10)
    truth = np.repeat(np.arange(3), 100)
    latent = np.array([[0, 0], [5, 0], [0, 5]])[truth] + r.normal(size=(300, 2))
    mix = np.array([[1, 0], [0.8, 0.2], [-1, 0], [0, 1], [0.2, 0.9], [0, -1]])
    df = pd.DataFrame(latent @ mix.T + r.normal(scale=0.3, size=(300, 6)), columns=[f"x{i}" for i in range(6)])
    session = make_session(df)
    res = call_tool(session, "cluster", {"method": "gmm", "space": "pca", "n_pca": 2})
    assert res.ok, res.error
    assert res.summary["space"].startswith("2 principal components of 6 features")
    assert adjusted_rand_score(truth, session.load_artifact(res.summary["labels"])) >= 0.9


@pytest.mark.parametrize("args, match", [
    ({"space": "umap"}, "'embedding' parameter"),
    ({"embedding": "R1_umap"}, "only applies with space='umap'"),
    ({"method": "hdbscan", "k": 3}, "does not apply to method='hdbscan'"),
    ({"k_min": 6, "k_max": 3}, "must not exceed k_max"),
    ({"space": "umap", "embedding": "R9_umap"}, "No artifact named"),
    ({"k": 1}, "'k' parameter of cluster must be"),
    ({"columns": ["nope"]}, "unknown column"),
])
def test_fixable_errors(args, match, make_session):
    df, _ = planted_groups(n_per=20)
    res = call_tool(make_session(df), "cluster", args)
    assert not res.ok and match in res.error


@pytest.mark.realdata
def test_penguins_species_recovered_by_gmm(make_session):
    path = shared_dataset("small/penguins.csv")
    df = pd.read_csv(path, na_values=["NA"])
    session = make_session(df)
    cols = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    res = call_tool(session, "cluster", {"method": "gmm", "columns": cols})
    assert res.ok, res.error
    labels = session.load_artifact(res.summary["labels"])
    ok = labels >= 0
    assert ok.sum() == 342
    assert adjusted_rand_score(df["species"][ok], labels[ok]) >= 0.7
    assert res.summary["verdict"] == "groups" and group_findings(res)
    flagged = [f["columns"][0] for f in res.findings if f["kind"] == "data_quality"]
    assert "species" in flagged


def test_group_effects_match_cohens_d():
    from serendip.tools.group_profile import group_effects
    from serendip.tools.stats import cohens_d

    r = np.random.default_rng(11)
    values = np.column_stack([r.normal(size=300) + 1e9, r.normal(size=300)])
    values[::7, 1] = np.nan
    labels = r.integers(-1, 3, size=300)
    d = group_effects(values, labels, 3, block=1)
    for g in range(3):
        for j in range(2):
            a = values[labels == g, j]
            b = values[(labels >= 0) & (labels != g), j]
            assert d[g, j] == pytest.approx(cohens_d(a, b), rel=1e-5, abs=1e-9)


def test_many_level_categorical_on_few_rows_is_not_a_coincidence():
    from serendip.tools.group_profile import categorical_coincidence
    from serendip.tools.engine.table import Table

    r = np.random.default_rng(12)
    n = 120
    table = Table.from_dataframe(pd.DataFrame({"x": r.normal(size=n), "ref": [f"paper{i}" for i in
                                                                               r.integers(0, 40, size=n)]}))
    labels = r.integers(0, 2, size=n)
    [entry] = categorical_coincidence(table, np.arange(n), labels, ["ref"])
    assert entry["n_levels"] > 30 and not entry["strong"] and entry["cramers_v"] < 0.5


def test_linear_combinations_are_left_out_of_the_clustering_space(make_session):
    from serendip.tools.cluster import redundant_columns

    r = np.random.default_rng(21)
    lab = (r.random(600) < 0.5).astype(int)
    a, b = r.normal(size=600) + 4 * lab, r.normal(size=600)
    df = pd.DataFrame({"a": a, "b": b, "a_plus_b": a + b})
    assert redundant_columns(df.to_numpy()) == [2]
    res = call_tool(make_session(df), "cluster", {"columns": ["a", "b", "a_plus_b"], "method": "gmm", "k_max": 4})
    assert res.ok, res.error
    assert any("a_plus_b" in note and "linear combination" in note for note in res.summary["notes"])
    assert res.summary["n_groups"] == 2


def test_fewer_components_than_bic_when_extra_ones_only_model_a_tail(make_session):
    # Two well-separated populations, one with a long tail: BIC adds a component for the tail, which fails
    # the test against one population; the two populations are kept.
    r = np.random.default_rng(22)
    x = np.concatenate([r.normal(0, 1, 700), r.normal(7, 1, 500), r.normal(0, 1, 120) + r.exponential(4, 120)])
    res = call_tool(make_session(pd.DataFrame({"x": x})), "cluster", {"columns": ["x"], "method": "gmm", "k_max": 4})
    assert res.ok, res.error
    s = res.summary
    if s["k_selection"].get("bic_choice"):
        assert s["k_selection"]["bic_choice"] > s["n_groups"]
        assert "largest number of components" in s["reason"]
    assert s["verdict"] in ("groups", "overlapping") and s["n_groups"] == 2
