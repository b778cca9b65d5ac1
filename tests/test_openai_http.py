"""The real openai client, through langchain-openai's ChatOpenAI, over HTTP against a local stub server:
tool calls, retries of transient failures, refusals, timeouts and malformed tool-call arguments."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tiktoken

from serendip.agent.dispatch import Dispatcher
from serendip.agent.explore import ExploreConfig, explore
from serendip.agent.ledger import Ledger
from serendip.agent.llm_run import run_llm
from serendip.agent.loop import LoopLimits
from serendip.agent.models import build_chat_model
from serendip.agent.settings import Settings
from serendip.agent.progress import Progress
from serendip.agent.transcript import Transcript
from serendip.tools.engine.local_runner import LocalRunner
from serendip.tools.engine.table import Table
from stub_openai_server import (StubOpenAIServer, completion, delayed, error_reply, raw_reply, text_reply,
                                tool_calls_reply)

FINISH = tool_calls_reply(("finish", {"summary": "done over HTTP"}))


@pytest.fixture(autouse=True)
def no_tiktoken(monkeypatch, tmp_path):
    """tiktoken downloads its encodings: nothing on our path may ask it for one."""
    def refuse(*args, **kwargs):
        raise AssertionError("tiktoken was asked for an encoding")

    monkeypatch.setattr(tiktoken, "get_encoding", refuse)
    monkeypatch.setattr(tiktoken, "encoding_for_model", refuse)
    monkeypatch.setenv("SERENDIP_CONFIG", str(tmp_path / "no-config.toml"))
    for var in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


def planted_frame(n: int = 200) -> pd.DataFrame:
    r = np.random.default_rng(5)
    x = r.normal(size=n)
    return pd.DataFrame({"x": x, "y": 2 * x + r.normal(scale=0.5, size=n), "z": r.normal(size=n)})


def run_against(server, tmp_path, chat_model=None, **limits):
    runner = LocalRunner(None, tmp_path, table=Table.from_dataframe(planted_frame())).start()
    transcript = Transcript(tmp_path)
    dispatcher = Dispatcher(runner, Ledger(), transcript)
    cfg = ExploreConfig(table="planted.csv", model="stub-model", base_url=server.base_url, goal="trends",
                        tool_profile="full")  # issue 9: the stub is on loopback, where auto would pick compact
    lim = LoopLimits(max_steps=10, retry_base_delay=0.01, max_tries=limits.pop("max_tries", 5), **limits)
    outcome = run_llm(cfg, dispatcher, runner.table_info(), transcript, Progress(quiet=True), chat_model=chat_model,
                      limits=lim)
    return outcome, transcript, dispatcher


def fast_model(server, timeout: float = 10.0):
    return build_chat_model(Settings.defaults(model="stub-model", base_url=server.base_url, api_key="not-needed",
                                              request_timeout=timeout))


def test_tool_calls_run_and_requests_carry_the_schemas(tmp_path):
    script = [tool_calls_reply(("residualize", {"y": "y", "x": ["x"]}), content="Removing the known relation."),
              FINISH]
    with StubOpenAIServer(script) as server:
        outcome, transcript, dispatcher = run_against(server, tmp_path)  # the model is built from the config
    assert (outcome.status, outcome.steps, outcome.tokens, outcome.summary) == ("completed", 2, 240, "done over HTTP")
    assert server.paths == ["/v1/chat/completions"] * 2 and not server.unexpected
    assert server.headers[0]["authorization"] == "Bearer not-needed"  # placeholder key for a local server
    first, second = server.requests
    assert first["model"] == "stub-model" and first["temperature"] == 0 and not first.get("stream")
    names = {t["function"]["name"] for t in first["tools"]}
    assert {"residualize", "pca", "record_finding", "dismiss_finding", "finish"} <= names
    spec = next(t for t in first["tools"] if t["function"]["name"] == "residualize")["function"]
    assert spec["parameters"]["properties"]["n_bins"]["maximum"] == 200 and "Control for" in spec["description"]
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "tool"]
    assistant, tool = second["messages"][2:]
    assert assistant["tool_calls"][0]["function"]["name"] == "residualize"
    assert tool["tool_call_id"] == assistant["tool_calls"][0]["id"] == "call_0_residualize"
    assert json.loads(tool["content"])["summary"]["new_columns"] == ["resid_y_vs_x"]
    assert dispatcher.ledger.results["R1"].ok
    logged = [r for r in transcript.records() if r.get("role") == "assistant"]
    assert logged[0]["content"] == "Removing the known relation." and logged[0]["usage"]["total_tokens"] == 120
    assert logged[0]["model"] == "stub-model"


def test_rate_limit_then_success_is_retried(tmp_path):
    with StubOpenAIServer([error_reply(429, "slow down", headers={"retry-after": "0"}), FINISH]) as server:
        outcome, transcript, _ = run_against(server, tmp_path, chat_model=fast_model(server))
    assert outcome.status == "no_progress" and len(server.requests) == 2  # issue 9: finish alone is no analysis
    retries = [r for r in transcript.records() if r["type"] == "model_retry"]
    assert len(retries) == 1 and "(429)" in retries[0]["error"] and "slow down" in retries[0]["error"]


def test_server_errors_are_retried(tmp_path):
    with StubOpenAIServer([error_reply(500), error_reply(503), FINISH]) as server:
        outcome, transcript, _ = run_against(server, tmp_path, chat_model=fast_model(server))
    assert outcome.status == "no_progress" and len(server.requests) == 3  # issue 9: finish alone is no analysis
    assert [r["attempt"] for r in transcript.records() if r["type"] == "model_retry"] == [1, 2]


def test_persistent_server_error_ends_the_run(tmp_path):
    with StubOpenAIServer([error_reply(500, "the GPU caught fire")] * 3) as server:
        outcome, _, _ = run_against(server, tmp_path, chat_model=fast_model(server), max_tries=3)
    assert outcome.status == "provider_error" and len(server.requests) == 3 and not server.unexpected
    assert outcome.reason.startswith("the model provider failed 3 times; last: ")
    assert "(500)" in outcome.reason and "the GPU caught fire" in outcome.reason and "\n" not in outcome.reason


def test_model_not_found_ends_the_run_at_once(tmp_path):
    with StubOpenAIServer([error_reply(404, "The model `stub-model` does not exist")]) as server:
        outcome, _, _ = run_against(server, tmp_path, chat_model=fast_model(server))
    assert outcome.status == "provider_error" and len(server.requests) == 1
    assert outcome.reason.startswith("the model provider refused the request: ") and "(404)" in outcome.reason


def test_timeout_is_retried(tmp_path):
    with StubOpenAIServer([delayed(FINISH, 1.5), FINISH]) as server:
        outcome, transcript, _ = run_against(server, tmp_path, chat_model=fast_model(server, timeout=0.3))
    assert outcome.status == "no_progress" and len(server.requests) == 2  # issue 9: finish alone is no analysis
    retry = next(r for r in transcript.records() if r["type"] == "model_retry")
    assert "Timeout" in retry["error"]


def test_malformed_arguments_get_an_error_and_the_run_goes_on(tmp_path):
    script = [tool_calls_reply(("residualize", '{"y": "y", "x": ['), ("pca", {"columns": ["x", "y", "z"]})),
              FINISH]
    with StubOpenAIServer(script) as server:
        outcome, _, dispatcher = run_against(server, tmp_path, chat_model=fast_model(server))
    assert outcome.status == "completed" and not server.unexpected
    messages = server.requests[1]["messages"]
    calls = {c["id"]: c for c in messages[2]["tool_calls"]}
    assert calls["call_0_residualize"]["function"]["arguments"] == '{"y": "y", "x": ['  # sent back as it came
    replies = {m["tool_call_id"]: json.loads(m["content"]) for m in messages if m["role"] == "tool"}
    assert set(replies) == set(calls)
    assert replies["call_0_residualize"]["ok"] is False and "not valid JSON" in replies["call_0_residualize"]["error"]
    assert replies["call_1_pca"]["ok"] is True


def test_text_without_tools_then_finish_through_explore(tmp_path):
    table = tmp_path / "planted.csv"
    planted_frame().to_csv(table, index=False)
    script = [text_reply("I will look at the table."), FINISH]
    with StubOpenAIServer(script) as server:
        cfg = ExploreConfig(table=str(table), out=str(tmp_path / "run"), model="stub-model",
                            base_url=server.base_url, in_process=True, max_steps=5)
        outcome, out = explore(cfg)
    assert outcome.status == "no_progress" and outcome.summary == "done over HTTP"  # issue 9
    reminder = server.requests[1]["messages"][-1]
    assert reminder["role"] == "user" and "without calling a tool" in reminder["content"]
    run = json.loads((out / "run.json").read_text())
    assert run["exit_status"] == "no_progress" and run["steps"] == 2 and run["tokens"] == 240
    assert "api_key" not in json.dumps(run["config"])
    report = (out / "report.md").read_text()
    assert "done over HTTP" in report and "LLM stub-model drove the tools for 2 steps" in report


# ---------------------------------------------------------------------- malformed replies (issue 16)
SSE_BODY = ("data: " + json.dumps(completion({"role": "assistant", "content": "hi"}, "stop", (1, 1)))
            + "\n\ndata: [DONE]\n\n")
MALFORMED = {
    "arguments_a_list": (tool_calls_reply(("pca", "[1, 2]")), "[1, 2]"),
    "arguments_a_number": (tool_calls_reply(("pca", "5")), '"arguments": "5"'),
    "body_not_json": (raw_reply("<html>upstream hiccup</html>"), "upstream hiccup"),
    "no_choices": ({"status": 200, "body": {"id": "x", "object": "chat.completion", "created": 1, "model": "m",
                                            "choices": []}}, '"choices": []'),
    "error_with_200": ({"status": 200, "body": {"error": {"message": "overloaded", "type": "server_error"}}},
                       "overloaded"),
    "unasked_sse": (raw_reply(SSE_BODY, content_type="text/event-stream"), "text/event-stream"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_reply_is_retried_and_recorded(tmp_path, case):
    reply, shown = MALFORMED[case]
    with StubOpenAIServer([reply, FINISH]) as server:
        outcome, transcript, _ = run_against(server, tmp_path, chat_model=fast_model(server))
    assert outcome.status == "no_progress"  # the retry worked; the model then did no analysis and len(server.requests) == 2 and not server.unexpected
    retries = [r for r in transcript.records() if r["type"] == "model_retry"]
    assert len(retries) == 1 and retries[0]["kind"] == "malformed" and "\n" not in retries[0]["error"]
    assert retries[0]["reply"].startswith("HTTP 200") and shown in retries[0]["reply"]


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_persistent_malformed_replies_end_with_provider_error(tmp_path, case):
    reply, shown = MALFORMED[case]
    with StubOpenAIServer([reply] * 3) as server:
        outcome, transcript, _ = run_against(server, tmp_path, chat_model=fast_model(server), max_tries=3)
    assert outcome.status == "provider_error" and len(server.requests) == 3 and not server.unexpected
    assert outcome.reason.startswith("the model provider sent unusable replies 3 times; last: ")
    assert "\n" not in outcome.reason and len(outcome.reason) < 400
    records = transcript.records()
    assert [r["attempt"] for r in records if r["type"] == "model_retry"] == [1, 2]
    failure = next(r for r in records if r["type"] == "model_failure")
    assert failure["attempt"] == 3 and shown in failure["reply"]
