"""Tool profiles: how the tools are described to the model.

``full`` is the registry's schemas (every argument, pydantic JSON schema, docstring descriptions): right
for strong hosted models. ``compact`` describes the same tools with a few flat, well-named arguments and
one-line descriptions, for small local models: every request to a CPU server pays for the schemas in
prompt-processing time, and a small model follows a short schema more reliably. Arguments left out of the
compact schema keep the tool's defaults, which are the autopilot's choices (what the systematic pass uses
when it does not pass them), and a call is still validated against the full tool, so the compact profile
changes what the model reads, never what a call may do. A small model fills in every optional argument it
is shown (Qwen2.5-Coder-1.5B gave correlate a categorical target and the target itself as a control, four
calls in a row), so the compact profile shows only the arguments a first look needs.

The profile is chosen by a setting (``tool_profile``: full, compact or auto); ``auto`` picks compact for a
model served on a loopback address (a local server) and full otherwise.
"""

from __future__ import annotations

import ipaddress
import json
from urllib.parse import urlparse

PROFILES = ("auto", "full", "compact")
CHARS_PER_TOKEN = 4  # rough; tiktoken would download its encodings (see DESIGN.md)

_LIST = {"type": "array", "items": {"type": "string"}}
_COLUMNS = {**_LIST, "description": "Default: all numeric."}
_STR = {"type": "string"}


def _col(description: str) -> dict:
    return {"type": "string", "description": description}


def _enum(values: list[str]) -> dict:
    return {"type": "string", "enum": values}


# name -> (one-line description, properties, required)
COMPACT: dict[str, tuple[str, dict, list[str]]] = {
    "describe": ("Profile the table: column roles, units, missing values, ranges.", {"columns": _COLUMNS}, []),
    "correlate": ("Rank correlations between columns with FDR q-values; proposes trend candidates.",
                  {"columns": _COLUMNS}, []),
    "pca": ("Principal components: main axes of variation and whether one dominates.", {"columns": _COLUMNS}, []),
    "umap": ("2-D UMAP embedding of the rows (slow on big tables); name it in cluster(embedding=...).",
             {"columns": _COLUMNS}, []),
    "cluster": ("Find groups of rows, stable under resampling; proposes group candidates.",
                {"columns": _COLUMNS, "method": _enum(["auto", "kmeans", "gmm", "hdbscan"]),
                 "space": _enum(["features", "pca", "umap"]),
                 "embedding": _col("With space umap: e.g. R5_umap.")}, []),
    "outliers": ("Flag unusual rows; method off_relation finds rows far from the y-vs-x relation.",
                 {"columns": _COLUMNS,
                  "method": _enum(["isolation_forest", "mahalanobis", "off_relation"]), "x": _STR, "y": _STR}, []),
    "residualize": ("Remove a known driver: new columns y minus its fit on x.",
                    {"y": {**_LIST, "description": "Columns to correct."}, "x": {**_LIST, "description": "Drivers."}},
                    ["y", "x"]),
    "select": ("Keep rows matching a filter such as 'mass > 10 and flag == 0'.",
               {"expression": _STR}, ["expression"]),
    "plot": ("Draw a figure for the report.",
             {"kind": _enum(["scatter", "hexbin", "histogram", "corner"]), "x": _STR, "y": _STR}, []),
    "transform": ("Add transformed columns (log10, asinh, rank or auto).",
                  {"columns": _LIST, "kind": _enum(["log10", "asinh", "rank", "auto"])}, ["columns"]),
    "compare": ("Compare numeric columns across the levels of a categorical column.",
                {"by": _col("A categorical column."), "columns": _COLUMNS}, ["by"]),
    "derive": ("Add a column from an arithmetic expression, e.g. 'g - r' or 'log10(nii / halpha)'.",
               {"expression": _STR, "name": _col("Name of the new column.")}, ["expression"]),
    "subspace": ("Look for compact clumps of rows in pairs of columns (e.g. proper motions).",
                 {"columns": _COLUMNS}, []),
    "lookup_known": ("Published relations involving these columns, with citations.",
                     {"columns": _LIST}, ["columns"]),
    "record_finding": ("Put a candidate (C1, C2, ...) in the report with your interpretation.",
                       {"candidate": _col("e.g. C1"), "interpretation": _col("Meaning and caveats; cite R ids.")},
                       ["candidate", "interpretation"]),
    "dismiss_finding": ("Set a candidate aside (systematic, known trend, artefact).",
                        {"candidate": _col("e.g. C2"), "reason": _col("Why; cite R ids.")},
                        ["candidate", "reason"]),
    "finish": ("End the exploration with a short closing summary.",
               {"summary": _col("Cite C and R ids; no new numbers.")}, ["summary"]),
}


def compact_schema(name: str, full: dict | None = None) -> dict:
    """The compact OpenAI tool spec of ``name`` (the full one, trimmed, for a tool not listed above)."""
    if name in COMPACT:
        description, properties, required = COMPACT[name]
        params: dict = {"type": "object", "properties": properties}
        if required:
            params["required"] = required
        return {"type": "function", "function": {"name": name, "description": description, "parameters": params}}
    if full is None:
        raise KeyError(name)
    fn = full["function"]
    first = (fn.get("description") or "").strip().split("\n")[0][:160]
    return {"type": "function", "function": {"name": name, "description": first, "parameters": fn["parameters"]}}


def profile_schemas(profile: str, full_schemas: list[dict]) -> list[dict]:
    """The schemas the model is given under ``profile`` ('full' or 'compact'), in the same order."""
    if profile == "full":
        return list(full_schemas)
    if profile != "compact":
        raise ValueError(f"tool profile must be one of full, compact; got {profile!r}")
    return [compact_schema(s["function"]["name"], s) for s in full_schemas]


def is_loopback_url(base_url: str | None) -> bool:
    """True when ``base_url`` points at this machine (localhost, 127.0.0.0/8, ::1)."""
    if not base_url:
        return False
    return is_loopback_host(urlparse(base_url).hostname or "")


def is_loopback_host(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1), brackets allowed."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_profile(setting: str | None, base_url: str | None) -> str:
    """'full' or 'compact' for a setting ('auto', 'full', 'compact' or None = auto) and an endpoint."""
    setting = (setting or "auto").strip().lower()
    if setting not in PROFILES:
        raise ValueError(f"tool profile must be one of {', '.join(PROFILES)}; got {setting!r}")
    if setting == "auto":
        return "compact" if is_loopback_url(base_url) else "full"
    return setting


def schema_size(schemas: list[dict]) -> dict:
    """Size of the schemas as sent: characters of their JSON and approximate tokens (chars / 4)."""
    chars = len(json.dumps(schemas, ensure_ascii=False))
    return {"n_tools": len(schemas), "chars": chars, "approx_tokens": -(-chars // CHARS_PER_TOKEN)}
