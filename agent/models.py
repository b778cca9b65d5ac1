"""Which chat model drives a run, and how to reach it.

Each setting is taken from the first place that gives it: a command-line flag, then the environment
(``SERENDIP_MODEL``; ``SERENDIP_BASE_URL`` or ``OPENAI_BASE_URL``; ``OPENAI_API_KEY``), then the config
file (``~/.config/serendip/config.toml``, or the path in ``SERENDIP_CONFIG``; keys ``model``,
``base_url``, ``api_key_env`` or ``api_key``, ``temperature``, ``timeout``), then the default: the
offline ``autopilot``. Local OpenAI-compatible servers (Ollama, vLLM, llama.cpp, LM Studio) need no
real key, so a placeholder is used when a base URL is set and no key is.

Request settings (issue 9), each from a flag, the environment or the config file:

| setting | flag | environment | config key | default (loopback / hosted) |
| --- | --- | --- | --- | --- |
| request timeout, s | ``--timeout`` | ``SERENDIP_TIMEOUT`` | ``timeout`` | 600 / 120 |
| max output tokens | ``--max-output-tokens`` | ``SERENDIP_MAX_OUTPUT_TOKENS`` | ``max_output_tokens`` | 1024 / 4096 |
| retries of a failed call | ``--retries`` | ``SERENDIP_RETRIES`` | ``retries`` | 1 / 4 |
| tool_choice sent | ``--tool-choice`` | ``SERENDIP_TOOL_CHOICE`` | ``tool_choice`` | required (off = not sent) |
| tool profile | ``--tool-profile`` | ``SERENDIP_TOOL_PROFILE`` | ``tool_profile`` | auto: compact / full |
| planner | ``--planner`` | ``SERENDIP_PLANNER`` | ``planner`` | llm |

A loopback endpoint (localhost, 127.0.0.0/8, ::1) is taken for a CPU server: a first prompt can take
minutes, and a retried request redoes all of it, so the timeout is long and retries few.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

AUTOPILOT = "autopilot"
PLACEHOLDER_KEY = "not-needed"
DEFAULT_TIMEOUT_S = 120.0
CONFIG_KEYS = ("model", "base_url", "api_key_env", "api_key", "temperature", "timeout",
               "max_output_tokens", "retries", "tool_choice", "tool_profile", "planner")  # issue 9: last five
# issue 9: request settings, defaults for (loopback endpoint, hosted endpoint)
LOCAL_TIMEOUT_S = 600.0
DEFAULT_MAX_OUTPUT_TOKENS = (1024, 4096)
DEFAULT_RETRIES = (1, 4)
TOOL_CHOICES = ("required", "auto", "off")
PLANNERS = ("llm", "hybrid", "autopilot")


class ModelConfigError(ValueError):
    """The model settings are unusable; the message is one line that says how to fix them."""


@dataclass
class ModelConfig:
    """A resolved model choice.

    Attributes:
        model: 'autopilot' or the name of a chat model.
        base_url: OpenAI-compatible endpoint (None = the OpenAI API).
        api_key: Key for the endpoint (a placeholder for local servers; never written to disk).
        temperature: Sampling temperature.
        timeout: Seconds to wait for one model response.
        max_output_tokens: Most tokens of one model reply (sent as max_tokens).
        retries: Retries of a model call that failed transiently (attempts = retries + 1).
        tool_choice: 'required', 'auto', or 'off' (not sent).
        tool_profile: 'auto', 'full' or 'compact' (see :mod:`~serendip.agent.tool_profiles`).
        planner: 'llm', 'hybrid' or 'autopilot'.
        sources: Where each setting came from ('flag', 'env SERENDIP_MODEL', 'config <path>', 'default').
    """

    model: str = AUTOPILOT
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    temperature: float = 0.0
    timeout: float = DEFAULT_TIMEOUT_S
    max_output_tokens: int | None = None
    retries: int = DEFAULT_RETRIES[1]
    tool_choice: str = "required"
    tool_profile: str = "auto"
    planner: str = "llm"
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def is_autopilot(self) -> bool:
        """True for the offline planner (no model at all)."""
        return self.model == AUTOPILOT


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """The config file: ``$SERENDIP_CONFIG``, else ``$XDG_CONFIG_HOME/serendip/config.toml`` (~/.config)."""
    env = os.environ if env is None else env
    if env.get("SERENDIP_CONFIG"):
        return Path(env["SERENDIP_CONFIG"]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "serendip" / "config.toml"


def read_config_file(path: Path) -> dict:
    """The model settings in a TOML config file (empty when the file does not exist)."""
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
        raise ModelConfigError(f"cannot read the config file {path}: {str(exc).splitlines()[0]}") from None
    section = data.get("model") if isinstance(data.get("model"), dict) else data
    return {k: section[k] for k in CONFIG_KEYS if k in section}


def _number(value, name: str, where: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ModelConfigError(f"{name} in {where} must be a number in [{low:g}, {high:g}]; got {value!r}") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise ModelConfigError(f"{name} in {where} must be a number in [{low:g}, {high:g}]; got {value!r}")
    return number


def _choice(value, name: str, where: str, choices: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in choices:
        raise ModelConfigError(f"{name} in {where} must be one of {', '.join(choices)}; got {str(value)[:40]!r}")
    return text


def resolve_model_config(model: str | None = None, base_url: str | None = None, api_key: str | None = None,
                         *, env: Mapping[str, str] | None = None, config_file: str | Path | None = None,
                         require_key: bool = True, timeout: float | None = None,
                         max_output_tokens: int | None = None, retries: int | None = None,
                         tool_choice: str | None = None, tool_profile: str | None = None,
                         planner: str | None = None) -> ModelConfig:
    """Resolve the model settings from flags, the environment, the config file and the defaults.

    Args:
        model: The ``--model`` flag (None when not given).
        base_url: The ``--base-url`` flag.
        api_key: A key given directly (flag or caller).
        env: The environment (``os.environ`` by default).
        config_file: The config file (``config_path(env)`` by default).
        require_key: Refuse a hosted model that has no key (off when a chat model is supplied directly).
        timeout: The ``--timeout`` flag (seconds per model response).
        max_output_tokens: The ``--max-output-tokens`` flag.
        retries: The ``--retries`` flag.
        tool_choice: The ``--tool-choice`` flag.
        tool_profile: The ``--tool-profile`` flag.
        planner: The ``--planner`` flag.

    Raises:
        ModelConfigError: The config file is unreadable or holds a bad value, or a hosted model has
            no key and no base URL.
    """
    env = os.environ if env is None else env
    path = Path(config_file) if config_file is not None else config_path(env)
    file_cfg = read_config_file(path)
    where = f"config {path}"
    sources: dict[str, str] = {}

    def pick(name: str, flag, env_names: tuple[str, ...], file_key: str | None):
        if flag not in (None, ""):
            sources[name] = "flag"
            return flag
        for var in env_names:
            if env.get(var):
                sources[name] = f"env {var}"
                return env[var]
        if file_key and file_cfg.get(file_key) not in (None, ""):
            sources[name] = where
            return file_cfg[file_key]
        sources[name] = "default"
        return None

    chosen_model = str(pick("model", model, ("SERENDIP_MODEL",), "model") or AUTOPILOT).strip()
    chosen_url = pick("base_url", base_url, ("SERENDIP_BASE_URL", "OPENAI_BASE_URL"), "base_url")
    chosen_url = str(chosen_url).strip().rstrip("/") if chosen_url else None
    key = pick("api_key", api_key, ("OPENAI_API_KEY",), "api_key")
    if key is None and file_cfg.get("api_key_env"):
        var = str(file_cfg["api_key_env"])
        if env.get(var):
            key, sources["api_key"] = env[var], f"env {var} (named in {where})"
    if key is None and chosen_url:
        key, sources["api_key"] = PLACEHOLDER_KEY, "placeholder for a local server"
    temperature = _number(file_cfg.get("temperature", 0.0), "temperature", where, 0.0, 2.0)
    # issue 9: request settings from flag, environment, config file, then a default for the endpoint kind
    from serendip.agent.tool_profiles import PROFILES, is_loopback_url

    local = is_loopback_url(chosen_url)

    def setting(name, flag, var, default):
        value = pick(name, flag, (var,), name)
        return default if value is None else value, sources[name] if value is not None else "default"

    value, src = setting("timeout", timeout, "SERENDIP_TIMEOUT", LOCAL_TIMEOUT_S if local else DEFAULT_TIMEOUT_S)
    timeout = _number(value, "timeout", src, 1.0, 7200.0)
    value, src = setting("max_output_tokens", max_output_tokens, "SERENDIP_MAX_OUTPUT_TOKENS",
                         DEFAULT_MAX_OUTPUT_TOKENS[0 if local else 1])
    max_output_tokens = int(_number(value, "max_output_tokens", src, 16, 1_000_000))
    value, src = setting("retries", retries, "SERENDIP_RETRIES", DEFAULT_RETRIES[0 if local else 1])
    retries = int(_number(value, "retries", src, 0, 20))
    value, src = setting("tool_choice", tool_choice, "SERENDIP_TOOL_CHOICE", "required")
    tool_choice = _choice(value, "tool_choice", src, TOOL_CHOICES)
    value, src = setting("tool_profile", tool_profile, "SERENDIP_TOOL_PROFILE", "auto")
    tool_profile = _choice(value, "tool_profile", src, PROFILES)
    value, src = setting("planner", planner, "SERENDIP_PLANNER", "llm")
    planner = _choice(value, "planner", src, PLANNERS)
    if chosen_url and not chosen_url.startswith(("http://", "https://")):
        raise ModelConfigError(f"the base URL must start with http:// or https://; got {chosen_url[:80]!r} "
                               f"(from {sources['base_url']})")
    cfg = ModelConfig(model=chosen_model, base_url=chosen_url, api_key=key, temperature=temperature,
                      timeout=timeout, max_output_tokens=max_output_tokens, retries=retries,
                      tool_choice=tool_choice, tool_profile=tool_profile, planner=planner, sources=sources)
    if require_key and not cfg.is_autopilot and not cfg.api_key:
        raise ModelConfigError(
            f"model {chosen_model!r} needs an API key: set OPENAI_API_KEY (or api_key_env in {path}), or give "
            "--base-url for a local OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio)")
    return cfg


def build_chat_model(cfg: ModelConfig, seed: int | None = None):
    """A LangChain ``ChatOpenAI`` for ``cfg``; retries are ours (see :mod:`serendip.agent.loop`), not the client's.

    Args:
        cfg: The resolved settings (not the autopilot).
        seed: Sampling seed passed to the endpoint (servers that ignore it are unaffected).
    """
    if cfg.is_autopilot:
        raise ModelConfigError("the autopilot runs without a chat model")
    from langchain_openai import ChatOpenAI

    kwargs = {}
    if cfg.base_url:
        # OpenAI-compatible servers implement chat completions, not always the Responses API.
        kwargs["use_responses_api"] = False
    return ChatOpenAI(model=cfg.model, base_url=cfg.base_url, api_key=cfg.api_key or PLACEHOLDER_KEY,
                      max_retries=0, timeout=cfg.timeout, temperature=cfg.temperature, seed=seed,
                      max_tokens=cfg.max_output_tokens, **kwargs)  # issue 9: max_tokens bounds a reply
