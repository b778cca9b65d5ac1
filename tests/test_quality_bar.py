"""The autopilot's quality bar, scored by the eval suite: every synthetic case, the quick real cases,
and anonymised variants that must score the same. (The whole suite, every real table and both
variants, runs with `serendip eval --both`; its scoreboard is evals/RESULTS.md.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from serendip.agent.settings import Settings
from serendip.evals import runner
from serendip.evals.real_tables import datasets_root as dataset_root

CASES_DIR = Path(runner.__file__).resolve().parent / "cases"
SYNTHETIC = sorted(p.stem for p in CASES_DIR.glob("synthetic_*.toml"))
REAL_QUICK = ["cyg_ob1_giants", "iris_setosa", "penguins_species", "sdss_bpt", "phangs_scaling_relations"]
ANONYMISED = ["synthetic_trends", "synthetic_outliers", "synthetic_systematic", "cyg_ob1_giants", "penguins_species"]


def run_case(name: str, anonymised: bool, tmp_path) -> dict:
    job = runner.Job(case_path=str(CASES_DIR / f"{name}.toml"), case_name=name, anonymised=anonymised,
                     out_root=str(tmp_path), in_process=True, settings=Settings.defaults(time_limit=600))
    result = runner.run_job(job)
    if result["status"] == "skipped":
        pytest.skip(result.get("message") or "dataset missing")
    assert result["status"] != "error", result.get("error")
    assert result["exit_status"] == "completed"
    return result


@pytest.mark.slow
@pytest.mark.parametrize("name", SYNTHETIC + REAL_QUICK)
def test_case_passes(name, tmp_path):
    if name in REAL_QUICK and not dataset_root().exists():
        pytest.skip(f"shared datasets missing: {dataset_root()}")
    result = run_case(name, anonymised=False, tmp_path=tmp_path)
    assert result["passed"], [c for c in result["checks"] if not c["passed"]]


@pytest.mark.slow
@pytest.mark.parametrize("name", ANONYMISED)
def test_anonymised_variant_scores_the_same(name, tmp_path):
    if not name.startswith("synthetic") and not dataset_root().exists():
        pytest.skip(f"shared datasets missing: {dataset_root()}")
    plain = run_case(name, anonymised=False, tmp_path=tmp_path / "plain")
    anon = run_case(name, anonymised=True, tmp_path=tmp_path / "anon")
    assert anon["passed"] == plain["passed"] and anon["passed"]
    assert [c["passed"] for c in anon["checks"]] == [c["passed"] for c in plain["checks"]]
