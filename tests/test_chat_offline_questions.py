"""Questions answered without a model: column matching by names and synonyms, the question forms, and
answers on real tables whose numbers are checked against an independent computation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from conftest import shared_dataset
from serendip.agent.conversation import events as ev
from serendip.agent.conversation.column_match import find_columns
from serendip.agent.conversation.offline_questions import match_question
from serendip.agent.conversation.session import ChatSession

PHANGS_LIKE = [{"name": n, "role": r} for n, r in [
    ("name", "identifier"), ("props_mstar", "numeric"), ("props_sfr", "numeric"), ("mh2_phangs", "numeric"),
    ("dist", "numeric"), ("orient_incl", "numeric"), ("survey", "categorical"), ("morph_t", "numeric")]]


def test_columns_are_found_by_name_parts_and_synonyms():
    found = [m.column for m in find_columns("Does SFR depend on stellar mass?", PHANGS_LIKE)]
    assert found == ["props_sfr", "props_mstar"]
    assert [m.column for m in find_columns("star formation rate vs molecular gas", PHANGS_LIKE)] == \
        ["props_sfr", "mh2_phangs"]
    assert [m.column for m in find_columns("how is the inclination distributed", PHANGS_LIKE)] == ["orient_incl"]
    cols = [{"name": "body_mass_g", "role": "numeric"}, {"name": "flipper_length_mm", "role": "numeric"},
            {"name": "bill_length_mm", "role": "numeric"}]
    assert [m.column for m in find_columns("body mass against flipper length", cols)] == \
        ["body_mass_g", "flipper_length_mm"]
    assert find_columns("what about the weather", cols) == []


@pytest.mark.parametrize("question, form, tool, args", [
    ("does sfr depend on mass?", "relation", "correlate", {"columns": ["props_sfr", "props_mstar"]}),
    ("Is SFR related to stellar mass controlling for distance?", "relation", "correlate",
     {"columns": ["props_sfr", "props_mstar"], "control": ["dist"]}),
    ("what does the SFR depend on", "depends_on", "correlate", {"target": "props_sfr"}),
    ("are there groups of galaxies?", "groups", "cluster", {}),
    ("clusters in sfr and mass?", "groups", "cluster", {"columns": ["props_sfr", "props_mstar"]}),
    ("any outliers?", "outliers", "outliers", {}),
    ("outliers from the sfr - mass relation", "outliers", "outliers",
     {"method": "off_relation", "y": "props_sfr", "x": "props_mstar"}),
    ("what is the distribution of distance?", "distribution", "describe", {"columns": ["dist"]}),
    ("does sfr differ between surveys?", "comparison", "compare", {"by": "survey", "columns": ["props_sfr"]}),
    ("compare mass across survey", "comparison", "compare", {"by": "survey", "columns": ["props_mstar"]}),
])
def test_question_forms(question, form, tool, args):
    plan = match_question(question, PHANGS_LIKE)
    assert plan is not None and plan.form == form
    assert plan.calls[0].tool == tool and plan.calls[0].arguments == args


@pytest.mark.parametrize("question", ["hello", "write a poem", "what should I do next?", "why is the sky blue",
                                      "tell me about sfr and mass and everything"])
def test_other_questions_are_not_guessed(question):
    assert match_question(question, PHANGS_LIKE) is None


@pytest.fixture(scope="module")
def penguins(tmp_path_factory):
    path = shared_dataset("small/penguins.csv")
    events: list = []
    session = ChatSession(tmp_path_factory.mktemp("penguins") / "s", listener=events.append,
                          analysis_options={"in_process": True})
    assert session.load(str(path))
    yield session, pd.read_csv(path)
    session.close()


def results(session, answer) -> dict:
    return {rid: session.analysis.ledger.results[rid] for rid in answer.evidence}


@pytest.mark.realdata
def test_relation_on_penguins(penguins):
    session, df = penguins
    answer = session.ask("Does body mass depend on flipper length?")
    both = df[["body_mass_g", "flipper_length_mm"]].dropna()
    rho = sps.spearmanr(both["body_mass_g"], both["flipper_length_mm"]).statistic
    assert answer.answered and answer.source == "offline"
    assert answer.text.startswith("Yes: body_mass_g rises with flipper_length_mm")
    assert f"coefficient {rho:.4g}" in answer.text and f"n = {len(both)}" in answer.text
    assert answer.figures and all((session.out_dir / f).exists() for f in answer.figures)


@pytest.mark.realdata
def test_depends_on_distribution_and_comparison_on_penguins(penguins):
    session, df = penguins
    depends = session.ask("what does body mass depend on?")
    assert depends.answered and depends.text.startswith("body_mass_g is most strongly related to flipper_length_mm")

    dist = session.ask("What is the distribution of bill length?")
    v = df["bill_length_mm"].dropna().to_numpy()
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    assert f"median {med:.4g}" in dist.text and f"interquartile range {q3 - q1:.4g}" in dist.text
    assert f"1st-99th percentile {np.percentile(v, 1):.4g} to {np.percentile(v, 99):.4g}" in dist.text

    comp = session.ask("Does body mass differ between species?")
    ok = df[["body_mass_g", "species"]].dropna()
    groups = [g["body_mass_g"].to_numpy() for _, g in ok.groupby("species")]
    h = sps.kruskal(*groups).statistic
    eps2 = (h - len(groups) + 1) / (len(ok) - len(groups))
    assert f"epsilon squared {eps2:.4g}" in comp.text and "most shifted level Gentoo" in comp.text


@pytest.mark.realdata
def test_groups_and_outliers_on_penguins(penguins):
    session, df = penguins
    groups = session.ask("Are there groups of penguins?")
    summary = results(session, groups)[groups.evidence[0]].summary
    complete = len(df.select_dtypes("number").dropna())
    assert sum(summary["sizes"]) + summary.get("unassigned", 0) == complete
    assert f"finds {summary['n_groups']} groups" in groups.text and "coincide with species" in groups.text

    out = session.ask("any unusual penguins? outliers?")
    s = results(session, out)[out.evidence[0]].summary
    assert out.text.startswith(f"{s['n_flagged']} of {complete} rows are flagged")
    assert f"row {s['top_examples'][0]['row']}" in out.text


@pytest.mark.realdata
def test_main_sequence_on_phangs(tmp_path):
    path = shared_dataset("phangs_galaxies/phangs_sample_table_v1p6.fits")
    events: list = []
    session = ChatSession(tmp_path / "s", listener=events.append, analysis_options={"in_process": True})
    assert session.load(str(path))
    try:
        answer = session.ask("does sfr depend on stellar mass?")
    finally:
        session.close()
    call = [e for e in events if isinstance(e, ev.ToolStarted)][0]
    assert call.tool == "correlate" and call.arguments["columns"] == ["props_sfr", "props_mstar"]
    pair = session.analysis.ledger.results[answer.evidence[0]].summary["top_pairs"][0]
    assert pair["n"] == 116 and pair["effect"] == pytest.approx(0.47, abs=0.01)  # Leroy et al. 2021
    assert answer.text.startswith("Yes: props_sfr rises with props_mstar") and f"n = 116" in answer.text
    json.dumps(answer.model_dump())  # events are JSON-ready for the web page
