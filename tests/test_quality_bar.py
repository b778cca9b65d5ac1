"""The autopilot's quality bar on the planted tables, scored by the eval suite, and anonymised variants that
must score the same as the plain ones (the plain run of a case is reused, not repeated). The whole suite,
every real table and both variants, runs with `serendip eval --both`; its scoreboard is evals/RESULTS.md."""

from __future__ import annotations

import pytest

from quality_bar_cases import ANONYMISED, SYNTHETIC, assert_passes, assert_same_score, run_case


@pytest.mark.slow
@pytest.mark.parametrize("name", SYNTHETIC)
def test_synthetic_case_passes(name, tmp_path):
    assert_passes(run_case(name, anonymised=False, tmp_path=tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in ANONYMISED if n.startswith("synthetic")])
def test_anonymised_variant_scores_the_same(name, tmp_path):
    plain = run_case(name, anonymised=False, tmp_path=tmp_path / "plain")
    anon = run_case(name, anonymised=True, tmp_path=tmp_path / "anon")
    assert_same_score(plain, anon)
