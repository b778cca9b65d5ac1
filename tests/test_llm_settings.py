"""Model request settings (timeout, max output tokens, retries, tool_choice, tool profile, planner) from
flags, the environment and the config file, with defaults for a CPU server on loopback; and the
compact tool profile's size."""

from __future__ import annotations

import json

import pytest

from serendip.agent.agent_tools import agent_tool_schemas
from serendip.agent.models import ModelConfigError, build_chat_model, resolve_model_config
from serendip.agent.tool_profiles import is_loopback_url, profile_schemas, resolve_profile, schema_size
from serendip.tools.registry import REGISTRY, load_builtin_tools

LOCAL = "http://127.0.0.1:8089/v1"


@pytest.fixture
def no_config(tmp_path, monkeypatch):
    for var in ("SERENDIP_TIMEOUT", "SERENDIP_MAX_OUTPUT_TOKENS", "SERENDIP_RETRIES", "SERENDIP_TOOL_CHOICE",
                "SERENDIP_TOOL_PROFILE", "SERENDIP_PLANNER", "SERENDIP_MODEL", "SERENDIP_BASE_URL",
                "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "absent.toml"


def test_loopback_defaults_suit_a_cpu_server(no_config):
    local = resolve_model_config("qwen", LOCAL, config_file=no_config, env={})
    hosted = resolve_model_config("gpt-x", None, "sk-test", config_file=no_config, env={})
    assert (local.timeout, local.max_output_tokens, local.retries) == (600.0, 1024, 1)
    assert (hosted.timeout, hosted.max_output_tokens, hosted.retries) == (120.0, 4096, 4)
    assert local.tool_choice == hosted.tool_choice == "required" and local.planner == "llm"
    assert resolve_profile(local.tool_profile, local.base_url) == "compact"
    assert resolve_profile(hosted.tool_profile, hosted.base_url) == "full"


def test_flag_beats_environment_beats_config(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('timeout = 30\nmax_output_tokens = 256\nretries = 0\ntool_choice = "auto"\n'
                      'tool_profile = "full"\nplanner = "hybrid"\n')
    from_file = resolve_model_config("m", LOCAL, config_file=config, env={})
    assert (from_file.timeout, from_file.max_output_tokens, from_file.retries, from_file.tool_choice,
            from_file.tool_profile, from_file.planner) == (30.0, 256, 0, "auto", "full", "hybrid")
    env = {"SERENDIP_TIMEOUT": "45", "SERENDIP_TOOL_CHOICE": "off", "SERENDIP_PLANNER": "autopilot"}
    from_env = resolve_model_config("m", LOCAL, config_file=config, env=env)
    assert (from_env.timeout, from_env.tool_choice, from_env.planner, from_env.retries) == (45.0, "off", "autopilot", 0)
    assert from_env.sources["timeout"] == "env SERENDIP_TIMEOUT" and from_env.sources["retries"].startswith("config")
    flags = resolve_model_config("m", LOCAL, config_file=config, env=env, timeout=5, tool_choice="required",
                                 max_output_tokens=64, retries=3, tool_profile="compact", planner="llm")
    assert (flags.timeout, flags.tool_choice, flags.max_output_tokens, flags.retries, flags.tool_profile,
            flags.planner) == (5.0, "required", 64, 3, "compact", "llm")


@pytest.mark.parametrize("kwargs, needle", [
    ({"timeout": 0}, "timeout in flag must be a number"),
    ({"retries": -1}, "retries in flag"),
    ({"tool_choice": "always"}, "tool_choice in flag must be one of required, auto, off"),
    ({"tool_profile": "tiny"}, "tool_profile in flag must be one of auto, full, compact"),
    ({"planner": "magic"}, "planner in flag must be one of llm, hybrid, autopilot"),
])
def test_bad_settings_are_one_line_errors(no_config, kwargs, needle):
    with pytest.raises(ModelConfigError) as err:
        resolve_model_config("m", LOCAL, config_file=no_config, env={}, **kwargs)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_bad_environment_value_names_its_source(no_config):
    with pytest.raises(ModelConfigError, match="env SERENDIP_MAX_OUTPUT_TOKENS"):
        resolve_model_config("m", LOCAL, config_file=no_config, env={"SERENDIP_MAX_OUTPUT_TOKENS": "lots"})


def test_chat_model_gets_timeout_and_max_tokens(no_config):
    cfg = resolve_model_config("m", LOCAL, config_file=no_config, env={}, timeout=12, max_output_tokens=300)
    model = build_chat_model(cfg)
    assert model.request_timeout == 12 and model.max_tokens == 300 and model.max_retries == 0


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
    # measured: full 24,427 characters (~6,107 tokens), compact 4,972 characters (~1,243 tokens)
    assert full_size["chars"] > 15_000 and compact_size["chars"] < 5_200
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
    from serendip.tools.registry import get_spec, validate_arguments

    samples = {"correlate": {"columns": ["a", "b"], "target": "a", "control": ["c"]},
               "cluster": {"columns": ["a"], "method": "gmm", "space": "umap", "embedding": "R2_umap"},
               "outliers": {"method": "off_relation", "x": "a", "y": "b"},
               "residualize": {"y": ["a"], "x": ["b"]}, "select": {"expression": "a > 1"},
               "transform": {"columns": ["a"], "kind": "auto"}, "compare": {"by": "g"},
               "plot": {"kind": "scatter", "x": "a", "y": "b"}}
    for name, args in samples.items():
        validate_arguments(get_spec(name), args)  # raises on a compact argument the full tool refuses


def test_eval_carries_the_model_settings_into_every_run(monkeypatch, tmp_path):
    from serendip.agent import explore as explore_module
    from serendip.evals import runner

    args = runner.build_parser().parse_args(["--planner", "hybrid", "--tool-profile", "compact", "--timeout", "900"])
    assert (args.planner, args.tool_profile, args.timeout) == ("hybrid", "compact", 900.0)
    seen = []
    monkeypatch.setattr(explore_module, "explore", lambda cfg, progress=None: seen.append(cfg))
    job = runner.Job(case_path="c.toml", case_name="c", anonymised=False, out_root=str(tmp_path), model="m",
                     base_url=LOCAL, settings=(("planner", "hybrid"), ("tool_profile", "compact"), ("timeout", 900.0)))
    runner.explore_case(job, tmp_path / "t.csv", "goal", 0, tmp_path / "run")
    assert (seen[0].planner, seen[0].tool_profile, seen[0].timeout) == ("hybrid", "compact", 900.0)
