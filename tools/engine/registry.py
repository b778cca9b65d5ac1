"""The tool registry: typed functions become validated, schema-described tools.

A tool is a plain function ``f(session, **arguments) -> ToolResult`` with type annotations and a
Google-style docstring. :func:`tool` builds a pydantic model of its arguments (refusing any argument
the docstring does not describe), and :func:`call_tool` validates a call before anything runs and turns
problems the caller can fix into error results with a message saying how to fix them.
"""

from __future__ import annotations

import difflib
import inspect
import json
import time
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from serendip.tools.engine.argsize import MAX_ARGUMENTS_CHARS, bounded_arguments, check_argument_size
from serendip.tools.engine.docstrings import parse_docstring
from serendip.tools.engine.errors import ToolInputError
from serendip.tools.engine.result import ToolResult

MAX_ARGUMENT_CHARS = MAX_ARGUMENTS_CHARS


@dataclass
class ToolSpec:
    """A registered tool.

    Attributes:
        name: Tool name as the model calls it.
        func: The implementation ``func(session, **arguments)``.
        description: The docstring's description (what the model reads).
        arguments: The pydantic model validating the arguments.
    """

    name: str
    func: Callable[..., ToolResult]
    description: str
    arguments: type[BaseModel]

    def json_schema(self) -> dict:
        """JSON schema of the arguments."""
        schema = self.arguments.model_json_schema()
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        return schema

    def openai_tool(self) -> dict:
        """The tool in OpenAI function-calling format."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.json_schema()}}


REGISTRY: dict[str, ToolSpec] = {}


class UndocumentedArgumentError(TypeError):
    """A tool function has an argument its docstring does not describe."""


def tool(func: Callable[..., ToolResult] | None = None, *, name: str | None = None):
    """Register ``func`` as a tool (usable as ``@tool`` or ``@tool(name=...)``)."""

    def register(f: Callable[..., ToolResult]):
        spec = build_spec(f, name or f.__name__)
        REGISTRY[spec.name] = spec
        f.spec = spec  # type: ignore[attr-defined]
        return f

    return register(func) if func is not None else register


def build_spec(func: Callable[..., ToolResult], name: str) -> ToolSpec:
    """Build the :class:`ToolSpec` of a tool function; every argument must be typed and documented."""
    description, arg_docs = parse_docstring(func.__doc__)
    if not description:
        raise UndocumentedArgumentError(f"tool {name!r} has no docstring description")
    hints = typing.get_type_hints(func, include_extras=True)
    params = list(inspect.signature(func).parameters.values())
    if not params or params[0].name != "session":
        raise TypeError(f"tool {name!r} must take 'session' as its first argument")
    fields: dict[str, Any] = {}
    for p in params[1:]:
        if p.name not in hints:
            raise UndocumentedArgumentError(f"argument {p.name!r} of tool {name!r} has no type annotation")
        if p.name not in arg_docs or not arg_docs[p.name]:
            raise UndocumentedArgumentError(f"argument {p.name!r} of tool {name!r} is not described in its docstring")
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[p.name] = (hints[p.name], Field(default, description=arg_docs[p.name]))
    model = create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid", strict=False), **fields)
    return ToolSpec(name=name, func=func, description=description, arguments=model)


def describe_expected(annotation: Any, metadata: list[Any]) -> str:
    """Words for what an argument must be: 'an int in [2, 50]', "one of ['a', 'b']", ..."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return describe_expected(args[0], list(args[1:]) + list(metadata))
    if origin in (typing.Union, types.UnionType):
        parts = [describe_expected(a, metadata) for a in args if a is not type(None)]
        text = " or ".join(parts)
        return text + (" or null" if type(None) in args else "")
    if origin is Literal:
        return f"one of {list(args)}"
    if origin in (list, tuple, typing.Sequence):
        inner = args[0] if args else Any
        return f"a list of {describe_expected(inner, []).removeprefix('a ').removeprefix('an ')}"
    lo = hi = None
    lo_open = hi_open = False
    for m in metadata:
        for attr, which, open_ in (("ge", "lo", False), ("gt", "lo", True), ("le", "hi", False), ("lt", "hi", True)):
            v = getattr(m, attr, None)
            if v is not None:
                if which == "lo":
                    lo, lo_open = v, open_
                else:
                    hi, hi_open = v, open_
    base = {int: "an int", float: "a float", str: "a str", bool: "a bool", dict: "an object"}.get(annotation,
                                                                                                  str(annotation))
    if lo is not None or hi is not None:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        return f"{base} in {left}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}{right}"
    return base


def format_validation_error(spec: ToolSpec, err: ValidationError) -> str:
    """Turn a pydantic error into sklearn-style sentences the model can act on."""
    messages = []
    fields = spec.arguments.model_fields
    for e in err.errors()[:5]:
        loc = e.get("loc") or ("?",)
        param = str(loc[0])
        if e["type"] == "extra_forbidden":
            close = difflib.get_close_matches(param, list(fields), n=2, cutoff=0.4)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            messages.append(f"{spec.name} has no parameter {param!r}.{hint} Parameters: {', '.join(fields)}.")
        elif e["type"] == "missing":
            messages.append(f"The '{param}' parameter of {spec.name} is required.")
        elif param in fields:
            f = fields[param]
            expected = describe_expected(f.annotation, list(f.metadata))
            got = repr(e.get("input"))[:80]
            messages.append(f"The '{param}' parameter of {spec.name} must be {expected}. Got {got} instead.")
        else:
            messages.append(f"{spec.name}: {e.get('msg')}")
    return " ".join(messages)


def validate_arguments(spec: ToolSpec, arguments: dict | str | None) -> dict:
    """Parse (when JSON text) and validate arguments; raise :class:`ToolInputError` with a fix-it message."""
    if arguments is None or arguments == "":
        arguments = {}
    check_argument_size(spec.name, arguments)  # the text as sent, then the parsed value
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as exc:
            raise ToolInputError(f"The arguments of {spec.name} are not valid JSON ({exc.msg} at position {exc.pos}). "
                                 "Send a JSON object of parameter names to values.") from None
        except RecursionError:
            raise ToolInputError(f"The arguments of {spec.name} are nested too deeply.") from None
        check_argument_size(spec.name, arguments)
    if not isinstance(arguments, dict):
        raise ToolInputError(f"The arguments of {spec.name} must be a JSON object. Got {type(arguments).__name__} instead.")
    try:
        model = spec.arguments.model_validate(arguments)
    except ValidationError as err:
        raise ToolInputError(format_validation_error(spec, err)) from None
    return model.model_dump()


def get_spec(name: str) -> ToolSpec:
    """The registered tool ``name``; an unknown name raises :class:`ToolInputError` with close names."""
    load_builtin_tools()
    if name not in REGISTRY:
        close = difflib.get_close_matches(str(name), list(REGISTRY), n=2, cutoff=0.4)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ToolInputError(f"There is no tool named {str(name)[:60]!r}.{hint} Tools: {', '.join(sorted(REGISTRY))}.")
    return REGISTRY[name]


def call_tool(session, name: str, arguments: dict | str | None = None, result_id: str | None = None) -> ToolResult:
    """Validate and run one tool call in ``session``.

    Problems the caller can fix (unknown tool, bad arguments, unusable data) come back as a result with
    ``error`` set; any other exception is a bug and propagates.

    Args:
        session: The :class:`~serendip.tools.engine.session.Session` holding the table.
        name: Tool name.
        arguments: A dict or JSON text of arguments.
        result_id: The id to give the result; the session's next id when None.
    """
    rid = result_id or session.next_result_id()
    start = time.perf_counter()
    try:
        spec = get_spec(name)
        args = validate_arguments(spec, arguments)
    except ToolInputError as exc:
        res = ToolResult.failure(str(exc), tool=str(name)[:60], arguments=bounded_arguments(arguments))
        res.id = rid
        return res
    session.current_tool = spec.name
    session.current_id = rid
    session.new_derived = []
    try:
        result = spec.func(session, **args)
    except ToolInputError as exc:
        result = ToolResult.failure(str(exc))
    finally:
        session.current_tool = ""
    result.id = rid
    result.tool = spec.name
    result.arguments = args
    result.elapsed = time.perf_counter() - start
    if result.ok:
        result.derived = [d.model_dump() for d in session.new_derived]
    for f in result.findings:
        f.setdefault("evidence", [rid])
        if rid not in f["evidence"]:
            f["evidence"].insert(0, rid)
    return result


_LOADED = False


def load_builtin_tools() -> dict[str, ToolSpec]:
    """Import the built-in tool modules so that they register themselves."""
    global _LOADED
    if not _LOADED:
        import importlib

        for module in ("describe", "correlate", "pca", "umap_embed", "cluster", "outliers", "residualize",
                       "select", "plot", "transform", "compare", "derive", "subspace"):
            importlib.import_module(f"serendip.tools.{module}")
        _LOADED = True
    return REGISTRY
