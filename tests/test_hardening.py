"""Regression tests for the defects of issue 16 (hardening), one or more per defect; the model-side ones
use the real openai client against the local stub server."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scripted_chat_model import ScriptedChatModel, tool_call, turn
from serendip.agent.cli import main as cli_main
from serendip.agent.dispatch import Dispatcher
from serendip.agent.explore import ExploreConfig, RunSetupError, explore
from serendip.agent.ledger import Ledger
from serendip.agent.loop import AgentLoop, LoopLimits
from serendip.agent.runlock import RunLock
from serendip.agent.transcript import Transcript
from serendip.tools.engine.argsize import MAX_STRING_CHARS
from serendip.tools.engine.local_runner import LocalRunner
from serendip.tools.engine.registry import call_tool
from serendip.tools.engine.sandbox import SandboxLimits, ToolCrash, WorkerRunner
from serendip.tools.engine.session import safe_scale
from serendip.tools.engine.table import Table
from stub_openai_server import StubOpenAIServer, delayed, text_reply, tool_calls_reply, trickled

TESTS_DIR = Path(__file__).resolve().parent


def frame(n: int = 200, seed: int = 2) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    x = r.normal(size=n)
    return pd.DataFrame({"x": x, "y": 2 * x + r.normal(scale=0.5, size=n), "z": r.normal(size=n),
                         "cat": np.array(["p", "q"])[r.integers(0, 2, size=n)]})


# ---------------------------------------------------------------- 3. numerically safe scaling
def huge_frame(n: int = 120) -> pd.DataFrame:
    r = np.random.default_rng(0)
    a = r.normal(size=n)
    return pd.DataFrame({"a": a * 1e307, "b": a + r.normal(scale=0.3, size=n),
                         "d": -np.abs(r.normal(size=n)) * 4e307, "e": r.normal(size=n)})


def test_safe_scale_matches_ordinary_standardization_at_any_magnitude():
    r = np.random.default_rng(1)
    X = r.normal(size=(50, 3))
    Z, center, scale = safe_scale(X)
    assert np.allclose(Z, (X - X.mean(0)) / X.std(0))
    Zb, cb, sb = safe_scale(X * 1e307)
    assert np.isfinite(Zb).all() and np.allclose(Zb, Z) and np.allclose(cb / 1e307, center)
    top = X[:, 0] / np.abs(X[:, 0]).max() * 1.7e308  # finite, spanning nearly the whole float range
    Zr, _, _ = safe_scale(np.column_stack([top, np.full(50, 5.0)]), robust=True)
    assert np.isfinite(Zr).all() and np.all(Zr[:, 1] == 0)


@pytest.mark.parametrize("name,args", [("pca", {}), ("cluster", {"method": "kmeans"}),
                                       ("cluster", {"method": "gmm", "scaling": "robust"}),
                                       ("outliers", {"method": "isolation_forest"}),
                                       ("outliers", {"method": "off_relation"}),
                                       ("residualize", {"y": "b", "x": ["a", "d"]}),
                                       ("residualize", {"y": "a", "x": ["b"]}),
                                       ("residualize", {"y": "d", "x": ["a"], "method": "binned_median"}),
                                       ("correlate", {}), ("describe", {})])
def test_values_near_the_float_limit_never_crash_a_tool(make_session, name, args):
    session = make_session(huge_frame())
    result = call_tool(session, name, args, result_id="R1")  # a crash would raise here
    assert result.ok or ("\n" not in result.error and len(result.error) < 600)
    if name in ("pca", "cluster") and result.ok:
        assert json.dumps(result.to_dict(), allow_nan=True)


@pytest.mark.slow
def test_umap_on_values_near_the_float_limit(make_session):
    result = call_tool(make_session(huge_frame()), "umap", {}, result_id="R1")
    assert result.ok


# ---------------------------------------------------------------- 4. artifacts by name, never by path
def test_artifact_names_are_checked_against_the_session(make_session, tmp_path):
    session = make_session(frame())
    secret = tmp_path / "elsewhere"
    secret.mkdir()
    np.save(secret / "R1_umap1.npy", np.zeros(200))
    np.save(secret / "R1_umap2.npy", np.zeros(200))
    for embedding in ("../../elsewhere/R1_umap", str(secret / "R1_umap"), "R1_umap"):
        res = call_tool(session, "cluster", {"space": "umap", "embedding": embedding, "method": "kmeans"}, "R2")
        assert not res.ok and "No artifact named" in res.error and "in this session" in res.error
    res = call_tool(session, "plot", {"kind": "scatter", "x": "x", "y": "y", "color_by": "../../elsewhere/R1_umap1"},
                    "R3")
    assert not res.ok or "elsewhere" not in json.dumps(res.summary)
    flags = call_tool(session, "outliers", {"method": "isolation_forest"}, "R4")
    assert flags.ok and session.load_artifact(flags.summary["flag_artifact"]).shape == (200,)


# ---------------------------------------------------------------- 5. argument size bounds
def dispatcher_over(tmp_path, df=None) -> Dispatcher:
    runner = LocalRunner(None, tmp_path, table=Table.from_dataframe(frame() if df is None else df)).start()
    return Dispatcher(runner, Ledger(), Transcript(tmp_path))


def test_oversized_arguments_are_refused_after_parsing(tmp_path, make_session):
    session = make_session(frame())
    huge = "n" * 10_000_000
    res = call_tool(session, "residualize", {"y": "y", "x": ["x"], "name": huge}, "R1")
    assert not res.ok and "limit is" in res.error and res.arguments == {}
    assert "resid" not in " ".join(session.table.columns)
    deep: dict = {}
    node = deep
    for _ in range(50):
        node["k"] = {}
        node = node["k"]
    assert "nested" in call_tool(session, "describe", {"columns": deep}, "R2").error
    wide = {"columns": ["x"] * 50_000}
    assert "larger than" in call_tool(session, "describe", wide, "R3").error
    d = dispatcher_over(tmp_path)
    res = d.call("residualize", {"y": "y", "x": ["x"], "name": huge}, step=1)
    assert not res.ok and res.arguments == {}
    assert (tmp_path / "transcript.jsonl").stat().st_size < 20_000


def test_oversized_agent_tool_arguments_are_refused(tmp_path):
    from serendip.agent.agent_tools import call_agent_tool

    reply = call_agent_tool(dispatcher_over(tmp_path), "finish", {"summary": "s" * (MAX_STRING_CHARS + 1)})
    assert not reply.ok and "limit is" in reply.content


def test_a_10_mb_argument_over_http_leaves_small_outputs(tmp_path):
    table = tmp_path / "t.csv"
    frame().to_csv(table, index=False)
    huge = "n" * 10_000_000
    script = [tool_calls_reply(("residualize", {"y": "y", "x": ["x"], "name": huge})),
              tool_calls_reply(("finish", {"summary": "done"}))]
    with StubOpenAIServer(script) as server:
        cfg = ExploreConfig(table=str(table), out=str(tmp_path / "run"), model="stub-model", base_url=server.base_url,
                            in_process=True, max_steps=4, api_key="not-needed")
        outcome, out = explore(cfg)
    assert outcome.status == "no_progress"  # its only analysis call was refused
    results = [json.loads(line) for line in (out / "transcript.jsonl").read_text().splitlines()
               if '"tool_result"' in line]
    assert results and not results[0]["ok"] and "limit is" in results[0]["error"]
    assert (out / "findings.json").stat().st_size < 100_000
    assert (out / "transcript.jsonl").stat().st_size < 1_000_000
    assert sum(p.stat().st_size for p in (out / ".workspace" / "results").iterdir()) < 100_000


# ---------------------------------------------------------------- 6. one run per folder
def test_a_live_run_locks_its_folder_and_a_dead_one_does_not(tmp_path, capsys):
    table = tmp_path / "t.csv"
    frame().to_csv(table, index=False)
    out = tmp_path / "run"
    holder = RunLock(out).acquire()  # another live run (flock: a second open conflicts even in one process)
    try:
        with pytest.raises(RunSetupError, match=r"in use by another serendip run \(pid \d+"):
            explore(ExploreConfig(table=str(table), out=str(out), in_process=True, max_steps=2))
        assert cli_main(["explore", str(table), "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert "in use by another serendip run" in err and "\n" not in err
        assert not (out / "run.json").exists()
    finally:
        holder.release()
    # A lock file left by a process that died (no flock held) is stale: taken over.
    (out / ".workspace" / "run.lock").write_text(json.dumps({"pid": 999_999_999, "started": "long ago"}))
    outcome, _ = explore(ExploreConfig(table=str(table), out=str(out), in_process=True, max_steps=2))
    assert outcome.status == "step_limit"
    start = json.loads((out / "transcript.jsonl").read_text().splitlines()[0])
    assert start["stale_lock_taken_over"]["pid"] == 999_999_999


def test_resume_of_a_live_run_is_refused(tmp_path, capsys):
    table = tmp_path / "t.csv"
    frame().to_csv(table, index=False)
    out = tmp_path / "run"
    explore(ExploreConfig(table=str(table), out=str(out), in_process=True, max_steps=2))
    with RunLock(out):
        assert cli_main(["explore", "--resume", str(out), "--quiet"]) == 2
        assert "in use by another serendip run" in capsys.readouterr().err


# ---------------------------------------------------------------- 7. resume checks the input
def test_resume_refuses_a_changed_table_unless_forced(tmp_path, capsys):
    table = tmp_path / "t.csv"
    frame().to_csv(table, index=False)
    out = tmp_path / "run"
    explore(ExploreConfig(table=str(table), out=str(out), in_process=True, max_steps=2))
    first = json.loads((out / "run.json").read_text())
    frame(seed=9).to_csv(table, index=False)
    with pytest.raises(RunSetupError, match=r"changed since that run started .* --force"):
        explore(ExploreConfig(table=str(table), out=str(out), in_process=True, max_steps=2), resume=True)
    assert cli_main(["explore", "--resume", str(out), "--quiet"]) == 2
    assert "--force" in capsys.readouterr().err
    assert json.loads((out / "run.json").read_text()) == first  # the refused resume changed nothing
    explore(ExploreConfig(table=str(table), out=str(out), in_process=True, max_steps=2), resume=True, force=True)
    again = json.loads((out / "run.json").read_text())
    assert again["input_sha256"] != first["input_sha256"] and again["resumed"] is False
    assert not any(r.get("replayed") for r in map(json.loads, (out / "transcript.jsonl").read_text().splitlines()))


# ---------------------------------------------------------------- 8. the run's time limit as a deadline
def test_model_call_gets_the_time_left_as_its_timeout(tmp_path):
    from serendip.agent.models import build_chat_model
    from serendip.agent.settings import Settings

    with StubOpenAIServer([delayed(tool_calls_reply(("finish", {"summary": "late"})), 8.0)]) as server:
        model = build_chat_model(Settings.defaults(model="stub-model", base_url=server.base_url, api_key="x",
                                                   request_timeout=600))
        d = dispatcher_over(tmp_path)
        loop = AgentLoop(model, d, d.transcript, LoopLimits(time_limit=2.0, retry_base_delay=0.01))
        started = time.monotonic()
        from langchain_core.messages import HumanMessage, SystemMessage

        outcome = loop.run([SystemMessage("s"), HumanMessage("t")])
    assert outcome.status == "time_limit"
    assert time.monotonic() - started < 6.0  # not the client's 600 s, nor the server's 8 s


def test_a_streamed_reply_still_coming_at_the_time_limit_is_closed(tmp_path):
    from langchain_core.messages import HumanMessage, SystemMessage

    from serendip.agent.models import build_chat_model
    from serendip.agent.settings import Settings

    # every piece arrives well within the client's timeout, but the whole reply takes ~12 s
    slow = trickled(text_reply("word " * 60), 0.2)
    with StubOpenAIServer([slow]) as server:
        model = build_chat_model(Settings.defaults(model="stub-model", base_url=server.base_url, api_key="x",
                                                   request_timeout=600))
        d = dispatcher_over(tmp_path)
        loop = AgentLoop(model, d, d.transcript, LoopLimits(time_limit=2.0, retry_base_delay=0.01),
                         cut_padding=True)
        started = time.monotonic()
        outcome = loop.run([SystemMessage("s"), HumanMessage("t")])
        took = time.monotonic() - started  # (leaving the block waits for the stub to finish sending)
    assert outcome.status == "time_limit" and "still replying" in outcome.reason
    assert took < 6.0


@pytest.fixture
def worker(tmp_path):
    runners = []

    def factory(**limits) -> WorkerRunner:
        runner = WorkerRunner(None, tmp_path / f"w{len(runners)}", table=Table.from_dataframe(frame()),
                              limits=SandboxLimits(**limits), extra_tool_modules=["sandbox_tools"],
                              extra_sys_path=[str(TESTS_DIR)])
        runners.append(runner)
        return runner.start()

    yield factory
    for r in runners:
        r.close()


@pytest.mark.slow
def test_a_tool_call_gets_at_most_the_time_the_run_has_left(worker):
    runner = worker(time_limit_s=600)
    runner.deadline = time.monotonic() + 2.0
    started = time.monotonic()
    res = runner.call("sleep_for", {"seconds": 60}, "R1")
    assert not res.ok and "run's time limit" in res.error and time.monotonic() - started < 10
    assert runner.call("sleep_for", {"seconds": 0}, "R2").error.endswith("the run's time limit is reached.")


# ---------------------------------------------------------------- 9. transform never overwrites
def test_transform_never_overwrites_a_column(make_session):
    df = pd.DataFrame({"a": np.arange(1, 51, dtype=float), "log10_a": np.full(50, 7.0),
                       "log10_a_derived": np.full(50, 8.0)})
    session = make_session(df)
    res = call_tool(session, "transform", {"columns": ["a"], "kind": "log10"}, "R1")
    assert res.ok and res.summary["new_columns"] == ["log10_a_derived_2"]
    assert (session.table.df["log10_a"] == 7.0).all() and (session.table.df["log10_a_derived"] == 8.0).all()
    again = call_tool(session, "transform", {"columns": ["a"], "kind": "log10"}, "R2")
    assert again.summary["new_columns"] == ["log10_a_derived_2"]  # the same transform is reused, not duplicated
    other = call_tool(session, "transform", {"columns": ["log10_a_derived"], "kind": "rank"}, "R3")
    assert other.ok and (session.table.df["log10_a_derived"] == 8.0).all()


# ---------------------------------------------------------------- 10. deaths, crashes, steps
@pytest.mark.slow
def test_a_worker_killed_from_outside_is_reported_as_killed(worker):
    runner = worker(time_limit_s=60)
    pid = runner.pid
    threading.Timer(1.0, lambda: os.kill(pid, signal.SIGKILL)).start()
    res = runner.call("sleep_for", {"seconds": 30}, "R1")
    assert not res.ok and "killed by signal SIGKILL" in res.error and "memory" not in res.error.split("(")[0]


@pytest.mark.slow
def test_a_table_too_big_for_the_worker_is_a_bad_input(tmp_path):
    from sandbox_loaders import oversized_loader
    from serendip.tools.engine.errors import TableLoadError

    runner = WorkerRunner(str(tmp_path / "big.csv"), tmp_path / "w", limits=SandboxLimits(memory_limit_mb=1024),
                          loader=oversized_loader, extra_sys_path=[str(TESTS_DIR)])
    try:
        with pytest.raises(TableLoadError, match=r"does not fit the tool worker's memory cap of 1024 MB"):
            runner.start()
    finally:
        runner.close()


def test_crash_records_the_step_count_not_the_tool_call_count(tmp_path, monkeypatch):
    table = tmp_path / "t.csv"
    frame().to_csv(table, index=False)
    real_call = LocalRunner.call
    calls = {"n": 0}

    def crashing_call(self, name, arguments, result_id):
        calls["n"] += 1
        if calls["n"] == 4:
            raise ToolCrash("Tool 'describe' crashed with KeyError: boom", tool="describe", exc_type="KeyError")
        return real_call(self, name, arguments, result_id)

    monkeypatch.setattr(LocalRunner, "call", crashing_call)
    # distinct arguments: an exact repeat of a successful call is refused before it reaches the runner
    model = ScriptedChatModel(script=[turn(tool_call("describe", {"columns": ["x"]}),
                                           tool_call("describe", {"columns": ["y"]}),
                                           tool_call("describe", {"columns": ["z"]})),
                                      turn(tool_call("describe", {"columns": ["x", "y"]}))])
    cfg = ExploreConfig(table=str(table), out=str(tmp_path / "run"), model="scripted", in_process=True, max_steps=5)
    outcome, out = explore(cfg, chat_model=model)
    run = json.loads((out / "run.json").read_text())
    assert outcome.status == "error" and "ToolCrash" in run["reason"]
    assert run["steps"] == 2 and run["n_tool_calls"] == 3
