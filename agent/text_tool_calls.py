"""Tool calls that a model wrote as text in its message instead of in the native ``tool_calls`` field.

Small open models served by llama.cpp, Ollama or vLLM often put their calls in the content, in one of a
few formats learnt from their chat templates:

- a JSON object ``{"name": ..., "arguments": {...}}`` (or ``parameters`` / ``args``), bare or in a
  fenced code block, possibly a JSON list of them;
- Hermes / Qwen: ``<tool_call>{"name": ..., "arguments": ...}</tool_call>``;
- Llama 3.1: ``<function=NAME>{...}</function>`` and ``<|python_tag|>{"name": ..., "parameters": ...}``;
- Mistral: ``[TOOL_CALLS] [{"name": ..., "arguments": ...}]``;
- OpenAI-shaped objects ``{"type": "function", "function": {"name": ..., "arguments": "..."}}``.

Only JSON is read, with :func:`json.JSONDecoder.raw_decode` (a hand-written scan for where each object
starts; nothing is evaluated). A recovered call is then validated exactly like a native one by the
loop; an object is taken for a call only when its name is a known tool or it carries an arguments key,
so ordinary JSON in a message is left alone.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

MAX_TEXT_CHARS = 50_000
MAX_RECOVERED_CALLS = 10
ARGUMENT_KEYS = ("arguments", "parameters", "args", "input")
NAME_KEYS = ("name", "tool", "tool_name", "function")

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_FUNCTION_TAG = re.compile(r"<function=([A-Za-z_][\w.-]{0,63})>\s*(.*?)\s*(?:</function>|$)", re.S)
_FENCE = re.compile(r"```[A-Za-z0-9_+-]*\s*\n?(.*?)```", re.S)

NATIVE_FORMAT_NOTE = (
    "Note: your previous message wrote tool calls as text; Serendip read {n} of them from the text and ran "
    "them (results above). Next time use the native function-calling interface (the `tool_calls` field of "
    "your reply) with a tool name and a JSON object of arguments, not JSON in the message text.")


@dataclass
class TextToolCall:
    """A call recovered from message text.

    Attributes:
        name: The tool name as written.
        args: The arguments (a dict), or the raw text when they were not a JSON object.
        source: The format it was found in ('tool_call_tag', 'function_tag', 'fenced_json', 'json', ...).
    """

    name: str
    args: dict | str = field(default_factory=dict)
    source: str = "json"


def _json_values(text: str) -> list:
    """Every top-level JSON object or array in ``text`` (scanning from each '{' or '[' not inside one)."""
    decoder = json.JSONDecoder()
    values, i, n = [], 0, len(text)
    while i < n:
        if text[i] in "{[":
            try:
                value, end = decoder.raw_decode(text, i)
            except json.JSONDecodeError:
                i += 1
                continue
            values.append(value)
            i = end
        else:
            i += 1
    return values


def _as_call(obj, known: set[str], source: str, name_hint: str | None = None) -> TextToolCall | None:
    """Read one object as a call, or None when it does not look like one."""
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("function"), dict):  # OpenAI shape {"type": "function", "function": {...}}
        return _as_call(obj["function"], known, source)
    name = name_hint
    if name is None:
        name = next((obj[k] for k in NAME_KEYS if isinstance(obj.get(k), str) and obj.get(k).strip()), None)
    arg_key = next((k for k in ARGUMENT_KEYS if k in obj), None)
    if name_hint is not None:  # <function=NAME>{...}: the object is the arguments themselves
        return TextToolCall(name=name_hint, args=obj, source=source)
    if not isinstance(name, str) or (name not in known and arg_key is None):
        return None
    args = obj.get(arg_key) if arg_key else {}
    if isinstance(args, str):
        try:
            parsed = json.loads(args) if args.strip() else {}
            args = parsed if isinstance(parsed, dict) else args
        except json.JSONDecodeError:
            pass  # left as text: the loop answers it like a native call with bad JSON arguments
    if args is None:
        args = {}
    return TextToolCall(name=name.strip(), args=args, source=source)


def _calls_in(values: list, known: set[str], source: str) -> list[TextToolCall]:
    out = []
    for value in values:
        items = value if isinstance(value, list) else [value]
        for item in items:
            call = _as_call(item, known, source)
            if call is not None:
                out.append(call)
    return out


def parse_text_tool_calls(text: str, known_names) -> list[TextToolCall]:
    """The tool calls written in ``text``, in order (empty when there are none).

    Args:
        text: The message content.
        known_names: Names of the tools the model was offered.
    """
    if not text or not isinstance(text, str):
        return []
    text = text[:MAX_TEXT_CHARS]
    known = set(known_names)
    calls: list[TextToolCall] = []
    for match in _TAGGED.finditer(text):
        calls += _calls_in(_json_values(match.group(1)), known, "tool_call_tag")
    for match in _FUNCTION_TAG.finditer(text):
        values = _json_values(match.group(2))
        obj = values[0] if values and isinstance(values[0], dict) else {}
        calls.append(_as_call(obj, known, "function_tag", name_hint=match.group(1)))
    if not calls and "[TOOL_CALLS]" in text:
        calls += _calls_in(_json_values(text.split("[TOOL_CALLS]", 1)[1]), known, "mistral")
    if not calls and "<|python_tag|>" in text:
        calls += _calls_in(_json_values(text.split("<|python_tag|>", 1)[1]), known, "python_tag")
    if not calls:
        for match in _FENCE.finditer(text):
            calls += _calls_in(_json_values(match.group(1)), known, "fenced_json")
    if not calls:
        calls += _calls_in(_json_values(_FENCE.sub(" ", text)), known, "json")
    return [c for c in calls if c is not None][:MAX_RECOVERED_CALLS]


def native_format_note(n_calls: int) -> str:
    """The note sent to the model after answering calls it wrote as text."""
    return NATIVE_FORMAT_NOTE.format(n=n_calls)


def recover_text_calls(ai, known_names, step: int):
    """When a model turn has no native tool call but its text holds some, a copy of the message with them.

    Args:
        ai: The model's ``AIMessage``.
        known_names: Names of the tools the model was offered.
        step: The step number (recovered calls get ids ``text_<step>_<i>``).

    Returns:
        ``(message, recovered)``: the message to use (``ai`` itself when nothing was recovered) and the
        recovered calls (empty when none).
    """
    from langchain_core.messages import AIMessage

    if ai.tool_calls or ai.invalid_tool_calls:
        return ai, []
    content = ai.content if isinstance(ai.content, str) else getattr(ai, "text", "")
    if callable(content):  # older langchain: .text() is a method
        content = content()
    calls = parse_text_tool_calls(content or "", known_names)
    if not calls:
        return ai, []
    valid, invalid = [], []
    for i, call in enumerate(calls):
        cid = f"text_{step}_{i}"
        if isinstance(call.args, dict):
            valid.append({"id": cid, "name": call.name, "args": call.args, "type": "tool_call"})
        else:
            invalid.append({"id": cid, "name": call.name, "args": str(call.args), "type": "invalid_tool_call",
                            "error": "the arguments are not a JSON object"})
    message = AIMessage(content=ai.content, tool_calls=valid, invalid_tool_calls=invalid, id=ai.id,
                        usage_metadata=ai.usage_metadata, response_metadata=ai.response_metadata)
    return message, calls
