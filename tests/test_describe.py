"""The describe tool: correct statistics, transform suggestions, data-quality warnings and findings,
ranking and paging on wide tables, speed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from serendip.tools.engine.jsonsafe import SUMMARY_LIMIT, dumps, to_jsonable
from serendip.tools.engine.registry import call_tool


def entry(result, name):
    return next(e for e in result.summary["columns"] if e["name"] == name)


def messy_frame(n=1000, seed=0):
    r = np.random.default_rng(seed)
    x = r.normal(size=n)
    mostly_missing = r.normal(size=n)
    mostly_missing[r.random(n) < 0.8] = np.nan
    with_sentinel = r.normal(10, 1, size=n)
    with_sentinel[:30] = -99.0
    df = pd.DataFrame({
        "normal": x,
        "mass": 10 ** r.normal(10, 1, size=n),           # positive, spans decades -> log10
        "signed_heavy": r.standard_t(2, size=n),         # signed heavy tails -> asinh
        "serial": np.arange(n) + 5,                      # numeric but ID-like (name not id-like)
        "copy_of_normal": 3 * x + 1e-6 * r.normal(size=n),
        "constant": np.full(n, 4.0),
        "mostly_missing": mostly_missing,
        "with_sentinel": with_sentinel,
        "kind": r.choice(["spiral", "elliptical", "irregular"], p=[0.6, 0.3, 0.1], size=n),
    })
    return df


def test_numeric_statistics_are_correct(make_session):
    r = np.random.default_rng(1)
    v = r.lognormal(size=500)
    v[:50] = np.nan
    res = call_tool(make_session(pd.DataFrame({"v": v, "w": r.normal(size=500)})), "describe", {})
    assert res.ok, res.error
    e = entry(res, "v")
    ok = v[~np.isnan(v)]
    assert e["n"] == 450 and e["missing"] == pytest.approx(0.1)
    assert e["median"] == pytest.approx(np.median(ok), rel=1e-3)
    assert e["mean"] == pytest.approx(ok.mean(), rel=1e-3)
    assert e["std"] == pytest.approx(ok.std(ddof=1), rel=1e-3)
    assert e["q"] == pytest.approx(list(np.percentile(ok, [1, 5, 25, 50, 75, 95, 99])), rel=1e-3)
    assert e["iqr"] == pytest.approx(np.subtract(*np.percentile(ok, [75, 25])), rel=1e-3)
    assert e["mad"] == pytest.approx(np.median(np.abs(ok - np.median(ok))), rel=1e-3)
    assert e["skew"] == pytest.approx(sps.skew(ok), rel=1e-3)
    assert e["transform"] == "log10"
    assert "transform" not in entry(res, "w")


def test_warnings_transforms_and_quality_findings(make_session):
    res = call_tool(make_session(messy_frame()), "describe", {})
    assert res.ok, res.error
    warnings = {e["name"]: e.get("warnings", []) for e in res.summary["columns"]}
    assert entry(res, "mass")["transform"] == "log10"
    assert entry(res, "signed_heavy")["transform"] == "asinh"
    assert "transform" not in entry(res, "normal")
    assert "ID-like" in warnings["serial"]
    assert "constant" in warnings["constant"]
    assert any(w.startswith("mostly missing") for w in warnings["mostly_missing"])
    assert any(w.startswith("sentinels masked") for w in warnings["with_sentinel"])
    assert entry(res, "with_sentinel")["sentinel"] == pytest.approx(0.03)
    assert entry(res, "copy_of_normal")["near_duplicate_of"] == ["normal"]
    assert res.summary["near_duplicate_pairs"][0][:2] == ["normal", "copy_of_normal"]
    kind = entry(res, "kind")
    assert kind["levels"] == 3 and kind["top"][0][0] == "spiral"
    # Columns with warnings come first; clean ones last.
    names = [e["name"] for e in res.summary["columns"]]
    assert names.index("constant") < names.index("normal") and names[-1] == "kind"
    titles = " | ".join(f["title"] for f in res.findings)
    assert all(f["kind"] == "data_quality" for f in res.findings)
    for needle in ("Sentinel", "identifiers", "near-duplicate", "mostly missing"):
        assert needle in titles, titles
    assert "duplicated" not in titles
    md = res.markdown
    assert "| `serial` | numeric |" in md and "near-duplicate of `normal`" in md


def test_duplicated_rows_found(make_session):
    df = messy_frame(n=200).drop(columns=["serial"])
    df = pd.concat([df, df.iloc[:7]], ignore_index=True)
    res = call_tool(make_session(df), "describe", {})
    assert res.summary["duplicated_rows"] == 7
    dup = [f for f in res.findings if "duplicated" in f["title"]]
    assert dup and dup[0]["stats"]["n_duplicated"] == 7


def test_censored_fraction_and_load_warnings(make_session):
    r = np.random.default_rng(2)
    y = r.normal(size=300)
    text = np.where(y < -1, "<-1", np.char.mod("%.3f", y))
    res = call_tool(make_session(pd.DataFrame({"y": text, "z": r.normal(size=300)})), "describe", {})
    e = entry(res, "y")
    assert e["censored"] == pytest.approx((y < -1).mean())
    assert any(w.startswith("censored") for w in e["warnings"])


def test_wide_table_is_ranked_paged_and_bounded(make_session):
    r = np.random.default_rng(3)
    n, width = 400, 600
    data = {f"a_rather_long_feature_name_{j:04d}": r.normal(size=n) for j in range(width)}
    data["a_rather_long_feature_name_0300"] = np.full(n, 1.0)
    data["a_rather_long_feature_name_0450"] = data["a_rather_long_feature_name_0007"] * 2
    session = make_session(pd.DataFrame(data))
    res = call_tool(session, "describe", {"page_size": 25})
    assert res.ok, res.error
    assert res.summary["n_pages"] == 24 and res.summary["described_columns"] == width
    assert len(dumps(to_jsonable(res.summary))) <= SUMMARY_LIMIT  # fits without the generic truncation
    first = [e["name"] for e in res.summary["columns"][:3]]
    assert first[0] == "a_rather_long_feature_name_0300"
    assert set(first[1:]) == {"a_rather_long_feature_name_0007", "a_rather_long_feature_name_0450"}
    last = call_tool(session, "describe", {"page_size": 25, "page": 24})
    assert last.ok and len(last.summary["columns"]) == 25 and last.findings == []
    bad = call_tool(session, "describe", {"page_size": 25, "page": 25})
    assert bad.error and "'page'" in bad.error
    sub = call_tool(session, "describe", {"columns": ["a_rather_long_feature_name_0001"]})
    assert [e["name"] for e in sub.summary["columns"]] == ["a_rather_long_feature_name_0001"]


def test_errors_and_degenerate_tables(make_session):
    empty = make_session(pd.DataFrame({"a": pd.Series([], dtype=float)}))
    assert "no rows" in call_tool(empty, "describe", {}).error
    one = make_session(pd.DataFrame({"a": [1.0], "b": ["x"]}))
    assert "at least 2 rows" in call_tool(one, "describe", {}).error
    missing = make_session(pd.DataFrame({"a": [np.nan] * 30, "b": ["x"] * 30}))
    res = call_tool(missing, "describe", {})
    assert res.ok and "all values missing" in entry(res, "a")["warnings"]
    assert "constant" in entry(res, "b")["warnings"]
    assert "unknown column" in call_tool(missing, "describe", {"columns": ["zzz"]}).error


def test_deterministic_and_json_safe(make_session):
    df = messy_frame(seed=4)
    a = call_tool(make_session(df, seed=2), "describe", {}, result_id="R1")
    b = call_tool(make_session(df, seed=2), "describe", {}, result_id="R1")
    assert json.dumps(a.to_dict()["summary"]) == json.dumps(b.to_dict()["summary"])
    json.dumps(a.to_dict())


@pytest.mark.slow
def test_many_rows_of_heavy_tailed_columns_get_log10(make_session):
    # Time targets at 1M x 20 live in `serendip bench` (evals/BENCH.md), not here.
    r = np.random.default_rng(5)
    X = r.lognormal(size=(200_000, 20))
    X[r.random(X.shape) < 0.02] = np.nan
    session = make_session(pd.DataFrame(X, columns=[f"c{j}" for j in range(20)]))
    res = call_tool(session, "describe", {})
    assert res.ok, res.error
    assert all(e["transform"] == "log10" for e in res.summary["columns"])


def test_details_hold_every_column_for_planners(make_session):
    r = np.random.default_rng(6)
    data = {f"col_{j:03d}": r.normal(size=100) for j in range(120)}
    data["col_050"] = np.full(100, 2.0)
    res = call_tool(make_session(pd.DataFrame(data)), "describe", {"page_size": 10})
    assert len(res.summary["columns"]) == 10
    detailed = res.details["columns"]
    assert len(detailed) == 120 and detailed[0]["name"] == "col_050" and "median" in detailed[-1]
    assert res.to_dict()["details"]["columns"][5]["name"] == detailed[5]["name"]


def test_exact_copies_in_other_units_or_logs_are_marked_on_the_later_column(make_session):
    r = np.random.default_rng(4)
    flux = r.lognormal(size=500)
    flux[::50] = np.nan
    noisy = flux * (1 + 0.01 * r.normal(size=500))  # a second measurement: near-duplicate, not a copy
    df = pd.DataFrame({"flux": flux, "flux_mjy": 1000 * flux, "mag": -2.5 * np.log10(flux), "flux_again": noisy})
    res = call_tool(make_session(df), "describe", {})
    assert res.ok, res.error
    assert entry(res, "flux_mjy")["copy_of"] == "flux" and entry(res, "mag")["copy_of"] == "flux"
    assert "copy_of" not in entry(res, "flux") and "copy_of" not in entry(res, "flux_again")
    assert "copy (of flux)" in entry(res, "mag")["warnings"]
