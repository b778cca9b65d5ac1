"""A figure for every headline: the plot calls that draw them, and attaching the figures to the findings.

Families get one small grid (a corner plot of the driver and the columns that follow it, coloured by the
best grouping when there is one); a trend without a
figure its scatter; groups and outliers without one their first two columns coloured by their labels (the
group, or flagged against not flagged, over the relation they break). The figures are drawn by the ``plot``
tool on the run's own data, so they land in the run's figures folder and their calls are in the transcript.

Both planners draw them through :func:`draw_missing_figures`: the autopilot as its last step, a model-driven
run (llm or hybrid) after the model's loop (:func:`draw_after_model`), its calls marked as the report's.
"""

from __future__ import annotations

from typing import Callable

from serendip.agent.budget import Stop
from serendip.agent.families import is_family, members_of, top_level
from serendip.agent.ledger import Ledger
from serendip.agent.run_status import NO_PROGRESS, analysis_results_ok
from serendip.tools.engine.result import ToolResult
from serendip.tools.engine.sandbox import ToolCrash

MAX_HEADLINE_PLOTS = 10
MAX_GRID_COLUMNS = 6
MIN_TIME_LEFT_S = 30.0
"""Seconds the run must have left to draw a headline figure (a plot of a large table takes a few)."""
NOT_AFTER = (NO_PROGRESS, "interrupted", "error")
"""Ends of a model's loop after which no figure is drawn: nothing to draw, or the user stopped the run."""


def figure_request(f: dict, findings: list[dict]) -> dict | None:
    """The ``plot`` arguments that draw ``f``'s headline figure, or None when it has one or none can be drawn."""
    cols = [str(c) for c in f.get("columns") or []]
    if is_family(f):
        fewest = min(len(m.get("controls") or []) for m in members_of(f, findings))
        driver = (f.get("family") or {}).get("driver")
        grid = [driver] if driver else []
        for m in members_of(f, findings):
            if len(m.get("controls") or []) == fewest:
                grid += [c for c in (m.get("columns") or [])[:2] if c not in grid]
        if len(grid) < 2:
            return None
        request = {"kind": "corner", "columns": grid[:MAX_GRID_COLUMNS]}
        groups = [g for g in top_level(findings) if g.get("kind") == "group" and g.get("labels")]
        if groups:  # the best grouping drawn over the family shows what the shared trend may hide
            request["color_by"] = groups[0]["labels"]
        return request
    if f.get("figures") or len(cols) < 2:
        return None
    if f.get("kind") == "trend":
        return {"kind": "scatter", "x": cols[0], "y": cols[1]}
    if f.get("kind") in ("group", "outlier") and f.get("labels"):
        return {"kind": "scatter", "x": cols[0], "y": cols[1], "color_by": f["labels"]}
    return None


def _matches(arguments: dict, request: dict) -> bool:
    return all(arguments.get(k) == v for k, v in request.items())


def attach_figures(findings: list[dict], ledger: Ledger) -> list[dict]:
    """Put the figure a headline plot call drew first in its finding's figures (families: the grid alone)."""
    plots = [r for r in ledger.results.values() if r.tool == "plot" and r.ok and r.figures]
    for f in top_level(findings):
        request = figure_request(f, findings)
        if request is None:
            continue
        drawn = next((r for r in reversed(plots) if _matches(r.arguments, request)), None)
        if drawn is None:
            continue
        f["figures"] = [drawn.figures[0]] + ([] if is_family(f) else
                                             [p for p in f.get("figures") or [] if p != drawn.figures[0]])
        f["evidence"] = list(f.get("evidence") or []) + [drawn.id]
    return findings


def missing_figure_requests(ledger: Ledger, only_recorded: bool = False) -> list[dict]:
    """The ``plot`` arguments of the headline figures no plot call of the run has drawn yet (at most
    :data:`MAX_HEADLINE_PLOTS`).

    Args:
        ledger: The run's ledger.
        only_recorded: The report keeps only the candidates the model recorded (see
            :func:`~serendip.agent.report.keeps_only_recorded`).
    """
    from serendip.agent.report import report_findings

    findings = report_findings(ledger.final_findings(only_recorded=only_recorded), ledger)
    drawn = [r.arguments for r in ledger.results.values() if r.tool == "plot" and r.ok and r.figures]
    requests: list[dict] = []
    for f in top_level(findings):
        request = figure_request(f, findings)
        if request and request not in requests and not any(_matches(a, request) for a in drawn):
            requests.append(request)
    return requests[:MAX_HEADLINE_PLOTS]


def draw_missing_figures(ledger: Ledger, call: Callable[[str, dict], ToolResult], has_room: Callable[[], bool],
                         note: Callable[[str], None], only_recorded: bool = False) -> list[str]:
    """Plot calls for the headlines that lack a figure, while the run's budget has room (a spent budget leaves
    the rest without one rather than ending the run early).

    Args:
        ledger: The run's ledger (every step submitted so far recorded in it).
        call: Makes one tool call, ``call(tool, arguments)``, through the run's dispatcher.
        has_room: Whether the run's budget still has room for one more call.
        note: Adds a line to the report's notes.
        only_recorded: Draw for the findings the report keeps when it keeps only recorded candidates.

    Returns:
        The ids of the plot results made.
    """
    made = []
    for request in missing_figure_requests(ledger, only_recorded):
        if not has_room():
            note("Some headline figures were not drawn: the run's step or time budget was nearly spent.")
            break
        try:
            made.append(call("plot", request).id)
        except Stop:
            break
    return made


def draw_headline_figures(pilot) -> None:
    """The autopilot's last step: :func:`draw_missing_figures` with its steps and budget."""
    pilot.flush()  # the steps submitted ahead must be in the ledger before the headlines are chosen
    budget = pilot.budget
    draw_missing_figures(pilot.d.ledger, lambda tool, arguments: pilot.call(tool, **arguments),
                         has_room=lambda: budget.steps < budget.max_steps and budget.time_left >= MIN_TIME_LEFT_S,
                         note=pilot.note)


def draw_after_model(dispatcher, progress, status: str, step: int, time_left: Callable[[], float],
                     only_recorded: bool = False) -> list[str]:
    """The report's own step after a model's loop: the missing headline figures, drawn through the dispatcher
    (real ``plot`` results in the ledger and the transcript, each marked ``by: report``) while the run has
    :data:`MIN_TIME_LEFT_S` left.

    Args:
        dispatcher: The run's dispatcher.
        progress: Progress display.
        status: How the model's loop ended (nothing is drawn after :data:`NOT_AFTER`).
        step: The model's last turn (the calls' step in the transcript: they close the run, not a turn).
        time_left: Seconds left in the run's time budget.
        only_recorded: The report keeps only the candidates the model recorded.

    Returns:
        Notes for the report (empty when nothing was drawn or left out).
    """
    ledger = dispatcher.ledger
    if status in NOT_AFTER or not analysis_results_ok(ledger):
        return []
    notes: list[str] = []
    made: list[str] = []

    def call(tool: str, arguments: dict) -> ToolResult:
        if not made:
            dispatcher.transcript.append({"type": "phase", "phase": "headline_figures"})
        progress.step(f"{dispatcher.next_id()} {tool} (headline figure)")
        result = dispatcher.call(tool, arguments, step, by="report")
        made.append(result.id)
        state = "ok" if result.ok else f"error: {str(result.error)[:100]}"
        progress.done(f"{result.id} {tool} ({result.elapsed:.1f} s) {state}")
        return result

    try:
        draw_missing_figures(ledger, call, lambda: time_left() >= MIN_TIME_LEFT_S, notes.append, only_recorded)
    except ToolCrash as exc:  # the findings stand without their figures: keep the run's report
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        notes.append(f"Headline figures stopped early: the tool worker failed ({first}).")
    if made:
        plural = "s" if len(made) != 1 else ""
        notes.insert(0, f"After the model finished, the report drew {len(made)} headline figure{plural} "
                        f"({', '.join(made)}): plot calls made by the report, not by the model.")
    return notes
