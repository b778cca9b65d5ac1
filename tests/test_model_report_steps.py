"""What the report does after a chat model's loop (issue 17): a figure for every headline, drawn by the report's
own plot calls, and the model's rewrite of the template summary, shown only when its numbers and ids check out.

The runs go through the real openai client to the local stub server (no network, no key).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serendip.agent.cli import build_parser, setting_flags
from serendip.agent.explore import ExploreConfig, explore
from serendip.agent.ledger import Ledger
from serendip.agent.outcome import RunOutcome
from serendip.agent.report_md import headlines
from serendip.agent.settings import Settings
from serendip.agent.summary_rewrite import rewrite_problem, rewrite_summary, summary_lines, template_text
from serendip.tools.engine.mdtext import escape_md
from serendip.tools.engine.result import ToolResult
from stub_openai_server import StubOpenAIServer, text_reply, tool_calls_reply

CALLS = tool_calls_reply(("correlate", {}), ("cluster", {"columns": ["a", "b"], "method": "gmm"}))
FINISH = tool_calls_reply(("finish", {"summary": "y follows x; a and b split into two groups."}))
GOOD_REWRITE = ("Over 240 rows, `x`, `x2`, `x3` and `y` are one quantity seen four times (F2), and `a` and `b` "
                "split into 2 stable groups (F1): compare F1 with known classes first.")
INVENTED_REWRITE = "The groups (F1) are real: rho = 0.123456 between `a` and `b`."


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


def summary_of(md: str) -> str:
    return md.split("## Summary\n", 1)[1].split("\n## ", 1)[0]


def test_every_headline_of_a_model_run_gets_a_figure_drawn_by_the_report(tmp_path):
    outcome, out, server = llm_run(tmp_path, [CALLS, FINISH], summary_rewrite=False)
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


def test_a_rewrite_with_supported_numbers_and_real_ids_leads_the_summary(tmp_path):
    outcome, out, server = llm_run(tmp_path, [CALLS, FINISH, text_reply(GOOD_REWRITE)])
    assert outcome.status == "completed" and not server.unexpected and len(server.requests) == 3
    ask = server.requests[-1]
    assert "tools" not in ask and "<ledger_summary>" in ask["messages"][-1]["content"]
    summary = summary_of((out / "report.md").read_text())
    assert "*Written by the model from the ledger summary below" in summary
    assert escape_md(GOOD_REWRITE) in summary
    assert summary.index(escape_md(GOOD_REWRITE)) < summary.index("**Top new candidates:**")  # template kept below
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["summary_rewrite"]["status"] == "accepted" and run_json["summary_rewrite"]["text"] == GOOD_REWRITE
    assert run_json["tokens"] == sum(120 for _ in server.requests)  # the rewrite's tokens are the run's too
    page = (out / "report.html").read_text()
    assert "one quantity seen four times (F2)" in page and "Written by the model from the ledger summary" in page


def test_a_rewrite_with_an_invented_number_is_refused_and_the_template_kept(tmp_path):
    outcome, out, server = llm_run(tmp_path, [CALLS, FINISH, text_reply(INVENTED_REWRITE)])
    assert outcome.status == "completed" and not server.unexpected
    summary = summary_of((out / "report.md").read_text())
    assert "0.123456" in [line for line in summary.splitlines() if line.strip()][-1]  # the one line saying why
    assert "*The model's rewrite of this summary was not used: it gives numbers" in summary
    assert "Written by the model" not in summary and "rho = 0.123456" not in summary
    assert "**Top new candidates:**" in summary
    verdict = json.loads((out / "run.json").read_text())["summary_rewrite"]
    assert verdict["status"] == "refused" and "0.123456" in verdict["reason"]
    assert "was not used" in (out / "report.html").read_text()


def test_with_the_setting_off_the_model_is_not_asked(tmp_path):
    outcome, out, server = llm_run(tmp_path, [CALLS, FINISH], summary_rewrite=False)
    assert outcome.status == "completed" and len(server.requests) == 2 and not server.unexpected
    assert "summary_rewrite" not in json.loads((out / "run.json").read_text())
    summary = summary_of((out / "report.md").read_text())
    assert "Written by the model" not in summary and "rewrite" not in summary


def test_the_setting_comes_from_a_flag_or_the_environment():
    args = build_parser().parse_args(["explore", "t.csv", "--summary-rewrite", "off"])
    assert Settings.resolve(setting_flags(args), env={}).summary_rewrite is False
    assert Settings.resolve(env={"SERENDIP_SUMMARY_REWRITE": "off"}).summary_rewrite is False
    assert Settings.resolve(env={}).summary_rewrite is True
    with pytest.raises(SystemExit):
        build_parser().parse_args(["explore", "t.csv", "--summary-rewrite", "maybe"])


# ---------------------------------------------------------------- the check, without a model
def small_ledger() -> tuple[Ledger, list[dict]]:
    led = Ledger()
    led.add_result(ToolResult(id="R1", tool="describe", summary={"n_rows": 500, "n_columns": 3},
                              markdown="500 rows × 3 columns"))
    led.add_result(ToolResult(id="R2", tool="correlate", summary={"top": 0.8123}))
    finding = {"id": "F1", "kind": "trend", "title": "`y` rises with `x`", "columns": ["x", "y"],
               "stats": {"effect": 0.8123, "n": 500}, "novelty": "candidate", "evidence": ["R2"], "figures": []}
    return led, [finding]


@pytest.mark.parametrize("reply, problem", [
    ("F1: `y` rises with `x` over 500 rows (effect 0.8123, R2).", ""),
    ("F1 and F4 stand out.", "it names findings this run does not have: F4"),
    ("F1 holds (R9).", "it cites tool results this run does not have: R9"),
    ("F1 holds: `rho 0.5`.", "it gives numbers that neither the summary nor any tool result holds: 0.5"),
    ("   ", "the model's reply was empty"),
])
def test_the_rewrite_is_checked_by_parsing(reply, problem):
    led, findings = small_ledger()
    template = template_text(findings, led)
    assert "500" in template and "F1" in template
    assert rewrite_problem(reply.strip(), template, led, {"F1"}) == problem


class _Writer:
    """Stands for the model: raises ``error`` when asked."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def time_left(self) -> float:
        return 600.0

    def ask(self, template: str):
        raise self.error


class _Transcript:
    def __init__(self, records: list[dict]) -> None:
        self._records = records

    def records(self) -> list[dict]:
        return self._records

    def append(self, record: dict) -> None:
        self._records.append(record)


def test_a_resumed_run_reuses_the_reply_it_already_got():
    led, findings = small_ledger()
    template = template_text(findings, led)
    earlier = {"type": "summary_rewrite", "template": template, "reply": "F1 holds over 500 rows."}
    outcome = RunOutcome(status="completed", summary_writer=_Writer(AssertionError("asked again")))
    verdict = rewrite_summary(outcome, findings, led, _Transcript([earlier]))
    assert verdict["status"] == "accepted" and verdict["text"] == "F1 holds over 500 rows." and verdict["reused"]


def test_a_failing_model_leaves_the_template_and_says_why():
    led, findings = small_ledger()
    transcript = _Transcript([])
    outcome = RunOutcome(status="completed", summary_writer=_Writer(RuntimeError("connection reset")))
    verdict = rewrite_summary(outcome, findings, led, transcript)
    assert verdict == {"status": "refused", "reason": "the model call failed (RuntimeError: connection reset)",
                       "tokens": 0}
    assert transcript.records()[-1]["type"] == "summary_rewrite" and "reply" not in transcript.records()[-1]
    lines = summary_lines(findings, led, verdict)
    assert lines[-2] == "*The model's rewrite of this summary was not used: the model call failed (RuntimeError: " \
                        "connection reset).*"
    assert rewrite_summary(RunOutcome(status="provider_error", summary_writer=outcome.summary_writer), findings, led,
                           transcript)["status"] == "not_asked"
