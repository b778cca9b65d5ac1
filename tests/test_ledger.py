"""The findings ledger: run-wide q-values, thresholds, dedupe, record/dismiss, ranking."""

import numpy as np
import pytest

from serendip.agent.ledger import Ledger
from serendip.tools.engine.result import ToolResult
from serendip.tools.stats import bh_qvalues


def trend(a, b, effect, p):
    return {"kind": "trend", "title": f"{a} vs {b}", "columns": [a, b],
            "stats": {"method": "spearman", "effect": effect, "sign": int(np.sign(effect)), "n": 100,
                      "p_value": p, "q_value": p}, "evidence": []}


def test_bh_matches_reference():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    q = bh_qvalues(p)
    assert np.isnan(q[-1])
    np.testing.assert_allclose(q[:4], [0.02, 0.04, 0.04, 0.02])


def test_run_wide_q_and_thresholds():
    led = Ledger()
    led.add_result(ToolResult(id="R1", findings=[trend("a", "b", 0.5, 1e-6), trend("c", "d", 0.05, 1e-4)],
                              tests=[["a|b", 1e-6], ["c|d", 1e-4]] + [[f"x{i}", 0.5] for i in range(98)]))
    led.add_result(ToolResult(id="R2", findings=[trend("e", "f", 0.3, 0.01)], tests=[["e|f", 0.01]]))
    found = led.final_findings()
    # 'c|d' is too weak an effect; 'e|f' is not significant after adjusting over all 101 tests.
    assert [f["columns"] for f in found] == [["a", "b"]]
    assert found[0]["stats"]["q_value"] == pytest.approx(1e-6 * 101)
    assert found[0]["id"] == "F1" and found[0]["evidence"] == []


def test_record_dismiss_and_only_recorded():
    led = Ledger()
    ids = led.add_result(ToolResult(id="R1", findings=[trend("a", "b", 0.5, 1e-9), trend("a", "c", -0.6, 1e-9)],
                                    tests=[["a|b", 1e-9], ["a|c", 1e-9]]))
    led.record(ids[0], title="A rises with B", note="as expected")
    led.dismiss(ids[1], "a known calibration effect")
    found = led.final_findings(only_recorded=True)
    assert len(found) == 1 and found[0]["title"] == "A rises with B" and found[0]["interpretation"] == "as expected"
    assert [f["candidate"] for f in led.final_findings()] == [ids[0]]  # the dismissed one stays out
    with pytest.raises(KeyError, match="no candidate 'C9'"):
        led.record("C9")


def test_groups_need_stability_and_rank_by_it():
    led = Ledger()
    g = {"kind": "group", "title": "g", "columns": ["a"], "labels": "R1_labels",
         "stats": {"n_groups": 2, "sizes": [5, 5], "stability": 0.9, "method": "gmm"}}
    weak = {**g, "labels": "R1_other", "stats": {**g["stats"], "stability": 0.3, "method": "kmeans"}}
    led.add_result(ToolResult(id="R1", findings=[g, weak]))
    found = led.final_findings()
    assert [f["labels"] for f in found] == ["R1_labels"]
