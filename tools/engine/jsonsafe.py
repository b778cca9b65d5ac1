"""Turning tool outputs into compact, JSON-safe values for the model and for files."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

SUMMARY_LIMIT = 6000
"""Upper bound, in characters of compact JSON, of a tool summary shown to the model."""


def round_sig(value: float, digits: int = 4) -> float:
    """Round a float to ``digits`` significant digits (keeps tiny p-values readable)."""
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.{digits}g}")


def to_jsonable(value: Any, digits: int = 4) -> Any:
    """Convert numpy/pandas scalars and containers to plain JSON types; NaN and inf become None."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v, digits) for v in value]
    if isinstance(value, np.ndarray):
        return [to_jsonable(v, digits) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            return None
        return round_sig(value, digits)
    if value is None or isinstance(value, str):
        return value
    if hasattr(value, "item"):
        try:
            return to_jsonable(value.item(), digits)
        except (ValueError, TypeError):
            pass
    return str(value)


def dumps(value: Any) -> str:
    """Compact JSON text of an already JSON-safe value."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def bound_summary(summary: dict, limit: int = SUMMARY_LIMIT) -> dict:
    """Shrink a summary until its compact JSON fits in ``limit`` characters.

    Long lists are cut from the end (their full content lives in the report and artifacts) and long
    strings are shortened; a ``truncated`` note says what was cut. Tools should page on their own; this
    is the guard that holds whatever the table's width.
    """
    summary = to_jsonable(summary)
    if len(dumps(summary)) <= limit:
        return summary
    notes: list[str] = []

    def shrink(node: Any, path: str, keep: int, strlen: int) -> Any:
        if isinstance(node, dict):
            return {k: shrink(v, f"{path}.{k}" if path else k, keep, strlen) for k, v in node.items()}
        if isinstance(node, list):
            if len(node) > keep:
                notes.append(f"{path}: showing {keep} of {len(node)}")
                node = node[:keep]
            return [shrink(v, path, keep, strlen) for v in node]
        if isinstance(node, str) and len(node) > strlen:
            return node[: strlen - 1] + "…"
        return node

    for keep, strlen in [(50, 400), (20, 200), (10, 120), (5, 80), (3, 60), (1, 40)]:
        notes.clear()
        small = shrink(summary, "", keep, strlen)
        if notes:
            small["truncated"] = sorted(set(notes))[:20]
        if len(dumps(small)) <= limit:
            return small
    # Still too big: keep only the top-level scalar fields.
    flat = {k: v for k, v in small.items() if not isinstance(v, (dict, list))}
    flat["truncated"] = ["summary too large; see the report for details"]
    text = dumps(flat)
    if len(text) > limit:
        flat = {"truncated": ["summary too large; see the report for details"]}
    return flat
