"""What earlier nights found: the cross-night novelty check behind one small function.

The knowledge store (chromadb, issue 12) is the intended home of past findings; until it is wired in
here, a JSON index of finding signatures under the output folder (``memory.json``) does the job.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

MEMORY_FILE = "memory.json"
_LOG = re.compile(r"^(log10|log|ln)_", re.I)
_RESID = re.compile(r"^resid_(.+?)_vs_.+$")


def base_name(column: str) -> str:
    """The measured quantity behind a derived column name (log10_x → x, resid_y_vs_x → y)."""
    name = column
    for _ in range(3):
        m = _RESID.match(name)
        if m:
            name = m.group(1)
        name = _LOG.sub("", name)
    return name.lower()


def signature(finding: dict, dataset: str = "") -> str:
    """A finding's identity across runs and nights: kind, quantities (and a trend's sign), the table's name.

    The table's file name rather than its checksum, so a finding already made on an earlier release of
    a table counts as seen.
    """
    kind = finding.get("kind", "")
    cols = sorted({base_name(c) for c in finding.get("columns") or []})
    sign = (finding.get("stats") or {}).get("sign") if kind == "trend" else None
    return json.dumps([dataset, kind, cols, sign])


def _read(out: Path) -> dict:
    try:
        data = json.loads((out / MEMORY_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def earlier_sightings(out: Path, signatures: list[str], tonight_runs: set[str]) -> dict[str, dict]:
    """For each signature seen by a run that is not one of tonight's: {run_id, when, folder}.

    Lead: this is the one place to ask the issue-12 memory store instead ("seen" label).
    """
    memory = _read(out)
    seen = {}
    for sig in signatures:
        for entry in memory.get(sig, []):
            if entry.get("run_id") not in tonight_runs:
                seen[sig] = entry
                break
    return seen


def remember(out: Path, entries: list[tuple[str, dict]]) -> None:
    """Add (signature, {run_id, folder}) pairs to the memory (a run is stored once per signature)."""
    memory = _read(out)
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for sig, info in entries:
        known = memory.setdefault(sig, [])
        if not any(e.get("run_id") == info.get("run_id") for e in known):
            known.append({**info, "when": when})
    tmp = out / (MEMORY_FILE + ".tmp")
    tmp.write_text(json.dumps(memory, indent=1), encoding="utf-8")
    tmp.replace(out / MEMORY_FILE)
