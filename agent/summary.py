"""The report's opening summary, written from the ledger by template: what the table is, what dominated it and
was controlled for, the top new candidates with why each matters, and what to check next.

Every number in it is copied from a tool result (a finding's statistics or a tool's summary) and formatted the
way the report formats numbers; nothing is computed here.
"""

from __future__ import annotations

import json
import re

from serendip.agent.families import dominant_components, is_family, top_level
from serendip.agent.knowledge.report_section import candidate_findings
from serendip.agent.ledger import Ledger
from serendip.agent.plain_names import plain_name
from serendip.agent.report import fmt
from serendip.tools.engine.mdtext import escape_md

MAX_CANDIDATES = 3
WHY = {
    "group": "a population split the trends alone do not show; check it against known classes and how the data "
             "were taken.",
    "outlier": "rows that break the pattern of the rest; inspect their raw measurements and flags first.",
    "trend": "a relation that holds over the whole table; check it within subsamples and against shared drivers.",
    "family": "one pattern seen through many pairs of columns; the member list says which pairs, the grid shows it.",
}


def _names(columns: list[str], ledger: Ledger, limit: int = 4) -> str:
    shown = [plain_name(c, ledger.derived, ticks=True) for c in columns[:limit]]
    more = " …" if len(columns) > limit else ""
    return (shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]) + more if shown else ""


def table_line(ledger: Ledger) -> str | None:
    """The table's size, from the first describe result."""
    for r in ledger.results.values():
        if r.tool == "describe" and r.ok and r.summary.get("n_rows") is not None:
            return (f"The table has {fmt(r.summary.get('n_rows'))} rows and {fmt(r.summary.get('n_columns'))} "
                    f"columns (evidence {r.id}).")
    return None


def dominance_lines(ledger: Ledger) -> list[str]:
    """What dominated (PCA's dominant components) and what was controlled for (residualize calls)."""
    out = []
    for comp in dominant_components(ledger)[:2]:
        cols = list(ledger.results[comp["evidence"]].arguments.get("columns") or [])
        out.append(f"One component dominates {_names(cols, ledger)}: it explains "
                   f"{100 * float(comp['variance_ratio']):.1f}% of their variance and follows "
                   f"{plain_name(comp['driver'], ledger.derived, ticks=True)} (evidence {comp['evidence']}).")
    controlled = []
    for r in ledger.results.values():
        if r.tool != "residualize" or not r.ok:
            continue
        xs = [str(x) for x in r.arguments.get("x") or []]
        ys = [str(y) for y in r.arguments.get("y") or []]
        controlled.append(f"{_names(xs, ledger)} in {_names(ys, ledger)} ({r.id})")
    if controlled:
        out.append("Controlled for: " + "; ".join(controlled) + ".")
    return out


def why_line(f: dict) -> str:
    """Why a headline matters, with its key numbers from its statistics."""
    s = f.get("stats") or {}
    if is_family(f):
        return WHY["family"]
    if f.get("kind") == "group":
        sizes = s.get("sizes")
        size_text = ", ".join(fmt(x) for x in sizes) if isinstance(sizes, list) else fmt(sizes)
        return (f"{fmt(s.get('n_groups'))} groups of {size_text} rows, stability {fmt(s.get('stability'))} under "
                f"resampling: {WHY['group']}")
    if f.get("kind") == "outlier":
        return f"{fmt(s.get('n_flagged'))} rows flagged ({escape_md(s.get('method', ''))}): {WHY['outlier']}"
    if f.get("kind") == "trend":
        return f"effect {fmt(s.get('effect'))} over {fmt(s.get('n'))} rows: {WHY['trend']}"
    return ""


def summary_section(findings: list[dict], ledger: Ledger) -> list[str]:
    """The 'Summary' section's markdown lines."""
    out = ["## Summary", ""]
    line = table_line(ledger)
    if line:
        out += [line, ""]
    out += [f"- {x}" for x in dominance_lines(ledger)]
    if out[-1] != "":
        out.append("")
    new = [f for f in candidate_findings(top_level(findings)) if f.get("kind") != "data_quality"]
    if new:
        out += ["**Top new candidates:**", ""]
        for f in new[:MAX_CANDIDATES]:
            out.append(f"- **{escape_md(f['id'])}**: {escape_md(f.get('title', ''))}. *Why it matters:* {why_line(f)}")
        out.append("")
    else:
        out += ["No candidate new finding passed the thresholds.", ""]
    known = [f for f in findings if f.get("novelty") == "known"]
    if known:
        out += [f"Known results recovered (they show the method works here): "
                f"{', '.join(escape_md(f['id']) for f in known[:8])}.", ""]
    steps = []
    for kind in dict.fromkeys(("family" if is_family(f) else f.get("kind")) for f in new[:MAX_CANDIDATES]):
        steps.append({"group": "compare the groups with known classes and the survey's fields or instruments",
                      "outlier": "look at the flagged rows' raw values and quality flags",
                      "trend": "test the trend within subsamples and controlling for shared drivers",
                      "family": "control for the family's driver and see which pairs stay related"}.get(kind, ""))
    steps = [s for s in steps if s]
    if steps:
        out += ["**What to check next:** " + "; ".join(steps) + ".", ""]
    return out


NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?%?", re.I)
"""A number as prose writes it; one glued to a word (F3, R8, PC1, m1) is a name, not a number."""


def tool_numbers(ledger: Ledger) -> list[float]:
    """Every number written in the run's tool results (summaries, markdown and candidate findings)."""
    text = " ".join(json.dumps(r.summary, default=str) + " " + r.markdown + " " + json.dumps(r.findings, default=str)
                    for r in ledger.results.values())
    return [float(m.rstrip("%")) for m in NUMBER.findall(text)]


def unsupported_numbers(text: str, pool: list[float]) -> list[str]:
    """The numbers in ``text`` that no number in ``pool`` gives when rounded as ``text`` shows it (a percentage
    may come from a fraction); code spans (column names) are left aside."""
    text = re.sub(r"`[^`]*`", " ", text or "")
    bad = []
    for token in NUMBER.findall(text):
        x = float(token.rstrip("%"))
        decimals = len(token.rstrip("%").split(".")[1].split("e")[0].split("E")[0]) if "." in token else 0
        tol = 0.5 * 10 ** -decimals + 1e-12
        if not any(abs(y - x) <= tol or abs(100 * y - x) <= tol for y in pool):
            bad.append(token)
    return bad
