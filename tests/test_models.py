"""Model settings: flag > environment > config file > default, and the chat model built from them."""

from __future__ import annotations

import pytest

from serendip.agent.models import (PLACEHOLDER_KEY, ModelConfig, ModelConfigError, build_chat_model, config_path,
                                   resolve_model_config)


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('model = "file-model"\nbase_url = "http://file.example/v1/"\napi_key_env = "MY_KEY"\n'
                    "temperature = 0.2\ntimeout = 30\n", encoding="utf-8")
    return path


def test_default_is_the_autopilot(tmp_path):
    cfg = resolve_model_config(env={}, config_file=tmp_path / "absent.toml")
    assert cfg.is_autopilot and cfg.base_url is None and cfg.api_key is None
    assert cfg.sources["model"] == "default"


def test_config_file_is_used_when_nothing_else_is_set(config_file):
    cfg = resolve_model_config(env={"MY_KEY": "k-file"}, config_file=config_file)
    assert (cfg.model, cfg.base_url, cfg.api_key) == ("file-model", "http://file.example/v1", "k-file")
    assert (cfg.temperature, cfg.timeout) == (0.2, 30.0)
    assert cfg.sources["api_key"].startswith("env MY_KEY")


def test_environment_beats_the_config_file(config_file):
    env = {"SERENDIP_MODEL": "env-model", "OPENAI_BASE_URL": "http://openai-env/v1", "OPENAI_API_KEY": "k-env",
           "MY_KEY": "k-file"}
    cfg = resolve_model_config(env=env, config_file=config_file)
    assert (cfg.model, cfg.base_url, cfg.api_key) == ("env-model", "http://openai-env/v1", "k-env")
    cfg = resolve_model_config(env={**env, "SERENDIP_BASE_URL": "http://serendip-env/v1"}, config_file=config_file)
    assert cfg.base_url == "http://serendip-env/v1" and cfg.sources["base_url"] == "env SERENDIP_BASE_URL"


def test_flags_beat_the_environment(config_file):
    env = {"SERENDIP_MODEL": "env-model", "SERENDIP_BASE_URL": "http://env/v1", "OPENAI_API_KEY": "k-env"}
    cfg = resolve_model_config("flag-model", "http://flag/v1", env=env, config_file=config_file)
    assert (cfg.model, cfg.base_url, cfg.api_key) == ("flag-model", "http://flag/v1", "k-env")
    assert cfg.sources["model"] == cfg.sources["base_url"] == "flag"


def test_config_path_comes_from_serendip_config(tmp_path, config_file, monkeypatch):
    monkeypatch.setenv("SERENDIP_CONFIG", str(config_file))
    monkeypatch.delenv("SERENDIP_MODEL", raising=False)
    assert config_path() == config_file
    assert resolve_model_config().model == "file-model"
    assert config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "serendip" / "config.toml"


def test_local_server_needs_no_key(tmp_path):
    cfg = resolve_model_config("llama3.1", "http://127.0.0.1:11434/v1", env={}, config_file=tmp_path / "absent.toml")
    assert cfg.api_key == PLACEHOLDER_KEY


def test_hosted_model_without_key_is_a_one_line_error(tmp_path):
    with pytest.raises(ModelConfigError) as err:
        resolve_model_config("gpt-4o", env={}, config_file=tmp_path / "absent.toml")
    message = str(err.value)
    assert "needs an API key" in message and "--base-url" in message and "\n" not in message
    unchecked = resolve_model_config("gpt-4o", env={}, config_file=tmp_path / "absent.toml", require_key=False)
    assert unchecked.api_key is None


@pytest.mark.parametrize("text,needle", [("model = ", "cannot read the config file"),
                                         ('temperature = "hot"', "temperature in config"),
                                         ("timeout = 0", "timeout in config"),
                                         ('base_url = "localhost:8000"', "must start with http")])
def test_bad_config_values_are_one_line_errors(tmp_path, text, needle):
    path = tmp_path / "config.toml"
    path.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(ModelConfigError, match=needle) as err:
        resolve_model_config(env={}, config_file=path)
    assert "\n" not in str(err.value)


def test_model_section_is_accepted(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[model]\nmodel = "m"\napi_key = "k"\n', encoding="utf-8")
    cfg = resolve_model_config(env={}, config_file=path)
    assert (cfg.model, cfg.api_key) == ("m", "k")


def test_build_chat_model_does_no_retries_of_its_own():
    chat = build_chat_model(ModelConfig(model="m", base_url="http://127.0.0.1:9/v1", api_key="k", timeout=7))
    assert chat.max_retries == 0 and chat.request_timeout == 7 and chat.temperature == 0
    assert chat.openai_api_base == "http://127.0.0.1:9/v1" and chat.use_responses_api is False
    with pytest.raises(ModelConfigError):
        build_chat_model(ModelConfig())
