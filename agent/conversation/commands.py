"""Slash commands: what each one is, and how a command line becomes a tool call.

Arguments are split like a shell does (quotes keep a column name with spaces whole); nothing is evaluated.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from serendip.agent.conversation.offline_questions import PlannedCall

COMMANDS: dict[str, tuple[str, str]] = {
    "/load": ("TABLE", "open a table (CSV, TSV, Parquet, Excel, FITS, VOTable)"),
    "/describe": ("[COLUMNS]", "profile the table or the named columns"),
    "/correlate": ("[COLUMNS]", "which numeric columns move together (FDR-controlled)"),
    "/pca": ("[COLUMNS]", "principal components: the main axes of variation"),
    "/umap": ("[COLUMNS]", "a 2-D map of the rows (slow on a first call)"),
    "/cluster": ("[METHOD]", "look for stable groups (auto, kmeans, gmm, hdbscan, agglomerative)"),
    "/outliers": ("[METHOD]", "flag unusual rows (isolation_forest, lof, mahalanobis, off_relation)"),
    "/compare": ("BY [COLUMNS]", "compare numeric columns across the levels of a categorical column"),
    "/select": ("EXPR", "work on the rows matching EXPR (e.g. mass > 10 and survey == 'A'); 'all' resets"),
    "/plot": ("[KIND] COLUMNS [color=COL] [logx] [logy]", "1 column: histogram, 2: scatter, 3-6: corner"),
    "/findings": ("", "the findings so far (run-wide q-values, thresholds applied)"),
    "/report": ("[DIR]", "write the report of the session so far (same files as explore)"),
    "/goal": ("TEXT", "set what you are looking for"),
    "/help": ("", "this list"),
    "/quit": ("", "leave (Ctrl-D also leaves; the session is saved)"),
}
CLUSTER_METHODS = ("auto", "kmeans", "gmm", "hdbscan", "agglomerative")
OUTLIER_METHODS = ("isolation_forest", "lof", "mahalanobis", "off_relation")
PLOT_KINDS = ("scatter", "hexbin", "histogram", "corner")


class CommandError(ValueError):
    """A command line that cannot be run; the message says how to fix it (one line)."""


@dataclass
class SlashCommand:
    """A parsed command line.

    Attributes:
        name: The command (``/describe``).
        args: The arguments, split like a shell does.
        rest: Everything after the command, as typed (for /select and /goal).
    """

    name: str
    args: list[str] = field(default_factory=list)
    rest: str = ""


def parse_command(line: str) -> SlashCommand:
    """Split a command line; unknown commands get the closest known ones."""
    line = line.strip()
    head, _, rest = line.partition(" ")
    name = head.lower()
    if name not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(name, list(COMMANDS), n=2, cutoff=0.5)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise CommandError(f"unknown command {head[:40]!r}.{hint} Type /help for the list.")
    try:
        args = shlex.split(rest)
    except ValueError as exc:
        raise CommandError(f"cannot read the arguments of {name}: {exc}") from None
    return SlashCommand(name=name, args=[a.rstrip(",") for a in args if a.rstrip(",")], rest=rest.strip())


def _choice(value: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise CommandError(f"{what} must be one of {', '.join(choices)}; got {value[:40]!r}")
    return value


def plot_call(args: list[str]) -> PlannedCall:
    """``/plot [KIND] COLUMNS [color=COL] [logx] [logy]`` as a plot call."""
    kind = None
    call: dict = {}
    columns: list[str] = []
    for a in args:
        low = a.lower()
        if kind is None and not columns and low in PLOT_KINDS + ("hist",):
            kind = "histogram" if low == "hist" else low
        elif low.startswith(("color=", "colour=", "color_by=")):
            call["color_by"] = a.split("=", 1)[1]
        elif low in ("logx", "log_x"):
            call["log_x"] = True
        elif low in ("logy", "log_y"):
            call["log_y"] = True
        else:
            columns.append(a)
    if not columns and kind != "corner":
        raise CommandError("/plot needs columns: /plot x (histogram), /plot y x (scatter), /plot a b c (corner)")
    if kind is None:
        kind = {1: "histogram", 2: "scatter"}.get(len(columns), "corner")
    if kind == "corner":
        if columns:
            call["columns"] = columns
    elif kind == "histogram":
        if len(columns) != 1:
            raise CommandError("/plot histogram takes one column")
        call["x"] = columns[0]
    else:
        if len(columns) != 2:
            raise CommandError(f"/plot {kind} takes two columns: y then x")
        call["y"], call["x"] = columns
    return PlannedCall("plot", {"kind": kind, **call})


def tool_call_for(cmd: SlashCommand) -> PlannedCall | None:
    """The tool call a command stands for (None for the session commands: /load, /findings, ...)."""
    a = cmd.args
    if cmd.name in ("/describe", "/correlate", "/pca", "/umap"):
        return PlannedCall(cmd.name[1:], {"columns": a} if a else {})
    if cmd.name == "/cluster":
        return PlannedCall("cluster", {"method": _choice(a[0], CLUSTER_METHODS, "the cluster method")} if a else {})
    if cmd.name == "/outliers":
        return PlannedCall("outliers", {"method": _choice(a[0], OUTLIER_METHODS, "the outlier method")} if a else {})
    if cmd.name == "/compare":
        if not a:
            raise CommandError("/compare needs the categorical column: /compare BY [COLUMNS]")
        return PlannedCall("compare", {"by": a[0], **({"columns": a[1:]} if a[1:] else {})})
    if cmd.name == "/select":
        if not cmd.rest:
            raise CommandError("/select needs an expression, e.g. /select mass > 10 (or /select all)")
        return PlannedCall("select", {"expression": cmd.rest})
    if cmd.name == "/plot":
        return plot_call(a)
    return None
