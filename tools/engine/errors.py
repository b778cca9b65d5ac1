"""The two error channels of a tool call.

A :class:`ToolInputError` is a problem the caller (usually the model) can fix: it comes back as a tool
result marked as an error, with a message that says how to fix the call. Anything else raised by a tool
is a bug or an infrastructure failure and ends the run.
"""


class ToolInputError(ValueError):
    """A tool call the caller can repair: bad arguments, unknown column, unusable data."""


class TableLoadError(ValueError):
    """A table file that cannot be read; the message is one line that says what is wrong."""
