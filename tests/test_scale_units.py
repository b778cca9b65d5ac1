"""Partitioned datasets (issue 15), the fast parts: sketches merged across partitions equal the statistics of
the whole column, the numpy isolation forest equals scikit-learn's, which inputs take the Dask way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from serendip.agent.scale.sketch import CoMoments, NumericSketch, TextSketch, sketch_arrays


def column_with_gaps(n: int, seed: int) -> np.ndarray:
    r = np.random.default_rng(seed)
    v = r.lognormal(mean=3.0, sigma=0.7, size=n)  # skewed, far from 0: power sums need their shift
    v[r.random(n) < 0.03] = np.nan
    v[r.random(n) < 0.01] = -999.0  # a sentinel at the bottom
    return v


def merged(parts: list[np.ndarray], shift: float) -> NumericSketch:
    sk = NumericSketch.of(parts[0], shift)
    for p in parts[1:]:
        sk = sk.merge(NumericSketch.of(p, shift))
    return sk


def test_merged_numeric_sketch_equals_the_whole_column():
    v = column_with_gaps(20_000, 0)
    parts = np.array_split(v, [1, 5_000, 5_003, 12_000])  # uneven, one of a single row
    s = merged(parts, shift=float(np.nanmedian(v[:100]))).summary()
    good = v[np.isfinite(v) & (v != -999.0)]
    assert s["n_rows"] == len(v) and s["n_missing"] == int(np.isnan(v).sum())
    assert s["sentinels"] == [-999.0] and s["n_sentinel"] == int((v == -999.0).sum()) and s["n"] == len(good)
    assert s["min"] == good.min() and s["max"] == good.max()
    assert s["mean"] == pytest.approx(good.mean(), rel=1e-12)
    assert s["std"] == pytest.approx(good.std(ddof=1), rel=1e-10)
    assert s["skewness"] == pytest.approx(sps.skew(good), rel=1e-8)
    assert s["excess_kurtosis"] == pytest.approx(sps.kurtosis(good), rel=1e-8)
    assert s["quantiles"] is None  # the digest saw the sentinel cells: no quantiles claimed


def test_digest_quantiles_are_close_in_rank():
    r = np.random.default_rng(1)
    v = r.normal(size=50_000)
    s = merged(np.array_split(v, 7), shift=0.0).summary()
    for q, x in s["quantiles"].items():
        assert abs(np.mean(v <= x) - float(q)) < 0.002, (q, x)


def test_pearson_from_merged_comoments_is_pairwise_complete():
    r = np.random.default_rng(2)
    n = 6_000
    a = r.normal(size=n) + 1e6  # a large offset: the shift keeps the sums well conditioned
    b = 0.6 * (a - 1e6) + r.normal(size=n)
    c = r.normal(size=n)
    X = np.column_stack([a, b, c])
    X[r.random((n, 3)) < 0.05] = np.nan
    shift = np.array([1e6, 0.0, 0.0])
    parts = np.array_split(X, 5)
    cm = CoMoments.of(parts[0], list("abc"), shift)
    for p in parts[1:]:
        cm = cm.merge(CoMoments.of(p, list("abc"), shift))
    expected = pd.DataFrame(X, columns=list("abc")).corr().to_numpy()
    assert np.allclose(cm.pearson(), expected, atol=1e-10)


def test_text_counts_merge_and_table_sketch_summary():
    t = TextSketch.of(["a", None, "b", "a"]).merge(TextSketch.of(["b", "c", None]))
    assert t.summary()["top"] == [["a", 2], ["b", 2], ["c", 1]] and t.n_missing == 2 and t.complete
    num = {"x": np.arange(10.0), "y": np.arange(10.0) * 2}
    a = sketch_arrays({k: v[:4] for k, v in num.items()}, {"f": list("abab")}, {"x": 0.0, "y": 0.0})
    b = sketch_arrays({k: v[4:] for k, v in num.items()}, {"f": list("aabbab")}, {"x": 0.0, "y": 0.0})
    s = a.merge(b).summary()
    assert s["n_rows"] == 10 and s["numeric"]["y"]["max"] == 18.0 and s["pearson"]["r"][0][1] == 1.0
    assert "pearson" in s["exact"] and any("t-digest" in q for q in s["approximate"])


def test_numpy_isolation_forest_scores_equal_scikit_learns():
    from sklearn.ensemble import IsolationForest

    from serendip.agent.scale.forest import export_forest, forest_scores

    r = np.random.default_rng(3)
    X = r.normal(size=(2_000, 3))
    X[:10] += 7
    forest = IsolationForest(n_estimators=50, random_state=0).fit(X)
    Y = np.vstack([X[:50], r.normal(scale=3, size=(500, 3))])
    assert np.allclose(forest_scores(export_forest(forest, 3), Y), -forest.score_samples(Y), atol=1e-12)


def test_group_model_assigns_new_rows_to_the_sample_groups():
    from serendip.agent.scale.scoring import apply_model, build_model

    r = np.random.default_rng(4)
    means = np.array([[0, 0], [8, 0], [0, 8]])
    truth = r.choice(3, size=3_000)
    pts = means[truth] + r.normal(size=(3_000, 2))
    sample = pd.DataFrame({"a": pts[:1_000, 0], "b": pts[:1_000, 1]})
    finding = {"id": "F1", "kind": "group", "columns": ["a", "b"], "stats": {"method": "gmm"}}
    model = build_model("R1_cluster", finding, None, sample, truth[:1_000], ["a", "b"], seed=0)
    labels, score, counts = apply_model(model, {"a": pts[1_000:, 0], "b": pts[1_000:, 1]}, 2_000)
    assert score is None and np.mean(labels == truth[1_000:]) > 0.99
    assert sum(counts.values()) == 2_000


def test_which_inputs_take_the_dask_way(tmp_path):
    from serendip.agent.scale.dataset import open_dataset, wants_dask

    df = pd.DataFrame({"a": np.arange(1_000.0), "s": ["x"] * 1_000})
    (tmp_path / "d").mkdir()
    df.iloc[:600].to_parquet(tmp_path / "d" / "p0.parquet", row_group_size=250)
    df.iloc[600:].to_parquet(tmp_path / "d" / "p1.parquet")
    df.to_csv(tmp_path / "t.csv")
    assert wants_dask(str(tmp_path / "d"), 1024) and wants_dask(str(tmp_path / "d" / "*.parquet"), 1024)
    assert not wants_dask(str(tmp_path / "t.csv"), 16)
    assert not wants_dask(str(tmp_path / "d" / "p1.parquet"), 1024)  # small: the ordinary way
    big = pd.DataFrame({f"c{i}": np.zeros(60_000) for i in range(5)})
    big.to_parquet(tmp_path / "big.parquet")
    assert wants_dask(str(tmp_path / "big.parquet"), 16)  # 60k x 5 x 8 B x 10 > 16 MiB
    ds = open_dataset(str(tmp_path / "d"))
    assert ds.n_rows == 1_000 and [p.offset for p in ds.parts] == [0, 250, 500, 600]
    assert ds.numeric == ["a"] and ds.text == ["s"]
