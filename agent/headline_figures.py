"""A figure for every headline: the plot calls that draw them, and attaching the figures to the findings.

Families get one small grid (a corner plot of the driver and the columns that follow it, coloured by the
best grouping when there is one); a trend without a
figure its scatter; groups and outliers without one their first two columns coloured by their labels (the
group, or flagged against not flagged, over the relation they break). The figures are drawn by the ``plot``
tool on the run's own data, so they land in the run's figures folder and their calls are in the transcript.
"""

from __future__ import annotations

from serendip.agent.budget import Stop
from serendip.agent.families import is_family, members_of, top_level
from serendip.agent.ledger import Ledger

MAX_HEADLINE_PLOTS = 10
MAX_GRID_COLUMNS = 6


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


def draw_headline_figures(pilot) -> None:
    """The autopilot's last step: plot calls for the headlines that lack a figure (within the run's budget;
    a spent budget leaves the rest without one rather than ending the run early)."""
    from serendip.agent.report import report_findings

    pilot.flush()  # the steps submitted ahead must be in the ledger before the headlines are chosen
    ledger = pilot.d.ledger
    findings = report_findings(ledger.final_findings(), ledger)
    requests = [r for r in (figure_request(f, findings) for f in top_level(findings)) if r]
    budget = pilot.budget
    for request in requests[:MAX_HEADLINE_PLOTS]:
        if budget.steps >= budget.max_steps or budget.time_left < 30:
            pilot.note("Some headline figures were not drawn: the run's step or time budget was nearly spent.")
            return
        try:
            pilot.call("plot", **request)
        except Stop:
            return
