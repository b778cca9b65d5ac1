"""The human report in markdown: candidate new findings first, then recovered known results, the evidence and
its provenance."""

from __future__ import annotations

from serendip.agent.knowledge.report_section import candidate_findings, known_sections
from serendip.agent.ledger import Ledger
from serendip.agent.outcome import RunOutcome
from serendip.agent.families import is_family, members_of, top_level
from serendip.agent.report import KIND_TITLES, code, finding_block, fmt
from serendip.agent.summary import tool_numbers, unsupported_numbers
from serendip.agent.summary_rewrite import summary_lines
from serendip.tools.engine.mdtext import defuse_markdown, escape_md
from serendip.agent.report_outcome import model_summary_section, no_progress_report, planner_lines
from serendip.agent.run_status import NO_PROGRESS, analysis_results_ok

FOLLOW_UP = {
    "trend": "check that the trend holds within subsamples (bins of distance or luminosity, each categorical level) "
             "and after controlling for shared drivers (`correlate` with `control`); a correlation is not a cause.",
    "group": "check that the groups are not a survey, field or instrument split; compare them with known classes; "
             "refit on an independent subsample.",
    "outlier": "inspect the flagged rows' raw measurements and quality flags before reading physics into them; "
               "many outliers are bad data.",
    "data_quality": "fix or mask the implicated columns and rerun the exploration.",
}


def build_report(*, title: str, dataset: dict, goal: str, model: str, outcome: RunOutcome, ledger: Ledger,
                 findings: list[dict], run_info: dict) -> str:
    """Assemble report.md.

    Args:
        title: Report title (the table's name).
        dataset: Dataset overview (n_rows, n_columns, columns, warnings, sha256, path).
        goal: The user's goal.
        model: Model name or 'autopilot'.
        outcome: How the run ended, with the planner's notes and controls.
        ledger: All results and candidates.
        findings: The final, ranked findings.
        run_info: The contents of run.json.
    """
    out: list[str] = [f"# Serendip report: {escape_md(title)}", ""]
    status = outcome.status if outcome.status == "completed" else f"{outcome.status} ({escape_md(outcome.reason)})"
    out += [f"*Goal:* {escape_md(goal) if goal else '(none given: open exploration)'}  ",
            f"*Model:* {escape_md(model)}; *seed:* {run_info.get('seed')}; *exit status:* {status}  ",
            f"*Table:* {fmt(dataset.get('n_rows'))} rows × {fmt(dataset.get('n_columns'))} columns; "
            f"sha256 `{str(dataset.get('sha256', ''))[:16]}…`", ""]
    if outcome.status == NO_PROGRESS or (model != "autopilot" and not analysis_results_ok(ledger)):
        # issue 9: no analysis happened (no progress, or a limit or error before any): say so, claim nothing
        return no_progress_report(header=out, outcome=outcome, model=model, ledger=ledger,
                                  dataset_lines=dataset_section(dataset),
                                  provenance=provenance_section(ledger, run_info))
    out += planner_lines(outcome)
    out += summary_lines(findings, ledger, outcome.summary_rewrite)
    if outcome.summary:
        out += model_summary_section(outcome.summary)
        unsupported = unsupported_numbers(outcome.summary, tool_numbers(ledger))
        if unsupported:
            out += [f"*No tool result holds these numbers of the model's summary:* "
                    f"{escape_md(', '.join(dict.fromkeys(unsupported)))}.", ""]

    out += ["## Candidate new findings", ""]
    new = headlines(findings)
    if new:
        for f in new:
            kind = "trend family" if is_family(f) else f["kind"]
            out.append(f"- **{escape_md(f['id'])}** ({escape_md(kind)}, score {fmt(f['score'])}): "
                       f"{escape_md(f['title'])}")
        out.append("")
    elif findings:
        out += ["Every finding recovers a known result or repeats an earlier run (see below): nothing new.", ""]
    else:
        out += ["No candidate passed the significance, effect-size and stability thresholds "
                f"(q ≤ {ledger.thresholds.q_max}, |effect| ≥ {ledger.thresholds.min_effect}, "
                f"stability ≥ {ledger.thresholds.min_stability}). That is a result too: the table shows no "
                "structure these tools can support.", ""]

    out += known_sections(findings)

    out += ["## What was understood and done", ""]
    for note in outcome.notes:
        out.append(f"- {escape_md(note)}")
    out.append("")

    out += dataset_section(dataset)
    for f in [f for f in findings if f["kind"] == "data_quality"]:
        out.append(finding_block(f))

    out += ["## What was controlled for and why", ""]
    if outcome.controlled:
        out += [f"- {escape_md(c)}" for c in outcome.controlled]
    else:
        out.append("- Nothing: no single known trend dominated the table.")
    out.append("")

    for kind in ("trend", "group", "outlier"):
        sel = [f for f in top_level(findings) if f["kind"] == kind]
        out += [f"## {KIND_TITLES[kind]}", ""]
        if not sel:
            out += [f"No {kind} passed the thresholds.", ""]
        for f in sel:
            out.append(finding_block(f, members=members_of(f, findings) if is_family(f) else None))

    out += ["## Caveats and suggested follow-up", ""]
    kinds = sorted({f["kind"] for f in findings})
    for k in kinds:
        out.append(f"- {KIND_TITLES[k]}: {FOLLOW_UP[k]}")
    n_tests = len(ledger.run_pvalues())
    if n_tests:
        out.append("- Every statistic above comes from a tool result named under *Evidence*; q-values are "
                   f"Benjamini–Hochberg adjusted over all {n_tests} tests of this run.")
    else:
        out.append("- No statistical test was run in this run.")
    dismissed = [c for c in ledger.candidates.values() if c.status == "dismissed"]
    if dismissed:
        out += ["", "Candidates set aside:"]
        for c in dismissed[:30]:
            out.append(f"- {escape_md(c.cid)} ({escape_md(c.finding.get('title', ''))}): {escape_md(c.reason)}")
    out.append("")

    out += provenance_section(ledger, run_info)

    out += ["## Appendix: tool results", ""]
    for r in ledger.results.values():
        if r.ok and r.markdown:
            out += [f"### {escape_md(r.id)}: {escape_md(r.tool)}", "", defuse_markdown(r.markdown), ""]
    return "\n".join(out)


MAX_HEADLINES = 8


def headlines(findings: list[dict]) -> list[dict]:
    """The report's headlines: the top candidate new findings that stand on their own (a family once, its
    members inside it)."""
    return candidate_findings(top_level(findings))[:MAX_HEADLINES]


def dataset_section(dataset: dict) -> list[str]:
    """The columns by role and the loading notes."""
    out = ["## Dataset and data quality", ""]
    roles: dict[str, list[str]] = {}
    for c in dataset.get("columns", []):
        roles.setdefault(c.get("role", "?"), []).append(c["name"])
    for role, names in roles.items():
        shown = ", ".join(code(n, 40) for n in names[:25]) + (f" … (+{len(names) - 25})" if len(names) > 25 else "")
        out.append(f"- {escape_md(role)} ({len(names)}): {shown}")
    for w in dataset.get("warnings", [])[:20]:
        out.append(f"- loading note: {escape_md(w)}")
    out.append("")
    return out


def provenance_section(ledger: Ledger, run_info: dict) -> list[str]:
    """Every tool call with its arguments, status and time, and the versions."""
    out = ["## Provenance", "", "| result | tool | arguments | status | seconds |", "|---|---|---|---|---|"]
    for r in ledger.results.values():
        args = ", ".join(f"{k}={v}" for k, v in r.arguments.items() if v not in (None, [], ""))
        args = args.replace("|", "\\|")
        if len(args) > 120:
            args = args[:119] + "…"
        state = "ok" if r.ok else "error: " + escape_md(r.error or "", limit=100)
        out.append(f"| {escape_md(r.id)} | {escape_md(r.tool)} | {code(args, 120) if args else ''} | {state} | {r.elapsed:.2f} |")
    out += ["", f"Versions: {', '.join(f'{k} {v}' for k, v in run_info.get('versions', {}).items())}.", ""]
    return out
