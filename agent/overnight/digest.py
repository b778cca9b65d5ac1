"""The morning digest: candidates of every run, deduplicated, re-tested, ranked and explained.

rank = strength × robustness × novelty, where strength is the finding's own score (|effect| of a trend,
stability of a grouping, 0–1), robustness comes from the follow-up label and novelty from the knowledge
store (:mod:`.memory`): a result it holds (known), one an earlier night or run found (seen), or new.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from serendip.agent.overnight.memory import NightMemory, attempt_started, signature
from serendip.agent.overnight.runs import read_json
from serendip.agent.report import escape_md, fmt, stats_line
from serendip.agent.report_html import markdown_to_html
from serendip.tools.engine.mdtext import code

ROBUSTNESS = {"robust": 1.0, "untested": 0.5, "fragile": 0.35, "artefact": 0.1}
NOVELTY = {"new": 1.0, "seen": 0.4, "known": 0.3}
RANKED_KINDS = ("trend", "group", "outlier")


@dataclass
class Candidate:
    """One finding across the night (the strongest instance of its signature)."""

    signature: str
    finding: dict
    run: dict
    also_in: list[str] = field(default_factory=list)
    followup: dict | None = None
    novelty: str = "new"
    detail: dict = field(default_factory=dict)

    @property
    def strength(self) -> float:
        score = self.finding.get("score")
        if score is None:
            score = abs(float((self.finding.get("stats") or {}).get("effect") or 0.0))
        return max(0.0, min(1.0, float(score)))

    @property
    def label(self) -> str:
        return (self.followup or {}).get("label", "untested")

    @property
    def rank_score(self) -> float:
        return self.strength * ROBUSTNESS.get(self.label, 0.5) * NOVELTY.get(self.novelty, 1.0)


def collect(out: Path, records: list[dict]) -> list[Candidate]:
    """Every ranked-kind finding of every run, deduplicated by signature (strongest kept)."""
    best: dict[str, Candidate] = {}
    for rec in records:
        folder = out / "runs" / rec.get("folder", "")
        data = read_json(folder / "findings.json")
        for f in data.get("findings") or []:
            if f.get("kind") not in RANKED_KINDS or f.get("member_of"):
                continue  # a family's members are ranked once, through the family
            sig = signature(f, Path(rec.get("table", "")).name)
            cand = Candidate(sig, f, rec)
            if f.get("novelty") == "known":
                cand.novelty = "known"
            old = best.get(sig)
            if old is None:
                best[sig] = cand
            elif cand.strength > old.strength:
                cand.also_in = old.also_in + [old.run["folder"]]
                best[sig] = cand
            elif rec["folder"] not in old.also_in and rec["folder"] != old.run["folder"]:
                old.also_in.append(rec["folder"])
    return sorted(best.values(), key=lambda c: (-c.strength, c.signature))


def label_novelty(out: Path, candidates: list[Candidate], memory: NightMemory, tonight: list[str]) -> None:
    """Label each candidate known / seen / new from the knowledge store.

    Args:
        out: The night's output folder.
        candidates: Tonight's deduplicated candidates.
        memory: The store.
        tonight: Folder names of tonight's runs (their own findings are not earlier sightings).
    """
    started = {str((out / "runs" / f).resolve()): attempt_started(out / "runs" / f) for f in tonight}
    for c in candidates:
        c.novelty, c.detail = memory.label(c.finding, out / "runs" / c.run["folder"], c.run, started)


def remember_night(out: Path, records: list[dict], memory: NightMemory) -> int:
    """Store every ranked finding of tonight's runs so that the next night (or run) can tell what is new."""
    stored = 0
    for rec in records:
        folder = out / "runs" / rec.get("folder", "")
        findings = [f for f in read_json(folder / "findings.json").get("findings") or [] if f.get("kind") in RANKED_KINDS and not f.get("member_of")]
        if findings:
            stored += memory.remember(folder, rec, findings)
    return stored


# ---------------------------------------------------------------------- writing
def _check_line(c: dict) -> str:
    if "effect" in c:
        numbers = f"effect {fmt(c['effect'])}, p = {fmt(c['p_value'])}, n = {c['n']}"
    elif "recovered" in c:
        numbers = f"{c['recovered']} of {c['n']} flagged rows flagged again (chance p = {fmt(c['p_value'])})"
    elif c.get("stability") is not None:
        numbers = f"stability {fmt(c['stability'])}"
    else:
        numbers = escape_md(c.get("why", ""))
    ev = f" (evidence {c['evidence']})" if c.get("evidence") else ""
    return f"  - {c['check']}: {numbers} — **{c['outcome']}**{ev}"


def candidate_block(i: int, c: Candidate) -> list[str]:
    """Markdown for one ranked candidate."""
    f, run = c.finding, c.run
    folder = run["folder"]
    lines = [f"### {i}. {escape_md(f.get('title', ''))}", "",
             f"*Rank* {c.rank_score:.3f} = strength {c.strength:.2f} × robustness {ROBUSTNESS.get(c.label, 0.5)} "
             f"(**{c.label}**) × novelty {NOVELTY.get(c.novelty, 1.0)} (**{c.novelty}**)", "",
             f"*Run:* [{code(folder, limit=120)}](runs/{folder}/report.html) — table {code(Path(run['table']).name)}, "
             f"strategy {code(run['strategy']['name'])}, finding {f.get('id')}; *statistics:* {stats_line(f)}", ""]
    if f.get("summary"):
        lines += [escape_md(f["summary"]), ""]
    if c.followup:
        lines += [f"*Follow-up:* {c.label} — {c.followup.get('why', '')}.", ""]
        lines += [_check_line(ch) for ch in c.followup.get("checks", [])] + [""]
    known, against = c.detail.get("known"), c.detail.get("contradicts")
    if known:
        lines += [f"*Known result:* recovers *{escape_md(known.get('name', ''))}* ({escape_md(known.get('citation', ''))}).", ""]
    if against:
        lines += [f"*Contradicts* the known *{escape_md(against.get('name', ''))}* ({escape_md(against.get('citation', ''))}): "
                  "check the columns' definitions and the selection before believing it.", ""]
    for s in (c.detail.get("seen") or [])[:1]:
        where = "this table" if s.get("same_table") else code(Path(str(s.get("dataset") or "")).name)
        lines += [f"*Seen before* as {escape_md(str(s.get('finding') or ''))} in run {code(s.get('folder', ''), limit=120)} "
                  f"on {escape_md(s.get('when', ''))} ({where}).", ""]
    if c.also_in:
        lines += ["*Also found in:* " + ", ".join(f"[{code(r, limit=120)}](runs/{r}/report.html)" for r in c.also_in), ""]
    figs = [f"[{code(Path(fig).name)}](runs/{folder}/{fig})" for fig in f.get("figures") or []]
    if figs:
        lines += ["*Figures:* " + ", ".join(figs), ""]
    return lines


def build_index(candidates: list[Candidate], records: list[dict]) -> str:
    """index.md: the ranked candidates, new first, then the runs table."""
    ordered = sorted(candidates, key=lambda c: (c.novelty != "new", -c.rank_score, c.signature))
    lines = ["# Serendip overnight digest", "",
             "Candidates from every run, deduplicated across runs (the strongest instance is shown; the others are "
             "listed as *also found in*). New candidates come first, then those an earlier night or the known results "
             "already had. Each is ranked by **strength × robustness × novelty**: strength is the finding's own score "
             "(|effect| of a trend, stability of a grouping); robustness is "
             + ", ".join(f"{k} {v}" for k, v in ROBUSTNESS.items())
             + " from the follow-up round (each top candidate re-tested on random halves, within each level of every "
             "categorical, after controlling for each strong covariate (trends), and with a second method; outliers "
             "count how many flagged rows are flagged again); novelty is "
             + ", ".join(f"{k} {v}" for k, v in NOVELTY.items()) + ".", ""]
    if not ordered:
        lines += ["No candidate was found by any run.", ""]
    for i, c in enumerate(ordered, 1):
        lines += candidate_block(i, c)
    lines += ["## Runs", "", "| run | table | strategy | status | findings | wall time (s) | reason |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in records:
        folder = r.get("folder", "")
        lines.append(f"| [{code(folder, limit=120)}](runs/{folder}/report.html) | {code(Path(r.get('table', '')).name)} | "
                     f"{code((r.get('strategy') or {}).get('name', ''))} | {r.get('status')} | {r.get('n_findings', 0)} | "
                     f"{fmt(r.get('wall_time_s', 0))} | {escape_md(r.get('reason', '')).replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def build_summary(candidates: list[Candidate], records: list[dict]) -> str:
    """summary.md: a few lines for the morning."""
    statuses: dict[str, int] = {}
    for r in records:
        statuses[r.get("status", "?")] = statuses.get(r.get("status", "?"), 0) + 1
    labels: dict[str, int] = {}
    for c in candidates:
        labels[c.label] = labels.get(c.label, 0) + 1
    new = sorted((c for c in candidates if c.novelty == "new"), key=lambda c: -c.rank_score)
    lines = ["# Overnight summary", "",
             f"- Runs: {len(records)} (" + ", ".join(f"{v} {k}" for k, v in sorted(statuses.items())) + ")",
             f"- Candidates after deduplication: {len(candidates)}, of which {len(new)} new",
             "- Follow-up labels: " + (", ".join(f"{v} {k}" for k, v in sorted(labels.items())) or "none"), ""]
    if new:
        lines += ["Top new candidates:", ""]
        lines += [f"{i}. {escape_md(c.finding.get('title', ''))} — {c.label}, rank {c.rank_score:.3f} "
                  f"(run {code(c.run['folder'], limit=120)})" for i, c in enumerate(new[:5], 1)]
    return "\n".join(lines) + "\n"


def write_digest(out: Path, candidates: list[Candidate], records: list[dict]) -> None:
    """Write index.md, index.html, summary.md and candidates.json in ``out``."""
    md = build_index(candidates, records)
    (out / "index.md").write_text(md, encoding="utf-8")
    (out / "index.html").write_text(markdown_to_html(md, out, "Serendip overnight digest", local_links=True), encoding="utf-8")
    (out / "summary.md").write_text(build_summary(candidates, records), encoding="utf-8")
    data = [{"signature": c.signature, "run": c.run.get("folder"), "run_id": c.run.get("run_id"),
             "finding": c.finding, "also_in": c.also_in, "label": c.label, "novelty": c.novelty,
             "strength": c.strength, "rank": c.rank_score, "followup": c.followup,
             "novelty_detail": c.detail} for c in candidates]
    (out / "candidates.json").write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
