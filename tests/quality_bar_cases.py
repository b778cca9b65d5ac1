"""Shared helpers for the quality-bar tests: run one eval case through the eval runner, once per variant.

Plain runs are remembered per test process so the anonymised comparison reuses the plain run of the same
case instead of exploring the table a second time (the suite's time budget is 10 minutes on 2 cores).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from serendip.agent.settings import Settings
from serendip.evals import runner
from serendip.evals.real_tables import datasets_root as dataset_root

CASES_DIR = Path(runner.__file__).resolve().parent / "cases"
ALL_SYNTHETIC = sorted(p.stem for p in CASES_DIR.glob("synthetic_*.toml"))
# Scored by `serendip eval` only (evals/RESULTS.md, rerun whenever behaviour changes): every case here costs a
# full exploration and the suite must stay under 10 minutes on 2 cores. synthetic_bimodal_colour stands for the
# group finders; the systematic field, hidden groups, the null table and the demo table's run are also guarded
# by tests/test_explore.py and the web tests on smaller tables, well-separated groups by tests/test_cluster.py.
EVAL_ONLY = {"synthetic_curve_groups", "synthetic_sequence_groups", "synthetic_few_column_classes",
             "synthetic_subspace_clump", "synthetic_hidden_groups", "synthetic_example_regions",
             "synthetic_simpson", "synthetic_catalogue_conventions", "synthetic_null", "synthetic_systematic",
             "synthetic_groups"}
SYNTHETIC = [name for name in ALL_SYNTHETIC if name not in EVAL_ONLY]
REAL_QUICK = ["cyg_ob1_giants", "iris_setosa", "penguins_species"]
# Anonymised variants whose plain run is cheap; every case's anonymised variant runs in `serendip eval --both`.
ANONYMISED = ["synthetic_trends", "synthetic_outliers", "cyg_ob1_giants"]

_finished: dict[tuple[str, bool], dict] = {}


def run_case(name: str, anonymised: bool, tmp_path) -> dict:
    """Run (or reuse the finished run of) one case and check it completed."""
    key = (name, anonymised)
    if key not in _finished:
        if not name.startswith("synthetic") and not dataset_root().exists():
            pytest.skip(f"shared datasets missing: {dataset_root()}")
        job = runner.Job(case_path=str(CASES_DIR / f"{name}.toml"), case_name=name, anonymised=anonymised,
                         out_root=str(tmp_path), in_process=True, settings=Settings.defaults(time_limit=600))
        result = runner.run_job(job)
        if result["status"] == "skipped":
            pytest.skip(result.get("message") or "dataset missing")
        _finished[key] = result
    result = _finished[key]
    assert result["status"] != "error", result.get("error")
    assert result["exit_status"] == "completed"
    return result


def assert_passes(result: dict) -> None:
    """Every check of the case passed."""
    assert result["passed"], [c for c in result["checks"] if not c["passed"]]


def assert_same_score(plain: dict, anon: dict) -> None:
    """The anonymised variant passes exactly the checks the plain one does."""
    assert anon["passed"] == plain["passed"] and anon["passed"]
    assert [c["passed"] for c in anon["checks"]] == [c["passed"] for c in plain["checks"]]
