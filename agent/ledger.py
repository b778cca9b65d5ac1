"""The findings ledger: candidate findings proposed by tools, recorded or dismissed, ranked, with
q-values adjusted over every test of the run."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from serendip.tools.engine.contracts import DerivedColumn, Finding, finding_provenance
from serendip.tools.engine.result import ToolResult
from serendip.tools.stats import bh_qvalues
from serendip.tools.engine.thresholds import Thresholds

NOVELTY_WEIGHT = {"candidate": 1.0, "known": 0.6, "systematic": 0.5}


@dataclass
class Candidate:
    """A finding a tool proposed, under a ledger id (``C1``, ``C2`` ...)."""

    cid: str
    finding: dict
    status: str = "open"  # open, recorded, dismissed
    reason: str = ""
    note: str = ""


@dataclass
class Ledger:
    """Every result of the run and the findings drawn from them.

    Attributes:
        thresholds: When a candidate counts as significant, strong and stable.
        results: Tool results by id, in call order.
        candidates: Candidate findings by ledger id.
        derived: Provenance of every column the run's tools derived, by name.
    """

    thresholds: Thresholds = field(default_factory=Thresholds)
    results: dict[str, ToolResult] = field(default_factory=dict)
    candidates: dict[str, Candidate] = field(default_factory=dict)
    derived: dict[str, DerivedColumn] = field(default_factory=dict)

    def add_result(self, result: ToolResult) -> list[str]:
        """Keep a result and register its candidate findings; returns their ledger ids."""
        self.results[result.id] = result
        for record in result.derived or []:
            column = DerivedColumn.model_validate(record)
            self.derived[column.name] = column
        ids = []
        for f in result.findings:
            cid = f"C{len(self.candidates) + 1}"
            self.candidates[cid] = Candidate(cid=cid, finding=copy.deepcopy(f))
            ids.append(cid)
        return ids

    # ------------------------------------------------------------------ multiple testing
    def run_pvalues(self) -> np.ndarray:
        """Every p-value computed in the run (each test counted once per call)."""
        ps = [float(t[1]) for r in self.results.values() for t in (r.tests or [])
              if len(t) >= 2 and t[1] is not None]
        return np.sort(np.asarray([p for p in ps if np.isfinite(p)], dtype=float))

    def run_qvalues(self) -> tuple[np.ndarray, np.ndarray]:
        """All the run's p-values, sorted, with their Benjamini–Hochberg q-values (computed once)."""
        ps = self.run_pvalues()
        return ps, bh_qvalues(ps)

    @staticmethod
    def run_qvalue(p: float, ps: np.ndarray, qs: np.ndarray) -> float:
        """The q-value of ``p`` among the sorted run-wide p-values ``ps`` with q-values ``qs``."""
        if len(ps) == 0 or p is None or not np.isfinite(p):
            return float("nan")
        idx = int(np.searchsorted(ps, p, side="right")) - 1
        if idx < 0:
            return float(min(1.0, p * len(ps)))
        return float(qs[idx])

    # ------------------------------------------------------------------ model actions
    def record(self, cid: str, title: str | None = None, note: str = "") -> Candidate:
        """Accept a candidate as a finding (its stats stay those of the tool result)."""
        cand = self._get(cid)
        cand.status = "recorded"
        if title:
            cand.finding["title"] = title[:300]
        cand.note = note[:2000]
        return cand

    def dismiss(self, cid: str, reason: str) -> Candidate:
        """Set a candidate aside with a reason (kept in the report's provenance)."""
        cand = self._get(cid)
        cand.status = "dismissed"
        cand.reason = reason[:1000]
        return cand

    def _get(self, cid: str) -> Candidate:
        if cid not in self.candidates:
            known = ", ".join(list(self.candidates)[-15:]) or "none yet"
            raise KeyError(f"There is no candidate {cid!r}. Candidates: {known}.")
        return self.candidates[cid]

    # ------------------------------------------------------------------ final list
    def passes(self, f: dict) -> bool:
        """Whether a candidate clears the significance, effect and stability thresholds."""
        s = f.get("stats") or {}
        kind = f.get("kind")
        if kind == "trend":
            q = s.get("q_value")
            eff = s.get("effect")
            return q is not None and eff is not None and q <= self.thresholds.q_max and abs(eff) >= self.thresholds.min_effect
        if kind == "group":
            stab = s.get("stability")
            # A group tested against one population (overlapping populations, subspace clumps) also needs
            # its run-wide q-value to clear the FDR threshold.
            q_ok = s.get("p_value") is None or (s.get("q_value") is not None and s["q_value"] <= self.thresholds.q_max)
            return stab is not None and stab >= self.thresholds.min_stability and q_ok
        if kind == "outlier":
            return (s.get("n_flagged") or 0) > 0
        return True

    def final_findings(self, only_recorded: bool = False) -> list[dict]:
        """Findings for the report: run-wide q-values, thresholds applied, duplicates merged, ranked.

        Args:
            only_recorded: Use only candidates the model recorded (LLM runs); else every open or
                recorded candidate (autopilot runs).
        """
        ps, qs = self.run_qvalues()
        chosen: list[dict] = []
        seen: dict[tuple, dict] = {}
        for cand in self.candidates.values():
            if cand.status == "dismissed" or (only_recorded and cand.status != "recorded"):
                continue
            f = copy.deepcopy(cand.finding)
            f["candidate"] = cand.cid
            if cand.note:
                f["interpretation"] = cand.note
            s = f.setdefault("stats", {})
            if f.get("kind") in ("trend", "group") and s.get("p_value") is not None:
                s["q_value_call"] = s.get("q_value")
                s["q_value"] = self.run_qvalue(s["p_value"], ps, qs)
            if not self.passes(f):
                continue
            f["score"] = self.rank_score(f)
            key = self.dedupe_key(f)
            if key in seen:
                if f["score"] > seen[key]["score"]:
                    seen[key].update(f)
                continue
            seen[key] = f
            chosen.append(f)
        chosen.sort(key=lambda f: -f["score"])
        out = []
        for i, f in enumerate(chosen, start=1):
            bases, controls = finding_provenance(f, self.derived)
            f = {"id": f"F{i}", "kind": f.get("kind"), "title": f.get("title", ""), "summary": f.get("summary", ""),
                 "columns": list(f.get("columns") or []), "base_columns": bases, "controls": controls,
                 "stats": f.get("stats") or {}, "labels": f.get("labels"),
                 "evidence": list(f.get("evidence") or []), "figures": list(f.get("figures") or []),
                 "novelty": f.get("novelty", "candidate"), "score": round(float(f["score"]), 4),
                 **({"interpretation": f["interpretation"]} if f.get("interpretation") else {}),
                 "candidate": f.get("candidate")}
            out.append(f)
        return out

    def typed_findings(self, only_recorded: bool = False) -> list[Finding]:
        """:meth:`final_findings` as validated :class:`~serendip.tools.engine.contracts.Finding` models."""
        return [Finding.model_validate(f) for f in self.final_findings(only_recorded=only_recorded)]

    @staticmethod
    def dedupe_key(f: dict) -> tuple:
        """Two candidates of one kind about the same columns (and, for groups/outliers, method) are one."""
        s = f.get("stats") or {}
        cols = tuple(sorted(f.get("columns") or []))
        if f.get("kind") == "trend":
            return ("trend", cols, bool(s.get("controls")))
        if f.get("kind") in ("group", "outlier"):
            return (f.get("kind"), cols, s.get("method"), f.get("labels") if f.get("kind") == "group" else None)
        return (f.get("kind"), cols, f.get("title"))

    @staticmethod
    def rank_score(f: dict) -> float:
        """Strength x stability x novelty, each in 0–1."""
        s = f.get("stats") or {}
        base = f.get("score")
        if base is None:
            if f.get("kind") == "trend":
                base = min(1.0, abs(s.get("effect") or 0.0))
            elif f.get("kind") == "group":
                base = 0.7
            elif f.get("kind") == "outlier":
                base = 0.5
            else:
                base = 0.4
        stability = s.get("stability", 1.0) if f.get("kind") == "group" else 1.0
        stability = 1.0 if stability is None else float(stability)
        novelty = NOVELTY_WEIGHT.get(f.get("novelty", "candidate"), 1.0)
        return float(max(0.0, min(1.0, float(base))) * stability * novelty)
