"""The conversation engine in process: slash commands, model turns with a scripted model (context kept,
streaming events, history summaries), Ctrl-C during a long tool call, reports and resume."""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage

from scripted_chat_model import ScriptedChatModel, tool_call, turn
from serendip.agent.conversation import events as ev
from serendip.agent.conversation.session import ChatSession, QuitSession

TESTS_DIR = Path(__file__).resolve().parent


def planted_table(path: Path, n: int = 240) -> Path:
    """Two well-separated groups in (mass, size_kpc), sfr rising with mass, and a categorical 'field'."""
    r = np.random.default_rng(11)
    group = np.repeat([0, 1], n // 2)
    a = np.where(group == 0, 0.0, 6.0) + r.normal(size=n)
    b = np.where(group == 0, 0.0, -5.0) + r.normal(size=n)
    c = 0.8 * a + r.normal(scale=0.6, size=n)
    pd.DataFrame({"mass": a, "size_kpc": b, "sfr": c, "field": np.where(r.random(n) < 0.5, "north", "south")}).to_csv(
        path, index=False)
    return path


class Recorder:
    """Collects events."""

    def __init__(self) -> None:
        self.events: list = []

    def __call__(self, event) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def table(tmp_path) -> Path:
    return planted_table(tmp_path / "planted.csv")


def new_session(tmp_path, table, model=None, **options) -> tuple[ChatSession, Recorder]:
    rec = Recorder()
    options.setdefault("analysis_options", {"in_process": True})
    session = ChatSession(tmp_path / "session", model_name="scripted" if model else "", chat_model=model,
                          listener=rec, **options)
    assert session.load(str(table))
    return session, rec


def test_slash_commands_without_a_model_write_a_full_report(tmp_path, table):
    session, rec = new_session(tmp_path, table)
    for line in ("/describe", "/describe mass sfr", "/correlate", "/cluster kmeans", "/select mass > 2", "/select all",
                 "/plot sfr mass", "/goal find the groups", "/findings"):
        session.handle(line)
    finished = rec.of(ev.ToolFinished)
    assert [e.tool for e in finished] == ["describe", "describe", "correlate", "cluster", "select", "select", "plot"]
    assert [e.result_id for e in finished] == [f"R{i}" for i in range(1, 8)] and all(e.ok for e in finished)
    cluster = finished[3]
    assert cluster.key_numbers["n_groups"] == 2 and cluster.key_numbers["sizes"] == [120, 120]
    assert finished[4].key_numbers["n_selected"] == int((pd.read_csv(table)["mass"] > 2).sum())
    listed = rec.of(ev.FindingsListed)[-1]
    kinds = {f["kind"] for f in listed.findings}
    assert {"trend", "group"} <= kinds and listed.n_candidates >= len(listed.findings)
    session.handle("/report")
    session.handle(f"/report {tmp_path / 'elsewhere'}")
    for out in (tmp_path / "session", tmp_path / "elsewhere"):
        doc = json.loads((out / "findings.json").read_text())
        assert doc["schema"] == "serendip.findings/1" and doc["run"]["goal"] == "find the groups"
        assert len(doc["findings"]) == len(listed.findings)
        with open(out / "rows.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == 240 and any(f["labels"] in rows[0] for f in doc["findings"] if f["kind"] == "group")
        assert "<html" in (out / "report.html").read_text().lower()
        assert json.loads((out / "run.json").read_text())["exit_status"] == "completed"
        for f in doc["findings"]:
            assert all((out / fig).exists() for fig in f["figures"])
    session.close()


def test_bad_commands_give_one_line_errors_and_quit_leaves(tmp_path, table):
    session, rec = new_session(tmp_path, table)
    for line in ("/describ", "/cluster best", "/plot", "/select", "/compare", "/load", '/describe "unclosed'):
        session.handle(line)
    errors = [e.text for e in rec.of(ev.Notice) if e.level == "error"]
    assert len(errors) == 7 and all("\n" not in t for t in errors)
    assert "Did you mean /describe" in errors[0] and "kmeans" in errors[1]
    session.handle("/describe no_such_column")  # refused by the tool itself, with its fix-it message
    refused = rec.of(ev.ToolFinished)[-1]
    assert not refused.ok and "unknown column" in refused.error
    with pytest.raises(QuitSession):
        session.handle("/quit")
    session.close()


def test_model_turns_keep_context_stream_and_show_tool_calls(tmp_path, table):
    model = ScriptedChatModel(script=[
        turn(tool_call("correlate", {"columns": ["mass", "sfr"]}), text="Let me check."),
        turn(text="Yes: sfr rises with mass (R1)."),
        turn(text="As R1 showed, the trend is strong."),
    ])
    session, rec = new_session(tmp_path, table, model)
    first = session.handle("does sfr depend on mass?")
    assert first.answered and first.text == "Yes: sfr rises with mass (R1)." and first.evidence == ["R1"]
    assert first.streamed and first.figures
    deltas = "".join(e.text for e in rec.of(ev.TextDelta))
    assert "Let me check." in deltas and "Yes: sfr rises with mass (R1)." in deltas
    started, finished = rec.of(ev.ToolStarted), rec.of(ev.ToolFinished)
    assert [e.tool for e in started] == ["correlate"] and finished[0].result_id == "R1"
    assert finished[0].key_numbers["pairs_tested"] == 1 and finished[0].candidates == ["C1"]
    session.handle("/describe size_kpc")  # a slash command between turns reaches the model as a session note
    second = session.handle("is it strong?")
    assert second.text.startswith("As R1 showed") and second.evidence == []
    model.assert_done()
    sent = model.requests[-1]
    assert isinstance(sent[0], SystemMessage) and "never call finish" in sent[0].content
    table_prompt = sent[1].content
    assert '"name": "mass"' in table_prompt and '"role": "numeric"' in table_prompt and '"role": "categorical"' in table_prompt
    values = [f"{v:.4f}" for v in pd.read_csv(table)["mass"]]
    assert not any(v in sent[0].content + table_prompt for v in values)  # columns and roles, not rows
    texts = [m.content for m in sent if isinstance(m, HumanMessage)]
    assert texts[1] == "does sfr depend on mass?" and texts[2].startswith("[Session notes]") and '"result_id":"R2"' in texts[2]
    assert any(isinstance(m, ToolMessage) and '"R1"' in m.content for m in sent)
    turns = [r for r in session.analysis.transcript.records() if r.get("type") == "chat_turn"]
    assert [t["answer"] for t in turns] == [first.text, second.text]
    session.close()


def test_long_histories_are_summarised_not_cut(tmp_path, table):
    model = ScriptedChatModel(script=[
        turn(tool_call("describe", {})), turn(text="Profiled (R1)."),
        turn(tool_call("correlate", {})), turn(text="Trends (R2)."),
        turn(text="Pairs noted."),
        turn(text="Still here."),
    ])
    session, rec = new_session(tmp_path, table, model, history_budget_chars=2000)
    for q in ("profile it", "any trends?", "and the pairs?", "what did R1 say?"):
        assert session.handle(q).answered
    model.assert_done()
    last = model.requests[-1]
    summary = [m.content for m in last if isinstance(m, HumanMessage) and m.content.startswith("[Summary")]
    assert len(summary) == 1 and "R1 describe" in summary[0] and "profile it" in summary[0]
    assert not any(isinstance(m, HumanMessage) and m.content == "profile it" for m in last)
    assert [m.content for m in last if isinstance(m, HumanMessage)][-2:] == ["and the pairs?", "what did R1 say?"]
    notices = [e.text for e in rec.of(ev.Notice) if "summarised" in e.text]
    assert notices and any(r.get("type") == "history_summarised" for r in session.analysis.transcript.records())
    session.close()


def test_offline_answers_and_configuration_hint(tmp_path, table):
    session, rec = new_session(tmp_path, table)
    answer = session.handle("Does the star formation rate depend on mass?")
    assert answer.source == "offline" and answer.answered and answer.evidence == ["R1", "R2"]
    from scipy import stats as sps

    df = pd.read_csv(table)
    rho = sps.spearmanr(df["mass"], df["sfr"]).statistic
    assert f"{rho:.4g}" in answer.text and answer.text.startswith("Yes: sfr rises with mass")
    hint = session.handle("write me a poem about galaxies")
    assert not hint.answered and hint.source == "hint" and "--base-url" in hint.text and "/describe" in hint.text
    session.close()


def test_resume_continues_results_findings_and_the_model_history(tmp_path, table):
    model = ScriptedChatModel(script=[turn(tool_call("correlate", {"columns": ["mass", "sfr"]})),
                                      turn(tool_call("record_finding", {"candidate": "C1",
                                                                        "interpretation": "sfr follows mass (R1)."})),
                                      turn(text="Recorded C1.")])
    session, _ = new_session(tmp_path, table, model, goal="trends")
    session.handle("record the mass-sfr trend")
    session.handle("/cluster kmeans")
    before = session.analysis.findings
    session.close()
    assert [f["candidate"] for f in before] == ["C1"]  # only the recorded one, once a model recorded

    model2 = ScriptedChatModel(script=[turn(text="We recorded C1 earlier.")])
    rec = Recorder()
    resumed = ChatSession.resume(tmp_path / "session", model_name="scripted", chat_model=model2, listener=rec,
                                 analysis_options={"in_process": True})
    assert resumed.goal == "trends" and len(resumed.analysis.ledger.results) == 2
    assert resumed.analysis.ledger.candidates["C1"].status == "recorded"
    after = resumed.analysis.findings  # from the stored results (6 significant digits)
    assert [(f["id"], f["candidate"], f["evidence"], f["interpretation"]) for f in after] == \
        [(f["id"], f["candidate"], f["evidence"], f["interpretation"]) for f in before]
    assert after[0]["stats"]["effect"] == pytest.approx(before[0]["stats"]["effect"], rel=1e-5)
    assert any("resumed" in e.text for e in rec.of(ev.Notice))
    resumed.handle("/describe mass")
    assert rec.of(ev.ToolFinished)[-1].result_id == "R3"
    assert resumed.handle("what did we record?").text == "We recorded C1 earlier."
    sent = model2.requests[0]
    assert any(isinstance(m, HumanMessage) and m.content == "record the mass-sfr trend" for m in sent)
    assert any(isinstance(m, ToolMessage) and "recorded" in m.content for m in sent)
    resumed.close()


@pytest.mark.slow
def test_ctrl_c_during_a_long_tool_call_leaves_a_working_session(tmp_path, table):
    model = ScriptedChatModel(script=[turn(tool_call("sleep_for", {"seconds": 60})),
                                      turn(text="The earlier call was interrupted."),
                                      turn(tool_call("raise_bug", {"message": "boom"})),
                                      turn(text="Still here.")])
    options = {"runner_options": {"extra_tool_modules": ["sandbox_tools"], "extra_sys_path": [str(TESTS_DIR)]}}
    session, rec = new_session(tmp_path, table, model, analysis_options=options)
    pid = session.analysis.runner.pid
    main = threading.get_ident()
    timer = threading.Timer(3.0, lambda: signal.pthread_kill(main, signal.SIGINT))
    timer.start()
    try:
        stopped = session.handle("sleep please")
    finally:
        timer.cancel()
    assert stopped is not None and not stopped.answered and stopped.text == "(stopped)"
    assert session.analysis.runner.pid != pid and session.analysis.runner.is_alive()  # restarted worker
    assert any("stopped" in e.text for e in rec.of(ev.Notice))
    session.handle("/describe mass")
    done = rec.of(ev.ToolFinished)[-1]
    assert done.ok and done.tool == "describe" and done.result_id == "R1"
    answer = session.handle("what happened?")
    assert answer.answered and answer.text == "The earlier call was interrupted."
    sent = model.requests[-1]
    replies = [m for m in sent if isinstance(m, ToolMessage)]
    assert replies and "interrupted" in replies[0].content  # every tool call answered: the history is valid
    crashed = session.handle("trigger the bug")  # a tool bug ends the turn with one line, not the session
    assert not crashed.answered and crashed.text.startswith("The turn failed: ToolCrash") and "\n" not in crashed.text
    assert session.handle("still there?").text == "Still here."
    model.assert_done()
    worker = session.analysis.runner.pid
    session.close()
    assert not os.path.exists(f"/proc/{worker}/status") or "zombie" in open(f"/proc/{worker}/status").read()
