"""Writing a run's outputs: report.md / report.html, findings.json, rows.csv and run.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from serendip.agent.ledger import Ledger
from serendip.agent.report_html import markdown_to_html
from serendip.tools.engine.contracts import FINDINGS_SCHEMA, parse_findings_document
from serendip.tools.engine.jsonsafe import to_jsonable
from serendip.tools.engine.mdtext import code, defuse_markdown, escape_md

FIGURE_PATH = re.compile(r"^figures/[A-Za-z0-9_.\-]+\.png$")
"""The only figure paths a report links to: PNGs the tools wrote into the run's figures folder."""
KIND_TITLES = {"trend": "Trends", "group": "Groups", "outlier": "Outliers", "data_quality": "Data quality"}


def fmt(value: object) -> str:
    """A number as the report shows it (4 significant digits)."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not np.isfinite(v):
            return "n/a"
        return f"{v:.4g}"
    return str(value)


def stats_line(f: dict) -> str:
    """The key statistics of a finding in one line."""
    s = f.get("stats") or {}
    kind = f.get("kind")
    if kind == "trend":
        parts = [f"{escape_md(s.get('method', ''))} effect = {fmt(s.get('effect'))}", f"n = {fmt(s.get('n'))}",
                 f"p = {fmt(s.get('p_value'))}", f"q (run-wide) = {fmt(s.get('q_value'))}"]
        if s.get("controls"):
            parts.append("controlling for " + ", ".join(code(c) for c in s["controls"]))
    elif kind == "group":
        sizes = s.get("sizes")
        parts = [f"method = {escape_md(s.get('method', ''))}", f"groups = {fmt(s.get('n_groups'))}",
                 f"sizes = {', '.join(fmt(x) for x in sizes) if isinstance(sizes, list) else fmt(sizes)}",
                 f"stability = {fmt(s.get('stability'))}"]
    elif kind == "outlier":
        parts = [f"method = {escape_md(s.get('method', ''))}", f"flagged = {fmt(s.get('n_flagged'))}"]
    else:
        parts = [f"{escape_md(k)} = {escape_md(fmt(v))}" for k, v in list(s.items())[:4] if not isinstance(v, (list, dict))]
    return "; ".join(p for p in parts if p)


def finding_block(f: dict, level: str = "###", members: list[dict] | None = None) -> str:
    """One finding in markdown: title, summary, stats, evidence, a family's members, and figures."""
    cols = ", ".join(code(c) for c in f.get("columns") or [])
    lines = [f"{level} {escape_md(f['id'])}. {escape_md(f.get('title', ''))}", ""]
    if f.get("summary"):
        lines += [escape_md(f["summary"]), ""]
    if f.get("interpretation"):
        lines += [f"> Model's interpretation: {escape_md(f['interpretation'])}", ""]
    meta = [f"*Kind:* {escape_md(f.get('kind'))}", f"*novelty:* {escape_md(f.get('novelty'))}",
            f"*score:* {fmt(f.get('score'))}"]
    if cols:
        meta.append(f"*columns:* {cols}")
    label = "*Statistics (strongest member):*" if members else "*Statistics:*"
    lines += ["; ".join(meta), "", f"{label} {stats_line(f)}", "",
              f"*Evidence:* tool results {escape_md(', '.join(str(e) for e in f.get('evidence') or []))}", ""]
    if members:
        lines += ["*Members:*", ""]
        for m in members:
            known = f" (*{escape_md(m.get('novelty'))}*)" if m.get("novelty") not in (None, "candidate") else ""
            lines.append(f"- **{escape_md(m['id'])}**{known}: {escape_md(m.get('title', ''))}; "
                         f"columns {', '.join(code(c) for c in m.get('columns') or [])}; {stats_line(m)}")
        lines.append("")
    for fig in f.get("figures") or []:
        if FIGURE_PATH.match(str(fig)):
            lines += [f"![{escape_md(f['id'])}]({fig})", ""]
    return "\n".join(lines)


def write_findings_json(out: Path, findings: list[dict], dataset: dict, run: dict) -> None:
    """findings.json in the contract's shape, validated against it before it is written.

    Raises:
        ContractError: The document breaks the contract (a bug in a tool or the ledger).
    """
    doc = to_jsonable({"schema": FINDINGS_SCHEMA, "dataset": dataset, "run": run,
                       "findings": [{k: v for k, v in f.items() if k != "candidate"} for f in findings]}, digits=6)
    parse_findings_document(doc)
    (out / "findings.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False), encoding="utf-8")


def write_rows_csv(out: Path, findings: list[dict], n_rows: int, extra_artifacts: list[str] = ()) -> list[str]:
    """rows.csv: ``row`` then one column per grouping / flag / embedding axis a finding refers to."""
    art_dir = out / ".workspace" / "artifacts"
    wanted: list[str] = []
    for f in findings:
        for name in [f.get("labels")] + list((f.get("stats") or {}).get("artifacts") or []):
            if name and name not in wanted:
                wanted.append(name)
    for name in extra_artifacts:
        if name not in wanted:
            wanted.append(name)
    data = {"row": np.arange(n_rows)}
    for name in wanted:
        path = art_dir / f"{name}.npy"
        if path.exists():
            values = np.load(path, allow_pickle=False)
            if len(values) == n_rows:
                data[name] = values
    pd.DataFrame(data).to_csv(out / "rows.csv", index=False)
    return [c for c in data if c != "row"]


def keeps_only_recorded(ledger: Ledger, planner: str, status: str) -> bool:
    """Whether the report keeps only the candidates the model recorded: an llm-planned run that recorded some
    and did not end in error (a hybrid run keeps the systematic pass's candidates, less the dismissed ones)."""
    return planner == "llm" and status != "error" and any(c.status == "recorded" for c in ledger.candidates.values())


def report_findings(findings: list[dict], ledger: Ledger) -> list[dict]:
    """The ranked findings as a reader gets them: restating trends folded into families, titles and summaries
    with derived columns in words (raw names stay in ``columns``), headline figures attached."""
    from serendip.agent.families import fold_families, is_family, members_of
    from serendip.agent.headline_figures import attach_figures
    from serendip.agent.plain_names import family_title, plain_text, plain_title

    folded = fold_families(findings, ledger)
    titles = {}
    for f in folded:
        if is_family(f):
            titles[f["id"]] = family_title(f, members_of(f, folded), ledger.derived)
        else:
            titles[f["id"]] = plain_title(f, ledger.derived)
    for f in folded:
        f["title"] = titles[f["id"]]
        f["summary"] = plain_text(f.get("summary", ""), ledger.derived)
        if is_family(f):
            f["summary"] = family_summary(f, members_of(f, folded), titles, ledger)
    return attach_figures(folded, ledger)


def family_summary(family: dict, members: list[dict], titles: dict[str, str], ledger: Ledger) -> str:
    """One paragraph for a family: what joined its members, and its strongest member."""
    from serendip.agent.plain_names import plain_name

    info = family.get("family") or {}
    if info.get("kind") == "shared_driver":
        why = (f"These trends are one dominant component seen pair by pair (PCA, evidence {info.get('evidence')}): "
               f"controlling for {plain_name(str(info.get('driver')), ledger.derived, ticks=True)} is the way to "
               "look beneath it.")
    elif info.get("kind") == "near_duplicates":
        why = (f"These columns are near-duplicates of {plain_name(str(info.get('driver')), ledger.derived, ticks=True)}"
               f" (every pair almost perfectly correlated, evidence {info.get('evidence')}): the trends among them restate one "
               "quantity; keep one of them when looking for what else varies.")
    else:
        why = "These trends relate the same quantities, with and without controls."
    return f"{why} Strongest: {titles[members[0]['id']]}."
