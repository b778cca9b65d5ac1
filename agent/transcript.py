"""The run's transcript: every model message and tool call, appended as the run goes, and the full
tool results kept beside it so that a run can be resumed and a report rebuilt."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from serendip.tools.engine.jsonsafe import to_jsonable
from serendip.tools.engine.result import ToolResult


MAX_RECORD_CHARS = 200_000
"""Longest transcript line written as is."""
CUT_STRING_CHARS = 100_000
CUT_ITEMS = 1_000
CUT_DEPTH = 32


def _cut(value, depth: int = 0):
    """``value`` with strings, lists and objects cut to bounded sizes (cuts are marked)."""
    if depth > CUT_DEPTH:
        return "…[nested too deeply; cut]"
    if isinstance(value, str):
        return value if len(value) <= CUT_STRING_CHARS else \
            value[:CUT_STRING_CHARS] + f"…[cut from {len(value)} characters]"
    if isinstance(value, dict):
        items = list(value.items())
        out = {str(k)[:CUT_STRING_CHARS]: _cut(v, depth + 1) for k, v in items[:CUT_ITEMS]}
        if len(items) > CUT_ITEMS:
            out["…"] = f"[cut from {len(items)} entries]"
        return out
    if isinstance(value, list):
        out = [_cut(v, depth + 1) for v in value[:CUT_ITEMS]]
        if len(value) > CUT_ITEMS:
            out.append(f"…[cut from {len(value)} items]")
        return out
    return value


class Transcript:
    """Append-only JSONL log in ``out_dir/transcript.jsonl`` plus ``.workspace/results/<id>.json``.

    Args:
        out_dir: The run's output directory.
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / "transcript.jsonl"
        self.results_dir = self.out_dir / ".workspace" / "results"
        self.results_dir.mkdir(parents=True, exist_ok=True)

    def append(self, record: dict) -> None:
        """Write one record (flushed at once, so an interrupted run keeps everything before it).

        ``time`` is an ISO-8601 UTC string to the microsecond: a string, so that the rounding of numbers
        to six significant digits in ``to_jsonable`` cannot collapse every record onto one timestamp.
        A record larger than :data:`MAX_RECORD_CHARS` (a model sending megabytes of arguments) is written
        with its long strings and lists cut, each cut marked; what was cut is still over the argument
        bounds, so a resumed run refuses the same call again.
        """
        record = to_jsonable(record, digits=6)
        record = {"time": datetime.now(timezone.utc).isoformat(timespec="microseconds"), **record}
        line = json.dumps(record, ensure_ascii=False)
        if len(line) > MAX_RECORD_CHARS:
            line = json.dumps(_cut(record), ensure_ascii=False)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()

    def log_result(self, result: ToolResult, step: int, replayed: bool = False, by: str | None = None) -> None:
        """Record a tool call: its summary in the transcript, the full result in the workspace.

        Args:
            result: The call's result.
            step: The planner step (model turn) it belongs to.
            replayed: Answered from a previous attempt's stored result.
            by: Who made the call when not the planner (``"report"``: a step the report took after the model).
        """
        full = result.to_dict()
        (self.results_dir / f"{result.id}.json").write_text(json.dumps(full, ensure_ascii=False), encoding="utf-8")
        self.append({"type": "tool_result", "step": step, "id": result.id, "tool": result.tool,
                     "arguments": result.arguments, "ok": result.ok, "error": result.error,
                     "summary": full["summary"] if result.ok else None, "elapsed_s": round(result.elapsed, 3),
                     "n_findings": len(result.findings), "figures": result.figures,
                     **({"replayed": True} if replayed else {}), **({"by": by} if by else {})})

    def records(self) -> list[dict]:
        """All records so far (a torn last line from a crash is ignored)."""
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def stored_results(self) -> dict[str, ToolResult]:
        """Full results saved by earlier steps, keyed by result id."""
        out = {}
        for path in self.results_dir.glob("R*.json"):
            try:
                out[path.stem] = ToolResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
            except (json.JSONDecodeError, TypeError):
                continue
        return out
