"""Typed contracts: findings.json validated on write and on read against its JSON Schema, and the
provenance of derived columns recorded as data by the session and read by the ledger and the scorer."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pandas as pd
import pytest

from serendip.agent.dispatch import Dispatcher
from serendip.agent.ledger import Ledger
from serendip.agent.report import write_findings_json
from serendip.agent.transcript import Transcript
from serendip.evals.scorer import OutputError, read_output, score
from serendip.evals.truth import TrendTruth, Truth
from serendip.tools.engine.contracts import (ContractError, Finding, FindingsDocument, PcaSummary, findings_json_schema,
                                      parse_findings_document, read_summary)
from serendip.tools.engine.local_runner import LocalRunner
from serendip.tools.engine.session import Session
from serendip.tools.engine.table import Table

DATASET = {"path": "t.csv", "sha256": "abc", "n_rows": 300, "n_columns": 3}
RUN = {"model": "autopilot", "seed": 0, "goal": "", "exit_status": "completed"}


def frame(n: int = 300) -> pd.DataFrame:
    r = np.random.default_rng(7)
    mass = r.lognormal(0, 1, n)
    return pd.DataFrame({"mass": mass, "sfr": 3 * np.log10(mass) + r.normal(0, 0.3, n), "age": r.normal(size=n)})


@pytest.fixture
def run(tmp_path):
    runner = LocalRunner(None, tmp_path, table=Table.from_dataframe(frame())).start()
    ledger = Ledger()
    return Dispatcher(runner, ledger, Transcript(tmp_path)), ledger


def test_findings_schema_round_trip(tmp_path, run):
    dispatcher, ledger = run
    assert dispatcher.call("correlate", {"columns": ["mass", "sfr", "age"]}, 1).ok
    findings = ledger.final_findings()
    assert findings
    write_findings_json(tmp_path, findings, DATASET, RUN)
    written = json.loads((tmp_path / "findings.json").read_text())
    schema = findings_json_schema()
    assert schema["$id"] == "serendip.findings/1"
    assert set(schema["$defs"]["Finding"]["properties"]["kind"]["enum"]) == {"trend", "group", "outlier", "data_quality"}
    jsonschema.validate(written, schema)  # the emitted JSON Schema accepts what we write
    doc = parse_findings_document(written)
    assert [f.id for f in doc.findings] == [f["id"] for f in findings]
    again = FindingsDocument.model_validate(doc.to_json_dict())
    assert again == doc  # typed -> JSON -> typed is lossless
    assert read_output(tmp_path).findings == written["findings"]


@pytest.mark.parametrize("broken,where", [
    ({"kind": "banana"}, "findings.0.kind"),
    ({"kind": "trend", "columns": "mass"}, "findings.0.columns"),
    ({"kind": "trend", "stats": {"q_value": "tiny"}}, "findings.0.stats.q_value"),
    ({"kind": "group", "novelty": "amazing"}, "findings.0.novelty"),
])
def test_a_broken_document_is_refused_on_write_and_on_read(tmp_path, broken, where):
    with pytest.raises(ContractError, match=where.replace(".", r"\.")):
        write_findings_json(tmp_path, [{"id": "F1", **broken}], DATASET, RUN)
    assert not (tmp_path / "findings.json").exists()
    (tmp_path / "findings.json").write_text(json.dumps({"schema": "serendip.findings/1", "dataset": DATASET,
                                                        "run": RUN, "findings": [{"id": "F1", **broken}]}))
    with pytest.raises(OutputError, match="does not follow the findings contract"):
        read_output(tmp_path)


def test_provenance_is_recorded_as_data_and_followed_to_the_table(tmp_path):
    session = Session(Table.from_dataframe(frame()), tmp_path)
    from serendip.tools.engine.registry import call_tool

    t = call_tool(session, "transform", {"columns": ["mass"], "kind": "log10"})
    r = call_tool(session, "residualize", {"y": "sfr", "x": ["log10_mass"], "name": "sfr_clean"})
    assert t.derived == [{"name": "log10_mass", "operation": "log10", "inputs": ["mass"], "base_columns": ["mass"],
                          "controls": [], "description": "log10 of mass"}]
    assert r.derived[0]["operation"] == "residual" and r.derived[0]["base_columns"] == ["sfr"]
    assert r.derived[0]["controls"] == ["mass"]  # the control followed back through the log10
    restarted = Session(Table.from_dataframe(frame()), tmp_path)  # a worker restart restores the provenance
    assert restarted.provenance["sfr_clean"].controls == ["mass"]
    assert restarted.provenance["log10_mass"].base_columns == ["mass"]


def test_the_ledger_and_scorer_read_provenance_not_names(tmp_path, run):
    """A residual under a name that says nothing of its origin still maps back to its base column."""
    dispatcher, ledger = run
    assert dispatcher.call("residualize", {"y": "sfr", "x": ["age"], "name": "q1"}, 1).ok
    assert dispatcher.call("correlate", {"columns": ["q1", "mass"]}, 2).ok
    trend = next(f for f in ledger.final_findings() if f["kind"] == "trend")
    assert set(trend["columns"]) == {"q1", "mass"}
    assert dict(zip(trend["columns"], trend["base_columns"])) == {"q1": "sfr", "mass": "mass"}
    assert trend["controls"] == ["age"]
    assert Finding.model_validate(trend).controls == ["age"]
    write_findings_json(tmp_path, [trend], DATASET, RUN)
    pd.DataFrame({"row": np.arange(300)}).to_csv(tmp_path / "rows.csv", index=False)
    truth = Truth(case="p", n_rows=300, columns=["mass", "sfr", "age"],
                  trends=[TrendTruth(("mass", "sfr"), 1, controls=("age",))])
    assert score(tmp_path, truth)["metrics"]["trend_recall"] == 1.0


def test_tool_summaries_are_read_through_typed_models():
    summary = {"dominant": {"driver": "mass", "driver_correlation": 0.9}, "components": [
        {"top_loadings": {"mass": 0.7, "sfr": 0.69}}], "other": 1}
    s = read_summary(PcaSummary, summary)
    assert s.dominant.driver == "mass" and s.components[0].top_loadings["sfr"] == 0.69
    assert read_summary(PcaSummary, {"dominant": "not a dict"}).dominant is None  # unreadable -> defaults
