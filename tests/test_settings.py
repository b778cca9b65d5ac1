"""The one configuration: flag > environment > config file > default, where each value came from,
``serendip config show`` with the key masked, and the chat model built from the settings."""

from __future__ import annotations

import pytest

from serendip.agent.cli import main
from serendip.agent.explore import ExploreConfig
from serendip.agent.loop import LoopLimits
from serendip.agent.models import build_chat_model
from serendip.agent.settings import MASK, PLACEHOLDER_KEY, Settings, SettingsError, config_path, show


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('model = "file-model"\nbase_url = "http://file.example/v1/"\napi_key_env = "MY_KEY"\n'
                    "temperature = 0.2\ntimeout = 30\n[limits]\nmax_steps = 12\ntime_limit = 99\n"
                    "[thresholds]\nq_max = 0.01\n", encoding="utf-8")
    return path


def test_default_is_the_autopilot(tmp_path):
    s = Settings.resolve(env={}, config_file=tmp_path / "absent.toml")
    assert s.is_autopilot and s.base_url is None and s.api_key is None
    assert (s.max_steps, s.max_tokens, s.time_limit, s.seed) == (40, 1_000_000, 3600.0, 0)
    assert set(s.sources.values()) == {"default"}


def test_one_set_of_defaults_for_every_consumer():
    s = Settings.defaults()
    cfg = ExploreConfig(table="t.csv")
    limits = LoopLimits()
    assert cfg.max_steps == limits.max_steps == s.max_steps
    assert cfg.max_tokens == limits.max_tokens == s.max_tokens
    assert cfg.time_limit == limits.time_limit == s.time_limit
    assert limits.max_tries == s.max_retries and cfg.thresholds.q_max == s.q_max
    assert LoopLimits.from_settings(s.replace(max_steps=7)).max_steps == 7


def test_config_file_is_used_when_nothing_else_is_set(config_file):
    s = Settings.resolve(env={"MY_KEY": "k-file"}, config_file=config_file)
    assert (s.model, s.base_url, s.key) == ("file-model", "http://file.example/v1", "k-file")
    assert (s.temperature, s.request_timeout, s.max_steps, s.time_limit, s.q_max) == (0.2, 30.0, 12, 99.0, 0.01)
    assert s.sources["api_key"].startswith("env MY_KEY") and s.sources["max_steps"] == f"config {config_file}"


def test_environment_beats_the_config_file(config_file):
    env = {"SERENDIP_MODEL": "env-model", "OPENAI_BASE_URL": "http://openai-env/v1", "OPENAI_API_KEY": "k-env",
           "MY_KEY": "k-file", "SERENDIP_MAX_STEPS": "7"}
    s = Settings.resolve(env=env, config_file=config_file)
    assert (s.model, s.base_url, s.key, s.max_steps) == ("env-model", "http://openai-env/v1", "k-env", 7)
    assert s.sources["max_steps"] == "env SERENDIP_MAX_STEPS" and s.sources["time_limit"] == f"config {config_file}"
    s = Settings.resolve(env={**env, "SERENDIP_BASE_URL": "http://serendip-env/v1"}, config_file=config_file)
    assert s.base_url == "http://serendip-env/v1" and s.sources["base_url"] == "env SERENDIP_BASE_URL"


def test_flags_beat_the_environment(config_file):
    env = {"SERENDIP_MODEL": "env-model", "SERENDIP_BASE_URL": "http://env/v1", "OPENAI_API_KEY": "k-env",
           "SERENDIP_SEED": "5"}
    s = Settings.resolve({"model": "flag-model", "base_url": "http://flag/v1", "seed": 9, "max_steps": None},
                         env=env, config_file=config_file)
    assert (s.model, s.base_url, s.key, s.seed, s.max_steps) == ("flag-model", "http://flag/v1", "k-env", 9, 12)
    assert s.sources["model"] == s.sources["base_url"] == s.sources["seed"] == "flag"


def test_config_path_comes_from_serendip_config(tmp_path, config_file, monkeypatch):
    monkeypatch.setenv("SERENDIP_CONFIG", str(config_file))
    monkeypatch.delenv("SERENDIP_MODEL", raising=False)
    assert config_path() == config_file
    assert Settings.resolve().model == "file-model"
    assert config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "serendip" / "config.toml"


def test_local_server_needs_no_key(tmp_path):
    s = Settings.resolve({"model": "llama3.1", "base_url": "http://127.0.0.1:11434/v1"}, env={},
                         config_file=tmp_path / "absent.toml")
    assert s.key == PLACEHOLDER_KEY and s.require_key() is s


def test_hosted_model_without_key_is_a_one_line_error(tmp_path):
    s = Settings.resolve({"model": "gpt-4o"}, env={}, config_file=tmp_path / "absent.toml")
    with pytest.raises(SettingsError) as err:
        s.require_key()
    message = str(err.value)
    assert "needs an API key" in message and "--base-url" in message and "\n" not in message


@pytest.mark.parametrize("text,needle", [("model = ", "cannot read the config file"),
                                         ('temperature = "hot"', "temperature (from config"),
                                         ("timeout = 0", "request_timeout (from config"),
                                         ("[limits]\nmax_steps = -1", "max_steps (from config"),
                                         ('base_url = "localhost:8000"', "must start with http")])
def test_bad_config_values_are_one_line_errors(tmp_path, text, needle):
    path = tmp_path / "config.toml"
    path.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(SettingsError) as err:
        Settings.resolve(env={}, config_file=path)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_bad_environment_value_names_its_variable(tmp_path):
    with pytest.raises(SettingsError, match=r"max_steps \(from env SERENDIP_MAX_STEPS\)"):
        Settings.resolve(env={"SERENDIP_MAX_STEPS": "many"}, config_file=tmp_path / "absent.toml")
    with pytest.raises(SettingsError, match="unknown setting 'max_stepz'"):
        Settings.resolve({"max_stepz": 3}, env={}, config_file=tmp_path / "absent.toml")


def test_model_section_is_accepted(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[model]\nmodel = "m"\napi_key = "k"\n', encoding="utf-8")
    s = Settings.resolve(env={}, config_file=path)
    assert (s.model, s.key) == ("m", "k")


def test_the_key_is_masked_everywhere_it_is_shown(tmp_path):
    secret = "sk-very-secret-1234567890"
    s = Settings.resolve(env={"OPENAI_API_KEY": secret}, config_file=tmp_path / "absent.toml")
    assert s.key == secret
    for text in (repr(s), str(s.public()), show(s), str(ExploreConfig(table="t", settings=s).public())):
        assert secret not in text
    assert s.public()["api_key"] == MASK and "api_key" not in ExploreConfig(table="t", settings=s).public()


def test_config_show_prints_values_and_sources(tmp_path, config_file, monkeypatch, capsys):
    monkeypatch.setenv("SERENDIP_CONFIG", str(config_file))
    monkeypatch.setenv("MY_KEY", "sk-do-not-print-me")
    monkeypatch.setenv("SERENDIP_TOOL_TIME_LIMIT", "42")
    for var in ("SERENDIP_MODEL", "SERENDIP_BASE_URL", "OPENAI_BASE_URL", "OPENAI_API_KEY", "SERENDIP_MAX_STEPS"):
        monkeypatch.delenv(var, raising=False)
    assert main(["config", "show", "--max-steps", "3"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line and not line.startswith("#")}
    assert "sk-do-not-print-me" not in out and MASK in lines["api_key"] and "env MY_KEY" in lines["api_key"]
    assert lines["max_steps"].split()[1] == "3" and lines["max_steps"].endswith("(flag)")
    assert lines["tool_time_limit"].split()[1] == "42.0" and "(env SERENDIP_TOOL_TIME_LIMIT)" in lines["tool_time_limit"]
    assert lines["model"].split()[1] == "file-model" and f"(config {config_file})" in lines["model"]
    assert lines["seed"].endswith("(default)")


def test_config_show_refuses_a_bad_value_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SERENDIP_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("SERENDIP_MEMORY_LIMIT_MB", "12")
    assert main(["config", "show"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "memory_limit_mb (from env SERENDIP_MEMORY_LIMIT_MB)" in err


def test_build_chat_model_does_no_retries_of_its_own():
    chat = build_chat_model(Settings.defaults(model="m", base_url="http://127.0.0.1:9/v1", api_key="k",
                                              request_timeout=7, max_output_tokens=256, seed=3))
    assert chat.max_retries == 0 and chat.request_timeout == 7 and chat.temperature == 0
    assert chat.max_tokens == 256 and chat.seed == 3
    assert chat.openai_api_base == "http://127.0.0.1:9/v1" and chat.use_responses_api is False
    with pytest.raises(SettingsError):
        build_chat_model(Settings.defaults())
