"""Rendering of conversation events at a fixed console width (no terminal needed)."""

from __future__ import annotations

import io

from rich.console import Console

from serendip.agent.chat_render import ChatRenderer, findings_table
from serendip.agent.conversation import events as ev


def render(*events, width: int = 80) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, highlight=False)
    renderer = ChatRenderer(console)
    for e in events:
        renderer(e)
    return console.file.getvalue()


def finished(**kw) -> ev.ToolFinished:
    base = dict(call_id="c1", tool="correlate", arguments={"columns": ["mass", "sfr"]}, result_id="R3", ok=True,
                elapsed_s=1.234, key_numbers={"method": "spearman", "pairs_tested": 1, "top": ["sfr ~ mass: 0.84"]},
                figures=["figures/R3_pair_mass_sfr.png"], candidates=["C2"])
    return ev.ToolFinished(**{**base, **kw})


def test_tool_panel_shows_tool_args_duration_numbers_and_figure_paths():
    out = render(ev.TableLoaded(path="t.csv", n_rows=10, n_columns=2, out_dir="/runs/s1"), finished())
    assert "R3 correlate" in out and "1.23 s" in out
    assert '"columns": ["mass", "sfr"]' in out and "pairs_tested 1" in out and "sfr ~ mass: 0.84" in out
    assert "/runs/s1/figures/R3_pair_mass_sfr.png" in out and "candidates C2" in out
    assert all(len(line) <= 80 for line in out.splitlines())


def test_strings_from_the_table_are_not_read_as_markup():
    out = render(finished(arguments={"columns": ["[bold red]evil[/]"]}, key_numbers={"x": "[link=http://a]b[/link]"}),
                 ev.Answer(text="The column [red]x[/red] matters.", evidence=["R1"]))
    assert "[bold red]evil[/]" in out and "[link=http://a]b[/link]" in out and "[red]x[/red]" in out


def test_failed_call_panel_shows_the_error():
    out = render(finished(ok=False, error="The 'columns' parameter names an unknown column 'mas'.", key_numbers={}))
    assert "R3 correlate" in out and "error" in out and "unknown column 'mas'" in out and "figure" not in out


def test_streamed_answer_is_not_printed_twice_and_ends_with_its_evidence():
    out = render(ev.TextDelta(text="sfr rises "), ev.TextDelta(text="with mass."),
                 ev.Answer(text="sfr rises with mass.", streamed=True, evidence=["R1", "R2"],
                           figures=["figures/R1_a.png"]), width=60)
    assert out.count("sfr rises with mass.") == 1 and "evidence: R1, R2" in out and "figures/R1_a.png" in out


def test_findings_table_and_help():
    findings = [{"id": "F1", "kind": "trend", "title": "sfr rises with mass", "columns": ["mass", "sfr"],
                 "stats": {"method": "spearman", "effect": 0.84, "n": 342, "p_value": 1e-90, "q_value": 2e-90},
                 "evidence": ["R1"]}]
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(findings_table(ev.FindingsListed(findings=findings, n_candidates=3)))
    out = console.file.getvalue()
    assert "F1" in out and "sfr rises with mass" in out and "effect = 0.84" in out and "1 of 3" in out
    empty = render(ev.FindingsListed(findings=[], n_candidates=2))
    assert "No findings yet" in empty
    helped = render(ev.HelpShown(commands=[("/describe [COLUMNS]", "profile")], model=""))
    assert "/describe [COLUMNS]" in helped and "No model is configured" in helped
