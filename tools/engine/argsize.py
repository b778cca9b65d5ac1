"""Bounds on the size of tool-call arguments, checked on the parsed value (dicts, lists, nested strings).

A model can send arguments as JSON text or, through LangChain, as an already parsed dict; either way no
argument may carry megabytes into the tools, the findings or the transcript. The walk is iterative and
stops as soon as a bound is crossed, so a hostile value costs no more than the bound to check.
"""

from __future__ import annotations

from serendip.tools.engine.errors import ToolInputError

MAX_ARGUMENTS_CHARS = 20_000
"""Largest size of a call's arguments, counted as the characters of their JSON text."""
MAX_STRING_CHARS = 16_000
"""Longest single string (a value or a key) anywhere in the arguments (tools may bound their own strings
more tightly, e.g. select's 2,000-character expressions, with a more specific message)."""
MAX_DEPTH = 8
"""Deepest nesting of lists and objects."""


def argument_size_problem(arguments: object) -> str | None:
    """Why ``arguments`` are too large, or None when they are within every bound.

    Args:
        arguments: The parsed arguments (a dict, usually) or their JSON text.
    """
    if isinstance(arguments, (str, bytes)):
        n = len(arguments)
        return (f"the arguments are {n} characters long; the limit is {MAX_ARGUMENTS_CHARS}"
                if n > MAX_ARGUMENTS_CHARS else None)
    total = 0
    stack: list[tuple[object, int]] = [(arguments, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"the arguments are nested more than {MAX_DEPTH} levels deep"
        if isinstance(value, str):
            if len(value) > MAX_STRING_CHARS:
                return (f"a string argument is {len(value)} characters long; the limit is {MAX_STRING_CHARS} "
                        f"(it starts {value[:40]!r})")
            total += len(value) + 2
        elif isinstance(value, dict):
            total += 2
            for k, v in value.items():
                stack.append((str(k), depth + 1))
                stack.append((v, depth + 1))
                total += 2
        elif isinstance(value, (list, tuple)):
            total += 2 + len(value)
            stack.extend((v, depth + 1) for v in value)
        elif isinstance(value, (bool, int, float)) or value is None:
            total += len(repr(value)) if not isinstance(value, int) or abs(value) < 10 ** 30 else 40
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** 30:
                return "an integer argument has more than 30 digits"
        else:
            total += len(str(type(value).__name__)) + 2
        if total > MAX_ARGUMENTS_CHARS:
            return f"the arguments are larger than {MAX_ARGUMENTS_CHARS} characters"
    return None


def check_argument_size(tool: str, arguments: object) -> None:
    """Raise :class:`ToolInputError` (a fix-it message for the model) when the arguments are too large."""
    problem = argument_size_problem(arguments)
    if problem:
        raise ToolInputError(f"The call to {str(tool)[:60]} was refused: {problem}. Send short arguments: "
                             "column names, a few options.")


def bounded_arguments(arguments: object) -> dict:
    """The arguments to keep on record for a refused call: as given when small, else an empty dict."""
    if isinstance(arguments, dict) and argument_size_problem(arguments) is None:
        return arguments
    return {}
