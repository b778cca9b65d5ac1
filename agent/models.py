"""The model layer: the chat model a run talks to, and the adapter that owns retries.

:func:`build_chat_model` makes a LangChain ``ChatOpenAI`` from the run's :class:`~serendip.agent.settings.Settings`
(any OpenAI-compatible endpoint). :class:`ModelAdapter` makes one model call: it retries transient provider
faults (429, 408/409, 5xx, timeouts, dropped connections) and malformed replies (a 200 body that is not
JSON or not a completion, ``choices: []``, an ``error`` object with status 200, an SSE body nobody asked
for, tool-call arguments that are JSON but not an object) with exponential backoff through tenacity,
writes every retry to the transcript (with the offending reply, bounded), and ends the run with
:class:`~serendip.agent.budget.Stop` when the provider refuses (``provider_error``), keeps failing
(``provider_error``), the context overflows (``token_limit``) or waiting would pass the time limit
(``time_limit``). The loop keeps only the step logic.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlparse

import httpx
import pydantic
from langchain_core.exceptions import ContextOverflowError, ModelError
from langchain_core.messages import AIMessage, BaseMessage
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from serendip.agent.budget import Stop
from serendip.agent.settings import PLACEHOLDER_KEY, Settings, SettingsError

ModelConfigError = SettingsError
"""Former name of :class:`~serendip.agent.settings.SettingsError` (kept for callers)."""
TRANSIENT_STATUS = (408, 409, 429)
REPLY_LIMIT = 2000
"""Characters of an offending reply kept in the transcript."""
MALFORMED_ERRORS = (json.JSONDecodeError, ValueError, TypeError, KeyError, IndexError, AttributeError,
                    pydantic.ValidationError)
"""What the client stack raises on a reply it cannot read (a 200 that is not a usable completion; also
openai's APIResponseValidationError)."""


def _openai_module():
    """The openai package when a client was built in this process, else None.

    openai is imported only by :func:`build_chat_model` (it costs over a second, and an offline chat or
    exploration never needs it); an exception can only be one of openai's once a client exists.
    """
    return sys.modules.get("openai")


class MalformedReply(Exception):
    """A reply that arrived but cannot be used (retried like a transient fault)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How model calls are retried.

    Attributes:
        max_tries: Attempts per model call (1 = no retry).
        base_delay: First backoff delay in seconds (doubled at each retry).
        max_delay: Longest single backoff delay.
    """

    max_tries: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> "RetryPolicy":
        """The policy of ``settings`` (max_retries, retry_base_delay, retry_max_delay)."""
        return cls(settings.max_retries, settings.retry_base_delay, settings.retry_max_delay)

    def delay(self, attempt: int, asked: float = 0.0) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based), at least what the provider ``asked``."""
        return min(self.max_delay, max(self.base_delay * 2 ** (attempt - 1), asked))


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``TypeName (status): first line of the message``, bounded."""
    status = getattr(exc, "status_code", None)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    head = type(exc).__name__ + (f" ({status})" if status else "")
    return f"{head}: {text}"[:limit] if text else head


def provider_failure(exc: BaseException) -> str | None:
    """'transient' (worth retrying), 'malformed' (a reply that cannot be used; retried), 'fatal' (a
    provider refusal), or None (not a provider failure)."""
    if isinstance(exc, MalformedReply):
        return "malformed"
    openai = _openai_module()
    if openai is None:
        if isinstance(exc, ModelError):
            return "transient" if exc.is_retryable else "fatal"
        return "malformed" if isinstance(exc, MALFORMED_ERRORS) else None
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if names_tool_choice(exc):  # a refusal of the parameter (even as a 500): asking again cannot help
            return "fatal"
        return "transient" if status in TRANSIENT_STATUS or status >= 500 else "fatal"
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return "transient"
    if isinstance(exc, openai.APIResponseValidationError):
        return "malformed"
    if isinstance(exc, ModelError):
        return "transient" if exc.is_retryable else "fatal"
    if isinstance(exc, openai.OpenAIError):
        return "fatal"
    if isinstance(exc, MALFORMED_ERRORS):
        return "malformed"
    return None


def names_tool_choice(exc: BaseException) -> bool:
    """True when a provider error's message or body is about ``tool_choice`` (a server that does not
    support the value sent; llama-cpp-python's server answers ``required`` with a 500 listing validation
    errors, the parameter named only past the first line)."""
    text = f"{exc} {getattr(exc, 'body', '')}".lower()
    return "tool_choice" in text or "tool choice" in text


CONTEXT_OVERFLOW = re.compile(r"exceeds the available context size|maximum context length|context length exceeded|"
                              r"context_length_exceeded|prompt is too long|too many tokens", re.I)
"""How servers say the conversation no longer fits (llama.cpp: 'request (12168 tokens) exceeds the available
context size (8192 tokens)'; vLLM: 'maximum context length is ... tokens'); LangChain raises its own
ContextOverflowError only for OpenAI's error code."""


def is_context_overflow(exc: BaseException) -> bool:
    """True for a provider's refusal of a conversation longer than the model's context."""
    if isinstance(exc, ContextOverflowError):
        return True
    openai = _openai_module()
    return (openai is not None and isinstance(exc, openai.BadRequestError)
            and bool(CONTEXT_OVERFLOW.search(f"{exc} {getattr(exc, 'body', '')}")))


def retry_after(exc: BaseException) -> float:
    """Seconds the provider asked us to wait (Retry-After header), or 0."""
    response = getattr(exc, "response", None)
    try:
        return float(response.headers.get("retry-after", 0)) if response is not None else 0.0
    except (TypeError, ValueError):
        return 0.0


def check_reply(ai: Any) -> AIMessage:
    """``ai`` if it is a usable reply; else :class:`MalformedReply` saying what is wrong with it."""
    if not isinstance(ai, AIMessage):
        raise MalformedReply(f"the reply is a {type(ai).__name__}, not an assistant message")
    for call in ai.tool_calls:
        if not isinstance(call.get("args"), dict):
            raise MalformedReply(f"the arguments of tool call {str(call.get('name'))[:60]!r} are "
                                 f"{type(call.get('args')).__name__}, not a JSON object")
    return ai


class ReplyRecorder:
    """An httpx response hook that keeps the start of the last response body (for the transcript).

    A streamed reply (server-sent events) is not read here: reading it in the hook would hold every piece
    back until the whole reply had arrived, so tokens could not be shown as they come, a padding reply
    could not be cut short, and a reply still coming at the run's time limit could not be stopped.
    """

    def __init__(self, limit: int = REPLY_LIMIT) -> None:
        self.limit = limit
        self.last = ""

    def __call__(self, response: httpx.Response) -> None:
        content_type = response.headers.get("content-type", "")
        if content_type.startswith("text/event-stream"):
            self.last = f"HTTP {response.status_code} {content_type}: (a stream, read as it arrives)"
            return
        try:
            response.read()
            self.last = f"HTTP {response.status_code} {response.headers.get('content-type', '')}: " \
                        f"{response.text[: self.limit]}"
        except (httpx.HTTPError, UnicodeDecodeError):  # a dropped connection: the client reports it
            self.last = ""


LOCAL_STOP_SEQUENCES = ("<|im_start|>", "<|eot_id|>", "\n\n\n\n\n\n\n\n")
"""Where a reply from a small local model has ended, sent as ``stop`` to loopback servers. Measured with
Qwen2.5-Coder-1.5B on llama-server: after its call (fenced JSON) it pads until ``max_tokens``, with blank lines
or with new turn headers (``<|im_start|>`` of ChatML; ``<|eot_id|>`` is Llama 3's). Stopping there keeps the
call and saves up to 100 s of a 512-token reply on 2 cores. Eight newlines in a row end no useful reply."""


def build_chat_model(settings: Settings):
    """A LangChain ``ChatOpenAI`` for ``settings``; it does no retries of its own (:class:`ModelAdapter` does).

    Args:
        settings: The run's settings (not the autopilot); ``seed`` is passed to the endpoint.

    Raises:
        SettingsError: The settings name the autopilot.
    """
    if settings.is_autopilot:
        raise SettingsError("the autopilot runs without a chat model")
    from langchain_openai import ChatOpenAI

    kwargs: dict[str, Any] = {}
    if settings.base_url:
        # OpenAI-compatible servers implement chat completions, not always the Responses API.
        kwargs["use_responses_api"] = False
    if settings.max_output_tokens:
        kwargs["max_tokens"] = settings.max_output_tokens  # sent as max_completion_tokens
        if settings.base_url and not is_openai_url(settings.base_url):
            # Many OpenAI-compatible servers (llama-cpp-python's llama_cpp.server, older Ollama and vLLM) read
            # only the classic max_tokens and silently ignore max_completion_tokens: a reply is then unbounded.
            kwargs["extra_body"] = {"max_tokens": settings.max_output_tokens}
    if settings.is_loopback:
        kwargs["stop"] = list(LOCAL_STOP_SEQUENCES)
    import openai

    recorder = ReplyRecorder()
    client = openai.DefaultHttpxClient(event_hooks={"response": [recorder]})
    client.serendip_recorder = recorder
    return ChatOpenAI(model=settings.model, base_url=settings.base_url, api_key=settings.key or PLACEHOLDER_KEY,
                      max_retries=0, timeout=settings.request_timeout, temperature=settings.temperature,
                      seed=settings.seed, http_client=client, **kwargs)


def is_openai_url(base_url: str) -> bool:
    """True when ``base_url`` is OpenAI's own API (which wants only ``max_completion_tokens``)."""
    host = (urlparse(base_url).hostname or "").lower()
    return host == "openai.com" or host.endswith(".openai.com")


def last_reply(chat_model) -> str:
    """The start of the last raw HTTP reply ``chat_model`` received ('' when unknown)."""
    recorder = getattr(getattr(chat_model, "http_client", None), "serendip_recorder", None)
    return recorder.last if recorder is not None else ""


class ModelAdapter:
    """One model call with the retry policy; each retry written to the transcript.

    Args:
        chat_model: A LangChain chat model (tools already bound, or not).
        policy: Attempts and backoff.
        log: Called with one transcript record per retry.
        time_left: Seconds left in the run's time budget (a retry that would wait past it stops the run).
        sleep: Sleep function (injectable for tests).
        raw_model: The unbound chat model, whose HTTP client records raw replies (defaults to ``chat_model``).
        on_retry: Called with a one-line description of each retry (progress display).
        client_timeout: The client's own per-request timeout in seconds (None: unknown); a call gets the
            time the run has left instead when that is shorter.
    """

    def __init__(self, chat_model, policy: RetryPolicy, log: Callable[[dict], None],
                 time_left: Callable[[], float] = lambda: float("inf"), sleep: Callable[[float], None] = time.sleep,
                 raw_model=None, on_retry: Callable[[str], None] | None = None,
                 client_timeout: float | None = None) -> None:
        self.chat_model = chat_model
        self.raw_model = raw_model if raw_model is not None else chat_model
        self.policy = policy
        self.log = log
        self.time_left = time_left
        self.sleep = sleep
        self.on_retry = on_retry
        self.client_timeout = client_timeout
        self.step = 0

    def invoke(self, messages: list[BaseMessage], step: int = 0,
               call: Callable[..., Any] | None = None) -> AIMessage:
        """The model's reply to ``messages``.

        Args:
            messages: The conversation so far.
            step: The step number (for the transcript).
            call: Makes one request, ``call(messages, **kwargs)`` (default: the chat model's ``invoke``;
                a front-end passes a streaming call). Retried like the default.

        Raises:
            Stop: ``provider_error`` (refused, or failing after every attempt), ``token_limit`` (context
                overflow) or ``time_limit`` (a retry would wait past the time budget).
        """
        self.step = step
        retrying = Retrying(stop=stop_after_attempt(self.policy.max_tries), retry=retry_if_exception(self._retryable),
                            wait=self._wait, before_sleep=self._before_sleep, sleep=self.sleep, reraise=True)
        try:
            request = call if call is not None else self.chat_model.invoke
            return retrying(lambda: check_reply(request(messages, **self._deadline_kwargs())))
        except Stop:
            raise
        except Exception as exc:  # noqa: BLE001 - classified below; anything else propagates
            kind = provider_failure(exc)
            if kind is None:
                raise
            reason = one_line(exc)
            if is_context_overflow(exc):
                raise Stop("token_limit", f"the conversation no longer fits the model's context: {reason}") from None
            if kind == "fatal":
                self._record(exc, attempt=1, delay=None)
                about = " (the refusal names tool_choice)" if names_tool_choice(exc) else ""
                raise Stop("provider_error", f"the model provider refused the request: {reason}{about}") from None
            self._record(exc, attempt=self.policy.max_tries, delay=None)
            what = "sent unusable replies" if kind == "malformed" else "failed"
            raise Stop("provider_error", f"the model provider {what} {self.policy.max_tries} times; "
                                         f"last: {reason}") from None

    def _deadline_kwargs(self) -> dict:
        """``timeout`` for the next call: the client's own, cut to the time the run has left."""
        remaining = self.time_left()
        if remaining == float("inf") or (self.client_timeout is not None and self.client_timeout <= remaining):
            return {}
        return {"timeout": max(1.0, remaining)}

    # ------------------------------------------------------------------ tenacity hooks
    @staticmethod
    def _retryable(exc: BaseException) -> bool:
        return provider_failure(exc) in ("transient", "malformed") and not is_context_overflow(exc)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        delay = self.policy.delay(state.attempt_number, retry_after(exc) if exc else 0.0)
        if delay > self.time_left():
            raise Stop("time_limit", f"reached the time limit while the model provider was failing "
                                     f"({one_line(exc) if exc else 'no reply'})")
        return delay

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception()
        delay = state.next_action.sleep if state.next_action else 0.0
        self._record(exc, state.attempt_number, delay)
        if self.on_retry is not None:
            self.on_retry(f"model call failed ({one_line(exc, 100)}); retry {state.attempt_number} in {delay:.1f} s")

    def _record(self, exc: BaseException, attempt: int, delay: float | None) -> None:
        record = {"type": "model_retry" if delay is not None else "model_failure", "step": self.step + 1,
                  "attempt": attempt, "kind": provider_failure(exc), "error": one_line(exc)}
        if delay is not None:
            record["delay_s"] = round(delay, 3)
        reply = last_reply(self.raw_model)
        if reply and record["kind"] == "malformed":
            record["reply"] = reply
        self.log(record)
