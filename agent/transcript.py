"""The run's transcript: every model message and tool call, appended as the run goes, and the full
tool results kept beside it so that a run can be resumed and a report rebuilt."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from serendip.tools.jsonsafe import to_jsonable
from serendip.tools.result import ToolResult


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
        """
        record = {"time": datetime.now(timezone.utc).isoformat(timespec="microseconds"), **record}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(to_jsonable(record, digits=6), ensure_ascii=False) + "\n")
            fh.flush()

    def log_result(self, result: ToolResult, step: int, replayed: bool = False) -> None:
        """Record a tool call: its summary in the transcript, the full result in the workspace."""
        full = result.to_dict()
        (self.results_dir / f"{result.id}.json").write_text(json.dumps(full, ensure_ascii=False), encoding="utf-8")
        self.append({"type": "tool_result", "step": step, "id": result.id, "tool": result.tool,
                     "arguments": result.arguments, "ok": result.ok, "error": result.error,
                     "summary": full["summary"] if result.ok else None, "elapsed_s": round(result.elapsed, 3),
                     "n_findings": len(result.findings), "figures": result.figures,
                     **({"replayed": True} if replayed else {})})

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
