"""serendip overnight: plan validation, a night of real runs to a digest, kill and resume, failures and
budgets, the same night on a Dask LocalCluster, and the follow-up labels of planted candidates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serendip.agent.cli import main as cli_main
from serendip.agent.overnight.memory import NightMemory, base_name, signature
from serendip.agent.overnight.plan import PlanError, load_plan, parse_plan

PLAN = """
tables = ["t*.csv"]
goals = ["find trends"]
isolate_tools = false
[budget]
run_time = 300
grace = 30
[followup]
top = 2
[[strategy]]
name = "all"
[[strategy]]
name = "ctrl"
control = ["z"]
"""


def small_table(seed: int, n: int = 150) -> pd.DataFrame:
    """x → y with a covariate z, three fields; small enough that no run makes a UMAP map."""
    r = np.random.default_rng(seed)
    x, z = r.normal(size=n), r.normal(size=n)
    return pd.DataFrame({"field": np.repeat(["A", "B", "C"], n // 3), "x": x, "z": z,
                         "y": 0.8 * x + 0.3 * z + r.normal(scale=0.5, size=n), "w": r.normal(size=n)})


def write_tables(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        small_table(i).to_csv(folder / f"t{i}.csv", index=False)
    (folder / "plan.toml").write_text(PLAN)


@pytest.fixture(autouse=True)
def own_memory(tmp_path, monkeypatch):
    """Each test's nights use their own knowledge store (runs in subprocesses inherit it)."""
    monkeypatch.setenv("SERENDIP_MEMORY", str(tmp_path / "memory"))


def records(out: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in (out / "state").glob("*/overnight.json")}


# ---------------------------------------------------------------------- plan validation (fast)
def test_one_line_plan_gets_default_strategies(tmp_path):
    (tmp_path / "survey").mkdir()
    for name in ("a.csv", "survey/b.fits", "survey/c.fits"):
        (tmp_path / name).write_text("x\n1\n")
    (tmp_path / "plan.toml").write_text('tables = ["a.csv", "survey/*.fits"]\n')
    plan, tables = load_plan(tmp_path / "plan.toml")
    assert [t.name for t in tables] == ["a.csv", "b.fits", "c.fits"]
    assert [s.name for s in plan.effective_strategies()] == ["open", "groups"]
    assert plan.goals and plan.budget.run_time > 0


@pytest.mark.parametrize("text, key", [
    ('tables = ["a.csv"]\nbudget_total = 3\n', "budget_total"),
    ('tables = ["a.csv"]\n[budget]\nrun_time = -5\n', "budget.run_time"),
    ('tables = ["a.csv"]\n[[strategy]]\nname = "s"\nwhere = "mass >"\n', "strategy.0"),
    ('tables = ["a.csv"]\n[[strategy]]\nname = "s"\ncolums = ["a", "b"]\n', "strategy.0.colums"),
    ('goals = ["x"]\n', "tables"),
])
def test_bad_plans_are_one_line_errors_naming_the_key(tmp_path, capsys, text, key):
    with pytest.raises(PlanError) as err:
        parse_plan(text)
    assert key in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "p.toml").write_text(text)
    assert cli_main(["overnight", str(tmp_path / "p.toml"), "--out", str(tmp_path / "o")]) == 2
    msg = capsys.readouterr().err.strip()
    assert msg.startswith("serendip: error:") and "\n" not in msg and "Traceback" not in msg
    assert not (tmp_path / "o" / "runs").exists()


def test_glob_matching_nothing_is_refused(tmp_path):
    (tmp_path / "p.toml").write_text('tables = ["nothing/*.csv"]\n')
    with pytest.raises(PlanError, match="matches no file"):
        load_plan(tmp_path / "p.toml")


def fake_night(out: Path, table: Path, findings: list[dict], started: str) -> list[dict]:
    """A night folder with one finished run holding ``findings`` (what collect and the store read)."""
    name = "galaxies--all--abc123"
    run_dir = out / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "findings.json").write_text(json.dumps({"findings": findings}))
    (run_dir / "run.json").write_text(json.dumps({"table": str(table), "started": started, "exit_status": "completed"}))
    return [{"run_id": "abc123", "folder": name, "table": str(table), "table_sha256": "f00d", "goal": "find trends",
             "strategy": {"name": "all"}, "status": "completed"}]


@pytest.mark.slow  # opening a fresh chromadb store syncs the known-results pack: ~7 s
def test_cross_night_memory_is_the_knowledge_store(tmp_path):
    from serendip.agent.knowledge.store import KnowledgeStore
    from serendip.agent.overnight.digest import collect, label_novelty, remember_night

    f = {"kind": "trend", "columns": ["log10_mass", "resid_sfr_vs_mass"], "stats": {"sign": 1}}
    assert base_name("log10_mass") == "mass" and base_name("resid_sfr_vs_mass") == "sfr"
    assert signature(f, "abc") == signature({"kind": "trend", "columns": ["sfr", "mass"], "stats": {"sign": 1}}, "abc")
    assert signature(f, "abc") != signature({"kind": "trend", "columns": ["sfr", "mass"], "stats": {"sign": -1}}, "abc")

    table = tmp_path / "galaxies.csv"
    pd.DataFrame({"log_mstar": [9.0, 10.0, 11.0], "log_sfr": [0.1, 0.5, 1.0], "x": [1, 2, 3], "y": [2, 1, 3]}).to_csv(table, index=False)
    findings = [{"id": "F1", "kind": "trend", "title": "x rises with y", "columns": ["x", "y"],
                 "stats": {"method": "spearman", "effect": 0.7, "sign": 1}, "score": 0.7},
                {"id": "F2", "kind": "trend", "title": "sfr rises with mass", "columns": ["log_mstar", "log_sfr"],
                 "stats": {"method": "spearman", "effect": 0.6, "sign": 1}, "score": 0.6}]
    memory = tmp_path / "store"

    def night(out: Path, started: str) -> dict[str, object]:
        recs = fake_night(out, table, findings, started)
        mem = NightMemory(memory)
        cands = collect(out, recs)
        label_novelty(out, cands, mem, [r["folder"] for r in recs])
        remember_night(out, recs, mem)
        return {c.finding["id"]: c for c in cands}

    first = night(tmp_path / "night1", "2026-01-01T22:00:00+00:00")
    assert first["F1"].novelty == "new"
    assert first["F2"].novelty == "known" and first["F2"].detail["known"]["id"] == "sf_main_sequence"
    assert KnowledgeStore(memory).count_findings() == 2
    # the same night's digest rewritten: its own findings are not earlier sightings
    again = night(tmp_path / "night1", "2026-01-01T22:00:00+00:00")
    assert again["F1"].novelty == "new"
    # the next night (another folder), and a --redo of the first (a later attempt): seen, with where and when
    for out, started in ((tmp_path / "night2", "2026-01-02T22:00:00+00:00"),
                         (tmp_path / "night1", "2026-01-03T22:00:00+00:00")):
        later = night(out, started)
        assert later["F1"].novelty == "seen", out
        seen = later["F1"].detail["seen"][0]
        assert seen["folder"] == "galaxies--all--abc123" and seen["finding"] == "F1" and seen["same_table"]
        assert later["F2"].novelty == "known"
    # without a store: nothing seen, the pack still knows the main sequence
    recs = fake_night(tmp_path / "night4", table, findings, "2026-01-04T22:00:00+00:00")
    cands = {c.finding["id"]: c for c in collect(tmp_path / "night4", recs)}
    label_novelty(tmp_path / "night4", list(cands.values()), NightMemory(None), [recs[0]["folder"]])
    assert cands["F1"].novelty == "new" and cands["F2"].novelty == "known"


# ---------------------------------------------------------------------- real nights
@pytest.mark.slow
def test_killed_night_resumes_to_a_digest_without_redoing_or_duplicating(tmp_path):
    write_tables(tmp_path)
    out = tmp_path / "night"
    env = dict(os.environ, TTY_INTERACTIVE="0")
    proc = subprocess.Popen([sys.executable, "-m", "serendip.agent.cli", "overnight", str(tmp_path / "plan.toml"),
                             "--out", str(out), "--jobs", "1"], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not records(out):
        time.sleep(0.2)
    assert records(out), "no run finished before the deadline"
    os.kill(proc.pid, signal.SIGKILL)  # the overnight process only: its run must notice and stop
    proc.wait()
    first = records(out)
    assert len(first) == 1
    (done_name, done_rec), = first.items()
    done_run_json = (out / "runs" / done_name / "run.json").read_bytes()
    time.sleep(1.5)  # the orphaned run's process exits when it sees its parent gone

    assert cli_main(["overnight", str(tmp_path / "plan.toml"), "--out", str(out), "--jobs", "2", "--quiet"]) == 0
    recs = records(out)
    assert len(recs) == 6 and all(r["status"] == "completed" for r in recs.values())
    # the finished run was skipped, not redone
    assert (out / "runs" / done_name / "run.json").read_bytes() == done_run_json
    for name in recs:
        findings = json.loads((out / "runs" / name / "findings.json").read_text())["findings"]
        ids = [f["id"] for f in findings]
        assert len(ids) == len(set(ids))
        keys = [(f["kind"], tuple(f["columns"]), f["stats"].get("method")) for f in findings]
        assert len(keys) == len(set(keys)), f"duplicated findings in {name}"
        starts = [json.loads(line) for line in (out / "runs" / name / "transcript.jsonl").read_text().splitlines()]
        assert sum(r["type"] == "run_start" for r in starts) <= 2
    # the digest: every table's x-y trend, once per table (the 'ctrl' run's copy listed as also found in)
    for name in ("index.html", "index.md", "summary.md"):
        assert (out / name).is_file()
    cands = json.loads((out / "candidates.json").read_text())
    sigs = [c["signature"] for c in cands]
    assert len(sigs) == len(set(sigs))
    xy = [c for c in cands if c["finding"]["kind"] == "trend" and
          sorted(base_name(col) for col in c["finding"]["columns"]) == ["x", "y"]]
    assert len({c["run"].split("--")[0] for c in xy}) == 3
    assert any(c["also_in"] for c in xy)
    labelled = [c for c in cands if c["followup"]]
    assert len(labelled) == 2 and all(c["label"] == "robust" for c in labelled)
    index = (out / "index.md").read_text()
    assert index.index(labelled[0]["run"]) < index.index("## Runs")
    html = (out / "index.html").read_text()
    assert 'href="runs/' in html and "report.html" in html
    # a third invocation has nothing left to run
    assert cli_main(["overnight", str(tmp_path / "plan.toml"), "--out", str(out), "--quiet"]) == 0
    assert (out / "runs" / done_name / "run.json").read_bytes() == done_run_json


@pytest.mark.slow
def test_failing_and_overtime_runs_are_recorded_and_the_others_complete(tmp_path, capsys):
    small_table(0).to_csv(tmp_path / "good.csv", index=False)
    (tmp_path / "broken.fits").write_bytes(b"SIMPLE  =                    T" + bytes(range(256)) * 20)
    (tmp_path / "plan.toml").write_text("""
tables = ["good.csv", "broken.fits"]
goals = ["find trends"]
isolate_tools = false
[budget]
grace = 0.3
[followup]
enabled = false
[[strategy]]
name = "all"
[[strategy]]
name = "tight"
run_time = 0.2
""")
    code = cli_main(["overnight", str(tmp_path / "plan.toml"), "--out", str(tmp_path / "o"), "--jobs", "2"])
    assert code == 0
    recs = {name.split("--")[0] + "/" + name.split("--")[1]: r for name, r in records(tmp_path / "o").items()}
    assert recs["good/all"]["status"] == "completed"
    assert recs["broken/all"]["status"] == "failed" and "broken.fits" in recs["broken/all"]["reason"]
    assert recs["good/tight"]["status"] == "killed" and "killed" in recs["good/tight"]["reason"]
    log = capsys.readouterr().err
    assert "end   good--tight" in log and "\x1b[" not in log  # plain log lines off a terminal
    index = (tmp_path / "o" / "index.md").read_text()
    assert "killed" in index and "failed" in index


@pytest.mark.slow
def test_every_run_failing_exits_non_zero(tmp_path):
    (tmp_path / "broken.csv").write_bytes(b"")
    (tmp_path / "plan.toml").write_text('tables = ["broken.csv"]\nisolate_tools = false\n'
                                        '[[strategy]]\nname = "all"\n')
    assert cli_main(["overnight", str(tmp_path / "plan.toml"), "--out", str(tmp_path / "o"), "--quiet"]) == 1


@pytest.mark.slow
def test_same_night_on_a_dask_local_cluster_gives_the_same_findings(tmp_path):
    distributed = pytest.importorskip("distributed")
    small_table(0).to_csv(tmp_path / "t0.csv", index=False)
    plan = ('tables = ["t0.csv"]\ngoals = ["find trends"]\nisolate_tools = false\n'
            '[followup]\nenabled = false\n[[strategy]]\nname = "all"\n')
    (tmp_path / "plan.toml").write_text(plan)
    assert cli_main(["overnight", str(tmp_path / "plan.toml"), "--out", str(tmp_path / "local"), "--quiet"]) == 0
    with distributed.LocalCluster(n_workers=1, processes=True, threads_per_worker=1, dashboard_address=None) as lc:
        assert cli_main(["overnight", str(tmp_path / "plan.toml"), "--out", str(tmp_path / "dask"),
                         "--cluster", lc.scheduler_address, "--quiet"]) == 0
    (name,) = [p.name for p in (tmp_path / "local" / "runs").iterdir()]
    local = json.loads((tmp_path / "local" / "runs" / name / "findings.json").read_text())
    remote = json.loads((tmp_path / "dask" / "runs" / name / "findings.json").read_text())
    assert local["findings"] and local["findings"] == remote["findings"]
    assert local["dataset"] == remote["dataset"]


# ---------------------------------------------------------------------- follow-up labels
@pytest.mark.slow
def test_follow_up_labels_one_field_trend_fragile_and_real_trend_robust(tmp_path):
    from serendip.agent.explore import ExploreConfig, explore
    from serendip.agent.overnight.followup import follow_up

    r = np.random.default_rng(0)
    fields = np.repeat(["A", "B", "C", "D"], 150)
    in_a = fields == "A"
    x1, x2 = r.normal(size=600), r.normal(size=600)
    df = pd.DataFrame({"field": fields, "x_local": x1,
                       "y_local": np.where(in_a, 1.5 * x1 + 0.5 * r.normal(size=600), r.normal(size=600)),
                       "x_real": x2, "y_real": 0.7 * x2 + r.normal(scale=0.7, size=600)})
    df.to_csv(tmp_path / "planted.csv", index=False)
    _, run_dir = explore(ExploreConfig(table=str(tmp_path / "planted.csv"), goal="find trends",
                                       out=str(tmp_path / "run"), in_process=True))
    findings = json.loads((run_dir / "findings.json").read_text())["findings"]
    by_cols = {tuple(sorted(f["columns"])): f for f in findings if f["kind"] == "trend"}
    local, real = by_cols[("x_local", "y_local")], by_cols[("x_real", "y_real")]
    res = follow_up(run_dir, [local, real], tmp_path / "fu")
    assert res[real["id"]]["label"] == "robust", res[real["id"]]
    assert res[local["id"]]["label"] == "fragile", res[local["id"]]
    failed = [c["check"] for c in res[local["id"]]["checks"] if c["outcome"] == "failed"]
    assert failed and all("field" in c for c in failed)
    passed_a = [c for c in res[local["id"]]["checks"] if c["check"] == "within `field` = `A`"]
    assert passed_a and passed_a[0]["outcome"] == "passed"
    # every number comes from a tool result recorded in the follow-up transcript
    ids = {json.loads(line).get("id") for line in (tmp_path / "fu" / "transcript.jsonl").read_text().splitlines()}
    assert all(c["evidence"] in ids for c in res[local["id"]]["checks"])


def findings_of_calls(tmp_path: Path, df: pd.DataFrame, tool: str, column_sets: list[list[str]], **arguments):
    """A run folder made by one ``tool`` call per column set (no autopilot), and its findings of that kind,
    one per column set, in the same order."""
    import serendip

    df.to_csv(tmp_path / "t.csv", index=False)
    run_dir = tmp_path / "run"
    with serendip.open(str(tmp_path / "t.csv"), workdir=run_dir, sandbox=False) as an:
        for columns in column_sets:
            an.call(tool, columns=columns, **arguments)
        an.report()
    kind = {"outliers": "outlier", "cluster": "group"}[tool]
    found = [f for f in json.loads((run_dir / "findings.json").read_text())["findings"] if f["kind"] == kind]
    return run_dir, [next(f for f in found if set(f["columns"]) == set(cols)) for cols in column_sets]


@pytest.mark.slow  # about a dozen robust-covariance (MCD) fits
def test_follow_up_labels_real_outliers_robust_and_an_offset_field_artefact(tmp_path):
    from serendip.agent.overnight.followup import follow_up

    r = np.random.default_rng(1)
    fields = np.array(["A"] * 200 + ["B"] * 200 + ["E"] * 20)
    df = pd.DataFrame({"field": fields, **{c: r.normal(size=len(fields)) for c in "abcd"}})
    for row, (va, vb) in zip((5, 210, 60, 330, 120, 390), ((7, 7), (-7, 7), (7, -7), (-7, -7), (8, 0), (0, -8))):
        df.loc[row, ["a", "b"]] = va, vb  # six real outliers, spread over the fields
    df.loc[df.field == "E", ["c", "d"]] += 6.0  # a small field offset from the others
    run_dir, (real, offset) = findings_of_calls(tmp_path, df, "outliers", [["a", "b"], ["c", "d"]], method="mahalanobis")
    res = follow_up(run_dir, [real, offset], tmp_path / "fu")
    assert res[real["id"]]["label"] == "robust", res[real["id"]]
    assert res[offset["id"]]["label"] == "artefact", res[offset["id"]]
    assert "`field` = `E`" in res[offset["id"]]["why"]
    checks = res[real["id"]]["checks"]
    assert {c["check"] for c in checks} >= {"random half 1 of the rows", "second method (isolation forest)"}
    ids = {json.loads(line).get("id") for line in (tmp_path / "fu" / "transcript.jsonl").read_text().splitlines()}
    assert all(c["evidence"] in ids for c in checks)


@pytest.mark.slow  # a dozen cluster refits
def test_follow_up_labels_class_groups_robust_and_groups_made_by_a_field_offset_artefact(tmp_path):
    from serendip.agent.overnight.followup import follow_up

    r = np.random.default_rng(2)
    n = 600
    fields = np.repeat(["A", "B", "C"], n // 3)
    species = r.choice(["p", "q"], size=n, p=[0.6, 0.4])
    df = pd.DataFrame({"field": fields, "species": species})
    df["a"] = r.normal(size=n) + 4.0 * (species == "q")  # two kinds of object, in every field
    df["b"] = r.normal(size=n) - 4.0 * (species == "q")
    df["c"] = r.normal(size=n) + 5.0 * (fields == "C")  # one field's calibration offset, no kinds of object
    df["d"] = r.normal(size=n) + 5.0 * (fields == "C")
    run_dir, (kinds, offset) = findings_of_calls(tmp_path, df, "cluster", [["a", "b"], ["c", "d"]], method="gmm")
    res = follow_up(run_dir, [kinds, offset], tmp_path / "fu")
    assert res[kinds["id"]]["label"] == "robust", res[kinds["id"]]
    assert "levels of `species`" in res[kinds["id"]]["why"]
    within_fields = [c for c in res[kinds["id"]]["checks"] if c["check"].startswith("within `field`")]
    assert len(within_fields) == 3 and all(c["outcome"] == "passed" for c in within_fields)
    assert res[offset["id"]]["label"] == "artefact", res[offset["id"]]
    assert "levels of `field`" in res[offset["id"]]["why"]
    ids = {json.loads(line).get("id") for line in (tmp_path / "fu" / "transcript.jsonl").read_text().splitlines()}
    assert all(c["evidence"] in ids for c in res[kinds["id"]]["checks"] if c["evidence"])


# ---------------------------------------------------------------------- run inputs, budgets, progress (fast)
def _specs(tmp_path, plan_text: str):
    from serendip.agent.overnight.runs import make_runs

    small_table(0).to_csv(tmp_path / "t0.csv", index=False)
    (tmp_path / "plan.toml").write_text(plan_text)
    plan, tables = load_plan(tmp_path / "plan.toml")
    return make_runs(plan, tables, tmp_path / "out")


def test_run_ids_are_stable_and_strategies_make_safe_subsets(tmp_path):
    from serendip.agent.overnight.runs import RunRefused, prepare_input

    text = ('tables = ["t0.csv"]\n[[strategy]]\nname = "rows"\nwhere = "x > 0 and field in (\'A\', \'B\')"\n'
            '[[strategy]]\nname = "cols"\ncolumns = ["x", "y"]\n[[strategy]]\nname = "absent"\ncolumns = ["x", "nope"]\n')
    specs = _specs(tmp_path, text)
    assert [s.run_id for s in specs] == [s.run_id for s in _specs(tmp_path, text)]
    assert len({s.run_id for s in specs}) == 3
    df = small_table(0)
    rows = pd.read_parquet(prepare_input(specs[0]))
    expected = df[(df.x > 0) & df.field.isin(["A", "B"])]
    assert len(rows) == len(expected) and np.allclose(rows["x"], expected["x"])
    assert list(pd.read_parquet(prepare_input(specs[1])).columns) == ["x", "y", "field"]
    with pytest.raises(RunRefused, match="nope"):
        prepare_input(specs[2])
    assert (tmp_path / "t0.csv").read_bytes() == small_table(0).to_csv(index=False).encode()


def test_memory_and_night_budget_refuse_runs_with_a_reason(tmp_path):
    from serendip.agent.overnight.executor import Budgets, execute

    specs = _specs(tmp_path, 'tables = ["t0.csv"]\n[[strategy]]\nname = "a"\n[[strategy]]\nname = "b"\n')
    log = execute(specs, jobs=2, budgets=Budgets(total_time=100, memory_mb=10))
    assert [r["status"] for r in log.records] == ["refused", "refused"]
    assert "MB" in log.records[0]["reason"] and (Path(specs[0].state_dir) / "overnight.json").is_file()
    log = execute(specs, jobs=2, budgets=Budgets(total_time=0.5))
    assert [r["status"] for r in log.records] == ["not_started", "not_started"]
    assert not (tmp_path / "out" / "runs").exists()


def test_progress_is_plain_off_a_terminal_and_live_on_one(tmp_path):
    import io

    from rich.console import Console

    from serendip.agent.overnight.night import NightProgress

    spec = _specs(tmp_path, 'tables = ["t0.csv"]\n[[strategy]]\nname = "a"\n')[0]
    for live in (False, True):
        buf = io.StringIO()
        with NightProgress(total=1, live=live, console=Console(file=buf, width=120, force_terminal=live)) as p:
            p.event("start", spec, None)
            p.event("end", spec, {"status": "completed"})
        text = buf.getvalue()
        assert "end   t0--a--" in text and "completed" in text
        assert ("\x1b[" in text) == live
