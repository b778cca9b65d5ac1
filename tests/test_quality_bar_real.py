"""The autopilot's quality bar on the quick real tables (skipped when ../shared/datasets is absent), and
anonymised variants that must score the same as the plain ones (the plain run is reused, not repeated)."""

from __future__ import annotations

import pytest

from quality_bar_cases import ANONYMISED, REAL_QUICK, assert_passes, assert_same_score, run_case


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL_QUICK)
def test_real_case_passes(name, tmp_path):
    assert_passes(run_case(name, anonymised=False, tmp_path=tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in ANONYMISED if not n.startswith("synthetic")])
def test_anonymised_variant_scores_the_same(name, tmp_path):
    plain = run_case(name, anonymised=False, tmp_path=tmp_path / "plain")
    anon = run_case(name, anonymised=True, tmp_path=tmp_path / "anon")
    assert_same_score(plain, anon)
