"""What a conversation reports as it goes, for any front-end (terminal, web): typed, JSON-ready events.

A front-end registers one listener (``Callable[[Event], None]``) and renders each event; the events hold
only data (numbers copied from tool results, paths), never rendering.
"""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, Field

from serendip.tools.engine.jsonsafe import to_jsonable

KEY_NUMBER_LIMIT = 8


class TableLoaded(BaseModel):
    """A table was opened for the session."""

    kind: Literal["table_loaded"] = "table_loaded"
    path: str
    n_rows: int
    n_columns: int
    columns: list[dict] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    out_dir: str = ""


class ToolStarted(BaseModel):
    """A tool call began."""

    kind: Literal["tool_started"] = "tool_started"
    call_id: str
    tool: str
    arguments: dict = Field(default_factory=dict)


class ToolFinished(BaseModel):
    """A tool call ended: its id, duration, key numbers (copied from its summary) and figures."""

    kind: Literal["tool_finished"] = "tool_finished"
    call_id: str
    tool: str
    arguments: dict = Field(default_factory=dict)
    result_id: str = ""
    ok: bool = True
    error: str | None = None
    elapsed_s: float = 0.0
    key_numbers: dict[str, Any] = Field(default_factory=dict)
    figures: list[str] = Field(default_factory=list)
    candidates: list[str] = Field(default_factory=list)


class TextDelta(BaseModel):
    """A piece of the assistant's answer, as the model writes it."""

    kind: Literal["text_delta"] = "text_delta"
    text: str


class Answer(BaseModel):
    """The answer to one user message, with the result ids it rests on and the figures they made."""

    kind: Literal["answer"] = "answer"
    text: str
    answered: bool = True
    evidence: list[str] = Field(default_factory=list)
    figures: list[str] = Field(default_factory=list)
    streamed: bool = False
    source: Literal["model", "offline", "hint"] = "offline"


class FindingsListed(BaseModel):
    """The findings so far (run-wide q-values and the reporting thresholds applied)."""

    kind: Literal["findings"] = "findings"
    findings: list[dict] = Field(default_factory=list)
    n_candidates: int = 0


class ReportWritten(BaseModel):
    """A report of the session so far was written."""

    kind: Literal["report"] = "report"
    out_dir: str
    files: list[str] = Field(default_factory=list)
    n_findings: int = 0


class Notice(BaseModel):
    """Something the user should read: information, a warning or an error (one line each)."""

    kind: Literal["notice"] = "notice"
    level: Literal["info", "warning", "error"] = "info"
    text: str


class HelpShown(BaseModel):
    """The slash commands and what each does."""

    kind: Literal["help"] = "help"
    commands: list[tuple[str, str]] = Field(default_factory=list)
    model: str = ""


Event = Union[TableLoaded, ToolStarted, ToolFinished, TextDelta, Answer, FindingsListed, ReportWritten, Notice,
              HelpShown]

# The facts worth a glance in a tool-call panel, by tool; the rest stays in the report.
KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "describe": ("n_rows", "n_columns", "duplicated_rows", "described_columns", "page", "n_pages"),
    "correlate": ("method", "n_rows", "pairs_tested", "significant_pairs", "target", "controls"),
    "pca": ("n_rows", "n_components", "explained_variance_ratio"),
    "umap": ("n_rows", "fit_rows", "top_driver", "embedding"),
    "cluster": ("verdict", "method", "n_groups", "sizes", "stability", "unassigned"),
    "outliers": ("method", "n_flagged", "fraction", "n_scored"),
    "select": ("n_selected", "n_total", "fraction", "label"),
    "compare": ("by", "n_levels", "n_columns_tested", "n_significant"),
    "plot": ("kind", "x", "y", "n_points"),
    "residualize": ("method", "controls", "new_columns"),
    "transform": ("kind", "new_columns"),
}


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def key_numbers(tool: str, summary: dict) -> dict[str, Any]:
    """The few facts of a result summary shown in its panel (values copied, never recomputed).

    Args:
        tool: The tool's name.
        summary: The result's JSON summary.
    """
    summary = summary or {}
    out: dict[str, Any] = {}
    for key in KEY_FIELDS.get(tool, ()):
        if key in summary and summary[key] not in (None, "", [], {}):
            value = summary[key]
            if isinstance(value, list):
                value = value[:6]
            if isinstance(value, (dict,)) or (isinstance(value, list) and not all(_scalar(v) for v in value)):
                continue
            out[key] = value
    if not out:  # a tool without a declared set: its first scalar fields
        for key, value in summary.items():
            if _scalar(value) and not (isinstance(value, str) and len(value) > 60):
                out[key] = value
            if len(out) >= KEY_NUMBER_LIMIT:
                break
    top = top_pairs(tool, summary)
    if top:
        out["top"] = top
    return to_jsonable(dict(list(out.items())[:KEY_NUMBER_LIMIT]), digits=4)


def top_pairs(tool: str, summary: dict, n: int = 3) -> list[str]:
    """The strongest pairs of a correlate result (or per-column tests of compare), as short strings."""
    if tool == "correlate":
        pairs = summary.get("pairs") or summary.get("top_pairs") or []
        out = []
        for p in pairs[:n]:
            if isinstance(p, dict):
                a, b = p.get("a") or p.get("x"), p.get("b") or p.get("y")
                eff = p.get("effect", p.get("rho", p.get("r")))
                q = p.get("q_value", p.get("q"))
                if a is not None and b is not None and eff is not None:
                    out.append(f"{a} ~ {b}: {eff:.3g}" + (f" (q={q:.2g})" if isinstance(q, (int, float)) else ""))
        return out
    return []
