"""``serendip chat`` and ``serendip ask`` as a user runs them: real processes, the real sandbox worker,
stdin or a pseudo-terminal (pexpect), and the real openai client against the local stub server."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stub_openai_server import StubOpenAIServer, delayed, text_reply, tool_calls_reply
from test_chat_session import planted_table

pexpect = pytest.importorskip("pexpect")

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "serendip.agent.cli"]


@pytest.fixture
def env(tmp_path) -> dict:
    e = {k: v for k, v in os.environ.items() if k not in ("CI", "OPENAI_API_KEY", "OPENAI_BASE_URL",
                                                           "SERENDIP_MODEL", "SERENDIP_BASE_URL")}
    e.update(SERENDIP_CONFIG=str(tmp_path / "no-config.toml"), SERENDIP_HISTORY=str(tmp_path / "history"),
             HOME=str(tmp_path), NO_COLOR="1", TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1", COLUMNS="200")
    return e


@pytest.fixture
def table(tmp_path) -> Path:
    return planted_table(tmp_path / "planted.csv")


def run(args: list[str], env: dict, stdin: str = "", timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + args, input=stdin, capture_output=True, text=True, env=env, timeout=timeout)


def test_chat_from_stdin_without_a_model_then_resume(tmp_path, table, env):
    out = tmp_path / "s"
    script = "/describe\n/cluster kmeans\n/findings\nare there groups?\nplease write a haiku\n/report\n/quit\n"
    done = run(["chat", str(table), "--out", str(out)], env, script)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    for expected in ("R1 describe", "R2 cluster", "Findings so far", "R3 cluster", "2 groups", "--base-url",
                     "Report:", f"serendip chat --resume {out}"):
        assert expected in text, expected
    doc = json.loads((out / "findings.json").read_text())
    groups = [f for f in doc["findings"] if f["kind"] == "group"]
    assert groups and doc["dataset"]["n_rows"] == 240
    with open(out / "rows.csv", newline="") as fh:
        assert groups[0]["labels"] in next(csv.reader(fh))
    again = run(["chat", "--resume", str(out)], env, "/describe mass\n/findings\n")
    assert again.returncode == 0, again.stderr
    assert "resumed" in again.stdout and "R4 describe" in again.stdout and "Findings so far" in again.stdout


def test_chat_bad_input_is_one_line(tmp_path, env):
    done = run(["chat", str(tmp_path / "missing.csv")], env, "")
    assert done.returncode == 2 and done.stderr == f"serendip: error: table not found: {tmp_path / 'missing.csv'}\n"
    resumed = run(["chat", "--resume", str(tmp_path)], env, "")
    assert resumed.returncode == 2 and resumed.stderr.count("\n") == 1 and "nothing to resume" in resumed.stderr


def test_a_missing_table_is_answered_before_the_analysis_stack_is_imported(tmp_path):
    probe = ("import sys\nfrom serendip.agent.cli import main\n"
             "codes = [main([cmd, sys.argv[1]] + extra) for cmd, extra in "
             "(('chat', []), ('ask', ['why?']), ('explore', ['--quiet']))]\n"
             "print(codes, sorted(m for m in ('pandas', 'sklearn', 'chromadb') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "missing.csv")], capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.strip() == "[2, 2, 2] []", done.stderr
    assert done.stderr.splitlines() == [f"serendip: error: table not found: {tmp_path / 'missing.csv'}"] * 3


def test_ask_with_a_model_prints_json(tmp_path, table, env):
    script = [tool_calls_reply(("correlate", {"columns": ["mass", "sfr"]}), content="Checking."),
              text_reply("Yes: sfr rises with mass (R1).")]
    with StubOpenAIServer(script, lifetime=900) as server:
        done = run(["ask", str(table), "does sfr depend on mass?", "--json", "--model", "stub-model",
                    "--base-url", server.base_url, "--out", str(tmp_path / "a")], env)
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["answer"] == "Yes: sfr rises with mass (R1)." and reply["answered"] and reply["evidence"] == ["R1"]
    assert reply["figures"] and all(Path(f).exists() for f in reply["figures"])
    assert any(f["kind"] == "trend" and set(f["columns"]) == {"mass", "sfr"} for f in reply["findings"])
    assert server.requests[0]["stream"] is True and not server.unexpected


def test_ask_without_a_model_outside_the_forms_exits_with_the_hint(tmp_path, table, env):
    done = run(["ask", str(table), "write a poem about these galaxies", "--out", str(tmp_path / "a")], env)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "OPENAI_API_KEY" in done.stderr and "--base-url" in done.stderr


def spawn_chat(args: list[str], env: dict) -> "pexpect.spawn":
    env = {**env, "TTY_INTERACTIVE": "1"}
    # Each expect waits at most 4 minutes (a cold start on a loaded machine takes about one): a hang fails
    # the test instead of using up the suite's time.
    child = pexpect.spawn(CLI[0], CLI[1:] + args, env=env, dimensions=(50, 200), timeout=240, encoding="utf-8")
    return child


def test_tab_completion_and_history_through_a_terminal(tmp_path, table, env):
    child = spawn_chat(["chat", str(table), "--out", str(tmp_path / "t1")], env)
    child.expect("serendip>")
    child.send("/desc\t")
    child.send(" siz\t")
    child.send("\r")
    child.expect("R1 describe")
    child.expect('"size_kpc"')
    child.expect("serendip>")
    child.send("/quit\r")
    child.expect(pexpect.EOF)
    assert "/describe size_kpc" in Path(env["SERENDIP_HISTORY"]).read_text()

    child = spawn_chat(["chat", str(table), "--out", str(tmp_path / "t2")], env)
    child.expect("serendip>")
    child.send("\x1b[A\x1b[A")  # up arrow twice: the line before /quit in the earlier session
    child.send("\r")
    child.expect("R1 describe")
    child.expect('"size_kpc"')
    child.expect("serendip>")
    child.sendeof()
    child.expect(pexpect.EOF)


def test_ctrl_c_stops_the_model_call_and_the_session_goes_on(tmp_path, table, env):
    script = [delayed(text_reply("too late"), 30), text_reply("Second answer here.")]
    with StubOpenAIServer(script, lifetime=900) as server:
        child = spawn_chat(["chat", str(table), "--out", str(tmp_path / "c"), "--model", "stub-model",
                            "--base-url", server.base_url], env)
        child.expect("serendip>")
        child.send("first question\r")
        deadline = time.monotonic() + 60
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.2)
        child.sendintr()
        child.expect("stopped")
        child.expect("serendip>")
        child.send("second question\r")
        child.expect("Second answer here.")
        child.expect("serendip>")
        child.send("/quit\r")
        child.expect(pexpect.EOF)
    second = server.requests[1]["messages"]
    assert [m["role"] for m in second[-3:]] == ["user", "assistant", "user"]
    assert second[-3]["content"] == "first question" and second[-1]["content"] == "second question"


@pytest.mark.realdata
def test_ask_without_a_model_answers_an_offline_form_as_json(tmp_path, env):
    from conftest import shared_dataset
    from scipy import stats as sps
    import pandas as pd

    path = shared_dataset("small/penguins.csv")
    done = run(["ask", str(path), "Does body mass depend on flipper length?", "--json", "--out", str(tmp_path / "a")],
               env)
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    both = pd.read_csv(path)[["body_mass_g", "flipper_length_mm"]].dropna()
    rho = sps.spearmanr(both["body_mass_g"], both["flipper_length_mm"]).statistic
    assert reply["answered"] and f"coefficient {rho:.4g}" in reply["answer"] and reply["evidence"] == ["R1", "R2"]
    assert len(reply["figures"]) == 3 and all(Path(f).exists() for f in reply["figures"])
