"""The correlate tool: right effects and signs, honest significance, partial correlation, non-monotonic
dependence, censored columns, wide tables, and the vectorised statistics behind it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from conftest import shared_dataset
from serendip.tools.dependence import (average_ranks, corr_pvalues, pairwise_corr, rank_columns,
                                       residualize_columns, spearman_pair, xi_pairs)
from serendip.tools.engine.jsonsafe import SUMMARY_LIMIT, bound_summary, dumps, to_jsonable
from serendip.tools.engine.registry import call_tool
from serendip.tools.stats import bh_qvalues


def pair(result, a, b, key="top_pairs"):
    """The summary entry of pair {a, b}, or None."""
    for e in result.summary.get(key, []):
        if {e["x"], e["y"]} == {a, b}:
            return e
    return None


def planted_frame(n=800, seed=0):
    r = np.random.default_rng(seed)
    x = r.normal(size=n)
    return pd.DataFrame({
        "x": x,
        "up": x + r.normal(scale=0.8, size=n),
        "down": -x + r.normal(scale=0.8, size=n),
        "expx": np.exp(3 * x),          # monotonic, very non-linear
        "noise1": r.standard_t(3, size=n),
        "noise2": r.lognormal(size=n),
    })


# ----------------------------------------------------------------------------- vectorised statistics
def test_pairwise_corr_matches_pandas_with_missing_values():
    r = np.random.default_rng(1)
    X = r.normal(size=(300, 6))
    X[:, 1] += X[:, 0]
    X[:, 2] = np.exp(X[:, 0]) + r.normal(scale=0.1, size=300)
    X[r.random(X.shape) < 0.15] = np.nan
    df = pd.DataFrame(X)
    rho, n = pairwise_corr(X)
    np.testing.assert_allclose(rho, df.corr().to_numpy(), atol=1e-12)
    np.testing.assert_array_equal(n, df.notna().astype(int).T @ df.notna().astype(int))
    cross, _ = pairwise_corr(X, X[:, [3]])
    np.testing.assert_allclose(cross[:, 0], df.corr().to_numpy()[:, 3], atol=1e-12)
    # Exact pairwise Spearman agrees with pandas; the one-matrix approximation stays close.
    exact = spearman_pair(X[:, 0], X[:, 2])[0]
    assert exact == pytest.approx(df.corr("spearman").iloc[0, 2], abs=1e-12)
    approx, _ = pairwise_corr(rank_columns(X))
    assert np.nanmax(np.abs(approx - df.corr("spearman").to_numpy())) < 0.02


def test_ranks_and_pvalues_match_scipy():
    r = np.random.default_rng(2)
    x = np.round(r.normal(size=1000), 1)  # many ties
    np.testing.assert_allclose(average_ranks(x), sps.rankdata(x))
    y = x + r.normal(size=1000)
    rho, n = pairwise_corr(average_ranks(x)[:, None], average_ranks(y)[:, None])
    ref = sps.spearmanr(x, y)
    assert rho[0, 0] == pytest.approx(ref.statistic, abs=1e-12)
    assert corr_pvalues(rho, n)[0, 0] == pytest.approx(ref.pvalue, rel=1e-6)


def test_residualize_columns_removes_linear_dependence():
    r = np.random.default_rng(3)
    c = r.normal(size=(500, 2))
    y = np.column_stack([2 * c[:, 0] - c[:, 1] + r.normal(size=500), r.normal(size=500)])
    y[:20, 0] = np.nan
    res = residualize_columns(y, c)
    assert np.isnan(res[:20, 0]).all()
    for j in range(2):
        ok = ~np.isnan(res[:, j])
        assert abs(np.corrcoef(res[ok, j], c[ok, 0])[0, 1]) < 1e-10


def test_xi_finds_functional_dependence_and_is_calibrated_under_independence():
    r = np.random.default_rng(4)
    n = 600
    x = r.uniform(-1, 1, n)
    X = np.column_stack([x, x ** 2, np.sin(6 * x), r.normal(size=n)])
    X[r.random(X.shape) < 0.05] = np.nan
    xi, p, rho, used, _ = xi_pairs(X, np.array([0, 0, 0]), np.array([1, 2, 3]), np.random.default_rng(0))
    assert xi[0] > 0.7 and xi[1] > 0.5 and p[0] < 1e-10 and p[1] < 1e-10
    assert abs(rho[0]) < 0.15 and p[2] > 0.01
    assert used.min() >= 0.9 * 0.9 * n * 0.9
    # Under independence p-values are roughly uniform.
    Z = r.standard_t(2, size=(400, 40))
    ia, ib = np.triu_indices(40, 1)
    _, pz, _, _, _ = xi_pairs(Z, ia, ib, np.random.default_rng(1))
    assert 0.02 < np.mean(pz < 0.05) < 0.09


# ----------------------------------------------------------------------------- the tool
def test_planted_trends_found_with_right_sign(make_session):
    res = call_tool(make_session(planted_frame()), "correlate", {})
    assert res.ok, res.error
    up, down, expx = pair(res, "x", "up"), pair(res, "x", "down"), pair(res, "x", "expx")
    assert up["effect"] > 0.6 and down["effect"] < -0.6
    assert expx["effect"] == pytest.approx(1.0)      # Spearman sees the monotonic exp trend fully
    assert all(e["q"] <= 0.05 for e in (up, down, expx))
    assert pair(res, "noise1", "noise2") is None
    trends = {frozenset(f["columns"]): f for f in res.findings if f["kind"] == "trend"}
    f = trends[frozenset({"x", "down"})]
    assert f["stats"]["sign"] == -1 and f["stats"]["method"] == "spearman"
    assert set(f["stats"]) >= {"method", "effect", "sign", "n", "p_value", "q_value"}
    assert trends[frozenset({"x", "up"})]["stats"]["sign"] == 1
    # y = exp(x) is monotonic: not flagged as non-monotonic.
    assert pair(res, "x", "expx", key="non_monotonic") is None
    # Every pair's p-value is reported, and q-values are BH over them.
    corr_tests = [p for k, p in res.tests if k.startswith("correlate:spearman:")]
    assert len(corr_tests) == 15 == res.summary["pairs_tested"]
    q = bh_qvalues(corr_tests)
    assert min(q) == pytest.approx(min(e["q"] for e in res.summary["top_pairs"]), rel=1e-3)
    # Figures: heatmap plus scatter plots of the top pairs, files written.
    assert any("correlation_matrix" in f for f in res.figures) and len(res.figures) >= 2


def test_pearson_and_kendall(make_session):
    df = planted_frame(seed=5)
    pear = call_tool(make_session(df), "correlate", {"method": "pearson"})
    ken = call_tool(make_session(df), "correlate", {"method": "kendall", "columns": ["x", "up", "down"]})
    assert pear.ok and ken.ok, (pear.error, ken.error)
    assert pair(pear, "x", "up")["effect"] == pytest.approx(np.corrcoef(df.x, df.up)[0, 1], abs=1e-9)
    assert pair(pear, "x", "expx")["effect"] < 0.9  # linear r understates the exp trend
    ref = sps.kendalltau(df.x, df.down)
    assert pair(ken, "x", "down")["effect"] == pytest.approx(ref.statistic, abs=1e-12)
    assert pair(ken, "x", "down")["p"] == pytest.approx(ref.pvalue, rel=1e-6, abs=1e-300)


def test_non_monotonic_dependence_is_flagged(make_session):
    r = np.random.default_rng(6)
    x = r.uniform(-2, 2, 1500)
    df = pd.DataFrame({"x": x, "y": x ** 2 + r.normal(scale=0.2, size=1500), "z": r.normal(size=1500)})
    res = call_tool(make_session(df), "correlate", {})
    assert res.ok, res.error
    assert pair(res, "x", "y") is None                 # |rho| is small: not a monotonic trend
    flag = pair(res, "x", "y", key="non_monotonic")
    assert flag is not None and flag["xi"] > 0.5 and abs(flag["spearman"]) < 0.1
    assert pair(res, "x", "z", key="non_monotonic") is None
    f = [f for f in res.findings if f["stats"]["method"] == "chatterjee_xi"]
    assert len(f) == 1 and set(f[0]["columns"]) == {"x", "y"} and f[0]["figures"]
    assert any(k.startswith("correlate:chatterjee_xi:") for k, _ in res.tests)


def test_partial_correlation_removes_a_confounder(make_session):
    r = np.random.default_rng(7)
    n = 2000
    z = r.normal(size=n)
    df = pd.DataFrame({"a": z + r.normal(scale=0.7, size=n), "b": np.exp(z + r.normal(scale=0.7, size=n)), "z": z})
    raw = call_tool(make_session(df), "correlate", {"columns": ["a", "b"]})
    assert pair(raw, "a", "b")["effect"] > 0.5
    for method in ("spearman", "pearson"):
        res = call_tool(make_session(df), "correlate", {"columns": ["a", "b"], "control": ["z"], "method": method})
        assert res.ok, res.error
        assert res.summary["significant_pairs"] == 0
        e = pair(res, "a", "b", key="strongest_not_significant")
        assert abs(e["effect"]) < 0.06 and e["raw_effect"] > 0.4
        assert res.summary["controls"] == ["z"]
        assert any(k.startswith(f"correlate:{method}_partial:") for k, _ in res.tests)
        assert any(k.startswith(f"correlate:{method}:") for k, _ in res.tests)
    # A real partial relation survives and its finding carries both raw and partial stats.
    df["c"] = df["a"] + r.normal(scale=0.5, size=n)
    res = call_tool(make_session(df), "correlate", {"columns": ["a", "b", "c"], "control": ["z"]})
    f = [f for f in res.findings if set(f["columns"]) == {"a", "c"}][0]
    assert f["stats"]["method"] == "spearman_partial" and f["stats"]["effect"] > 0.5
    assert {"raw_effect", "raw_p_value", "raw_q_value", "controls"} <= set(f["stats"])


def test_target_mode_ranks_columns_against_one(make_session):
    res = call_tool(make_session(planted_frame(seed=8)), "correlate", {"target": "x"})
    assert res.ok, res.error
    assert res.summary["pairs_tested"] == 5 and res.summary["target"] == "x"
    assert all(e["y"] == "x" for e in res.summary["top_pairs"])
    assert [e["x"] for e in res.summary["top_pairs"]][0] == "expx"


def test_censored_column_reported_with_and_without_limits(make_session):
    r = np.random.default_rng(9)
    n = 400
    x = r.normal(size=n)
    y = x + r.normal(size=n)
    text = np.where(y < -0.5, "<-0.5", np.char.mod("%.4f", y))
    res = call_tool(make_session(pd.DataFrame({"x": x, "y": text, "z": r.normal(size=n)})), "correlate", {})
    assert res.ok, res.error
    assert res.summary["censored_columns"] == {"y": int((y < -0.5).sum())}
    assert any("limits" in w for w in res.summary["warnings"])
    e = pair(res, "x", "y")
    with_limits, without = e["effect_limits_as_values"], e["effect_without_limit_rows"]
    assert with_limits != without
    # The reported effect is the weaker of the two; both p-values are in tests.
    assert e["effect"] in (with_limits, without) and e["n"] in (n, int((y >= -0.5).sum()))
    assert sum(k.endswith(":x|y") and "spearman" in k for k, _ in res.tests) == 2
    f = [f for f in res.findings if set(f["columns"]) == {"x", "y"}][0]
    assert f["stats"]["censored_columns"] == ["y"]


@pytest.mark.slow
def test_no_false_discoveries_among_independent_heavy_tailed_columns(make_session):
    """60 independent skewed/heavy-tailed columns with 5% missing: at most one significant pair on average."""
    counts = []
    for seed in range(10):  # 17,700 pair tests under the null in all
        r = np.random.default_rng(100 + seed)
        n = 500
        cols = {}
        for j in range(60):
            kind = j % 3
            v = (r.lognormal(0, 1.5, n) if kind == 0 else r.standard_t(2, n) if kind == 1 else r.pareto(1.2, n) + 1)
            v[r.random(n) < 0.05] = np.nan
            cols[f"v{j}"] = v
        res = call_tool(make_session(pd.DataFrame(cols), seed=seed), "correlate", {})
        assert res.ok, res.error
        assert res.summary["pairs_tested"] == 1770
        counts.append(res.summary["significant_pairs"] + res.summary["n_non_monotonic"])
    assert np.mean(counts) <= 1.0, counts


def test_wide_table_is_vectorised_paged_and_bounded(make_session):
    r = np.random.default_rng(10)
    n, width = 300, 1000
    X = r.normal(size=(n, width))
    for j in range(0, 60, 2):  # 30 planted pairs
        X[:, j + 1] = X[:, j] * (1 if j % 4 else -1) + r.normal(scale=0.5, size=n)
    X[r.random(X.shape) < 0.03] = np.nan
    df = pd.DataFrame(X, columns=[f"feature_with_a_longish_name_{j:04d}" for j in range(width)])
    session = make_session(df)
    res = call_tool(session, "correlate", {})
    assert res.ok, res.error
    assert res.summary["pairs_tested"] == width * (width - 1) // 2 == len(res.tests)
    assert len(dumps(bound_summary(res.summary))) <= SUMMARY_LIMIT
    assert bound_summary(res.summary) == to_jsonable(res.summary)  # fits without the generic truncation
    assert len(res.for_model()) <= SUMMARY_LIMIT + 1500
    top = res.summary["top_pairs"]
    assert len(top) == 20 and res.summary["n_pages"] >= 2
    planted = {frozenset((f"feature_with_a_longish_name_{j:04d}", f"feature_with_a_longish_name_{j + 1:04d}"))
               for j in range(0, 60, 2)}
    assert all(frozenset((e["x"], e["y"])) in planted for e in top)
    assert 30 <= res.summary["significant_pairs"] <= 33
    assert any("skipped" in note for note in res.summary["notes"])
    page2 = call_tool(session, "correlate", {"page": 2})
    assert page2.ok and page2.summary["page"] == 2 and page2.findings == []
    shown2 = {frozenset((e["x"], e["y"])) for e in page2.summary["top_pairs"]}
    assert len(shown2) == res.summary["significant_pairs"] - 20 and len(shown2 & planted) >= 10


def test_errors_are_clear(make_session):
    df = pd.DataFrame({"a": np.arange(50.0), "b": np.ones(50), "cat": ["u", "v"] * 25})
    session = make_session(df)
    for args, needle in [({}, "at least two usable"),
                         ({"columns": ["cat", "a"]}, "role numeric"),
                         ({"columns": ["a", "bb"]}, "Did you mean"),
                         ({"target": "b"}, "constant"),
                         ({"method": "kendall", "control": ["a"]}, "partial Kendall"),
                         ({"method": "cubic"}, "must be one of")]:
        res = call_tool(session, "correlate", args)
        assert res.error and needle in res.error, (args, res.error)
    one = make_session(pd.DataFrame({"a": [1.0], "b": [2.0]}))
    assert "at least 3 rows" in call_tool(one, "correlate", {}).error
    ok = make_session(planted_frame())
    res = call_tool(ok, "correlate", {"page": 9})
    assert res.error and "'page'" in res.error


def test_deterministic_and_json_safe(make_session):
    df = planted_frame(seed=11)
    a = call_tool(make_session(df, seed=4), "correlate", {}, result_id="R1")
    b = call_tool(make_session(df, seed=4), "correlate", {}, result_id="R1")
    assert json.dumps(a.to_dict()["summary"]) == json.dumps(b.to_dict()["summary"])
    assert a.tests == b.tests
    json.dumps(a.to_dict())


@pytest.mark.realdata
def test_sdss_known_spearman_correlations(make_session):
    path = shared_dataset("sdss_bpt/emission_lines.csv")
    try:
        from serendip.tools.loading.load import load_table
        table = load_table(path)
        df = table.df
    except ImportError:  # pragma: no cover - the loader is optional here
        df = pd.read_csv(path)
    x, y, w = "log.AGN.NII.AGN.H_alpha..10.", "log.AGN.OIII.AGN.H_beta..10.", "log.AGN.EW_H_alpha..10."
    res = call_tool(make_session(df), "correlate", {})
    assert res.ok, res.error
    for a, b, expected in [(x, y, 0.53), (x, w, -0.77), (y, w, -0.52)]:
        assert pair(res, a, b)["effect"] == pytest.approx(expected, abs=0.02)
    assert res.summary["significant_pairs"] == 3 and len(res.findings) >= 3


@pytest.mark.realdata
def test_phangs_main_sequence_and_gas_with_missing_values(make_session):
    from serendip.tools.loading.load import load_table

    table = load_table(shared_dataset("phangs_galaxies/phangs_sample_table_v1p6.fits"))
    res = call_tool(make_session(table.df), "correlate", {"columns": ["props_mstar", "props_sfr", "mh2_phangs"]})
    assert res.ok, res.error
    ms = pair(res, "props_mstar", "props_sfr")
    gas = pair(res, "mh2_phangs", "props_sfr")
    assert ms["effect"] == pytest.approx(0.47, abs=0.02) and ms["n"] == 116
    assert gas["effect"] == pytest.approx(0.90, abs=0.02) and gas["n"] == 80


@pytest.mark.slow
def test_many_rows_with_missing_values_keep_the_rank_correlation(make_session):
    # Time targets at 1M x 20 live in `serendip bench` (evals/BENCH.md), not here.
    r = np.random.default_rng(12)
    X = r.lognormal(size=(200_000, 20))
    X[:, 1] = X[:, 0] * r.lognormal(size=200_000)
    X[r.random(X.shape) < 0.02] = np.nan
    session = make_session(pd.DataFrame(X, columns=[f"c{j}" for j in range(20)]))
    res = call_tool(session, "correlate", {})
    assert res.ok, res.error
    assert pair(res, "c0", "c1")["effect"] == pytest.approx(0.71, abs=0.03)
    assert res.summary["significant_pairs"] <= 3
