"""Rich rendering of conversation events for the terminal: tool-call panels, the streamed answer, findings
tables, notices. Every string that came from the table or the model is printed as plain text (no markup)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from serendip.agent.conversation import events as ev
from serendip.agent.report import fmt, stats_line

ARGS_CHARS = 160
LEVEL_STYLE = {"info": "cyan", "warning": "yellow", "error": "bold red"}


def short_json(value, limit: int = ARGS_CHARS) -> str:
    """Compact JSON of tool arguments, bounded."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def number_text(value) -> str:
    """A key number as shown in a panel (4 significant digits; lists joined)."""
    if isinstance(value, list):
        return ", ".join(number_text(v) for v in value[:6]) + (" …" if len(value) > 6 else "")
    return fmt(value)


def tool_panel(event: ev.ToolFinished, out_dir: str | None = None) -> Panel:
    """One tool call: the tool, its arguments, duration, key numbers, candidates and figures."""
    body = Text()
    body.append("args ", style="dim")
    body.append(short_json(event.arguments or {}))
    if event.ok:
        for key, value in event.key_numbers.items():
            body.append("\n")
            body.append(f"{key} ", style="dim")
            if key == "top" and isinstance(value, list):
                body.append("; ".join(str(v) for v in value))
            else:
                body.append(number_text(value))
        if event.candidates:
            body.append("\ncandidates ", style="dim")
            body.append(", ".join(event.candidates))
        for fig in event.figures:
            body.append("\nfigure ", style="dim")
            body.append(str(Path(out_dir) / fig) if out_dir else fig, style="underline")
    else:
        body.append("\nerror ", style="bold red")
        body.append(event.error or "refused")
    title = Text(f"{event.result_id + ' ' if event.result_id else ''}{event.tool}", style="bold")
    return Panel(body, title=title, title_align="left", subtitle=f"{event.elapsed_s:.2f} s", subtitle_align="right",
                 border_style="green" if event.ok else "red", expand=False)


def findings_table(event: ev.FindingsListed) -> Table | Text:
    """The findings so far as a table (id, kind, title, statistics, evidence)."""
    if not event.findings:
        return Text(f"No findings yet ({event.n_candidates} candidates proposed; none passes the reporting "
                    "thresholds). Try /correlate, /cluster or /outliers.")
    table = Table(title=f"Findings so far ({len(event.findings)} of {event.n_candidates} candidates)",
                  show_lines=False, expand=False)
    for name in ("id", "kind", "title", "statistics", "evidence"):
        table.add_column(name, overflow="fold")
    for f in event.findings:
        table.add_row(Text(str(f.get("id"))), Text(str(f.get("kind"))), Text(str(f.get("title", ""))),
                      Text(stats_line(f).replace("`", "")), Text(", ".join(f.get("evidence") or [])))
    return table


def help_table(event: ev.HelpShown) -> Group:
    """The slash commands."""
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column("command", style="bold")
    table.add_column("what")
    for cmd, what in event.commands:
        table.add_row(Text(cmd), Text(what))
    how = (f"Questions in plain words go to the model ({event.model})." if event.model else
           "No model is configured: questions about a relation between columns, groups, outliers, a column's "
           "distribution or a comparison across a categorical are answered offline; see --model / --base-url.")
    return Group(table, Text(how, style="dim"))


class ChatRenderer:
    """Prints conversation events to a rich console.

    Args:
        console: Where to print.
        show_progress: Print a line when a tool call starts (long calls otherwise look stuck).
    """

    def __init__(self, console: Console, show_progress: bool = True) -> None:
        self.console = console
        self.show_progress = show_progress
        self.out_dir: str | None = None
        self.streaming = False

    def __call__(self, event: ev.Event) -> None:
        """Render one event."""
        if self.streaming and not isinstance(event, ev.TextDelta):
            self.console.print()
            self.streaming = False
        handler = getattr(self, f"on_{event.kind}", None)
        if handler is not None:
            handler(event)

    def on_table_loaded(self, e: ev.TableLoaded) -> None:
        self.out_dir = e.out_dir or self.out_dir
        roles: dict[str, int] = {}
        for c in e.columns:
            roles[str(c.get("role"))] = roles.get(str(c.get("role")), 0) + 1
        text = Text()
        text.append("Loaded ", style="bold")
        text.append(f"{e.path}: {e.n_rows} rows × {e.n_columns} columns ("
                    + ", ".join(f"{k} {v}" for k, v in roles.items()) + ")")
        text.append(f"\nSession folder: {e.out_dir}", style="dim")
        self.console.print(text)
        for w in e.warnings[:5]:
            self.console.print(Text(f"note: {w}", style="yellow"))

    def on_tool_started(self, e: ev.ToolStarted) -> None:
        if self.show_progress:
            self.console.print(Text(f"… {e.tool} {short_json(e.arguments, 80)}", style="dim"))

    def on_tool_finished(self, e: ev.ToolFinished) -> None:
        self.console.print(tool_panel(e, self.out_dir))

    def on_text_delta(self, e: ev.TextDelta) -> None:
        self.streaming = True
        self.console.print(Text(e.text), end="", soft_wrap=True)

    def on_answer(self, e: ev.Answer) -> None:
        if not e.streamed:
            style = "yellow" if e.source == "hint" else None
            self.console.print(Text(e.text, style=style), soft_wrap=True)
        tail = []
        if e.evidence:
            tail.append("evidence: " + ", ".join(e.evidence))
        if e.figures:
            tail.append("figures: " + ", ".join(str(Path(self.out_dir) / f) if self.out_dir else f
                                                for f in e.figures))
        if tail:
            self.console.print(Text(" · ".join(tail), style="dim"), soft_wrap=True)

    def on_findings(self, e: ev.FindingsListed) -> None:
        self.console.print(findings_table(e))

    def on_report(self, e: ev.ReportWritten) -> None:
        text = Text()
        text.append("Report: ", style="bold")
        text.append(str(Path(e.out_dir) / "report.html"))
        text.append(f"  ({e.n_findings} findings; also {', '.join(f for f in e.files if f != 'report.html')})",
                    style="dim")
        self.console.print(text, soft_wrap=True)

    def on_notice(self, e: ev.Notice) -> None:
        self.console.print(Text(e.text, style=LEVEL_STYLE.get(e.level)), soft_wrap=True)

    def on_help(self, e: ev.HelpShown) -> None:
        self.console.print(help_table(e))
