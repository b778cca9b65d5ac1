"""Families of trends: one finding for trends that restate one phenomenon.

Two kinds of restatement are folded together:

- **A shared driver.** When PCA flags a dominant first component, every trend between two columns that follow
  it (it explains at least half of each one's variance), with the sign the component predicts, is that
  component seen through one pair; such trends form one family named after the component's driver. A
  column the run residualized others on, and that alone explains at least half of their variance, is a
  driver in the same way (its fits give each column's correlation with it).
- **Near-duplicate columns.** Columns that are pairwise near-duplicates (every pair's trend has
  |ρ| ≥ :data:`NEAR_DUPLICATE`: they share at least 90% of their rank variance), such as one flux in
  several apertures or one magnitude in several bands, are one quantity measured several times; the trends
  among them form one family named after the column most tied to the others, even when no component
  dominates the whole table.
- **Versions of one trend.** The same two base quantities related again with other controls (a residual
  version, "at fixed ...") belong with the first version.

A family is a finding of its own (kind ``trend``, ranked once, by its best member) holding ``family``:
``{"kind", "driver", "variance_ratio", "evidence", "members"}``; each member stays in findings.json as a
finding of its own, right after its family, with ``member_of`` naming it, so a reader (the scorer) still
sees every member with its statistics. Nothing is recomputed: the numbers are the tools'.
"""

from __future__ import annotations

import copy

import numpy as np

from serendip.agent.ledger import Ledger
from serendip.tools.engine.contracts import PcaSummary, read_summary

FOLLOWS = 0.5
"""A column follows a dominant component when the component explains at least this share of its variance
(squared correlation of the standardized column with PC1: loading² × PC1's eigenvalue)."""


def dominant_components(ledger: Ledger) -> list[dict]:
    """Every dominant first component PCA reported in the run: driver, variance share, evidence, and each
    column's correlation with the component (from its loading; only columns the summary lists)."""
    out = []
    for r in ledger.results.values():
        if r.tool != "pca" or not r.ok:
            continue
        s = read_summary(PcaSummary, r.summary)
        if s.dominant is None or not s.components or not s.dominant.driver or not s.dominant.variance_ratio:
            continue
        p = int((r.summary or {}).get("n_columns") or len(r.arguments.get("columns") or []) or 0)
        eigen = float(s.dominant.variance_ratio) * p
        corr = {c: float(v) * eigen ** 0.5 for c, v in s.components[0].top_loadings.items() if v is not None}
        out.append({"driver": s.dominant.driver, "variance_ratio": s.dominant.variance_ratio,
                    "correlations": corr, "evidence": r.id, "source": "pca"})
    return out


def control_components(ledger: Ledger) -> list[dict]:
    """Drivers found by residualizing: one numeric control that alone explains much of the variance of the
    columns fitted on it is a shared driver too (their correlation with it: the fit's sign and root R²)."""
    out = []
    for r in ledger.results.values():
        if r.tool != "residualize" or not r.ok:
            continue
        xs = list(r.arguments.get("x") or [])
        fits = (r.summary or {}).get("columns")
        if len(xs) != 1 or not isinstance(fits, dict):
            continue
        x = str(xs[0])
        corr, shares = {x: 1.0}, []
        for y, fit in fits.items():
            share = fit.get("variance_explained") if isinstance(fit, dict) else None
            slope = (fit.get("coefficients") or {}).get(x) if isinstance(fit, dict) else None
            if share is None or slope is None or not slope:
                continue
            corr[str(y)] = (1.0 if slope > 0 else -1.0) * max(0.0, float(share)) ** 0.5
            shares.append(float(share))
        if shares:
            out.append({"driver": x, "variance_ratio": None, "explained": (min(shares), max(shares)),
                        "correlations": corr, "evidence": r.id, "source": "residualize"})
    return out


NEAR_DUPLICATE = 0.95
"""|correlation| from which two columns count as near-duplicates (ρ² ≥ 0.9: nine tenths of their rank
variance shared)."""


def near_duplicate_components(findings: list[dict]) -> list[dict]:
    """Sets of at least three columns that are pairwise near-duplicates, read from the trends without
    controls (complete linkage: a column joins a set only if it is a near-duplicate of every member)."""
    strength: dict[frozenset, tuple[float, int, str]] = {}
    for f in findings:
        if f.get("kind") != "trend" or f.get("controls") or len(f.get("columns") or []) < 2:
            continue
        try:
            effect = float((f.get("stats") or {}).get("effect"))
        except (TypeError, ValueError):
            continue
        pair = frozenset(str(c) for c in f["columns"][:2])
        if len(pair) == 2 and abs(effect) >= NEAR_DUPLICATE and abs(effect) > abs(strength.get(pair, (0.0,))[0]):
            strength[pair] = (effect, _sign(f), (f.get("evidence") or [""])[0])
    linked: dict[str, dict[str, float]] = {}
    for pair, (effect, _, _) in strength.items():
        a, b = sorted(pair)
        linked.setdefault(a, {})[b] = effect
        linked.setdefault(b, {})[a] = effect
    out, used = [], set()
    for seed in sorted(linked, key=lambda c: (-len(linked[c]), c)):
        if seed in used:
            continue
        members = [seed]
        for c in sorted(linked[seed], key=lambda c: (-abs(linked[seed][c]), c)):
            if c not in used and all(c in linked[m] for m in members):
                members.append(c)
        if len(members) < 3:
            continue
        used.update(members)
        driver = max(members, key=lambda c: (sum(abs(linked[c].get(m, 0.0)) for m in members), c))
        corr = {c: (1.0 if c == driver else float(np.sign(linked[driver][c]))) for c in members}
        best = max((strength[frozenset((driver, c))] for c in members if c != driver), key=lambda t: abs(t[0]))
        out.append({"driver": driver, "variance_ratio": None, "correlations": corr, "evidence": best[2],
                    "source": "near_duplicates", "columns": members})
    return out


def _sign(f: dict) -> int:
    s = f.get("stats") or {}
    v = s.get("sign") if s.get("sign") not in (None, 0) else s.get("effect")
    try:
        return (float(v) > 0) - (float(v) < 0)
    except (TypeError, ValueError):
        return 0


def _base_pair(f: dict) -> frozenset:
    bases = f.get("base_columns") or f.get("columns") or []
    return frozenset(str(b) for b in bases[:2])


def follows(f: dict, component: dict) -> bool:
    """Whether trend ``f`` is ``component`` seen through one pair: both its columns follow the component and its
    sign is the one their correlations with it predict."""
    corr = component["correlations"]
    a, b = (str(c) for c in f["columns"][:2])
    if a not in corr or b not in corr or min(corr[a] ** 2, corr[b] ** 2) < FOLLOWS:
        return False
    return _sign(f) != 0 and _sign(f) == (1 if corr[a] * corr[b] > 0 else -1)


def fold_families(findings: list[dict], ledger: Ledger) -> list[dict]:
    """The findings with restating trends folded into families, renumbered in rank order.

    Trends are placed fewest controls first: a version of a trend already placed joins it (its family, or a
    new family of versions); else a trend that follows a dominant component joins that component's family.
    A family of one is a finding on its own.

    Args:
        findings: The ranked final findings (``F1``, ``F2`` ... by score).
        ledger: The run's results (PCA's dominant components are read from it).

    Returns:
        Top-level findings ``F1``, ``F2`` ... by score (a family scores as its best member), each family
        followed by its members ``Fk.1``, ``Fk.2`` ... (in their own rank order).
    """
    comps = dominant_components(ledger) + control_components(ledger) + near_duplicate_components(findings)
    trends = [i for i, f in enumerate(findings) if f.get("kind") == "trend" and len(f.get("columns") or []) >= 2]
    trends.sort(key=lambda i: (len(findings[i].get("controls") or []), -float(findings[i].get("score") or 0), i))
    home: dict[int, int] = {}  # finding -> its family's key (a finding index, or -1 - component index)
    placed_pairs: dict[frozenset, int] = {}
    for i in trends:
        pair = _base_pair(findings[i])
        if pair in placed_pairs:
            home[i] = home[placed_pairs[pair]]
            continue
        k = next((j for j, c in enumerate(comps) if follows(findings[i], c)), None)
        home[i] = -1 - k if k is not None else i
        placed_pairs[pair] = i
    groups: dict[int, list[int]] = {}
    for i in range(len(findings)):
        groups.setdefault(home.get(i, i), []).append(i)

    top: list[tuple[dict, list[dict]]] = []
    for key, idx in groups.items():
        if len(idx) == 1:
            top.append((copy.deepcopy(findings[idx[0]]), []))
            continue
        members = [copy.deepcopy(findings[i]) for i in sorted(idx, key=lambda i: (-float(findings[i]["score"]), i))]
        top.append((family_finding(members, comps[-1 - key] if key < 0 else None), members))
    top.sort(key=lambda t: -float(t[0].get("score") or 0.0))

    out: list[dict] = []
    for k, (f, members) in enumerate(top, start=1):
        f["id"] = f"F{k}"
        if members:
            f["family"]["members"] = [f"F{k}.{j}" for j in range(1, len(members) + 1)]
        out.append(f)
        for j, m in enumerate(members, start=1):
            m["id"] = f"F{k}.{j}"
            m["member_of"] = f"F{k}"
            out.append(m)
    return out


def family_finding(members: list[dict], component: dict | None) -> dict:
    """The finding that stands for ``members`` (best first): the best member's statistics, every member's
    columns, the driver and its evidence when a dominant component joined them."""
    best = members[0]
    columns: list[str] = []
    bases: list[str] = []
    for m in members:
        for c, b in zip(m.get("columns") or [], m.get("base_columns") or m.get("columns") or []):
            if c not in columns:
                columns.append(c)
                bases.append(b)
    evidence: list[str] = []
    figures: list[str] = []
    for m in members:
        evidence += [e for e in m.get("evidence") or [] if e not in evidence]
        figures += [p for p in m.get("figures") or [] if p not in figures]
    if component is not None:
        evidence = [component["evidence"]] + [e for e in evidence if e != component["evidence"]]
    novelties = [m.get("novelty", "candidate") for m in members]
    kind = ("near_duplicates" if component.get("source") == "near_duplicates" else "shared_driver") \
        if component else "versions"
    family = {"kind": kind,
              "driver": component["driver"] if component else None,
              "variance_ratio": component["variance_ratio"] if component else None,
              **({"explained": list(component["explained"])} if component and component.get("explained") else {}),
              "evidence": component["evidence"] if component else None,
              "members": []}
    return {"id": "", "kind": "trend", "title": best.get("title", ""), "summary": best.get("summary", ""),
            "columns": columns, "base_columns": bases, "controls": list(best.get("controls") or []),
            "stats": copy.deepcopy(best.get("stats") or {}), "labels": None, "evidence": evidence,
            "figures": figures[:1], "novelty": "candidate" if "candidate" in novelties else novelties[0],
            "score": best.get("score"), "family": family, "candidate": best.get("candidate")}


def is_family(f: dict) -> bool:
    """Whether a finding stands for a family of member findings."""
    return isinstance(f.get("family"), dict) and bool(f["family"].get("members"))


def top_level(findings: list[dict]) -> list[dict]:
    """Findings that are not members of a family (families and findings on their own), in order."""
    return [f for f in findings if not f.get("member_of")]


def members_of(family: dict, findings: list[dict]) -> list[dict]:
    """The member findings of ``family``."""
    return [f for f in findings if f.get("member_of") == family.get("id")]
