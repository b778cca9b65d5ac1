"""Model request settings (timeout, max output tokens, retries, tool_choice, tool profile, planner) from
flags, the environment and the config file, with defaults for a CPU server on loopback; and the
compact tool profile's size."""

from __future__ import annotations

import json

import pytest

from serendip.agent.agent_tools import agent_tool_schemas
from serendip.agent.models import build_chat_model
from serendip.agent.settings import Settings, SettingsError
from serendip.agent.tool_profiles import is_loopback_url, profile_schemas, resolve_profile, schema_size
from serendip.tools.engine.registry import REGISTRY, load_builtin_tools

LOCAL = "http://127.0.0.1:8089/v1"


def resolved(flags=None, env=None, config=None):
    return Settings.resolve(flags or {}, env=env or {}, config_file=config).for_endpoint()


def test_loopback_defaults_suit_a_cpu_server(tmp_path):
    absent = tmp_path / "absent.toml"
    local = resolved({"model": "qwen", "base_url": LOCAL}, config=absent)
    hosted = resolved({"model": "gpt-x", "api_key": "sk-test"}, config=absent)
    assert (local.request_timeout, local.max_output_tokens, local.max_retries) == (600.0, 512, 2)
    assert local.sources["request_timeout"] == "default for a loopback endpoint"
    assert (hosted.request_timeout, hosted.max_output_tokens, hosted.max_retries) == (120.0, None, 5)
    assert local.tool_choice == hosted.tool_choice == "required" and local.planner == "llm"
    assert resolve_profile(local.tool_profile, local.base_url) == "compact"
    assert resolve_profile(hosted.tool_profile, hosted.base_url) == "full"


def test_flag_beats_environment_beats_config_and_loopback_defaults(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('timeout = 30\nmax_output_tokens = 256\nmax_retries = 1\ntool_choice = "auto"\n'
                      'tool_profile = "full"\nplanner = "hybrid"\n')
    from_file = resolved({"model": "m", "base_url": LOCAL}, config=config)
    assert (from_file.request_timeout, from_file.max_output_tokens, from_file.max_retries, from_file.tool_choice,
            from_file.tool_profile, from_file.planner) == (30.0, 256, 1, "auto", "full", "hybrid")
    env = {"SERENDIP_REQUEST_TIMEOUT": "45", "SERENDIP_TOOL_CHOICE": "off", "SERENDIP_PLANNER": "autopilot"}
    from_env = resolved({"model": "m", "base_url": LOCAL}, env=env, config=config)
    assert (from_env.request_timeout, from_env.tool_choice, from_env.planner, from_env.max_retries) == (
        45.0, "off", "autopilot", 1)
    assert from_env.sources["request_timeout"] == "env SERENDIP_REQUEST_TIMEOUT"
    assert from_env.sources["max_retries"].startswith("config")
    flags = resolved({"model": "m", "base_url": LOCAL, "request_timeout": 5, "tool_choice": "required",
                      "max_output_tokens": 64, "max_retries": 3, "tool_profile": "compact", "planner": "llm"},
                     env=env, config=config)
    assert (flags.request_timeout, flags.tool_choice, flags.max_output_tokens, flags.max_retries, flags.tool_profile,
            flags.planner) == (5.0, "required", 64, 3, "compact", "llm")


@pytest.mark.parametrize("flags, needle", [
    ({"request_timeout": 0}, "request_timeout"),
    ({"max_retries": -1}, "max_retries"),
    ({"tool_choice": "always"}, "tool_choice"),
    ({"tool_profile": "tiny"}, "tool_profile"),
    ({"planner": "magic"}, "planner"),
])
def test_bad_settings_are_one_line_errors(tmp_path, flags, needle):
    with pytest.raises(SettingsError) as err:
        resolved({"model": "m", "base_url": LOCAL, **flags}, config=tmp_path / "absent.toml")
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_bad_environment_value_names_its_source(tmp_path):
    with pytest.raises(SettingsError, match="SERENDIP_MAX_OUTPUT_TOKENS"):
        resolved({"model": "m", "base_url": LOCAL}, env={"SERENDIP_MAX_OUTPUT_TOKENS": "lots"},
                 config=tmp_path / "absent.toml")


def test_chat_model_gets_timeout_and_max_tokens(tmp_path):
    settings = resolved({"model": "m", "base_url": LOCAL, "request_timeout": 12, "max_output_tokens": 300},
                        config=tmp_path / "absent.toml")
    model = build_chat_model(settings)
    assert model.request_timeout == 12 and model.max_tokens == 300 and model.max_retries == 0


def test_max_output_tokens_reach_servers_that_read_only_max_tokens(tmp_path):
    """llama-cpp-python's server ignores max_completion_tokens (seen with the real 1.5B model: unbounded
    replies); a non-OpenAI endpoint gets the classic field too, OpenAI itself only the new one."""
    from langchain_core.messages import HumanMessage

    absent = tmp_path / "absent.toml"
    local = build_chat_model(resolved({"model": "m", "base_url": LOCAL}, config=absent))
    payload = local._get_request_payload([HumanMessage("hi")])
    assert payload["max_completion_tokens"] == 512 and payload["extra_body"]["max_tokens"] == 512
    hosted = build_chat_model(resolved({"model": "m", "base_url": "https://api.openai.com/v1", "api_key": "sk-t",
                                        "max_output_tokens": 50}, config=absent))
    payload = hosted._get_request_payload([HumanMessage("hi")])
    assert payload["max_completion_tokens"] == 50 and "max_tokens" not in payload.get("extra_body", {})


@pytest.mark.parametrize("url, loopback", [("http://127.0.0.1:8080/v1", True), ("http://localhost:11434/v1", True),
                                           ("http://[::1]:8000/v1", True), ("http://127.5.0.2/v1", True),
                                           ("https://api.openai.com/v1", False), ("http://10.0.0.5:8080/v1", False),
                                           (None, False)])
def test_loopback_detection(url, loopback):
    assert is_loopback_url(url) is loopback


def test_compact_profile_names_the_same_tools_and_is_far_smaller():
    load_builtin_tools()
    full = [spec.openai_tool() for spec in REGISTRY.values()] + agent_tool_schemas()
    compact = profile_schemas("compact", full)
    assert [s["function"]["name"] for s in compact] == [s["function"]["name"] for s in full]
    full_size, compact_size = schema_size(full), schema_size(compact)
    # measured (17 tools): full 28,773 characters (~7,194 tokens), compact 5,880 characters (~1,470 tokens)
    assert full_size["chars"] > 15_000 and compact_size["chars"] < 6_000
    assert compact_size["approx_tokens"] * 4 < full_size["approx_tokens"]
    assert compact_size["approx_tokens"] == -(-compact_size["chars"] // 4)
    for spec in compact:  # flat: no nesting, no anyOf, every argument named by the full tool
        params = spec["function"]["parameters"]
        text = json.dumps(params)
        assert "anyOf" not in text and "$ref" not in text and len(spec["function"]["description"]) <= 120
        name = spec["function"]["name"]
        full_props = next(s for s in full if s["function"]["name"] == name)["function"]["parameters"]["properties"]
        assert set(params["properties"]) <= set(full_props), name
        assert len(params["properties"]) <= 4, name


def test_compact_calls_validate_against_the_full_tools():
    from serendip.tools.engine.registry import get_spec, validate_arguments

    samples = {"correlate": {"columns": ["a", "b"], "target": "a", "control": ["c"]},
               "cluster": {"columns": ["a"], "method": "gmm", "space": "umap", "embedding": "R2_umap"},
               "outliers": {"method": "off_relation", "x": "a", "y": "b"},
               "residualize": {"y": ["a"], "x": ["b"]}, "select": {"expression": "a > 1"},
               "transform": {"columns": ["a"], "kind": "auto"}, "compare": {"by": "g"},
               "plot": {"kind": "scatter", "x": "a", "y": "b"}}
    for name, args in samples.items():
        validate_arguments(get_spec(name), args)  # raises on a compact argument the full tool refuses


def test_eval_carries_the_model_settings_into_every_run(monkeypatch, tmp_path):
    import serendip
    from serendip.evals import runner

    args = runner.build_parser().parse_args(["--planner", "hybrid", "--tool-profile", "compact", "--timeout", "900"])
    assert (args.planner, args.tool_profile, args.request_timeout) == ("hybrid", "compact", 900.0)
    seen = []
    monkeypatch.setattr(serendip, "explore", lambda table, **kw: seen.append(kw["settings"]))
    settings = Settings.defaults(model="m", base_url=LOCAL, planner="hybrid", tool_profile="compact",
                                 request_timeout=900.0)
    job = runner.Job(case_path="c.toml", case_name="c", anonymised=False, out_root=str(tmp_path), settings=settings)
    runner.explore_case(job, tmp_path / "t.csv", "goal", 0, tmp_path / "run")
    assert (seen[0].planner, seen[0].tool_profile, seen[0].request_timeout) == ("hybrid", "compact", 900.0)
