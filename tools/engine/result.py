"""What a tool call returns: a bounded summary for the model, markdown for the report, figures,
per-row artifacts and candidate findings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from serendip.tools.engine.jsonsafe import SUMMARY_LIMIT, bound_summary, dumps, to_jsonable

FINDING_KINDS = ("trend", "group", "outlier", "data_quality")
DETAILS_LIMIT = 500_000


def compact_tests(tests: list) -> list[list]:
    """``[key, p]`` pairs as plain JSON (fast for the ~500k pairs of a 1,000-column correlation)."""
    out = []
    for t in tests:
        p = float(t[1]) if t[1] is not None else None
        out.append([str(t[0]), p if p is not None and p == p else None])
    return out


@dataclass
class ToolResult:
    """The three faces of a tool call's outcome.

    Attributes:
        summary: Compact JSON-safe facts for the model (bounded to ~6,000 characters).
        markdown: The same result for the human report.
        figures: Paths of PNG figures, relative to the run directory (``figures/R3_scatter.png``).
        artifacts: Names of per-row arrays the call saved in the session workspace (columns of rows.csv).
        findings: Candidate findings in the shape of the findings contract (without ``id``).
        tests: Every p-value the call computed, as ``[key, p]`` pairs, for run-wide FDR control.
        derived: Provenance of the columns the call added (:class:`~serendip.tools.engine.contracts.DerivedColumn` dicts).
        details: Machine-readable facts for planners and reports that the model does not see in full
            (e.g. every column's profile of a wide table); JSON-safe, capped at ``DETAILS_LIMIT`` characters.
        error: For a call the caller can fix, the message saying how; None on success.
        id: The result id (``R1``, ``R2`` ...) given by the registry; cited as evidence.
        tool: Name of the tool that produced it.
        arguments: The validated arguments of the call.
        elapsed: Wall time of the call in seconds.
    """

    summary: dict = field(default_factory=dict)
    markdown: str = ""
    figures: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    findings: list[dict] = field(default_factory=list)
    tests: list[list[Any]] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    derived: list[dict] = field(default_factory=list)
    error: str | None = None
    id: str = ""
    tool: str = ""
    arguments: dict = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the call succeeded."""
        return self.error is None

    def for_model(self, limit: int = SUMMARY_LIMIT) -> str:
        """The text the model sees: result id, status and the summary bounded to ``limit`` characters (or the
        error)."""
        if self.error is not None:
            return dumps({"result_id": self.id, "tool": self.tool, "ok": False, "error": self.error})
        payload = {"result_id": self.id, "tool": self.tool, "ok": True, "summary": bound_summary(self.summary, limit)}
        if self.findings:
            payload["candidate_findings"] = [
                {"title": str(f.get("title"))[:200], "kind": f.get("kind"), "columns": (f.get("columns") or [])[:6]}
                for f in self.findings[:10]
            ]
        if self.figures:
            payload["figures"] = self.figures[:10]
        return dumps(to_jsonable(payload))

    def to_dict(self) -> dict:
        """Plain-JSON form (for the worker pipe and the transcript)."""
        d = {k: getattr(self, k) for k in ("markdown", "figures", "artifacts", "error", "id", "tool", "elapsed")}
        d["summary"] = bound_summary(self.summary)
        d["findings"] = to_jsonable(self.findings, digits=6)
        d["tests"] = compact_tests(self.tests)
        d["details"] = bound_summary(self.details, limit=DETAILS_LIMIT) if self.details else {}
        d["arguments"] = to_jsonable(self.arguments)
        d["derived"] = to_jsonable(self.derived)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "ToolResult":
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def _repr_html_(self) -> str:
        """The result in a notebook: its report markdown rendered (raw HTML in it shown as text), or its error."""
        import html

        from markdown_it import MarkdownIt

        head = f"<p><b>{html.escape(self.id or '?')} {html.escape(self.tool)}</b> ({self.elapsed:.1f} s)"
        if self.error is not None:
            return head + f": <span style='color:#b00'>{html.escape(self.error)}</span></p>"
        body = MarkdownIt("commonmark", {"html": False}).enable("table").render(self.markdown or "")
        extra = "".join(f"<li>{html.escape(k)}</li>" for k in (self.figures + self.artifacts)[:20])
        count = f"; {len(self.findings)} candidate finding{'s' if len(self.findings) != 1 else ''}" if self.findings else ""
        return head + f"{count}</p>{body}" + (f"<p>Figures and per-row arrays:</p><ul>{extra}</ul>" if extra else "")

    @classmethod
    def failure(cls, message: str, tool: str = "", arguments: dict | None = None) -> "ToolResult":
        """A result for a call the caller can fix."""
        return cls(error=message, tool=tool, arguments=arguments or {})
