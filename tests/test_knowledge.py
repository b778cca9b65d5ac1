"""Known results and memory: the chromadb store, synonym matching, novelty labels and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from serendip.agent.agent_tools import call_agent_tool
from serendip.agent.cli import main as cli_main
from serendip.agent.explore import ExploreConfig, RunSetupError, explore
from serendip.agent.knowledge.novelty import Knowledge, TableContext, label_findings
from serendip.agent.knowledge.pack import KnownResult, PackError, load_pack, parse_pack
from serendip.agent.knowledge.quantities import column_quantities, split_derived
from serendip.agent.knowledge.store import KnowledgeStore, StoreError

from conftest import shared_dataset

PHANGS = "phangs_galaxies/phangs_sample_table_v1p6.fits"


def quantities(name, unit=None):
    return {(m.quantity, m.sense) for m in column_quantities(name, unit)}


def trend(cols, effect, fid="F1"):
    return {"id": fid, "kind": "trend", "title": f"{cols[0]} vs {cols[1]}", "columns": list(cols),
            "stats": {"method": "spearman", "effect": effect, "sign": int(np.sign(effect)), "n": 100,
                      "p_value": 1e-9, "q_value": 1e-8}, "novelty": "candidate", "score": abs(effect)}


def test_embedding_equals_scikit_learns_hashing_vectorizer():
    # Stores written when the vectors came from scikit-learn must read the same.
    from sklearn.feature_extraction.text import HashingVectorizer

    from serendip.agent.knowledge.embedding import DEFAULTS, HashedNgrams, murmurhash3_32, prepare_text
    from sklearn.utils import murmurhash3_32 as sk_murmur

    r = np.random.default_rng(3)
    alphabet = list("abcdefghijklmnopqrstuvwxyz0123456789_ -./()") + ["é", "α", "☉", "Å"]
    texts = ["log_SFR", "props_sfr", "a", "x y", "", "  ", "stellar mass vs star formation rate (M☉/yr)",
             "g - r colour of the red sequence", "Hα/[NII] line ratio", "Teff", "BP-RP"]
    texts += ["".join(r.choice(alphabet, size=int(r.integers(1, 40)))) for _ in range(300)]
    for t in texts[:60]:
        data = t.encode("utf-8")
        assert murmurhash3_32(data) == int(sk_murmur(data, seed=0, positive=False)), t
    for n_features in (DEFAULTS["n_features"], 7):
        ours = HashedNgrams(n_features=n_features).vectors(texts)
        theirs = HashingVectorizer(analyzer="char_wb", ngram_range=(DEFAULTS["ngram_min"], DEFAULTS["ngram_max"]),
                                   n_features=n_features, alternate_sign=False, norm="l2", lowercase=True
                                   ).transform([prepare_text(t) or "empty" for t in texts]).toarray()
        np.testing.assert_allclose(ours, theirs.astype(np.float32), rtol=0, atol=1e-7)


# ---------------------------------------------------------------------- the pack
def test_pack_has_the_issue_results_with_citations():
    pack = load_pack()
    assert len(pack.results) >= 30
    ids = {r.id for r in pack.results}
    for wanted in ("sf_main_sequence", "kennicutt_schmidt", "mass_metallicity", "bpt_branches", "whan_classes",
                   "colour_bimodality", "tully_fisher", "faber_jackson", "fundamental_plane", "m_sigma",
                   "hr_main_sequence", "leavitt_law", "exoplanet_mass_radius", "hot_jupiter_pileup", "radius_valley",
                   "planet_metallicity", "quasar_eigenvector1", "baldwin_effect", "fir_radio",
                   "dust_to_gas_metallicity", "pah_metallicity"):
        assert wanted in ids, wanted
    assert all(r.citation and r.quantities for r in pack.results)
    assert "Boroson & Green 1992" in next(r for r in pack.results if r.id == "quasar_eigenvector1").citation


def test_pack_is_read_safely():
    with pytest.raises(PackError):
        parse_pack("!!python/object/apply:os.system ['echo hi']")
    with pytest.raises(PackError, match="unknown quantities"):
        parse_pack("quantities: {a: {description: x}}\nresults:\n  - {id: r1, name: rel, quantities: [a, b], "
                   "citation: someone 2020}\n")


# ---------------------------------------------------------------------- synonyms and units
def test_synonyms_name_the_same_quantity():
    for name in ("props_sfr", "log_SFR", "sfr_halpha", "SFR_Ha", "log10_props_sfr"):
        assert ("sfr", 1) in quantities(name), name
    assert ("stellar_mass", 1) in quantities("props_mstar") and ("stellar_mass", 1) in quantities("logMstar")
    assert ("nii_ha", 1) in quantities("log.AGN.NII.AGN.H_alpha..10.")
    assert ("ew_ha", 1) in quantities("log.AGN.EW_H_alpha..10.")
    # a host star's mass is not the planet's; an uncertainty column measures nothing
    assert ("stellar_mass_star", 1) in quantities("hoststar_mass") and ("planet_mass", 1) not in quantities("hoststar_mass")
    assert quantities("props_sfr_unc") == set() and quantities("p_value") == set()


def test_units_rule_out_and_identify_quantities():
    assert ("sfr", 1) not in quantities("sfr", "km / s")
    assert quantities("mystery_column", "solMass / yr") == {("sfr", 1)}
    # an absolute magnitude is a luminosity running backwards
    assert ("stellar_luminosity", -1) in quantities("abs_mag")


def test_split_derived_names():
    cols = ["props_sfr", "props_mstar"]
    assert split_derived("log10_props_sfr", cols) == ("props_sfr", ())
    assert split_derived("resid_log10_props_sfr_vs_log10_props_mstar", cols) == ("props_sfr", ("props_mstar",))


def test_matching_uses_kind_and_sign():
    k = Knowledge()
    ctx = TableContext(columns=["log_SFR", "logMstar", "M_abs", "Vrot"])
    assert k.matches(trend(["logMstar", "log_SFR"], 0.6), ctx)[0].result.id == "sf_main_sequence"
    reversed_ = k.matches(trend(["logMstar", "log_SFR"], -0.6), ctx)
    assert reversed_ and reversed_[0].contradicts
    # Tully-Fisher in magnitudes: brighter (more negative M) with faster rotation, a negative rank correlation
    tf = [m for m in k.matches(trend(["M_abs", "Vrot"], -0.8), ctx) if m.result.id == "tully_fisher"]
    assert tf and not tf[0].contradicts and tf[0].expected_sign == -1
    group = {"id": "F1", "kind": "group", "columns": ["log_SFR"], "stats": {"stability": 0.9}}
    assert not [m for m in k.matches(group, ctx) if m.result.id == "sf_main_sequence"]


def test_labels_known_candidate_and_contradiction():
    ctx = TableContext(columns=["props_mstar", "props_sfr", "widget", "gizmo"])
    out = label_findings([trend(["widget", "gizmo"], 0.9, "F1"), trend(["props_mstar", "props_sfr"], 0.5, "F2"),
                          trend(["props_mstar", "props_sfr"], -0.5, "F3")], Knowledge(), ctx, run="r")
    by_cols = {(tuple(f["columns"]), f["stats"]["sign"]): f for f in out}
    ms = by_cols[(("props_mstar", "props_sfr"), 1)]
    assert ms["novelty"] == "known" and "Brinchmann" in ms["novelty_detail"]["known"]["citation"]
    assert by_cols[(("widget", "gizmo"), 1)]["novelty"] == "candidate"
    contra = by_cols[(("props_mstar", "props_sfr"), -1)]
    assert contra["novelty"] == "candidate" and contra["novelty_detail"]["contradicts"]["id"] == "sf_main_sequence"
    assert [f["id"] for f in out] == ["F1", "F2", "F3"] and out[0]["columns"] == ["widget", "gizmo"]


# ---------------------------------------------------------------------- the store
def test_store_add_query_and_reopen_in_a_new_process(tmp_path):
    store = KnowledgeStore(tmp_path / "mem")
    mine = KnownResult(id="my-widget-law", name="widget-gizmo law", quantities=("stellar_mass", "sfr"), sign=1,
                       citation="Me et al. 2026", context="widgets", source="user")
    store.add_known(mine)
    assert [r.id for r in store.list_known("user")] == ["my-widget-law"]
    assert len(store.list_known()) == len(load_pack().results) + 1
    sims = store.rank_known("stellar mass star formation rate galaxies", ["sf_main_sequence", "radius_valley"])
    assert sims["sf_main_sequence"] > sims["radius_valley"]
    with pytest.raises(StoreError, match="shipped pack"):
        store.remove_known("sf_main_sequence")
    script = textwrap.dedent(f"""
        import json, chromadb
        from chromadb.config import Settings
        import serendip.agent.knowledge.chroma_embedding  # registers the embedding function by name
        client = chromadb.PersistentClient(path={str(tmp_path / "mem")!r}, settings=Settings(anonymized_telemetry=False))
        col = client.get_collection("serendip_known_results")  # rebuilt from the stored configuration
        got = col.query(query_texts=["widget gizmo law"], n_results=1)
        print(json.dumps({{"top": got["ids"][0][0], "ef": col.configuration["embedding_function"].name()}}))
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout.strip().splitlines()[-1]) == {"top": "my-widget-law",
                                                               "ef": "serendip-hashed-char-ngrams"}
    store.remove_known("my-widget-law")
    assert store.list_known("user") == []


def test_store_opens_no_network_connection(tmp_path):
    """Every connection attempt raises while chromadb is imported, opened, written and queried."""
    script = textwrap.dedent(f"""
        import socket
        attempts = []
        def refuse(*args, **kwargs):
            attempts.append(repr(args)[:200])
            raise OSError("network blocked by test")
        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        from serendip.agent.knowledge.novelty import Knowledge, TableContext, label_findings
        k = Knowledge.open({str(tmp_path / "mem")!r})
        ctx = TableContext(columns=["props_mstar", "props_sfr"], sha256="abc")
        f = {{"id": "F1", "kind": "trend", "title": "t", "columns": ["props_mstar", "props_sfr"],
             "stats": {{"effect": 0.5, "sign": 1}}, "novelty": "candidate", "score": 0.5}}
        out = label_findings([f], k, ctx, run="run-1")
        k.remember(out, ctx, {{"path": "x.csv", "sha256": "abc"}}, "run-1")
        again = label_findings([f], k, ctx, run="run-2")
        print(out[0]["novelty"], again[0]["novelty_detail"]["seen"][0]["run"], len(attempts))
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["known", "run-1", "0"]


# ---------------------------------------------------------------------- runs
def planted(tmp_path):
    rng = np.random.default_rng(3)
    n = 600
    widget = rng.normal(size=n)
    df = pd.DataFrame({"widget_a": widget, "gizmo_b": 0.8 * widget + 0.5 * rng.normal(size=n),
                       "noise_c": rng.normal(size=n)})
    path = tmp_path / "planted.csv"
    df.to_csv(path, index=False)
    return path


def run_table(table, out, memory, goal="find trends"):
    cfg = ExploreConfig(table=str(table), goal=goal, out=str(out), in_process=True, memory=str(memory),
                        max_steps=6)
    outcome, out = explore(cfg)
    return outcome, json.loads((out / "findings.json").read_text()), (out / "report.md").read_text()


@pytest.mark.slow
def test_planted_relation_is_candidate_then_seen(tmp_path):
    table = planted(tmp_path)
    memory = tmp_path / "memory"
    outcome, first, report = run_table(table, tmp_path / "run1", memory)
    assert outcome.status == "completed"
    planted_trend = [f for f in first["findings"] if f["kind"] == "trend"
                     and set(f["columns"]) == {"widget_a", "gizmo_b"}]
    assert planted_trend and planted_trend[0]["novelty"] == "candidate"
    assert planted_trend[0]["novelty_detail"] == {"label": "candidate"}
    assert "## Candidate new findings" in report and "## Recovered known results" in report
    _, second, report2 = run_table(table, tmp_path / "run2", memory)
    again = [f for f in second["findings"] if f["kind"] == "trend" and set(f["columns"]) == {"widget_a", "gizmo_b"}]
    assert again and again[0]["novelty"] == "seen"
    seen = again[0]["novelty_detail"]["seen"][0]
    assert seen["run"] == str((tmp_path / "run1").resolve()) and seen["same_table"] and seen["when"]
    assert "## Seen in earlier runs" in report2


@pytest.mark.slow
def test_no_memory_means_nothing_seen(tmp_path):
    table = planted(tmp_path)
    for name in ("a", "b"):
        cfg = ExploreConfig(table=str(table), goal="find trends", out=str(tmp_path / name), in_process=True,
                            max_steps=4)
        _, out = explore(cfg)
    doc = json.loads((out / "findings.json").read_text())
    assert doc["findings"] and all(f["novelty"] != "seen" for f in doc["findings"])


def test_unusable_memory_folder_is_a_one_line_error(tmp_path):
    table = planted(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RunSetupError, match="not a folder"):
        explore(ExploreConfig(table=str(table), out=str(tmp_path / "o"), in_process=True, memory=str(blocker)))


@pytest.mark.slow
@pytest.mark.realdata
def test_phangs_main_sequence_is_known(tmp_path):
    path = shared_dataset(PHANGS)
    cfg = ExploreConfig(table=str(path), out=str(tmp_path / "run"), in_process=True, memory=str(tmp_path / "mem"),
                        goal="Focus on props_mstar, props_sfr and mh2_phangs: how do stellar mass, star formation "
                             "rate and molecular gas mass relate across these galaxies?")
    outcome, out = explore(cfg)
    doc = json.loads((out / "findings.json").read_text())
    ms = [f for f in doc["findings"] if f["kind"] == "trend" and not (f["stats"].get("controls"))
          and {split_derived(c, ["props_mstar", "props_sfr"])[0] for c in f["columns"]} == {"props_mstar", "props_sfr"}]
    assert ms and all(f["novelty"] == "known" for f in ms)
    assert ms[0]["novelty_detail"]["known"]["id"] == "sf_main_sequence"
    report = (out / "report.md").read_text()
    known_part = report.split("## Recovered known results")[1].split("## ")[0]
    assert "star-forming main sequence" in known_part and "Brinchmann" in known_part
    # the autopilot controlled for a strong known relation and explored the residuals
    assert "follows a known relation" in report and any("resid_" in c for f in doc["findings"] for c in f["columns"])


# ---------------------------------------------------------------------- the model's tool and the CLI
def test_lookup_known_tool():
    dataset = {"path": "phangs.fits", "columns": [{"name": "props_mstar", "unit": "solMass"},
                                                  {"name": "props_sfr", "unit": "solMass / yr"}]}
    session = SimpleNamespace(knowledge=Knowledge().bind(dataset))
    reply = call_agent_tool(session, "lookup_known", {"columns": ["log10_props_mstar", "props_sfr"]})
    doc = json.loads(reply.content)
    assert reply.ok and doc["known_results"][0]["id"] == "sf_main_sequence"
    assert doc["known_results"][0]["control_for"] == "log10_props_mstar"
    bad = call_agent_tool(session, "lookup_known", {"columns": []})
    assert not bad.ok


def test_known_cli_add_list_remove(tmp_path, capsys):
    mem = str(tmp_path / "mem")
    assert cli_main(["known", "--memory", mem, "add", "gizmo-law", "--name", "gizmo law", "--quantities",
                     "stellar_mass,sfr", "--sign", "1", "--citation", "Me 2026"]) == 0
    assert cli_main(["known", "--memory", mem, "list", "--source", "user"]) == 0
    assert "gizmo-law [user] gizmo law" in capsys.readouterr().out
    assert cli_main(["known", "--memory", mem, "add", "bad", "--name", "x y z", "--quantities", "nonsense",
                     "--citation", "Me 2026"]) == 2
    assert "unknown quantities" in capsys.readouterr().err
    assert cli_main(["known", "--memory", mem, "remove", "sf_main_sequence"]) == 2
    assert cli_main(["known", "--memory", mem, "remove", "gizmo-law"]) == 0
    assert cli_main(["known", "--memory", mem, "remove", "gizmo-law"]) == 2
    err = capsys.readouterr().err
    assert "there is no known result" in err and "Traceback" not in err
