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


def finding_block(f: dict, level: str = "###") -> str:
    """One finding in markdown: title, summary, stats, evidence and figures."""
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
    lines += ["; ".join(meta), "", f"*Statistics:* {stats_line(f)}", "",
              f"*Evidence:* tool results {escape_md(', '.join(str(e) for e in f.get('evidence') or []))}", ""]
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
