"""The one configuration of a run: model, endpoint, limits, seed and thresholds, shared by the CLI, the
public API, the LLM loop, the autopilot and the evals.

Each setting is taken from the first place that gives it (pydantic-settings sources, highest first):

1. a flag or an argument of the API call (``Settings.resolve(flags={...})``);
2. the environment: ``SERENDIP_<FIELD>`` (e.g. ``SERENDIP_MAX_STEPS``), plus the established names
   ``SERENDIP_MODEL``, ``SERENDIP_BASE_URL`` / ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY``;
3. the config file: ``$SERENDIP_CONFIG``, else ``$XDG_CONFIG_HOME/serendip/config.toml`` (``~/.config``).
   Keys may be top-level or grouped in ``[model]``, ``[limits]`` and ``[thresholds]`` tables;
   ``timeout`` is accepted for ``request_timeout`` and ``api_key_env`` names the variable holding the key;
4. the default declared on the field.

``Settings.sources`` says where each value came from, and :func:`show` prints them (``serendip config
show``) with the key masked. To add a setting, add one field (with its description) to :class:`Settings`;
it is then readable from every source and shown by ``config show``.
"""

from __future__ import annotations

import contextvars
import math
import os
import tomllib
from pathlib import Path
from typing import Any, Literal, Mapping
from urllib.parse import urlparse

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

AUTOPILOT = "autopilot"
PLACEHOLDER_KEY = "not-needed"
ENV_PREFIX = "SERENDIP_"
ENV_NAMES: dict[str, tuple[str, ...]] = {
    "base_url": ("SERENDIP_BASE_URL", "OPENAI_BASE_URL"),
    "api_key": ("OPENAI_API_KEY",),
}
"""Environment variables read for a field besides ``SERENDIP_<FIELD>`` (first set wins)."""
FILE_ALIASES = {"timeout": "request_timeout"}
FILE_SECTIONS = ("model", "limits", "thresholds")
MASK = "********"
LOCAL_REQUEST_TIMEOUT_S = 600.0
LOCAL_MAX_OUTPUT_TOKENS = 512
"""Small local models fall into repetition: with 1,024 a real 1.5B reply ran to the limit and cost 4 min of a CPU
server (evals/RESULTS-local-llm.md); a tool call needs under 200 tokens and a closing summary fits in 512."""
LOCAL_MAX_RETRIES = 2


class SettingsError(ValueError):
    """A setting is unusable; the message is one line that says which, where it came from and how to fix it."""


class Settings(BaseSettings):
    """Everything that configures a run (one field per setting; see the module docstring for sources)."""

    model_config = SettingsConfigDict(extra="ignore", validate_default=True, frozen=True)
    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    model: str = Field(AUTOPILOT, description="'autopilot' (offline planner) or the name of a chat model")
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint (None = the OpenAI API)")
    api_key: SecretStr | None = Field(None, description="key for the endpoint (never written to disk)")
    api_key_env: str | None = Field(None, description="environment variable that holds the key")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="sampling temperature")
    request_timeout: float = Field(120.0, gt=0.0, le=3600.0, description="seconds to wait for one model response")
    max_output_tokens: int | None = Field(None, ge=1, description="most tokens in one model reply (None = server default)")
    max_retries: int = Field(5, ge=1, le=20, description="attempts per model call when the provider fails transiently")
    retry_base_delay: float = Field(1.0, ge=0.0, le=60.0, description="first backoff delay in seconds (doubled each retry)")
    retry_max_delay: float = Field(30.0, ge=0.0, le=600.0, description="longest single backoff delay in seconds")
    max_steps: int = Field(40, ge=1, le=10_000, description="most model turns (LLM) or planner steps (autopilot)")
    max_tokens: int = Field(1_000_000, ge=1, description="most tokens a model run may use (prompt + completion)")
    time_limit: float = Field(3600.0, gt=0, description="wall-clock limit of the whole run in seconds")
    tool_time_limit: float = Field(600.0, gt=0, description="wall-clock limit of one tool call in seconds")
    memory_limit_mb: int = Field(8192, ge=512, description="memory cap of the tool worker in MiB")
    max_tool_failures: int = Field(3, ge=1, description="failed calls in a row after which a tool is refused (LLM runs)")
    wrap_up_steps: int = Field(2, ge=0, description="tell the model to wrap up when this many turns are left")
    wrap_up_fraction: float = Field(0.85, gt=0, le=1, description="... or when this fraction of tokens/time is spent")
    planner: Literal["llm", "hybrid", "autopilot"] = Field(
        "llm", description="with a model: llm (the model plans), hybrid (the autopilot's pass first, then the model "
                           "follows up; falls back to the pass) or autopilot")
    tool_choice: Literal["required", "auto", "off"] = Field(
        "required", description="tool_choice sent to the server (off = not sent; dropped if the server refuses it)")
    tool_profile: Literal["auto", "full", "compact"] = Field(
        "auto", description="tool schemas shown to the model: compact for small models (auto = compact on loopback)")
    summary_rewrite: bool = Field(True, description="with a model: ask it once to rewrite the report's opening summary "
                                  "(shown only when every number and id in it checks out; off = the template alone)")
    seed: int = Field(0, description="seed for every random choice")
    memory_budget_mb: int | None = Field(None, ge=16, description="memory for a partitioned Parquet dataset in MiB: "
                                         "sizes the sample and the local Dask workers (None = a quarter of the machine)")
    sample_rows: int | None = Field(None, ge=100, description="rows of the seeded sample the models are fitted on "
                                    "for a partitioned Parquet dataset (None = what the memory budget holds)")
    cluster: str | None = Field(None, description="Dask scheduler address for partitioned Parquet datasets "
                                "(None = a LocalCluster sized to the machine)")
    q_max: float = Field(0.05, gt=0, le=1, description="largest run-wide q-value of a significant trend")
    min_effect: float = Field(0.1, ge=0, le=1, description="smallest absolute effect worth reporting")
    min_stability: float = Field(0.6, ge=0, le=1, description="smallest resampling agreement of a stable grouping")

    @field_validator("base_url", mode="before")
    @classmethod
    def _clean_url(cls, value: Any) -> Any:
        if value in (None, ""):
            return None
        url = str(value).strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the base URL must start with http:// or https://; got {url[:80]!r}")
        return url

    @field_validator("model", mode="before")
    @classmethod
    def _clean_model(cls, value: Any) -> Any:
        return str(value).strip() or AUTOPILOT if value is not None else AUTOPILOT

    @field_validator("temperature", "request_timeout", "time_limit", "tool_time_limit", "retry_base_delay",
                     "retry_max_delay", "wrap_up_fraction", "q_max", "min_effect", "min_stability")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    # ------------------------------------------------------------------ sources
    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        """Flags (init arguments) > our environment names > the TOML config file > defaults."""
        ctx = _CONTEXT.get()
        return (_Recorded(init_settings, "flag"), EnvSource(settings_cls, ctx.env),
                ConfigFileSource(settings_cls, ctx.path))

    @classmethod
    def resolve(cls, flags: Mapping[str, Any] | None = None, *, env: Mapping[str, str] | None = None,
                config_file: str | Path | None = None) -> "Settings":
        """The effective settings: ``flags`` (None values ignored) over the environment, config file, defaults.

        Args:
            flags: Values given on the command line or to an API call.
            env: The environment (``os.environ`` by default).
            config_file: The config file (``config_path(env)`` by default).

        Raises:
            SettingsError: A value is out of range or of the wrong type, or the config file is unreadable.
        """
        env = dict(os.environ if env is None else env)
        path = Path(config_file).expanduser() if config_file is not None else config_path(env)
        ctx = _Context(env=env, path=path)
        token = _CONTEXT.set(ctx)
        try:
            given = {k: v for k, v in (flags or {}).items() if v is not None}
            unknown = sorted(set(given) - set(cls.model_fields))
            if unknown:
                raise SettingsError(f"unknown setting {unknown[0]!r}; settings: {', '.join(cls.model_fields)}")
            try:
                settings = cls(**given)
            except ValidationError as exc:
                raise SettingsError(_one_line(exc, ctx.sources)) from None
        finally:
            _CONTEXT.reset(token)
        settings._sources = {name: ctx.sources.get(name, "default") for name in cls.model_fields}
        return settings._with_key_fallbacks(env)

    @classmethod
    def defaults(cls, **values: Any) -> "Settings":
        """Defaults overridden by ``values`` only (no environment, no config file): for tests and callers
        that want a reproducible configuration."""
        token = _CONTEXT.set(_Context(env={}, path=None))
        try:
            settings = cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            raise SettingsError(_one_line(exc, {k: "argument" for k in values})) from None
        finally:
            _CONTEXT.reset(token)
        settings._sources = {n: ("argument" if values.get(n) is not None else "default") for n in cls.model_fields}
        return settings

    def _with_key_fallbacks(self, env: Mapping[str, str]) -> "Settings":
        """The key from ``api_key_env``, or a placeholder for a local server that needs none."""
        if self.api_key is not None:
            return self
        key, source = None, ""
        if self.api_key_env and env.get(self.api_key_env):
            key, source = env[self.api_key_env], f"env {self.api_key_env} (named in {self.sources['api_key_env']})"
        elif self.base_url:
            key, source = PLACEHOLDER_KEY, "placeholder for a local server"
        if key is None:
            return self
        return self.replace(api_key=key, _source=source)

    # ------------------------------------------------------------------ use
    @property
    def sources(self) -> dict[str, str]:
        """Where each value came from: 'flag', 'env NAME', 'config PATH', 'argument' or 'default'."""
        return dict(getattr(self, "_sources", None) or {n: "default" for n in type(self).model_fields})

    @property
    def is_autopilot(self) -> bool:
        """True for the offline planner (no model at all)."""
        return self.model == AUTOPILOT

    @property
    def key(self) -> str | None:
        """The API key in clear (to hand to the client only)."""
        return self.api_key.get_secret_value() if self.api_key is not None else None

    @property
    def thresholds(self):
        """The reporting thresholds as the tools take them."""
        from serendip.tools.engine.thresholds import Thresholds

        return Thresholds(q_max=self.q_max, min_effect=self.min_effect, min_stability=self.min_stability)

    def replace(self, _source: str = "argument", **values: Any) -> "Settings":
        """A copy with ``values`` changed (validated), their source set to ``_source``."""
        data = {**self.model_dump(), **{k: v for k, v in values.items() if v is not None}}
        token = _CONTEXT.set(_Context(env={}, path=None))
        try:
            new = type(self)(**data)
        except ValidationError as exc:
            raise SettingsError(_one_line(exc, {k: _source for k in values})) from None
        finally:
            _CONTEXT.reset(token)
        new._sources = {**self.sources, **{k: _source for k, v in values.items() if v is not None}}
        return new

    def public(self) -> dict[str, Any]:
        """Every value, JSON-ready, with the key masked (for run.json and ``config show``)."""
        data = self.model_dump(mode="json")
        data["api_key"] = MASK if self.api_key is not None else None
        return data

    @property
    def is_loopback(self) -> bool:
        """True when the endpoint is on this machine (localhost, 127.0.0.0/8, ::1): likely a CPU server."""
        if not self.base_url:
            return False
        host = (urlparse(self.base_url).hostname or "").lower()
        return host in ("localhost", "::1") or host.startswith("127.")

    def for_endpoint(self) -> "Settings":
        """These settings with the defaults suited to the endpoint: on loopback (a CPU server, where a first
        prompt can take minutes and a retry redoes all of it) a long request timeout, bounded replies and few
        attempts, for each of these values that nobody set."""
        if not self.is_loopback:
            return self
        local = {"request_timeout": LOCAL_REQUEST_TIMEOUT_S, "max_output_tokens": LOCAL_MAX_OUTPUT_TOKENS,
                 "max_retries": LOCAL_MAX_RETRIES}
        chosen = {k: v for k, v in local.items() if self.sources.get(k, "default") == "default"}
        return self.replace(_source="default for a loopback endpoint", **chosen) if chosen else self

    def require_key(self) -> "Settings":
        """Refuse a hosted model that has no key.

        Raises:
            SettingsError: The model is not the autopilot and neither a key nor a base URL is set.
        """
        if not self.is_autopilot and self.api_key is None:
            raise SettingsError(
                f"model {self.model!r} needs an API key: set OPENAI_API_KEY (or api_key_env in the config file), "
                "or give --base-url for a local OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio)")
        return self


# ---------------------------------------------------------------------- sources
class _Context:
    def __init__(self, env: Mapping[str, str], path: Path | None) -> None:
        self.env = env
        self.path = path
        self.sources: dict[str, str] = {}


_CONTEXT: contextvars.ContextVar[_Context] = contextvars.ContextVar("serendip_settings",
                                                                      default=_Context(os.environ, None))


class _Recorded(PydanticBaseSettingsSource):
    """Wraps a pydantic-settings source and records which fields it gave."""

    def __init__(self, inner: PydanticBaseSettingsSource, label: str) -> None:
        super().__init__(inner.settings_cls)
        self.inner = inner
        self.label = label

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.inner.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        values = self.inner()
        sources = _CONTEXT.get().sources
        for name in values:
            sources.setdefault(name, self.label)
        return values


class EnvSource(PydanticBaseSettingsSource):
    """``SERENDIP_<FIELD>`` and the established variable names of :data:`ENV_NAMES`, from a given mapping."""

    def __init__(self, settings_cls, env: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.env = env

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        for var in (ENV_PREFIX + field_name.upper(),) + ENV_NAMES.get(field_name, ()):
            if self.env.get(var):
                return self.env[var], var, False
        return None, "", False

    def __call__(self) -> dict[str, Any]:
        out = {}
        sources = _CONTEXT.get().sources
        for name, field in self.settings_cls.model_fields.items():
            value, var, _ = self.get_field_value(field, name)
            if value is not None:
                out[name] = value
                sources.setdefault(name, f"env {var}")
        return out


class ConfigFileSource(PydanticBaseSettingsSource):
    """The TOML config file: top-level keys and the ``[model]``, ``[limits]``, ``[thresholds]`` tables."""

    def __init__(self, settings_cls, path: Path | None) -> None:
        super().__init__(settings_cls)
        self.path = path
        self.values = read_config_file(path) if path is not None else {}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        sources = _CONTEXT.get().sources
        out = {}
        for name in self.settings_cls.model_fields:
            if self.values.get(name) not in (None, ""):
                out[name] = self.values[name]
                sources.setdefault(name, f"config {self.path}")
        return out


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """The config file: ``$SERENDIP_CONFIG``, else ``$XDG_CONFIG_HOME/serendip/config.toml`` (~/.config)."""
    env = os.environ if env is None else env
    if env.get("SERENDIP_CONFIG"):
        return Path(env["SERENDIP_CONFIG"]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "serendip" / "config.toml"


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings in a TOML config file, flattened (empty when the file does not exist).

    Raises:
        SettingsError: The file exists but is not readable TOML.
    """
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
        raise SettingsError(f"cannot read the config file {path}: {str(exc).splitlines()[0]}") from None
    flat = {k: v for k, v in data.items() if not isinstance(v, dict)}
    for section in FILE_SECTIONS:
        if isinstance(data.get(section), dict):
            flat.update(data[section])
    return {FILE_ALIASES.get(k, k): v for k, v in flat.items()}


def _one_line(exc: ValidationError, sources: Mapping[str, str]) -> str:
    err = exc.errors()[0]
    name = str(err["loc"][0]) if err.get("loc") else "a setting"
    where = sources.get(name, "default")
    shown = MASK if name == "api_key" else repr(err.get("input"))[:80]
    message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{name} (from {where}) is invalid: {message}; got {shown}"


def show(settings: Settings) -> str:
    """The effective settings as aligned lines ``name  value  (source)``, the key masked."""
    values = settings.public()
    sources = settings.sources
    width = max(len(n) for n in values)
    lines = []
    for name, value in values.items():
        text = "None" if value is None else str(value)
        lines.append(f"{name:<{width}}  {text:<28}  ({sources.get(name, 'default')})")
    return "\n".join(lines)
