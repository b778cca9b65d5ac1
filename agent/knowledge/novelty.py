"""Novelty: label every finding ``known`` (a result of the literature), ``seen`` (found by an earlier
run) or ``candidate``, and remember the run's findings.

A finding is *known* when its columns measure the quantities of a known result (by synonyms and
units, see :mod:`.quantities`), its kind is one the result can take, and, for a trend, its sign is the
expected one (a magnitude runs backwards, so a luminosity relation flips sign when measured in
magnitudes). A trend with the opposite sign stays a candidate and names the result it contradicts.
When several results fit, the best-covered names win, then the one whose description is closest to the
table (column names, units, descriptions and goal; a similarity query in the store).

A finding is *seen* when the store holds a finding of another run with the same signature: kind, the
table columns (lower case, transforms stripped), controls, and a trend's sign.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from serendip.agent.knowledge.pack import KnownResult, Pack, load_pack
from serendip.agent.knowledge.quantities import QuantityMatch, column_quantities, split_derived

NOVELTY_WEIGHT = {"candidate": 1.0, "seen": 0.8, "known": 0.6, "systematic": 0.5}
MAX_EXTRA_COLUMNS = 2
"""A grouping or outlier set on more columns than a known result's quantities plus this is not that result."""


@dataclass
class TableContext:
    """What the matcher knows about the table.

    Attributes:
        columns: The table's column names.
        units: Unit per column, where the table gives one.
        text: Words describing the table (column names, descriptions, goal) for similarity ranking.
        sha256: The table file's hash.
    """

    columns: list[str]
    units: dict[str, str] = field(default_factory=dict)
    text: str = ""
    sha256: str = ""

    @classmethod
    def from_dataset(cls, dataset: dict, goal: str = "") -> "TableContext":
        """From the run's table overview (``runner.table_info()``)."""
        cols = [c for c in dataset.get("columns", []) if isinstance(c, dict) and c.get("name")]
        names = [str(c["name"]) for c in cols]
        units = {str(c["name"]): str(c["unit"]) for c in cols if c.get("unit")}
        descr = [str(c.get("description") or "") for c in cols]
        text = " ".join([goal, Path(str(dataset.get("path", ""))).stem, *names[:200], *descr[:50]])
        return cls(columns=names, units=units, text=text[:5000], sha256=str(dataset.get("sha256", "")))


@dataclass
class Match:
    """A known result a finding recovers (or contradicts)."""

    result: KnownResult
    columns: dict[str, str]
    coverage: float
    expected_sign: int
    contradicts: bool = False
    similarity: float = 0.0

    def detail(self) -> dict:
        """The ``known`` / ``contradicts`` entry of ``novelty_detail``."""
        r = self.result
        return {"id": r.id, "name": r.name, "citation": r.citation, "shape": r.shape,
                "expected_sign": self.expected_sign, "quantities": self.columns, "source": r.source,
                "similarity": round(self.similarity, 3)}


class Knowledge:
    """Known results (shipped pack and the user's) and, with a store, the memory of earlier runs.

    Args:
        store: An open :class:`~serendip.agent.knowledge.store.KnowledgeStore`, or None for the pack only
            (nothing is remembered and nothing is ``seen``).
    """

    def __init__(self, store=None, pack: Pack | None = None) -> None:
        self.store = store
        self.pack = pack or (store.pack if store is not None else load_pack())
        self.results: list[KnownResult] = store.list_known() if store is not None else list(self.pack.results)
        self.ctx: TableContext | None = None

    def bind(self, dataset: dict, goal: str = "") -> "Knowledge":
        """Remember the run's table context (for the model's lookups and the autopilot); returns self."""
        self.ctx = TableContext.from_dataset(dataset, goal)
        return self

    @classmethod
    def open(cls, memory: str | Path | None) -> "Knowledge":
        """The pack only when ``memory`` is None or empty; else the store in that folder."""
        if memory is None or not str(memory).strip():
            return cls()
        from serendip.agent.knowledge.store import KnowledgeStore

        return cls(KnowledgeStore(memory))

    # ------------------------------------------------------------------ quantities
    def quantities(self, column: str, ctx: TableContext) -> tuple[str, tuple[QuantityMatch, ...], tuple[str, ...]]:
        """(table column, the quantities it measures, the columns it controls for) of a finding column."""
        base, controls = split_derived(column, ctx.columns)
        return base, column_quantities(base, ctx.units.get(base), self.pack), controls

    # ------------------------------------------------------------------ matching
    def matches(self, finding: dict, ctx: TableContext) -> list[Match]:
        """Known results the finding recovers or contradicts, best first."""
        kind = finding.get("kind")
        cols = [str(c) for c in finding.get("columns") or []]
        if kind not in ("trend", "group", "outlier") or not cols:
            return []
        resolved = [self.quantities(c, ctx) for c in cols]
        controls = {c for _, _, ctl in resolved for c in ctl}
        stats = finding.get("stats") or {}
        for key in ("controls", "control"):
            v = stats.get(key)
            controls |= {split_derived(str(c), ctx.columns)[0] for c in ([v] if isinstance(v, str) else v or [])}
        control_q = {m.quantity for c in controls for m in column_quantities(c, ctx.units.get(c), self.pack)}
        out: list[Match] = []
        for r in self.results:
            if kind not in r.kinds or not set(r.controls) <= control_q:
                continue
            m = self._trend_match(r, resolved, stats) if kind == "trend" else self._set_match(r, resolved)
            if m is not None:
                out.append(m)
        if kind == "trend" and not out and len(resolved) >= 2:
            same = self._same_quantity(resolved, stats)
            out = [same] if same else []
        if len(out) > 1:
            sims = self.similarity(ctx.text + " " + " ".join(cols), [m.result for m in out])
            for m in out:
                m.similarity = sims.get(m.result.id, 0.0)
        out.sort(key=lambda m: (m.contradicts, -m.coverage, -m.similarity))
        return out

    def _trend_match(self, r: KnownResult, resolved, stats: dict) -> Match | None:
        if len(resolved) < 2:
            return None
        (a, qa, _), (b, qb, _) = resolved[:2]
        wanted = set(r.quantities)
        best = None
        for ma in qa:
            for mb in qb:
                if ma.quantity == mb.quantity or ma.quantity not in wanted or mb.quantity not in wanted:
                    continue
                cov = ma.coverage * mb.coverage * (0.9 if "proxy" in (ma.via, mb.via) else 1.0)
                if best is None or cov > best[0]:
                    best = (cov, ma, mb)
        if best is None:
            return None
        cov, ma, mb = best
        expected = r.sign * ma.sense * mb.sense
        sign = _sign(stats)
        contradicts = bool(expected and sign and sign != expected)
        return Match(r, {a: ma.quantity, b: mb.quantity}, cov, expected, contradicts)

    def _same_quantity(self, resolved, stats: dict) -> Match | None:
        """Two columns named as measures of one quantity relate by construction (e.g. two size measures)."""
        (a, qa, _), (b, qb, _) = resolved[:2]
        if a == b:
            return None
        for ma in qa:
            for mb in qb:
                if ma.quantity == mb.quantity and ma.via == mb.via == "name":
                    q = self.pack.quantities[ma.quantity]
                    r = KnownResult(id="same-quantity", name=f"two measures of one quantity ({q.description})",
                                    kinds=("trend",), quantities=(ma.quantity,), sign=0,
                                    shape="the columns measure the same quantity, so they correlate by construction",
                                    citation="by construction: both column names denote this quantity")
                    expected = ma.sense * mb.sense
                    sign = _sign(stats)
                    return Match(r, {a: ma.quantity, b: mb.quantity}, ma.coverage * mb.coverage, expected,
                                 contradicts=bool(sign and sign != expected))
        return None

    def _set_match(self, r: KnownResult, resolved) -> Match | None:
        if len(resolved) > len(r.quantities) + MAX_EXTRA_COLUMNS:
            return None
        found: dict[str, tuple[str, float]] = {}
        for base, qs, _ in resolved:
            for m in qs:
                if m.quantity in r.quantities and m.coverage > found.get(m.quantity, ("", 0.0))[1]:
                    found[m.quantity] = (base, m.coverage)
        if set(found) != set(r.quantities):
            return None
        cov = float(np.prod([c for _, c in found.values()]))
        return Match(r, {col: q for q, (col, _) in found.items()}, cov, 0)

    def similarity(self, text: str, results: list[KnownResult]) -> dict[str, float]:
        """Similarity of ``text`` to each result's description (the store's query, or the same vectors locally)."""
        if self.store is not None:
            return self.store.rank_known(text, [r.id for r in results])
        from serendip.agent.knowledge.embedding import HashedNgrams

        docs = [r.document(self.pack.quantities) for r in results]
        vec = HashedNgrams().vectors([text, *docs])
        return {r.id: float(vec[0] @ vec[i + 1]) for i, r in enumerate(results)}

    # ------------------------------------------------------------------ memory
    def seen(self, finding: dict, ctx: TableContext, run: str) -> list[dict]:
        """Findings of earlier runs with the same signature."""
        if self.store is None:
            return []
        return [{"run": m.get("run"), "when": m.get("when"), "dataset": m.get("dataset_path"),
                 "same_table": bool(ctx.sha256) and m.get("dataset_sha256") == ctx.sha256, "finding": m.get("finding"),
                 "title": m.get("title")} for m in self.store.seen(signature(finding, ctx), exclude_run=run)]

    def remember(self, findings: list[dict], ctx: TableContext, dataset: dict, run: str) -> int:
        """Store the run's findings; returns how many were stored."""
        if self.store is None:
            return 0
        when = datetime.now(timezone.utc).isoformat(timespec="seconds")
        from serendip.agent.knowledge.store import encode

        records = []
        for f in findings:
            s = f.get("stats") or {}
            stats = {k: v for k, v in s.items() if isinstance(v, (int, float, str, bool)) and v is not None}
            records.append({"id": f"{run}::{f.get('id')}",
                            "document": f"{f.get('kind')}: {f.get('title', '')} | {' '.join(f.get('columns') or [])}",
                            "metadata": {"signature": signature(f, ctx), "run": run, "when": when,
                                         "dataset_path": str(dataset.get("path", "")),
                                         "dataset_sha256": str(dataset.get("sha256", "")),
                                         "kind": str(f.get("kind")), "finding": str(f.get("id")),
                                         "title": str(f.get("title", ""))[:300],
                                         "summary": str(f.get("summary", ""))[:1000],
                                         "columns": encode(f.get("columns") or []), "stats": encode(stats),
                                         "novelty": str(f.get("novelty", ""))}})
        self.store.remember(records)
        return len(records)


def _sign(stats: dict) -> int:
    for key in ("sign", "effect"):
        v = stats.get(key)
        if isinstance(v, (int, float)) and np.isfinite(v) and v != 0:
            return int(np.sign(v))
    return 0


def signature(finding: dict, ctx: TableContext) -> str:
    """What makes two findings the same: kind, base columns, controls and a trend's sign."""
    bases, controls = [], set()
    for c in finding.get("columns") or []:
        base, ctl = split_derived(str(c), ctx.columns)
        bases.append(base.lower())
        controls |= {x.lower() for x in ctl}
    s = finding.get("stats") or {}
    v = s.get("controls")
    controls |= {split_derived(str(c), ctx.columns)[0].lower() for c in ([v] if isinstance(v, str) else v or [])}
    kind = str(finding.get("kind"))
    sign = _sign(s) if kind == "trend" else 0
    return f"{kind}|{','.join(sorted(set(bases)))}|{','.join(sorted(controls))}|{sign}"


def label_findings(findings: list[dict], knowledge: Knowledge, ctx: TableContext, run: str) -> list[dict]:
    """Label each finding's ``novelty`` and ``novelty_detail``; re-rank (new first) and renumber.

    Args:
        findings: The run's final findings (not modified).
        knowledge: Known results and memory.
        ctx: The table's context.
        run: This run's id (its output folder): its own earlier attempts are not 'seen'.

    Returns:
        New finding dicts, ranked by score with the novelty weight applied, ids F1, F2 ... in that order.
    """
    out = []
    for f in findings:
        f = copy.deepcopy(f)
        old = f.get("novelty") or "candidate"
        detail: dict = {}
        matches = knowledge.matches(f, ctx)
        agree = [m for m in matches if not m.contradicts]
        seen = knowledge.seen(f, ctx, run)
        if agree:
            detail["known"] = agree[0].detail()
            also = [m.result.id for m in agree[1:4]]
            if also:
                detail["known"]["also"] = also
        elif matches:
            detail["contradicts"] = matches[0].detail()
        if seen:
            detail["seen"] = seen[:5]
        label = "systematic" if old == "systematic" else "known" if agree else "seen" if seen else "candidate"
        detail["label"] = label
        base = float(f.get("score") or 0.0) / NOVELTY_WEIGHT.get(old, 1.0)
        f["score"] = round(base * NOVELTY_WEIGHT.get(label, 1.0), 4)
        f["novelty"] = label
        f["novelty_detail"] = detail
        out.append(f)
    order = sorted(range(len(out)), key=lambda i: (-out[i]["score"], i))
    ranked = [out[i] for i in order]
    for n, f in enumerate(ranked, start=1):
        f["id"] = f"F{n}"
    return ranked
