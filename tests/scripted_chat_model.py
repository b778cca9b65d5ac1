"""A scripted tool-calling chat model for tests: it answers from a fixed script and fails the test when
part of the script is left unused (``assert_done``)."""

from __future__ import annotations

import itertools
from typing import Any, Callable

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field

_ids = itertools.count(1)


def tool_call(name: str, args: dict | None = None, call_id: str | None = None) -> dict:
    """A well-formed tool call."""
    return {"name": name, "args": args or {}, "id": call_id or f"call_{next(_ids)}", "type": "tool_call"}


def invalid_call(name: str, raw_args: str, call_id: str | None = None) -> dict:
    """A tool call whose arguments are not valid JSON (as LangChain reports it)."""
    return {"name": name, "args": raw_args, "id": call_id or f"call_{next(_ids)}", "error": "not valid JSON",
            "type": "invalid_tool_call"}


def turn(*calls: dict, text: str = "", tokens: int | None = 100, invalid: tuple = ()) -> AIMessage:
    """A model turn with tool calls and usage metadata (``tokens=None`` leaves usage out)."""
    usage = None if tokens is None else {"input_tokens": tokens - 10, "output_tokens": 10, "total_tokens": tokens}
    return AIMessage(content=text, tool_calls=list(calls), invalid_tool_calls=list(invalid), usage_metadata=usage)


class ScriptedChatModel(BaseChatModel):
    """Plays a script of replies; each entry is an AIMessage, an exception to raise, or a callable
    ``f(messages) -> AIMessage`` (to assert on what the model was sent).

    ``requests`` keeps the messages of every call and ``tools`` the specs that were bound.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    script: list[Any] = Field(default_factory=list)
    requests: list[list[BaseMessage]] = Field(default_factory=list)
    tools: list[dict] = Field(default_factory=list)
    position: int = 0

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools, **kwargs):
        self.tools = list(tools)
        return self

    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs) -> ChatResult:
        self.requests.append(list(messages))
        if self.position >= len(self.script):
            raise AssertionError(f"the loop asked for reply {self.position + 1} but the script has "
                                 f"{len(self.script)}")
        entry = self.script[self.position]
        self.position += 1
        if isinstance(entry, BaseException):
            raise entry
        if isinstance(entry, type) and issubclass(entry, BaseException):
            raise entry()
        message = entry(messages) if isinstance(entry, Callable) and not isinstance(entry, AIMessage) else entry
        return ChatResult(generations=[ChatGeneration(message=message.model_copy(deep=True))])

    def assert_done(self) -> None:
        """Fail when part of the script was never played."""
        assert self.position == len(self.script), (
            f"script not used up: {len(self.script) - self.position} of {len(self.script)} replies left")
