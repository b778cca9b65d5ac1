"""The outliers tool: planted global and off-relation outliers, a real leverage-outlier table, contracts."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from conftest import shared_dataset
from serendip.tools.engine.jsonsafe import SUMMARY_LIMIT, bound_summary, dumps
from serendip.tools.engine.registry import call_tool
from serendip.tools.engine.session import Session
from serendip.tools.engine.table import ColumnInfo, Table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def flags_of(session, res) -> np.ndarray:
    return session.load_artifact(res.summary["flag_artifact"]).astype(bool)


@pytest.fixture(scope="module")
def global_data():
    """2,000 Gaussian rows in 5 columns, 2% replaced by points 6-9 sigma out in random directions."""
    rng = np.random.default_rng(0)
    n, p = 2000, 5
    X = rng.normal(size=(n, p))
    truth = np.zeros(n, dtype=bool)
    idx = rng.choice(n, 40, replace=False)
    truth[idx] = True
    direction = rng.normal(size=(40, p))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    X[idx] = direction * rng.uniform(6, 9, size=(40, 1))
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(p)]), truth


@pytest.fixture(scope="module")
def relation_data():
    """y = 2x + small scatter; 30 rows moved off the line but inside both marginal ranges; 4 noise columns."""
    rng = np.random.default_rng(1)
    n = 2000
    x = rng.normal(size=n)
    y = 2 * x + rng.normal(scale=0.05, size=n)
    truth = np.zeros(n, dtype=bool)
    idx = rng.choice(np.flatnonzero(np.abs(x) < 1), 30, replace=False)
    truth[idx] = True
    y[idx] = 2 * x[idx] + rng.choice([-1, 1], 30) * rng.uniform(0.6, 1.2, 30)
    df = pd.DataFrame({"x": x, "y": y, **{f"noise{i}": rng.normal(size=n) for i in range(4)}})
    return df, truth


@pytest.mark.parametrize("method", ["isolation_forest", "mahalanobis"])
def test_planted_global_outliers_recovered(make_session, global_data, method):
    df, truth = global_data
    s = make_session(df)
    res = call_tool(s, "outliers", {"method": method})
    assert res.ok, res.error
    flags = flags_of(s, res)
    assert f1_score(truth, flags) >= 0.8
    assert res.summary["n_flagged"] == flags.sum()
    scores = s.load_artifact(res.summary["score_artifact"])
    assert scores.dtype.kind == "f" and np.isfinite(scores).all()
    assert scores[truth].mean() > scores[~truth].mean()


def test_lof_scores_planted_outliers_highest(make_session, global_data):
    df, truth = global_data
    s = make_session(df)
    res = call_tool(s, "outliers", {"method": "lof", "contamination": 0.02})
    assert res.ok, res.error
    assert res.summary["n_flagged"] == 40
    assert f1_score(truth, flags_of(s, res)) >= 0.8


def test_lof_on_a_big_table_uses_novelty_scoring(make_session):
    rng = np.random.default_rng(2)
    n = 25_000
    X = rng.normal(size=(n, 3))
    far = rng.choice(n, 20, replace=False)
    X[far] += 8
    s = make_session(pd.DataFrame(X, columns=list("abc")))
    res = call_tool(s, "outliers", {"method": "lof"})
    assert res.ok, res.error
    assert "sample of 10000 rows" in res.summary["how"]
    scores = s.load_artifact(res.summary["score_artifact"])
    assert np.isfinite(scores).all()
    assert flags_of(s, res)[far].mean() >= 0.9
    assert res.summary["fraction"] < 0.02


def test_off_relation_outliers_found_where_isolation_forest_fails(make_session, relation_data):
    df, truth = relation_data
    # The planted rows are ordinary in each column on its own.
    for col in ("x", "y"):
        lo, hi = np.percentile(df[col][~truth], [1, 99])
        assert df[col][truth].between(lo, hi).all()
    s = make_session(df)
    res = call_tool(s, "outliers", {"method": "off_relation", "x": "x", "y": "y"})
    assert res.ok, res.error
    assert f1_score(truth, flags_of(s, res)) >= 0.8
    forest = call_tool(s, "outliers", {"method": "isolation_forest"})
    assert flags_of(s, forest)[truth].mean() < 0.5

    (finding,) = res.findings
    assert finding["kind"] == "outlier" and finding["labels"] == res.summary["flag_artifact"]
    stats = finding["stats"]
    assert stats["method"] == "off_relation" and stats["n_flagged"] == res.summary["n_flagged"]
    assert stats["relation_columns"] == ["x", "y"]
    assert stats["relation_strength"] > 0.95 and stats["residual_threshold"] == 4.0
    assert finding["labels"] in s.artifact_names
    assert 0 <= finding["score"] <= 1 and finding["evidence"] == [res.id]

    ex = res.summary["top_examples"][0]
    assert truth[ex["row"]]
    assert ex["expected_y"] == pytest.approx(2 * df["x"][ex["row"]], abs=0.05)
    assert abs(ex["residual_sigma"]) > 4 and ex["relation"] == "y vs x"

    png = (s.workdir / res.figures[0]).read_bytes()
    assert png[:8] == PNG_MAGIC and len(png) > 1024


def test_off_relation_auto_picks_the_tight_pair(make_session, relation_data):
    df, truth = relation_data
    s = make_session(df)
    res = call_tool(s, "outliers", {"method": "off_relation"})
    assert res.ok, res.error
    tested = res.summary["relations_tested"]
    assert [(r["x"], r["y"]) for r in tested] == [("x", "y")]  # noise columns have no relation
    assert f1_score(truth, flags_of(s, res)) >= 0.8


def test_off_relation_follows_a_curve(make_session):
    rng = np.random.default_rng(4)
    n = 5000
    x = rng.uniform(-3, 3, n)
    y = np.sin(1.5 * x) + rng.normal(scale=0.03, size=n)
    truth = np.zeros(n, dtype=bool)
    idx = rng.choice(n, 40, replace=False)
    truth[idx] = True
    y[idx] = np.sin(1.5 * x[idx]) + rng.choice([-1, 1], 40) * rng.uniform(0.4, 0.8, 40)
    s = make_session(pd.DataFrame({"x": x, "y": y}))
    res = call_tool(s, "outliers", {"method": "off_relation", "x": "x", "y": "y"})
    assert res.ok, res.error
    relation = res.summary["relations_tested"][0]
    assert relation["fit"] == "binned_median"
    assert abs(relation["spearman"]) < 0.5 and relation["robust_r2"] > 0.9  # tight, though not monotonic
    assert f1_score(truth, flags_of(s, res)) >= 0.8
    assert res.findings and res.findings[0]["stats"]["fit"] == "binned_median"


def test_off_relation_fits_power_laws_in_log_space(make_session):
    rng = np.random.default_rng(7)
    n = 3000
    mass = 10 ** rng.uniform(-2, 2, n)
    radius = mass ** 0.5 * 10 ** rng.normal(scale=0.03, size=n)
    truth = np.zeros(n, dtype=bool)
    idx = rng.choice(n, 30, replace=False)
    truth[idx] = True
    radius[idx] *= 10 ** (rng.choice([-1, 1], 30) * 0.4)  # a factor 2.5 off: ordinary in linear units
    s = make_session(pd.DataFrame({"mass": mass, "radius": radius}))
    res = call_tool(s, "outliers", {"method": "off_relation", "x": "mass", "y": "radius"})
    assert res.ok, res.error
    assert res.summary["relations_tested"][0]["scale"] == "log10 x and y"
    assert f1_score(truth, flags_of(s, res)) >= 0.8
    ex = res.summary["top_examples"][0]
    assert ex["residual_unit"] == "dex" and abs(ex["residual"]) == pytest.approx(0.4, abs=0.1)
    assert ex["expected_y"] == pytest.approx(ex["x"] ** 0.5, rel=0.1)  # back in the column's units
    plain = call_tool(s, "outliers", {"method": "off_relation", "x": "mass", "y": "radius", "log_scale": "none"})
    assert plain.summary["relations_tested"][0]["scale"] == "linear"


def test_off_relation_without_any_relation(make_session):
    rng = np.random.default_rng(5)
    s = make_session(pd.DataFrame(rng.normal(size=(500, 4)), columns=list("abcd")))
    res = call_tool(s, "outliers", {"method": "off_relation"})
    assert res.ok, res.error
    assert res.summary["n_flagged"] == 0 and not res.findings
    assert "no tight relation" in res.summary["note"]


@pytest.mark.realdata
def test_stars_cyg_giants_are_flagged(make_session):
    df = pd.read_csv(shared_dataset("small/starsCYG.csv"))
    s = make_session(df)
    giants = np.array([11, 20, 30, 34]) - 1
    res = call_tool(s, "outliers", {"method": "mahalanobis", "columns": ["log.Te", "log.light"]})
    assert res.ok, res.error
    flagged = np.flatnonzero(flags_of(s, res))
    assert set(giants) <= set(flagged)
    assert len(flagged) <= 6  # the four giants (plus at most star 7 and one more), not the main sequence
    top_rows = [ex["row"] for ex in res.summary["top_examples"][:4]]
    assert set(top_rows) == set(giants)
    assert res.findings and res.findings[0]["stats"]["method"] == "mahalanobis"
    # The giants are cool (low log.Te): that is their most deviant feature.
    assert res.summary["top_examples"][0]["deviant"][0]["column"] == "log.Te"


def test_determinism(make_session, global_data, relation_data):
    for df, args in [(global_data[0], {"method": "isolation_forest"}), (global_data[0], {"method": "lof"}),
                     (global_data[0], {"method": "mahalanobis"}), (relation_data[0], {"method": "off_relation"})]:
        runs = []
        for _ in range(2):
            s = make_session(df, seed=7)
            res = call_tool(s, "outliers", args)
            runs.append((s.load_artifact(res.summary["flag_artifact"]), s.load_artifact(res.summary["score_artifact"]),
                         dumps(bound_summary(res.summary))))
        np.testing.assert_array_equal(runs[0][0], runs[1][0])
        np.testing.assert_array_equal(runs[0][1], runs[1][1])
        assert runs[0][2] == runs[1][2]


def test_contamination_flags_exactly_that_fraction(make_session, global_data):
    s = make_session(global_data[0])
    res = call_tool(s, "outliers", {"method": "isolation_forest", "contamination": 0.05})
    assert res.summary["n_flagged"] == 100
    assert res.findings  # 5% is still a small fraction
    res = call_tool(s, "outliers", {"method": "isolation_forest", "contamination": 0.2})
    assert res.summary["n_flagged"] == 400 and not res.findings  # 20% is a population, not outliers
    assert "Too many rows flagged" in res.summary["note"]


def test_artifacts_cover_every_table_row(make_session, global_data):
    df = global_data[0].copy()
    df.loc[3, "f1"] = np.nan
    s = make_session(df)
    assert call_tool(s, "select", {"expression": "f0 > -1"}).ok
    res = call_tool(s, "outliers", {"method": "isolation_forest"})
    flags = s.load_artifact(res.summary["flag_artifact"])
    scores = s.load_artifact(res.summary["score_artifact"])
    assert flags.dtype.kind == "i" and len(flags) == len(df) and set(np.unique(flags)) <= {0, 1}
    outside = np.setdiff1d(np.arange(len(df)), s.active_rows)
    assert (flags[outside] == 0).all() and np.isnan(scores[outside]).all()
    assert np.isnan(scores[3])
    assert res.summary["n_rows_dropped_missing"] == (1 if 3 in s.active_rows else 0)


def test_summary_is_bounded_on_a_wide_table(make_session):
    rng = np.random.default_rng(6)
    n, p = 600, 80
    X = rng.normal(size=(n, p))
    X[:30] += rng.normal(scale=6, size=(30, p))
    names = [f"a rather long column name number {i} with units [erg s^-1 cm^-2]" for i in range(p)]
    s = make_session(pd.DataFrame(X, columns=names))
    res = call_tool(s, "outliers", {"method": "isolation_forest", "max_flagged_examples": 50})
    assert res.ok, res.error
    assert len(dumps(bound_summary(res.summary))) <= SUMMARY_LIMIT
    assert len(res.summary["columns"]) <= 21
    assert len(res.summary["top_examples"][0]["deviant"]) == 3
    assert len(res.for_model()) < SUMMARY_LIMIT + 1000


def test_global_figure_and_markdown(make_session, global_data):
    s = make_session(global_data[0])
    res = call_tool(s, "outliers", {"method": "mahalanobis", "max_flagged_examples": 3})
    png = (s.workdir / res.figures[0]).read_bytes()
    assert png[:8] == PNG_MAGIC and len(png) > 1024
    table_rows = [line for line in res.markdown.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(table_rows) == 3
    assert len(res.summary["top_examples"]) == 3
    assert len(res.details["flagged_examples"]) == res.summary["n_flagged"]  # all of them (up to 200)
    assert res.details["flagged_examples"][:3] == res.summary["top_examples"]
    assert res.findings[0]["figures"] == res.figures


@pytest.mark.parametrize("args, message", [
    ({"contamination": 0.1, "threshold": 3}, "not both"),
    ({"method": "isolation_forest", "x": "f0", "y": "f1"}, "apply only to method='off_relation'"),
    ({"method": "off_relation", "x": "f0"}, "go together"),
    ({"method": "off_relation", "x": "f0", "y": "f0"}, "two different columns"),
    ({"method": "off_relation", "x": "f0", "y": "kind"}, "needs a column of role numeric"),
    ({"method": "lof", "threshold": 50.5, "contamination": None}, None),
    ({"method": "mahalanobis", "threshold": 40}, "in [2.0, 30.0]"),
    ({"method": "lof", "threshold": 1.01}, "in [1.05, 100.0]"),
    ({"threshold": 0.5}, "in (1, 100]"),
    ({"contamination": 0.9}, "in (0, 0.5]"),
    ({"method": "zscore"}, "must be one of"),
    ({"columns": ["f0", "kind"]}, "needs a column of role numeric"),
    ({"columns": ["const", "empty"]}, "no usable numeric column"),
    ({"columns": ["f00"]}, "Did you mean"),
    ({"max_flagged_examples": 0}, "in [1, 50]"),
])
def test_bad_arguments(make_session, global_data, args, message):
    df = global_data[0].assign(kind=["A", "B"] * 1000, const=1.0, empty=np.nan)
    res = call_tool(make_session(df), "outliers", args)
    if message is None:
        assert res.ok, res.error
        return
    assert not res.ok
    assert message in res.error, res.error


@pytest.mark.parametrize("df", [
    pd.DataFrame({"a": pd.Series([], dtype=float), "b": pd.Series([], dtype=float)}),
    pd.DataFrame({"a": [1.0], "b": [2.0]}),
    pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [2.0, 1.0, 0.0]}),
])
@pytest.mark.parametrize("method", ["isolation_forest", "lof", "mahalanobis", "off_relation"])
def test_tiny_tables_give_input_errors(make_session, df, method):
    res = call_tool(make_session(df), "outliers", {"method": method})
    assert not res.ok
    assert "rows" in res.error or "constant" in res.error


def test_mahalanobis_needs_more_rows_than_columns(make_session):
    rng = np.random.default_rng(8)
    res = call_tool(make_session(pd.DataFrame(rng.normal(size=(15, 10)))), "outliers", {"method": "mahalanobis"})
    assert not res.ok and "at least 22 rows" in res.error


@pytest.mark.slow
def test_large_table_is_fitted_on_a_sample_and_scores_every_row(tmp_path):
    # Time and memory targets at 1M x 20 live in `serendip bench` (evals/BENCH.md), not here.
    rng = np.random.default_rng(9)
    n, p = 200_000, 20
    X = rng.normal(size=(n, p))
    X[:, 1] = 2 * X[:, 0] + 0.1 * X[:, 1]
    df = pd.DataFrame(X, columns=[f"c{i}" for i in range(p)])
    s = Session(Table(df=df, info={c: ColumnInfo(name=c) for c in df.columns}), tmp_path, seed=0)
    for args in [{"method": "isolation_forest"}, {"method": "mahalanobis"}, {"method": "off_relation"}]:
        res = call_tool(s, "outliers", args)
        assert res.ok, res.error
        assert res.summary["fraction"] < 0.01
