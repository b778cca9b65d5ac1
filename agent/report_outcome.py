"""What the report says about how a model-driven run went (issue 9).

Model text is quoted as model text, literally, in a fenced block (the fence grows past any backticks in
it, and the HTML renderer escapes raw HTML), and never as a finding or a summary of evidence. A run in
which no analysis happened gets a report that says so and claims nothing about the table.
"""

from __future__ import annotations

import re

from serendip.agent.report import escape_md

MAX_QUOTE_CHARS = 2000


def quote_model_text(text: str, limit: int = MAX_QUOTE_CHARS) -> list[str]:
    """Markdown lines quoting ``text`` literally in a fenced block marked as model text."""
    text = str(text or "").replace("\r", "")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    longest = max((len(m) for m in re.findall(r"`+|~+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}text", text, fence]


def model_summary_section(summary: str) -> list[str]:
    """The model's closing summary, labelled as what it is."""
    return ["## The model's closing summary", "",
            "*Written by the model when it called finish; it is its reading, not evidence. Every number in "
            "this report comes from a tool result named under Evidence.*", "",
            *quote_model_text(summary), ""]


def planner_lines(outcome) -> list[str]:
    """A line naming the planner, and the fallback when the model made no progress."""
    lines = []
    described = {"hybrid": "hybrid (the autopilot's systematic pass, then the model's follow-ups and reading)",
                 "llm": "llm (the model chose every tool call)"}
    if outcome.planner in described:
        lines += [f"*Planner:* {described[outcome.planner]}", ""]
    if outcome.fallback:
        lines += [f"**Fallback to the autopilot:** {escape_md(outcome.fallback)} The findings below come from "
                  "the autopilot's systematic pass, not from the model.", ""]
    return lines


def no_progress_report(*, header: list[str], outcome, model: str, ledger, dataset_lines: list[str],
                       provenance: list[str]) -> str:
    """report.md of a run in which no analysis tool succeeded: what happened, and nothing about the table.

    Args:
        header: The report's title and run lines.
        outcome: The run's outcome (``no_progress``, or a limit or error before any analysis succeeded).
        model: The model's name.
        ledger: The run's ledger (its refused calls are listed).
        dataset_lines: The dataset section (as loaded, before any analysis).
        provenance: The provenance table (the refused calls, if any).
    """
    out = list(header)
    out += ["## What happened", "",
            f"No analysis was done: {escape_md(outcome.reason)}. This report therefore makes no claim about "
            "the table; no finding, trend, group or outlier was looked for.", ""]
    tried = len(ledger.results)
    if tried:
        out += [f"The model made {tried} analysis call{'s' if tried != 1 else ''}, all refused with a fix-it "
                "message (see Provenance).", ""]
    if outcome.last_model_text:
        out += [f"The model's last message ({escape_md(model)}), quoted as model text:", "",
                *quote_model_text(outcome.last_model_text), ""]
    if outcome.summary:
        out += ["The model called finish with this text, quoted as model text:", "",
                *quote_model_text(outcome.summary), ""]
    if outcome.status == "no_progress":
        out += ["What to try: a model that supports tool calls on this server (with llama.cpp, start "
                "`llama-server --jinja`), `--tool-profile compact` for a small model, or `--planner hybrid`, which "
                "runs the autopilot's systematic pass first and falls back to it when the model makes no progress.",
                ""]
    out += ["## Run notes", ""] + [f"- {escape_md(n)}" for n in outcome.notes] + [""]
    out += dataset_lines
    out += provenance
    return "\n".join(out)
