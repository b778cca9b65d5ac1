"""When to stop reading a streamed reply that has said all it will: small local models pad.

Measured with Qwen2.5-Coder-1.5B on llama-server (``--jinja``, ``tool_choice=required``): the model writes its
call as fenced JSON in the text, and then newlines until ``max_tokens`` (512 tokens, 100 s on 2 CPU cores),
because the server's grammar lets free text run until a ``<tool_call>`` tag that never comes. Reading the
reply as a stream and closing it once the text holds a complete call followed only by padding keeps the call
and saves the rest; closing the connection also stops the server's generation. Padding alone, without a call,
is cut after a longer run: a model that has degenerated into whitespace has nothing more to say.
"""

from __future__ import annotations

from serendip.agent.text_tool_calls import parse_text_tool_calls

PAD_AFTER_CALL = 16
"""Whitespace characters after a complete call that end the reply."""
PAD_ALONE = 400
"""Trailing whitespace characters that end a reply without a call."""
CALL_ENDINGS = ("```", "</tool_call>", "}", "]", "</function>")


def trailing_whitespace(text: str) -> int:
    """How many whitespace characters ``text`` ends with."""
    return len(text) - len(text.rstrip())


def why_reply_is_done(text: str, known_names) -> str | None:
    """Why a streamed reply's text can be cut, or None while it cannot: a complete text tool call followed by
    at least :data:`PAD_AFTER_CALL` whitespace characters, or :data:`PAD_ALONE` of them after anything.

    Args:
        text: The reply's text so far.
        known_names: Tool names a recovered call may use (see :func:`parse_text_tool_calls`).
    """
    pad = trailing_whitespace(text)
    if pad >= PAD_ALONE:
        return "only padding"
    if pad < PAD_AFTER_CALL:
        return None
    body = text.rstrip()
    if body.endswith(CALL_ENDINGS) and parse_text_tool_calls(body, known_names):
        return "the reply held a complete call, then only padding"
    return None
