"""What numeric columns measure: angles, times, identifiers, bookkeeping, photometry."""

from __future__ import annotations

import numpy as np
import pandas as pd

from serendip.agent import derivations as dv
from serendip.tools.loading.prepare import prepare_frame
from serendip.tools.loading.roles import column_kind, photometric_band

SDSS = ["objid", "ra", "dec", "u", "g", "r", "i", "z", "run", "rerun", "camcol", "field", "plate", "mjd", "fiberid"]


def test_kinds_from_names_and_units():
    mags = np.array([17.2, 18.1, 19.5])
    assert column_kind("ra", None, np.array([10.1, 200.5])) == "angle"
    assert column_kind("DEJ2000", None, np.array([-10.1, 20.5])) == "angle"
    assert column_kind("pos", "deg", np.array([1.0, 2.0])) == "angle"
    assert column_kind("mjd", None, np.array([51578.0, 55000.0])) == "time"
    assert column_kind("obs_epoch", "d", np.array([1.5, 2.5])) == "time"
    assert column_kind("camcol", None, np.array([1.0, 6.0]), SDSS) == "bookkeeping"
    assert column_kind("field", None, np.array([11.0, 300.0]), SDSS) == "bookkeeping"
    assert column_kind("field", None, np.array([11.0, 300.0]), ["field", "mass"]) is None
    assert column_kind("source_id", None, np.array([1.0, 2.0])) == "identifier"
    assert column_kind("u", None, mags) == "magnitude"
    assert column_kind("z", None, np.array([0.01, 0.1, 1.5])) is None  # redshift, not the z band
    assert column_kind("flux_ratio", "mag", mags) == "magnitude"
    assert column_kind("mass", None, np.array([1.5, 2.0])) is None


def test_float_rounded_huge_integers_are_identifiers_by_content():
    values = np.array([1.237648704577e18, 1.237648704577e18, 1.2376487e18])
    assert column_kind("c7", None, values) == "identifier"
    frame = pd.DataFrame({"c1": values, "c2": [1.0, 2.0, 3.5]})
    table = prepare_frame(frame)
    assert table.info["c1"].role == "identifier" and table.info["c2"].role == "numeric"


def test_prepare_records_kinds():
    frame = pd.DataFrame({"ra": [10.5, 20.25, 30.0], "camcol": [1, 2, 3], "run": [752, 752, 756],
                          "mag_g": [17.1, 18.2, 19.3], "mag_r": [16.9, 17.8, 18.9]})
    table = prepare_frame(frame)
    assert table.info["ra"].kind == "angle"
    assert table.info["camcol"].kind == "bookkeeping" and table.info["run"].kind == "bookkeeping"
    assert table.info["mag_g"].kind == "magnitude"


def test_bands_and_planned_colours():
    assert photometric_band("mag_u") == "u" and photometric_band("phot_g_mean_mag") == "gaia_g"
    assert photometric_band("Gmag") == "gaia_g" and photometric_band("W1mpro") == "w1"
    assert photometric_band("petroMag_r") == "r" and photometric_band("redshift") is None
    cols = [{"name": n, "kind": "magnitude"} for n in ["mag_z", "mag_u", "mag_g", "mag_r", "mag_i"]]
    bands = dv.magnitude_bands(cols)
    assert list(bands) == ["u", "g", "r", "i", "z"]
    plans = dv.plan_colours(bands, cols)
    assert [p.expression for p in plans] == ["mag_u - mag_g", "mag_g - mag_r", "mag_r - mag_i", "mag_i - mag_z",
                                            "mag_u - mag_r"]


def test_absolute_magnitude_and_line_ratios():
    cols = [{"name": "phot_g_mean_mag", "kind": "magnitude"}, {"name": "parallax", "unit": "mas"}]
    plan = dv.plan_absolute_magnitude("phot_g_mean_mag", cols)
    assert plan.expression == "phot_g_mean_mag + 5 * log10(parallax / 100)"
    plan = dv.plan_absolute_magnitude("V", [{"name": "V"}, {"name": "dist", "unit": "kpc"}])
    assert plan.expression == "V - 5 * log10(dist * 100)"
    lines = dv.plan_line_ratios([{"name": "nii_6584_flux"}, {"name": "h_alpha_flux"}, {"name": "oiii_5007_flux"},
                                 {"name": "h_beta_flux"}])
    assert [p.expression for p in lines] == ["log10(nii_6584_flux / h_alpha_flux)",
                                            "log10(oiii_5007_flux / h_beta_flux)"]


def test_bare_letters_are_not_angles_without_their_partner():
    values = np.array([-1.2, 0.3, 2.5])
    assert column_kind("b", None, values, ["a", "b", "c"]) is None
    assert column_kind("b", None, values, ["l", "b"]) == "angle"
    assert column_kind("b", "deg", values, ["a", "b"]) == "angle"


def test_amplitude_spelt_like_ra_is_not_an_angle():
    assert column_kind("rA", None, np.array([0.3, 0.8, 1.1]), ["ra", "dec", "rA"]) is None
    assert column_kind("ra", None, np.array([250.1, 250.3]), ["ra", "dec"]) == "angle"


def test_declination_near_the_equator_is_an_angle_beside_ra():
    near_equator = np.array([-0.59, 0.03, 1.1, -1.2])
    assert column_kind("dec", None, near_equator, ["ra", "dec", "redshift"]) == "angle"
    assert column_kind("rA", None, np.array([0.3, 0.5]), ["rA", "gA"]) is None


def test_magnitudes_by_content_need_neighbouring_bands_to_correlate_not_every_pair():
    # Galaxy Zoo's ugriz (measured): u correlates 0.91 with g but only 0.50 with z; all five are photometry.
    medians = {"c5": 19.4, "c6": 17.9, "c7": 17.1, "c8": 16.7, "c9": 16.4, "c14": 10.6}
    rho = {frozenset(p): v for p, v in [(("c5", "c6"), 0.91), (("c5", "c7"), 0.68), (("c5", "c8"), 0.59),
                                         (("c5", "c9"), 0.50), (("c6", "c7"), 0.90), (("c6", "c8"), 0.84),
                                         (("c6", "c9"), 0.77), (("c7", "c8"), 0.98), (("c7", "c9"), 0.96),
                                         (("c8", "c9"), 0.98), (("c9", "c14"), -0.7), (("c8", "c14"), -0.7)]}
    assert dv.photometric_chain(medians, rho) == ["c5", "c6", "c7", "c8", "c9"]
    # a column that does not link to its neighbour in median order is stepped over
    assert dv.photometric_chain({**medians, "x": 18.0}, rho) == ["c5", "c6", "c7", "c8", "c9"]
    # anticorrelated or unrelated columns on the magnitude scale are not photometry
    assert dv.photometric_chain({"a": 20.0, "b": 15.0, "c": 12.0},
                                {frozenset(("a", "b")): -0.9, frozenset(("b", "c")): 0.9}) == []
    # medians spread over more than a few magnitudes are not one set of sources in several bands
    assert dv.photometric_chain({"a": 28.0, "b": 20.0, "c": 12.0},
                                {frozenset(("a", "b")): 0.9, frozenset(("b", "c")): 0.9}) == []


def test_integer_labels_are_bookkeeping_by_content_but_rounded_measurements_and_counts_are_not():
    rng = np.random.default_rng(0)
    plates = rng.choice(np.arange(266, 8000), size=400, replace=False)
    plate = rng.choice(plates, size=8000)  # objects observed on 400 plates: ~20 rows per plate number
    mjd = 51000 + rng.choice(rng.choice(7000, 300, replace=False), size=8000)
    assert column_kind("c15", None, plate.astype(float)) == "bookkeeping"
    assert column_kind("c16", None, mjd.astype(float)) == "bookkeeping"
    mass = np.round(rng.normal(4200, 800, 344) / 25) * 25  # a mass written to 25 g: its lattice is filled
    counts = rng.poisson(rng.lognormal(3, 1, 8000))  # a heavy-tailed count
    votes = rng.integers(10, 100, 5000)
    fiber = rng.integers(1, 1000, 10000)
    for values in (mass, counts, votes, fiber, rng.integers(1, 7, 5000)):
        assert column_kind("c3", None, values.astype(float)) is None


def test_prepare_says_why_an_unnamed_integer_column_is_bookkeeping():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"c1": rng.choice(rng.choice(np.arange(300, 9000), 300, replace=False), 3000),
                          "c2": rng.normal(size=3000)})
    table = prepare_frame(frame)
    info = table.info
    assert info["c1"].kind == "bookkeeping" and any("label groups of rows" in n for n in info["c1"].notes)
    assert info["c2"].kind is None
