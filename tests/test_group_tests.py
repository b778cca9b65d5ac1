"""Group tests against one population (dip, bootstrap likelihood ratio) and the subspace clump search."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.mixture import GaussianMixture

from serendip.tools import group_tests as gt
from serendip.tools import subspace_search as ss
from serendip.tools.engine.registry import call_tool


def two_populations(separation: float, n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(seed)
    lab = (r.random(n) < 0.4).astype(int)
    x = r.normal(size=n) + separation * lab
    return x[:, None], lab


def mixture_labels(X: np.ndarray, k: int = 2) -> tuple[np.ndarray, GaussianMixture]:
    g = GaussianMixture(k, random_state=0).fit(X)
    return g.predict(X), g


def test_overlapping_populations_are_separated():
    X, _ = two_populations(3.0)  # overlapping (about 7% misclassified): too shallow a dip for the dip test
    labels, model = mixture_labels(X)
    sep = gt.separation_test(X, labels, np.random.default_rng(1))
    assert sep["min_ashman_d"] > 2
    boot = gt.bootstrap_lr_test(gt.power_transformed(X), 2, np.random.default_rng(2))
    separated, p, test = gt.decide(sep, boot)
    assert separated and p < 0.01 and "likelihood" in test
    assert 0.02 < gt.mixture_overlap(model, X) < 0.2
    X, _ = two_populations(5.0)
    labels, _ = mixture_labels(X)
    assert gt.separation_test(X, labels, np.random.default_rng(1))["separated"]  # a clear dip


@pytest.mark.parametrize("draw", ["gamma", "lognormal", "student_t"])
def test_one_skewed_or_heavy_tailed_population_is_not_split(draw):
    r = np.random.default_rng(3)
    x = {"gamma": lambda: r.gamma(3.0, size=3000), "lognormal": lambda: r.lognormal(0, 0.6, size=3000),
         "student_t": lambda: r.standard_t(3, size=3000)}[draw]()
    X = x[:, None]
    labels, model = mixture_labels(X)
    sep = gt.separation_test(X, labels, np.random.default_rng(4), model=model)  # as the cluster tool calls it
    boot = gt.bootstrap_lr_test(gt.power_transformed(X), 2, np.random.default_rng(5))
    separated, p, _ = gt.decide(sep, boot)
    assert not separated and p > 0.01


def test_two_dimensional_overlap_on_the_discriminant_direction():
    r = np.random.default_rng(5)
    n = 2000
    lab = (r.random(n) < 0.5).astype(int)
    X = r.normal(size=(n, 3)) + np.outer(lab, [2.5, 2.5, 0.0])
    labels, _ = mixture_labels(X)
    assert gt.separation_test(X, labels, np.random.default_rng(6))["separated"]
    Y = r.normal(size=(n, 3)) @ np.array([[1, 0.5, 0], [0, 1, 0], [0, 0, 1.0]])
    labels, _ = mixture_labels(Y)
    assert not gt.separation_test(Y, labels, np.random.default_rng(7))["separated"]


def test_components_tiling_a_flat_population_fail_the_predictive_valley_check():
    r = np.random.default_rng(11)
    U = r.uniform(0, 10, 3000)[:, None]
    labels, model = mixture_labels(U, k=4)
    sep = gt.separation_test(U, labels, np.random.default_rng(1), model=model)
    check = gt.predictive_valley_check(U, model, sep, np.random.default_rng(2))
    assert not check["consistent"] and check["valley_ratio"] > check["simulated_median"]
    boot = {"p_value": 1e-9, "predictive": check}  # the likelihood ratio rejects one Gaussian: it must not count
    assert not gt.decide(sep, boot)[0]
    X, _ = two_populations(3.2, n=3000, seed=12)
    labels, model = mixture_labels(X)
    sep = gt.separation_test(X, labels, np.random.default_rng(1), model=model)
    assert gt.predictive_valley_check(X, model, sep, np.random.default_rng(2))["consistent"]


@pytest.mark.parametrize("draw", ["uniform", "triangular"])
def test_one_flat_topped_population_is_not_called_overlapping_populations(make_session, draw):
    r = np.random.default_rng(13)
    x = r.uniform(0, 10, 1500) if draw == "uniform" else r.triangular(0, 5, 10, 1500)
    res = call_tool(make_session(pd.DataFrame({"x": x})), "cluster", {"columns": ["x"], "method": "gmm"})
    assert res.ok, res.error
    assert res.summary["verdict"] not in ("groups", "overlapping"), res.summary["reason"]
    assert not [f for f in res.findings if f["kind"] == "group"]


def test_cluster_reports_overlapping_populations(make_session):
    X, truth = two_populations(3.2, n=1500, seed=8)
    r = np.random.default_rng(9)
    df = pd.DataFrame({"colour": X[:, 0]})
    res = call_tool(make_session(df), "cluster", {"columns": ["colour"], "method": "gmm"})
    assert res.ok, res.error
    assert res.summary["verdict"] in ("overlapping", "groups")
    group = [f for f in res.findings if f["kind"] == "group"]
    assert group and group[0]["stats"].get("separation_test")
    assert any(t[0] == "cluster:separation" for t in res.tests)
    skewed = pd.DataFrame({"x": r.gamma(2.0, size=1500)})
    res = call_tool(make_session(skewed), "cluster", {"columns": ["x"], "method": "gmm"})
    assert res.ok and not [f for f in res.findings if f["kind"] == "group"]


def test_subspace_search_finds_a_planted_clump(make_session):
    from serendip.tools.synthetic import subspace_clump_table

    df, truth = subspace_clump_table(n=3000, seed=0)
    session = make_session(df)
    res = call_tool(session, "subspace", {})
    assert res.ok, res.error
    groups = [f for f in res.findings if f["kind"] == "group"]
    assert groups and set(groups[0]["columns"]) == {"pm_x", "pm_y"}
    s = groups[0]["stats"]
    assert s["contrast"] > 5 and s["stability"] > 0.6 and s["p_value"] < 1e-6
    member = session.load_artifact(groups[0]["labels"]) == 0
    planted = truth["groups"] == 1
    f1 = 2 * (member & planted).sum() / (member.sum() + planted.sum())
    assert f1 > 0.8


def test_subspace_search_on_a_null_table(make_session):
    r = np.random.default_rng(11)
    df = pd.DataFrame({f"c{j}": r.standard_t(4, size=2000) for j in range(6)})
    df["c1"] = df["c0"] * 0.8 + r.normal(scale=0.5, size=2000)  # a trend is not a clump
    res = call_tool(make_session(df), "subspace", {})
    assert res.ok, res.error
    assert not [f for f in res.findings if f["kind"] == "group"]
    assert set(res.summary["unrelated_columns"]) >= {"c2", "c3", "c4", "c5"}


def test_subspace_budget_is_stated(make_session):
    r = np.random.default_rng(12)
    latent = r.normal(size=400)
    df = pd.DataFrame({f"c{j}": latent + 0.5 * r.normal(size=400) for j in range(12)})
    res = call_tool(make_session(df), "subspace", {"max_pairs": 5})
    assert res.ok, res.error
    assert res.summary["n_pairs_searched"] == 5 and res.summary["n_pairs_skipped"] == 66 - 5


def test_rank_mutual_information_sees_dependence():
    r = np.random.default_rng(13)
    x = r.normal(size=3000)
    X = np.column_stack([x, x ** 2 + 0.1 * r.normal(size=3000), r.normal(size=3000)])
    mi, p = ss.rank_mutual_information(X)
    assert p[0, 1] < 1e-10 and p[0, 2] > 1e-3 and p[1, 2] > 1e-3 and mi[0, 1] > mi[0, 2]


def test_each_clump_has_its_own_labels(make_session):
    r = np.random.default_rng(21)
    n = 3000
    x, y = r.normal(size=n), r.normal(size=n)
    x[:90], y[:90] = r.normal(3.0, 0.05, 90), r.normal(3.0, 0.05, 90)
    x[90:180], y[90:180] = r.normal(-3.0, 0.05, 90), r.normal(-3.0, 0.05, 90)
    res = call_tool(make_session(pd.DataFrame({"x": x, "y": y, "z": x + r.normal(size=n)})), "subspace", {})
    labels = [f["labels"] for f in res.findings]
    assert len(labels) == len(set(labels))


@pytest.mark.parametrize("draw", ["gamma", "lognormal"])
def test_ashman_d_comes_from_the_components_not_the_halves(draw):
    # Any population cut in two leaves halves ~2.5 sd apart; the fitted components of one skewed population
    # overlap (D < 2), those of two populations do not.
    r = np.random.default_rng(12)
    x = {"gamma": lambda: r.gamma(2.0, size=1500), "lognormal": lambda: r.lognormal(0, 0.6, size=1500)}[draw]()
    X = ((x - x.mean()) / x.std())[:, None]
    labels, model = mixture_labels(X)
    assert gt.separation_test(X, labels, np.random.default_rng(1))["min_ashman_d"] > 2
    assert gt.separation_test(X, labels, np.random.default_rng(1), model=model)["min_ashman_d"] < 2
    Y, _ = two_populations(3.0, n=1500, seed=13)
    labels, model = mixture_labels(Y)
    assert gt.separation_test(Y, labels, np.random.default_rng(1), model=model)["min_ashman_d"] > 2
