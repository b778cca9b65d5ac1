"""What the report does after a chat model's loop (issue 17): a figure for every headline, drawn by the report's
own plot calls.

The runs go through the real openai client to the local stub server (no network, no key).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from serendip.agent.explore import ExploreConfig, explore
from serendip.agent.outcome import RunOutcome
from serendip.agent.report_md import headlines
from stub_openai_server import StubOpenAIServer, tool_calls_reply

CALLS = tool_calls_reply(("correlate", {}), ("cluster", {"columns": ["a", "b"], "method": "gmm"}))
FINISH = tool_calls_reply(("finish", {"summary": "y follows x; a and b split into two groups."}))


def planted_table(folder: Path, n: int = 240) -> Path:
    """x measured three times (a near-duplicate family with y), and two groups in a and b."""
    r = np.random.default_rng(7)
    x = r.normal(size=n)
    g = r.integers(0, 2, size=n)
    df = pd.DataFrame({"x": x, "y": 2 * x + r.normal(scale=0.5, size=n), "x2": x + r.normal(scale=0.05, size=n),
                       "x3": x + r.normal(scale=0.05, size=n), "a": r.normal(size=n) + 5 * g,
                       "b": r.normal(size=n) + 5 * g})
    path = folder / "planted.csv"
    df.to_csv(path, index=False)
    return path


def llm_run(tmp_path: Path, script: list[dict], **settings) -> tuple[RunOutcome, Path, StubOpenAIServer]:
    table = planted_table(tmp_path)
    with StubOpenAIServer(script) as server:
        cfg = ExploreConfig(table=str(table), out=str(tmp_path / "run"), model="stub-model",
                            base_url=server.base_url, in_process=True, max_steps=5, api_key="not-needed", **settings)
        outcome, out = explore(cfg)
    return outcome, out, server


def test_every_headline_of_a_model_run_gets_a_figure_drawn_by_the_report(tmp_path):
    outcome, out, server = llm_run(tmp_path, [CALLS, FINISH])
    assert outcome.status == "completed" and not server.unexpected
    findings = json.loads((out / "findings.json").read_text())["findings"]
    heads = headlines(findings)
    assert any(f.get("family") for f in heads)  # the family's grid is one the model did not draw
    for f in heads:
        assert f["figures"] and all((out / p).is_file() for p in f["figures"]), f["id"]
    records = [json.loads(line) for line in (out / "transcript.jsonl").read_text().splitlines()]
    plots = [r for r in records if r["type"] == "tool_result" and r["tool"] == "plot"]
    assert plots and all(r["by"] == "report" and r["ok"] for r in plots)
    phase = next(i for i, r in enumerate(records) if r.get("phase") == "headline_figures")
    assert phase < records.index(plots[0])
    model_calls = [c["name"] for r in records if r.get("role") == "assistant" for c in r["tool_calls"]]
    assert "plot" not in model_calls  # the model never asked for them
    drawn = {p for r in plots for p in r["figures"]}
    assert drawn <= {p for f in findings for p in f["figures"]}  # attached to the findings they were drawn for
    report = (out / "report.md").read_text()
    assert f"the report drew {len(plots)} headline figure" in report and "not by the model" in report
