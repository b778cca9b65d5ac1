"""End-to-end autopilot runs: the output contract, quality on planted tables, safety and resume."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from serendip.agent import autopilot as autopilot_module
from serendip.agent.cli import main as cli_main
from serendip.agent.explore import ExploreConfig, RunSetupError, explore
from serendip.tools import synthetic


def run(tmp_path, df: pd.DataFrame, goal: str = "", name: str = "table.csv", **kwargs):
    tmp_path.mkdir(parents=True, exist_ok=True)
    table = tmp_path / name
    df.to_csv(table, index=False)
    cfg = ExploreConfig(table=str(table), goal=goal, out=str(tmp_path / "out"), in_process=True, **kwargs)
    outcome, out = explore(cfg)
    findings = json.loads((out / "findings.json").read_text())
    rows = pd.read_csv(out / "rows.csv")
    return outcome, out, findings, rows


def test_output_contract(tmp_path):
    df, truth = synthetic.trends_table(n=2000)
    outcome, out, findings, rows = run(tmp_path, df, goal="find trends")
    assert outcome.status == "completed"
    for name in ("report.md", "report.html", "findings.json", "rows.csv", "transcript.jsonl", "run.json"):
        assert (out / name).is_file(), name
    assert findings["schema"] == "serendip.findings/1"
    assert findings["dataset"]["n_rows"] == 2000 and len(findings["dataset"]["sha256"]) == 64
    assert findings["run"] == {"model": "autopilot", "seed": 0, "goal": "find trends", "exit_status": "completed"}
    assert list(rows["row"]) == list(range(2000))
    trends = [f for f in findings["findings"] if f["kind"] == "trend"]
    for f in trends:
        assert {"method", "effect", "sign", "n", "p_value", "q_value"} <= set(f["stats"])
        assert f["evidence"] and all(e.startswith("R") for e in f["evidence"])
        for fig in f["figures"]:
            assert (out / fig).is_file()
    found = {(tuple(sorted(f["columns"])), f["stats"]["sign"]) for f in trends if f["stats"]["q_value"] <= 0.05}
    assert ((("a", "b"), 1) in found) and any(cols[0].endswith("c") or cols[1].endswith("c")
                                               for cols, sign in found if sign == -1)
    assert not any("noise" in c for f in trends for c in f["columns"])
    run_info = json.loads((out / "run.json").read_text())
    assert run_info["exit_status"] == "completed" and run_info["steps"] > 3
    assert run_info["input_sha256"] == hashlib.sha256((tmp_path / "table.csv").read_bytes()).hexdigest()
    records = [json.loads(line) for line in (out / "transcript.jsonl").read_text().splitlines()]
    assert records[0]["type"] == "run_start" and records[-1]["type"] == "run_end"
    assert sum(r["type"] == "tool_result" for r in records) == run_info["n_tool_calls"]


def test_groups_hidden_under_a_dominant_trend(tmp_path):
    df, truth = synthetic.hidden_groups_table(n=900)
    outcome, out, findings, rows = run(tmp_path, df, goal="find groups")
    assert outcome.controlled, "the dominant trend should have been controlled for"
    groups = [f for f in findings["findings"] if f["kind"] == "group"]
    best = max(adjusted_rand_score(truth["groups"], rows[f["labels"]]) for f in groups)
    assert best >= 0.8


def test_systematic_named_and_null_table_quiet(tmp_path):
    df, truth = synthetic.systematic_table(n=900)
    _, _, findings, _ = run(tmp_path / "sys", df)
    dq = [c for f in findings["findings"] if f["kind"] == "data_quality" for c in f["columns"]]
    assert "field" in dq
    df, truth = synthetic.null_table(n=300, n_columns=12)
    _, _, findings, _ = run(tmp_path / "null", df)
    kinds = [f["kind"] for f in findings["findings"]]
    assert kinds.count("trend") <= 1 and "group" not in kinds


def test_hostile_names_and_values_are_escaped(tmp_path):
    r = np.random.default_rng(0)
    x = r.normal(size=120)
    df = pd.DataFrame({"<script>alert(1)</script>": x, "__import__('os')": 2 * x + r.normal(scale=0.1, size=120),
                       "label": ["<img src=x onerror=alert(2)>"] * 60 + ["<b>bold</b>"] * 60})
    _, out, findings, _ = run(tmp_path, df)
    html = (out / "report.html").read_text()
    assert "<script>alert" not in html and "<img src=x" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_input_file_never_modified_and_bad_input_is_one_line(tmp_path, capsys):
    df, _ = synthetic.catalogue_conventions_table(n=200)
    table = tmp_path / "cat.csv"
    df.to_csv(table, index=False)
    before = table.read_bytes()
    code = cli_main(["explore", str(table), "--out", str(tmp_path / "o"), "--quiet", "--max-steps", "3"])
    assert table.read_bytes() == before
    assert code == 1  # the step limit ends the run early, with a partial report
    assert "step_limit" in capsys.readouterr().err
    for bad in [tmp_path / "missing.csv", tmp_path]:
        assert cli_main(["explore", str(bad), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("serendip: error:") and "\n" not in err and "Traceback" not in err
    empty = tmp_path / "headerless.csv"
    empty.write_text("1,2,3\n4,5,6\n")
    assert cli_main(["explore", str(empty), "--out", str(tmp_path / "h"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "headerless" in err and "\n" not in err


def test_resume_replays_finished_calls(tmp_path, monkeypatch):
    df, _ = synthetic.trends_table(n=300)
    table = tmp_path / "t.csv"
    df.to_csv(table, index=False)
    cfg = ExploreConfig(table=str(table), out=str(tmp_path / "run"), in_process=True)
    real_call = autopilot_module.Autopilot.call
    calls = {"n": 0}

    def interrupted(self, tool, **arguments):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_call(self, tool, **arguments)

    monkeypatch.setattr(autopilot_module.Autopilot, "call", interrupted)
    outcome, out = explore(cfg)
    assert outcome.status == "interrupted"
    assert json.loads((out / "run.json").read_text())["exit_status"] == "interrupted"
    monkeypatch.setattr(autopilot_module.Autopilot, "call", real_call)
    outcome, out = explore(cfg, resume=True)
    assert outcome.status == "completed"
    records = [json.loads(line) for line in (out / "transcript.jsonl").read_text().splitlines()]
    assert sum(1 for r in records if r.get("replayed")) == 3
    with pytest.raises(RunSetupError, match="already holds a run"):
        explore(cfg)
