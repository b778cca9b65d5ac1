"""What is already known and what earlier nights found: the night's link to the knowledge store.

The store is the chromadb one of :mod:`serendip.agent.knowledge` (the same folder ``serendip explore
--memory`` uses), so a candidate found last night, or by an earlier interactive run, is *seen*, and one
that recovers a result of the shipped pack or of the user's own list is *known*.

Only the night's own process opens the store, once every run has ended: the runs explore with the
shipped known results alone. A chromadb folder is not safe for several writing processes, and a run on
a Dask worker may not even see the folder.

Tonight's runs do not count as earlier sightings of each other (they are deduplicated across runs by
:func:`signature` instead): a stored finding is an earlier sighting unless it came from one of tonight's
run folders after that run's current attempt started. So rerunning a finished night rewrites its digest
without calling its own findings seen, while ``--redo`` (a new attempt) sees the previous attempt's.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from serendip.agent.overnight.runs import read_json

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
    """A finding's identity across tonight's runs: kind, quantities (and a trend's sign), the table's name."""
    kind = finding.get("kind", "")
    cols = sorted({base_name(c) for c in finding.get("columns") or []})
    sign = (finding.get("stats") or {}).get("sign") if kind == "trend" else None
    return json.dumps([dataset, kind, cols, sign])


class NightMemory:
    """The knowledge store as the night uses it: label candidates, then remember the night's findings.

    Args:
        folder: The store's folder; None = the shipped known results only (nothing seen, nothing kept).

    Raises:
        KnowledgeOpenError: The folder cannot hold a store (one line).
    """

    def __init__(self, folder: str | Path | None) -> None:
        from serendip.agent.knowledge.run_hook import open_knowledge

        self.knowledge = open_knowledge(folder)
        self._contexts: dict[str, object] = {}

    @property
    def folder(self) -> Path | None:
        """The store's folder (None without a store)."""
        store = self.knowledge.store
        return store.path if store is not None else None

    # ------------------------------------------------------------------ a run's table
    def context(self, run_dir: Path, record: dict):
        """The table context of a run (its input's columns and units, the source table's checksum)."""
        from serendip.agent.knowledge.novelty import TableContext

        key = str(run_dir)
        if key not in self._contexts:
            dataset = self.dataset(run_dir, record)
            self._contexts[key] = TableContext.from_dataset(dataset, str(record.get("run_goal") or record.get("goal") or ""))
        return self._contexts[key]

    def dataset(self, run_dir: Path, record: dict) -> dict:
        """The run's table overview (columns, units), with the source table's path and checksum."""
        info = read_json(run_dir / "run.json")
        path = str(info.get("table") or record.get("table") or "")
        overview: dict = {"columns": []}
        cache = f"table::{path}"
        if cache in self._contexts:
            overview = self._contexts[cache]  # type: ignore[assignment]
        elif path:
            try:
                from serendip.tools.engine.overview import table_overview
                from serendip.tools.loading import load_table

                overview = table_overview(load_table(path))
            except Exception:  # noqa: BLE001 - an unreadable input leaves the finding's own column names
                overview = {"columns": []}
            self._contexts[cache] = overview
        return {**overview, "path": str(record.get("table") or path),
                "sha256": str(record.get("table_sha256") or overview.get("sha256") or "")}

    # ------------------------------------------------------------------ labels
    def label(self, finding: dict, run_dir: Path, record: dict, tonight: dict[str, str]) -> tuple[str, dict]:
        """'known', 'seen' or 'new' for one finding, with what the store said.

        Args:
            finding: The finding (as in the run's findings.json).
            run_dir: Its run folder.
            record: The run's overnight record.
            tonight: Tonight's run folders (resolved) → the time their current attempt started.

        Returns:
            The label and its detail: ``known`` (the result recovered), ``contradicts`` (a known result
            whose sign the finding reverses), ``seen`` (earlier sightings, oldest first).
        """
        ctx = self.context(run_dir, record)
        detail: dict = {}
        matches = self.knowledge.matches(finding, ctx)
        agree = [m for m in matches if not m.contradicts]
        if agree:
            detail["known"] = agree[0].detail()
        elif matches:
            detail["contradicts"] = matches[0].detail()
        seen = self.earlier(finding, ctx, tonight)
        if seen:
            detail["seen"] = seen[:5]
        if agree or finding.get("novelty") == "known":
            return "known", detail
        return ("seen" if seen else "new"), detail

    def earlier(self, finding: dict, ctx, tonight: dict[str, str]) -> list[dict]:
        """Stored findings with the same signature that are not tonight's own."""
        store = self.knowledge.store
        if store is None:
            return []
        from serendip.agent.knowledge.novelty import signature as store_signature

        out = []
        for m in store.seen(store_signature(finding, ctx)):
            run, when = str(m.get("run", "")), str(m.get("when", ""))
            if run in tonight and when >= tonight[run]:
                continue
            out.append({"run": run, "folder": Path(run).name, "when": when, "dataset": m.get("dataset_path"),
                        "same_table": bool(ctx.sha256) and m.get("dataset_sha256") == ctx.sha256,
                        "finding": m.get("finding"), "title": m.get("title")})
        return out

    # ------------------------------------------------------------------ remembering
    def remember(self, run_dir: Path, record: dict, findings: list[dict]) -> int:
        """Store a run's findings under its folder (as ``serendip explore --memory`` would); returns how many."""
        if self.knowledge.store is None or not findings:
            return 0
        ctx = self.context(run_dir, record)
        dataset = {"path": str(record.get("table", "")), "sha256": str(record.get("table_sha256", ""))}
        return self.knowledge.remember(findings, ctx, dataset, str(run_dir.resolve()))


def attempt_started(run_dir: Path) -> str:
    """When the run's current attempt started (run.json ``started``), '' when it never started."""
    return str(read_json(run_dir / "run.json").get("started") or "")
