"""The eval scorer on hand-made output folders (findings.json + rows.csv)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from serendip.evals.anonymise import anonymise
from serendip.evals.cases import ThresholdSpec
from serendip.evals.scorer import base_column, group_score, outlier_scores, read_output, row_values, score
from serendip.evals.truth import GroupTruth, OutlierTruth, TrendTruth, Truth


def write_output(folder, findings, rows: dict | None = None, n_rows: int = 0, status: str | None = "completed"):
    """A contract output folder with the given findings and rows.csv columns."""
    folder.mkdir(parents=True, exist_ok=True)
    numbered = [{"id": f"F{i}", "title": "", "summary": "", "labels": None, "evidence": [], "figures": [],
                 "novelty": "candidate", "score": 0.5, **f} for i, f in enumerate(findings, start=1)]
    run = {"model": "hand", "seed": 0, "goal": ""}
    if status:
        run["exit_status"] = status
    doc = {"schema": "serendip.findings/1", "dataset": {"path": "t.csv", "sha256": "", "n_rows": n_rows,
                                                         "n_columns": 0}, "run": run, "findings": numbered}
    (folder / "findings.json").write_text(json.dumps(doc), encoding="utf-8")
    data = {"row": np.arange(n_rows)}
    data.update(rows or {})
    pd.DataFrame(data).to_csv(folder / "rows.csv", index=False)
    return folder


def trend(a, b, sign, q=1e-10, **stats):
    return {"kind": "trend", "columns": [a, b],
            "stats": {"method": "spearman", "effect": 0.5 * sign, "sign": sign, "n": 100, "p_value": q, "q_value": q,
                      **stats}}


def group(labels, stability=0.9):
    return {"kind": "group", "columns": ["x"], "labels": labels,
            "stats": {"n_groups": 2, "sizes": [1, 1], "stability": stability, "method": "gmm"}}


def outlier(labels):
    return {"kind": "outlier", "columns": ["x"], "labels": labels, "stats": {"n_flagged": 1, "method": "iforest"}}


def check(result, name):
    return next(c for c in result["checks"] if c["name"] == name)


@pytest.fixture
def trends_truth():
    return Truth(case="t", n_rows=10, columns=["a", "b", "c", "d", "noise1", "noise2"],
                 trends=[TrendTruth(("a", "b"), 1), TrendTruth(("c", "d"), -1)], negative_controls=["noise1", "noise2"])


# ---------------------------------------------------------------------- trends
def test_perfect_trends_pass(tmp_path, trends_truth):
    out = write_output(tmp_path / "o", [trend("b", "a", 1), trend("c", "d", -1)], n_rows=10)
    r = score(out, trends_truth)
    assert r["passed"] and r["status"] == "pass"
    assert r["metrics"]["trend_recall"] == 1.0
    assert r["metrics"]["false_discoveries"] == 0 and r["metrics"]["wrong_sign"] == 0
    assert r["metrics"]["trends"][0]["findings"] == ["F1"]


def test_partial_recall_fails(tmp_path, trends_truth):
    out = write_output(tmp_path / "o", [trend("a", "b", 1), trend("c", "d", -1, q=0.2)], n_rows=10)
    r = score(out, trends_truth)
    assert r["metrics"]["trend_recall"] == 0.5
    assert not r["passed"]
    assert "c ~ d (-)" in check(r, "trend recall")["detail"]


def test_wrong_sign_is_not_recall_and_fails(tmp_path, trends_truth):
    out = write_output(tmp_path / "o", [trend("a", "b", -1), trend("c", "d", -1)], n_rows=10)
    r = score(out, trends_truth)
    assert r["metrics"]["trend_recall"] == 0.5
    assert r["metrics"]["wrong_sign"] == 1
    assert not check(r, "wrong-sign trends")["passed"]


def test_sign_falls_back_to_effect_and_missing_q_is_not_significant(tmp_path, trends_truth):
    f1 = trend("a", "b", 1)
    del f1["stats"]["sign"]
    f2 = trend("c", "d", -1)
    del f2["stats"]["q_value"]
    r = score(write_output(tmp_path / "o", [f1, f2], n_rows=10), trends_truth)
    assert [t["found"] for t in r["metrics"]["trends"]] == [True, False]


def test_non_monotonic_dependence_has_no_sign(tmp_path, trends_truth):
    xi = trend("c", "d", 1, method="chatterjee_xi", monotonic=False)
    r = score(write_output(tmp_path / "o", [trend("a", "b", 1), xi], n_rows=10), trends_truth)
    assert r["metrics"]["trend_recall"] == 0.5 and r["metrics"]["wrong_sign"] == 0


def test_negative_control_trend_is_a_false_discovery(tmp_path, trends_truth):
    findings = [trend("a", "b", 1), trend("c", "d", -1), trend("log10_noise2", "a", 1, q=0.01),
                trend("noise1", "c", 1, q=0.3)]
    r = score(write_output(tmp_path / "o", findings, n_rows=10), trends_truth)
    assert r["metrics"]["false_discoveries"] == 1
    assert r["metrics"]["false_discovery_findings"] == ["F3"]
    assert not r["passed"]


def test_null_table_counts_significant_trends_and_stable_groups(tmp_path):
    truth = Truth(case="null", n_rows=6, columns=["n1", "n2", "n3"], negative_controls=["n1", "n2", "n3"],
                  null_table=True)
    findings = [trend("n1", "n2", 1, q=0.01), trend("n2", "n3", 1, q=0.5), group("g1", stability=0.9),
                group("g2", stability=0.2), {"kind": "group", "columns": [], "labels": "g3", "stats": {}}]
    rows = {"g1": [0, 0, 0, 1, 1, 1], "g2": [0, 1, 0, 1, 0, 1], "g3": [0, 1, 1, 1, 1, 1]}
    r = score(write_output(tmp_path / "o", findings, rows, n_rows=6), truth)
    assert r["metrics"]["false_discovery_findings"] == ["F1", "F3", "F5"]
    assert not r["passed"]
    clean = score(write_output(tmp_path / "p", [trend("n1", "n2", 1, q=0.5)], n_rows=6), truth)
    assert clean["passed"] and clean["metrics"]["false_discoveries"] == 0


# ---------------------------------------------------------------------- derived columns
@pytest.mark.parametrize("name, base, controls", [
    ("mass", "mass", set()),
    ("log10_mass", "mass", set()),
    ("asinh_rank_mass", "mass", set()),
    ("log10_mass_derived", "mass", set()),
    ("resid_sfr_vs_mass", "sfr", {"mass"}),
    ("resid_log10_sfr_vs_log10_mass", "sfr", {"mass"}),
    ("resid_sfr_vs_mass_gas_mass", "sfr", {"mass", "gas_mass"}),
    ("log10_resid_sfr_vs_mass", "sfr", {"mass"}),
    ("resid_a_vs_b_vs_mass", "a_vs_b", {"mass"}),   # a column whose own name contains '_vs_'
    ("log10_already", "log10_already", set()),      # a real column is never rewritten
    ("unknown_thing", "unknown_thing", set()),
])
def test_base_column_mapping(name, base, controls):
    known = ["mass", "sfr", "gas_mass", "a_vs_b", "log10_already"]
    assert base_column(name, known) == (base, frozenset(controls))


def test_trend_on_derived_columns_maps_back(tmp_path, trends_truth):
    findings = [trend("log10_a", "rank_b", 1), trend("asinh_d", "log10_c", -1)]
    r = score(write_output(tmp_path / "o", findings, n_rows=10), trends_truth)
    assert r["metrics"]["trend_recall"] == 1.0 and r["passed"]


def test_controlled_trend_needs_matching_controls(tmp_path):
    truth = Truth(case="c", n_rows=5, columns=["x", "y", "z", "type"],
                  trends=[TrendTruth(("x", "y"), -1), TrendTruth(("x", "y"), 1, controls=("type",), required=False),
                          TrendTruth(("y", "z"), 1, controls="any")])
    findings = [trend("resid_y_vs_z", "x", 1), trend("x", "y", 1, within=["type"]),
                trend("resid_z_vs_x", "resid_y_vs_x", 1)]
    r = score(write_output(tmp_path / "o", findings, n_rows=5), truth)
    found = {t["trend"]: t["found"] for t in r["metrics"]["trends"]}
    assert found == {"x ~ y (-)": False, "x ~ y (+) | type": True, "y ~ z (+) | any controls": True}
    assert r["metrics"]["wrong_sign"] == 0   # a controlled finding does not contradict the uncontrolled one


# ---------------------------------------------------------------------- groups
def test_ari_best_grouping_and_label_names_do_not_matter(tmp_path):
    labels = np.array([0] * 5 + [1] * 5 + [2] * 5)
    truth = Truth(case="g", n_rows=15, columns=["x"], groups=[GroupTruth("planted", labels, threshold=0.8)])
    renamed = np.array([7] * 5 + [3] * 5 + [0] * 5)
    rng = np.random.default_rng(0)
    rows = {"R1_gmm": rng.integers(0, 3, 15), "R2_km": renamed}
    r = score(write_output(tmp_path / "o", [group("R1_gmm"), group("R2_km")], rows, n_rows=15), truth)
    g = r["metrics"]["groups"]["planted"]
    assert g["best"] == pytest.approx(1.0) and g["finding"] == "F2"
    assert r["passed"]


def test_unassigned_rows_are_their_own_label_and_truth_minus_one_is_excluded():
    truth = np.array([0, 0, 0, 0, 1, 1, 1, 1, -1, -1])
    perfect = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0, 1])
    assert group_score(perfect, truth, "ari") == pytest.approx(1.0)
    abstaining = np.array([0, 0, -1, -1, 1, 1, -1, -1, 5, 5])
    from sklearn.metrics import adjusted_rand_score
    expected = adjusted_rand_score(truth[:8], abstaining[:8])
    assert group_score(abstaining, truth, "ari") == pytest.approx(expected)
    assert expected < 0.5


def test_target_f1_finds_the_class_among_groups():
    truth = np.array([1] * 4 + [0] * 6)
    pred = np.array([2, 2, 2, 0, 0, 0, 1, 1, 1, 1])
    # group 2 = three of the four targets, nothing else: F1 = 2*3 / (3 + 4)
    assert group_score(pred, truth, "target_f1", target=1) == pytest.approx(6 / 7)


def test_group_labels_column_missing_is_a_warning_and_a_fail(tmp_path):
    truth = Truth(case="g", n_rows=4, columns=["x"], groups=[GroupTruth("g", np.array([0, 0, 1, 1]), threshold=0.5)])
    r = score(write_output(tmp_path / "o", [group("nope")], n_rows=4), truth)
    assert not r["passed"] and any("nope" in w for w in r["warnings"])


def test_row_values_align_by_row_column_and_fill_missing():
    rows = pd.DataFrame({"row": [3, 0, 1, 99], "lab": [2, 1, np.nan, 5]})
    assert row_values(rows, "lab", 4).tolist() == [1, -1, -1, 2]
    assert row_values(rows, "other", 4) is None


# ---------------------------------------------------------------------- outliers and data quality
def test_outlier_precision_recall_f1():
    flags = np.zeros(20, dtype=int)
    flags[[1, 2, 3, 8, 9]] = 1
    s = outlier_scores(flags, np.array([1, 2, 3, 4]))
    assert (s["precision"], s["recall"]) == (pytest.approx(0.6), pytest.approx(0.75))
    assert s["f1"] == pytest.approx(6 / 9)


def test_best_outlier_finding_counts(tmp_path):
    truth = Truth(case="o", n_rows=10, columns=["x"], outliers=[OutlierTruth("giants", np.array([2, 5]), min_f1=0.6)])
    rows = {"R1_if": [0] * 10, "R2_off": [0, 0, 1, 0, 0, 1, 1, 0, 0, 0]}
    r = score(write_output(tmp_path / "o", [outlier("R1_if"), outlier("R2_off")], rows, n_rows=10), truth)
    o = r["metrics"]["outliers"]["giants"]
    assert o["finding"] == "F2" and o["f1"] == pytest.approx(0.8)
    assert r["passed"]


def test_data_quality_columns_named(tmp_path):
    truth = Truth(case="dq", n_rows=3, columns=["field", "b", "c"], data_quality=["field", "b"])
    dq = {"kind": "data_quality", "columns": ["log10_b"], "stats": {}}
    r = score(write_output(tmp_path / "o", [dq], n_rows=3), truth)
    assert r["metrics"]["dq_recall"] == 0.5 and not r["passed"]
    dq2 = {"kind": "data_quality", "columns": ["field", "c"], "stats": {}}
    assert score(write_output(tmp_path / "p", [dq, dq2], n_rows=3), truth)["passed"]


# ---------------------------------------------------------------------- run status and bad folders
def test_incomplete_run_fails_and_unstated_status_is_accepted(tmp_path, trends_truth):
    good = [trend("a", "b", 1), trend("c", "d", -1)]
    assert not score(write_output(tmp_path / "o", good, n_rows=10, status="error"), trends_truth)["passed"]
    assert score(write_output(tmp_path / "p", good, n_rows=10, status=None), trends_truth)["passed"]


def test_missing_or_broken_findings_is_an_error(tmp_path, trends_truth):
    assert score(tmp_path / "nothing", trends_truth)["status"] == "error"
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "findings.json").write_text("{not json", encoding="utf-8")
    r = score(tmp_path / "bad", trends_truth)
    assert r["status"] == "error" and "unreadable" in r["error"]


def test_read_output_warns_on_other_schema(tmp_path):
    folder = write_output(tmp_path / "o", [], n_rows=2)
    doc = json.loads((folder / "findings.json").read_text())
    doc["schema"] = "other.tool/3"
    (folder / "findings.json").write_text(json.dumps(doc))
    assert any("schema" in w for w in read_output(folder).warnings)


# ---------------------------------------------------------------------- anonymised variants
def _mixed_truth(n: int = 12) -> tuple[pd.DataFrame, Truth]:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"mass": rng.normal(size=n), "sfr": rng.normal(size=n), "noise": rng.normal(size=n)})
    truth = Truth(case="mix", n_rows=n, columns=["mass", "sfr", "noise"],
                  trends=[TrendTruth(("mass", "sfr"), 1, controls=("noise",))],
                  groups=[GroupTruth("g", np.array([0, 1, 2, -1] * (n // 4)), threshold=0.9)],
                  outliers=[OutlierTruth("o", np.array([1, 7]), min_f1=0.9)], data_quality=["noise"],
                  negative_controls=["noise"], goal="how does sfr depend on mass")
    return frame, truth


def test_anonymise_round_trip_restores_the_truth():
    frame, truth = _mixed_truth()
    anon_frame, anon, goal = anonymise(frame, truth, truth.goal, seed=3)
    assert list(anon_frame.columns) == ["c1", "c2", "c3"] and goal == "how does c2 depend on c1"
    assert anon.trends[0].columns == ("c1", "c2") and anon.trends[0].controls == ("c3",)
    # The values follow the rows: the truth's outlier rows hold the same values in both tables.
    assert np.allclose(np.sort(anon_frame["c1"].to_numpy()[anon.outliers[0].rows]), np.sort(frame["mass"].to_numpy()[[1, 7]]))
    labelled = anon.groups[0].labels
    for label in (0, 1, 2, -1):
        assert np.allclose(np.sort(anon_frame["c2"].to_numpy()[labelled == label]),
                           np.sort(frame["sfr"].to_numpy()[truth.groups[0].labels == label]))
    from serendip.evals.anonymise import row_permutation
    perm = row_permutation(len(frame), 3)
    inverse = np.argsort(perm)
    back = anon.remapped({"c1": "mass", "c2": "sfr", "c3": "noise"}, inverse, variant="plain")
    assert back.to_json() == truth.to_json()


def test_anonymised_output_scores_the_same(tmp_path):
    frame, truth = _mixed_truth()
    _, anon, _ = anonymise(frame, truth, seed=5)
    from serendip.evals.anonymise import row_permutation
    perm = row_permutation(len(frame), 5)
    groups = np.array([2, 0, 1, 1] * 3)
    flags = np.zeros(12, dtype=int)
    flags[[1, 4]] = 1
    plain_findings = [trend("resid_log10_sfr_vs_noise", "mass", 1), group("gl"), outlier("fl"),
                      {"kind": "data_quality", "columns": ["noise"], "stats": {}}]
    anon_findings = [trend("resid_log10_c2_vs_c3", "c1", 1), group("gl"), outlier("fl"),
                     {"kind": "data_quality", "columns": ["c3"], "stats": {}}]
    plain = score(write_output(tmp_path / "p", plain_findings, {"gl": groups, "fl": flags}, n_rows=12), truth)
    shuffled = score(write_output(tmp_path / "a", anon_findings, {"gl": groups[perm], "fl": flags[perm]}, n_rows=12), anon)
    def numbers(result):
        m = result["metrics"]
        return (result["passed"], [(c["value"], c["passed"]) for c in result["checks"]], m["trend_recall"],
                m["groups"]["g"]["best"], m["outliers"]["o"], m["dq_recall"], m["false_discoveries"])

    assert numbers(plain) == numbers(shuffled)
    assert shuffled["metrics"]["trends"][0]["trend"] == "c1 ~ c2 (+) | c3"
    assert plain["metrics"]["trend_recall"] == 1.0
    assert plain["metrics"]["outliers"]["o"]["recall"] == 0.5


def test_truth_json_round_trip(tmp_path):
    _, truth = _mixed_truth()
    truth.thresholds = ThresholdSpec(q_max=0.01)
    truth.save(tmp_path / "truth.json")
    assert Truth.load(tmp_path / "truth.json").to_json() == truth.to_json()


# ---------------------------------------------------------------------- known results
def test_found_literature_trends_must_be_labelled_known(tmp_path):
    truth = Truth(case="t", n_rows=10, columns=["mstar", "sfr", "x", "y"],
                  trends=[TrendTruth(("mstar", "sfr"), 1, known=True), TrendTruth(("x", "y"), 1)])
    good = score(write_output(tmp_path / "good", [{**trend("mstar", "sfr", 1), "novelty": "known"},
                                                  trend("x", "y", 1)]), truth)
    assert check(good, "known results labelled known")["passed"] and good["passed"]
    bad = score(write_output(tmp_path / "bad", [trend("mstar", "sfr", 1), trend("x", "y", 1)]), truth)
    c = check(bad, "known results labelled known")
    assert not c["passed"] and "F1 is 'candidate'" in c["detail"] and not bad["passed"]
    # not found: recall fails, the label check does not apply; anonymised truths never expect labels
    missing = score(write_output(tmp_path / "missing", [trend("x", "y", 1)]), truth)
    assert all(c["name"] != "known results labelled known" for c in missing["checks"])
    assert not any(t.known for t in Truth.from_json(truth.to_json()).remapped(
        {"mstar": "c1", "sfr": "c2", "x": "c3", "y": "c4"}, None, "anonymised").trends)
    assert Truth.from_json(truth.to_json()).trends[0].known
