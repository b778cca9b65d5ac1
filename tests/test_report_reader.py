"""The report as a scientist reads it (issue 17): trend families, plain names, the summary, headline figures,
the HTML's contents and appendix."""

from __future__ import annotations

import itertools
import json

import html5lib
import numpy as np
import pytest

from serendip.agent.families import is_family, members_of, top_level
from serendip.agent.headline_figures import attach_figures, figure_request
from serendip.agent.ledger import Ledger
from serendip.agent.outcome import RunOutcome
from serendip.agent.plain_names import derived_name_leaks, plain_name
from serendip.agent.report import report_findings
from serendip.agent.report_html import markdown_to_html
from serendip.agent.report_md import build_report, headlines
from serendip.agent.summary import tool_numbers, unsupported_numbers
from serendip.evals.scorer import trend_claims
from serendip.tools.engine.contracts import FINDINGS_SCHEMA, FindingsDocument
from serendip.tools.engine.result import ToolResult

BANDS = [f"band_{k}" for k in range(1, 9)]
DRIVER = "log_lum"


def trend(a: str, b: str, effect: float, rid: str) -> dict:
    sign = "rises with" if effect > 0 else "falls as"
    return {"kind": "trend", "title": f"`{b}` {sign} `{a}` (spearman ρ = {effect:+.2f})",
            "summary": f"Spearman ρ = {effect:+.2f} between `{a}` and `{b}` over 500 rows.", "columns": [a, b],
            "stats": {"method": "spearman", "effect": effect, "sign": int(np.sign(effect)), "n": 500,
                      "p_value": 1e-60, "q_value": 1e-60}, "evidence": [rid], "figures": []}


def resid(c: str) -> str:
    return f"resid_{c}_vs_{DRIVER}"


def dominant_trend_ledger(with_pca: bool = True) -> Ledger:
    """Eight bands that all follow log_lum (one dominant component), two groups beneath it, one residual
    version of a band-band trend: the tool results an autopilot run records on such a table."""
    led = Ledger()
    led.add_result(ToolResult(id="R1", tool="describe", summary={"n_rows": 500, "n_columns": 9},
                              markdown="500 rows × 9 columns"))
    cols = [DRIVER] + BANDS
    pairs = list(itertools.combinations(cols, 2))
    effects = {p: round(0.97 - 0.004 * i, 4) for i, p in enumerate(pairs)}
    led.add_result(ToolResult(id="R2", tool="correlate", arguments={"columns": cols},
                              findings=[trend(a, b, effects[(a, b)], "R2") for a, b in pairs],
                              tests=[[f"{a}|{b}", 1e-60] for a, b in pairs]))
    led.add_result(ToolResult(
        id="R3", tool="pca" if with_pca else "describe", arguments={"columns": cols},
        summary={"n_columns": 9, "explained_variance_ratio": [0.9126, 0.05],
                 "components": [{"name": "PC1", "top_loadings": {c: 0.333 for c in cols}}],
                 "dominant": {"component": "PC1", "variance_ratio": 0.9126, "driver": DRIVER,
                              "driver_correlation": 0.998}},
        markdown="PC1 dominates (91.3% of the variance)"))
    led.add_result(ToolResult(
        id="R4", tool="residualize", arguments={"y": BANDS, "x": [DRIVER]},
        summary={"new_columns": [resid(b) for b in BANDS], "controls": [DRIVER],
                 "columns": {b: {"new_column": resid(b), "variance_explained": 0.9 - 0.01 * k,
                                 "coefficients": {DRIVER: 1.0}} for k, b in enumerate(BANDS)}},
        derived=[{"name": resid(b), "operation": "residual", "inputs": [b], "base_columns": [b],
                  "controls": [DRIVER], "description": f"{b} minus its fit on {DRIVER}"} for b in BANDS]))
    led.add_result(ToolResult(id="R5", tool="correlate", arguments={"columns": [resid(b) for b in BANDS]},
                              findings=[trend(resid("band_1"), resid("band_2"), 0.45, "R5")],
                              tests=[["r1|r2", 1e-20]]))
    group = {"kind": "group", "title": f"2 groups (gmm) separated mainly by {resid('band_1')}, {resid('band_2')}",
             "summary": "2 groups", "columns": [resid("band_1"), resid("band_2")],
             "stats": {"method": "gmm", "n_groups": 2, "sizes": [260, 240], "stability": 0.93},
             "labels": "R6_cluster", "evidence": ["R6"], "figures": ["figures/R6_cluster.png"], "score": 1.0}
    led.add_result(ToolResult(id="R6", tool="cluster", summary={"n_groups": 2, "sizes": [260, 240],
                                                               "stability": 0.93}, findings=[group]))
    return led


@pytest.fixture(scope="module")
def folded():
    led = dominant_trend_ledger()
    return led, report_findings(led.final_findings(), led)


def test_dominant_trend_is_one_family_with_every_member_scored(folded):
    led, findings = folded
    families = [f for f in top_level(findings) if is_family(f)]
    assert len(families) == 1
    fam = families[0]
    assert fam["family"]["driver"] == DRIVER and fam["family"]["evidence"] == "R3"
    members = members_of(fam, findings)
    assert len(members) == 36 + 1  # every pair of the nine columns, and the residual version
    assert fam["family"]["members"] == [m["id"] for m in members]
    assert not [f for f in top_level(findings) if f["kind"] == "trend" and not is_family(f)]
    # the scorer sees each member once, and not the family again
    claims = trend_claims(findings, [DRIVER] + BANDS, 0.05)
    assert sorted(c.id for c in claims) == sorted(m["id"] for m in members)
    assert frozenset({"band_1", "band_2"}) in {c.pair for c in claims if c.controls == {DRIVER}}
    assert "91.3%" in fam["title"] and "rise together with `log_lum`" in fam["title"]
    tops = [f["kind"] for f in headlines(findings)[:3]]
    assert "group" in tops


def test_a_control_that_explains_the_columns_is_a_driver_without_pca():
    led = dominant_trend_ledger(with_pca=False)
    findings = report_findings(led.final_findings(), led)
    families = [f for f in top_level(findings) if is_family(f)]
    assert len(families) == 1 and families[0]["family"]["driver"] == DRIVER
    assert families[0]["family"]["evidence"] == "R4" and len(members_of(families[0], findings)) == 37
    assert "it alone explains 83.0% to 90.0% of each one's variance" in families[0]["title"]


def test_headlines_speak_plain_words(folded):
    led, findings = folded
    assert plain_name(resid("band_1"), led.derived) == "band_1 at fixed log_lum"
    for f in findings:
        assert not derived_name_leaks(f["title"]), f["title"]
    group = next(f for f in findings if f["kind"] == "group")
    assert group["title"] == "2 groups (gmm) separated mainly by band_1 and band_2 at fixed log_lum"
    assert group["columns"] == [resid("band_1"), resid("band_2")]  # raw names stay in the data


def report_of(led: Ledger, findings: list[dict], dataset: dict | None = None) -> str:
    dataset = dataset or {"n_rows": 500, "n_columns": 9, "columns": [], "sha256": "0" * 64}
    return build_report(title="t.csv", dataset=dataset, goal="", model="autopilot",
                        outcome=RunOutcome(status="completed"), ledger=led, findings=findings,
                        run_info={"seed": 0})


def section(md: str, heading: str) -> str:
    return md.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_summary_numbers_all_come_from_tool_results(folded):
    led, findings = folded
    md = report_of(led, findings)
    summary = section(md, "Summary")
    assert "91.3%" in summary and "500 rows" in summary and "F1" in summary
    assert unsupported_numbers(summary, tool_numbers(led)) == []
    assert unsupported_numbers("it explains 77.7% and 4242 rows", tool_numbers(led)) == ["77.7%", "4242"]


def test_model_summary_numbers_not_in_tool_results_are_flagged(folded):
    led, findings = folded
    outcome = RunOutcome(status="completed", summary="Bands follow log_lum (91.3% of the variance); 17 groups.")
    md = build_report(title="t.csv", dataset={"n_rows": 500, "n_columns": 9, "columns": []}, goal="",
                      model="some-model", outcome=outcome, ledger=led, findings=findings, run_info={"seed": 0})
    assert "*No tool result holds these numbers of the model's summary:* 17." in md


def test_every_headline_gets_a_grid_or_its_figure(folded):
    led, findings = folded
    fam = next(f for f in findings if is_family(f))
    request = figure_request(fam, findings)
    assert request["kind"] == "corner" and request["columns"][0] == DRIVER and len(request["columns"]) == 6
    assert request["color_by"] == "R6_cluster"  # the groups drawn over the trend they hide under
    group = next(f for f in findings if f["kind"] == "group")
    assert figure_request(group, findings) is None  # it has its figure already
    led.add_result(ToolResult(id="R7", tool="plot", arguments=dict(request), figures=["figures/R7_corner.png"]))
    attach_figures(findings, led)
    assert fam["figures"] == ["figures/R7_corner.png"] and "R7" in fam["evidence"]


def test_html_validates_has_contents_and_collapsed_appendix(folded, tmp_path):
    led, findings = folded
    hostile = dict(findings[0], title="<script>alert(1)</script> & <b>bold</b>")
    md = report_of(led, [hostile] + findings[1:])
    page = markdown_to_html(md, tmp_path, "Serendip report: <t>")
    parser = html5lib.HTMLParser(strict=True)
    parser.parse(page)  # raises on any parse error
    assert "<script>" not in page and "&lt;script&gt;" in page and "<b>bold" not in page
    assert '<nav class="toc">' in page and 'href="#s1"' in page and 'id="s1"' in page
    assert page.count("<details>") == sum(1 for r in led.results.values() if r.ok and r.markdown)
    assert "Content-Security-Policy" in page


@pytest.mark.slow
def test_planted_dominant_trend_run_end_to_end(tmp_path):
    """A real autopilot run on a small planted table: one family headline, the hidden groups near the top,
    plain headlines, the summary's numbers from tool results, a figure file for every headline."""
    from serendip.agent.explore import ExploreConfig, explore
    from serendip.tools import synthetic

    df, truth = synthetic.hidden_groups_table(n=180)
    table = tmp_path / "t.csv"
    df.to_csv(table, index=False)
    outcome, out = explore(ExploreConfig(table=str(table), out=str(tmp_path / "out"), in_process=True))
    assert outcome.status == "completed"
    doc = json.loads((out / "findings.json").read_text())
    findings = doc["findings"]
    heads = headlines(findings)
    assert sum(is_family(f) for f in heads) == 1
    assert "group" in [f["kind"] for f in heads[:3]]
    md = (out / "report.md").read_text()
    for f in heads:
        assert not derived_name_leaks(f["title"]), f["title"]
        assert f["figures"] and all((out / p).is_file() for p in f["figures"]), f["id"]
    from serendip.agent.transcript import Transcript

    results = Transcript(out).stored_results()
    led = Ledger()
    for rid in sorted(results, key=lambda r: int(r[1:])):
        led.add_result(results[rid])
    assert unsupported_numbers(section(md, "Summary"), tool_numbers(led)) == []
    html5lib.HTMLParser(strict=True).parse((out / "report.html").read_text())


def test_near_duplicate_columns_are_one_family_without_a_dominant_component():
    """Four apertures of one flux (pairwise ρ ≥ 0.95) among independent columns: no component dominates, the
    six trends among the apertures are one family; a weaker trend to another column stays on its own."""
    led = Ledger()
    apertures = ["flux_ap1", "flux_ap2", "flux_ap3", "flux_ap4"]
    pairs = list(itertools.combinations(apertures, 2))
    found = [trend(a, b, round(0.99 - 0.005 * i, 3), "R1") for i, (a, b) in enumerate(pairs)]
    found.append(trend("flux_ap1", "colour", -0.62, "R1"))
    found.append(trend("size", "colour", 0.96, "R1"))  # a near-duplicate pair, but only a pair: on its own
    led.add_result(ToolResult(id="R1", tool="correlate", arguments={"columns": apertures + ["colour", "size"]},
                              findings=found, tests=[[f"t{k}", 1e-40] for k in range(len(found))]))
    findings = report_findings(led.final_findings(), led)
    families = [f for f in top_level(findings) if is_family(f)]
    assert len(families) == 1
    fam = families[0]
    assert fam["family"]["kind"] == "near_duplicates" and fam["family"]["driver"] in apertures
    assert sorted(frozenset(m["columns"]) for m in members_of(fam, findings)) == \
        sorted(frozenset(p) for p in pairs)
    assert "near-duplicates of" in fam["title"] and "four times" in fam["title"] and "+0.99" in fam["title"]
    alone = [f for f in top_level(findings) if not is_family(f)]
    assert {frozenset(f["columns"]) for f in alone} == {frozenset({"flux_ap1", "colour"}), frozenset({"size", "colour"})}
    assert len(trend_claims(findings, apertures + ["colour", "size"], 0.05)) == len(found)
    # findings.json's contract accepts the family as written (a run writes findings through it)
    doc = FindingsDocument.model_validate({"schema": FINDINGS_SCHEMA, "findings": json.loads(json.dumps(findings, default=str))})
    assert doc.findings[0].family is not None and doc.findings[0].family.kind == "near_duplicates"
