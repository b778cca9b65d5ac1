"""The autopilot reads what columns measure: IDs, bookkeeping and coordinates are not physics, magnitudes
become colours, a parallax gives an absolute magnitude."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from serendip.agent.explore import ExploreConfig, explore


def survey_table(n: int = 800, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    r = np.random.default_rng(seed)
    red = (r.random(n) < 0.4).astype(int)
    mag_r = r.normal(17, 0.8, size=n)
    u_r = np.where(red == 1, r.normal(2.8, 0.2, size=n), r.normal(1.7, 0.2, size=n))
    df = pd.DataFrame({
        "objid": np.round(1.2376e18 + r.integers(0, 10**6, size=n) * 1e6, -3),
        "ra": r.uniform(120, 240, size=n), "dec": r.uniform(-5, 60, size=n),
        "run": r.choice([752, 756, 1345], size=n), "camcol": r.integers(1, 7, size=n),
        "field": r.integers(11, 800, size=n),
        "mag_u": mag_r + u_r, "mag_g": mag_r + 0.45 * u_r, "mag_r": mag_r,
        "mag_i": mag_r - 0.1 * u_r - 0.2, "redshift": np.abs(r.normal(0.08, 0.03, size=n)),
    })
    return df, red


@pytest.mark.slow
def test_roles_decide_use_and_colours_are_derived(tmp_path):
    df, red = survey_table()
    table = tmp_path / "survey.csv"
    df.to_csv(table, index=False)
    cfg = ExploreConfig(table=str(table), goal="Are there distinct populations?", out=str(tmp_path / "out"),
                        in_process=True)
    outcome, out = explore(cfg)
    assert outcome.status == "completed"
    notes = " ".join(outcome.notes)
    assert "bookkeeping" in notes and "run" in notes and "camcol" in notes
    assert "sky coordinates" in notes and "photometry" in notes
    assert "mag_u_minus_mag_r" in notes  # the long-baseline colour, derived
    records = [json.loads(line) for line in (out / "transcript.jsonl").read_text().splitlines()]
    calls = [r for r in records if r.get("type") == "tool_result"]
    transformed = [c for r in calls if r["tool"] == "transform" for c in r["arguments"]["columns"]]
    assert "ra" not in transformed and "dec" not in transformed
    used = {c for r in calls if r["tool"] in ("cluster", "correlate", "pca", "outliers", "subspace")
            for c in (r["arguments"].get("columns") or [])}
    assert not used & {"objid", "ra", "dec", "run", "camcol", "field"}
    findings = json.loads((out / "findings.json").read_text())["findings"]
    rows = pd.read_csv(out / "rows.csv")
    from sklearn.metrics import adjusted_rand_score

    groups = [f for f in findings if f["kind"] == "group"]
    assert groups and max(adjusted_rand_score(red, rows[f["labels"]]) for f in groups) > 0.8


@pytest.mark.slow
def test_an_exact_copy_of_a_column_is_left_out_and_its_rho_of_one_is_no_finding(tmp_path):
    r = np.random.default_rng(3)
    x = r.lognormal(size=300)
    df = pd.DataFrame({"x": x, "x_in_mjy": 1000 * x, "y": np.log10(x) + r.normal(scale=0.3, size=300)})
    df.to_csv(tmp_path / "t.csv", index=False)
    outcome, out = explore(ExploreConfig(table=str(tmp_path / "t.csv"), out=str(tmp_path / "run"), in_process=True))
    assert outcome.status == "completed"
    findings = json.loads((out / "findings.json").read_text())["findings"]
    assert not any("x_in_mjy" in " ".join(f.get("columns") or []) for f in findings if f["kind"] != "data_quality")
    assert any(f["kind"] == "trend" and {"x", "y"} <= {c.replace("log10_", "") for c in f["columns"]} for f in findings)
    assert "Left out as exact copies of another column" in (out / "report.md").read_text()
