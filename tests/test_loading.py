"""Loading table files: formats, catalogue conventions, roles, one-line errors, real datasets."""

from __future__ import annotations

import gzip
import hashlib
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import shared_dataset
from serendip.tools.engine.errors import TableLoadError
from serendip.tools.loading import load_table
from serendip.tools.loading.sentinels import looks_like_sentinel, mask_sentinels
from serendip.tools.engine.table import Table


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def fingerprint(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def roles(table: Table) -> dict[str, str]:
    return {name: info.role for name, info in table.info.items()}


@pytest.fixture
def mixed_frame() -> pd.DataFrame:
    """Forty rows with one column per role."""
    n = 40
    rng = np.random.default_rng(3)
    return pd.DataFrame({
        "objid": np.arange(1000, 1000 + n) * 7,
        "name": [f"NGC {i}" for i in range(n)],
        "mass": np.round(rng.normal(10, 1, n), 3),
        "morph_t": rng.integers(-3, 10, n).astype(float),
        "is_bar": rng.integers(0, 2, n),
        "kind": rng.choice(["spiral", "elliptical", "irregular"], n),
        "notes": [f"observed on night {i} with a long free-text remark number {i * i}" for i in range(n)],
        "obs_date": [f"2020-01-{(i % 28) + 1:02d}" for i in range(n)],
    })


EXPECTED_ROLES = {"objid": "identifier", "name": "identifier", "mass": "numeric", "morph_t": "numeric",
                  "is_bar": "flag", "kind": "categorical", "notes": "text", "obs_date": "datetime"}


# ----------------------------------------------------------------------------- formats
def test_csv_values_roles_and_provenance(tmp_path, mixed_frame):
    path = tmp_path / "mixed.csv"
    mixed_frame.to_csv(path, index=False)
    table = load_table(path)
    assert table.format == "csv"
    assert table.path == str(path.resolve())
    assert table.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert table.n_rows == 40 and table.columns == list(mixed_frame.columns)
    assert roles(table) == EXPECTED_ROLES
    np.testing.assert_allclose(table.df["mass"], mixed_frame["mass"])
    assert table.df["objid"].tolist() == mixed_frame["objid"].tolist()
    assert table.df["obs_date"].iloc[3] == pd.Timestamp("2020-01-04")
    assert set(table.df["is_bar"].unique()) == {0.0, 1.0}
    assert isinstance(table.df.index, pd.RangeIndex)


def test_tsv_is_sniffed_and_na_is_missing(tmp_path):
    path = write_text(tmp_path / "data.txt", "x\ty\tlabel\n1.5\tNA\ta\n2.5\t3\tNA\nnan\t4\tb\n3.5\tnull\t\n")
    table = load_table(path)
    assert table.format == "tsv"
    assert table.columns == ["x", "y", "label"]
    assert table.df["x"].isna().tolist() == [False, False, True, False]
    assert table.df["y"].isna().tolist() == [True, False, False, True]
    assert table.df["label"].isna().tolist() == [False, True, False, True]


def test_semicolon_and_decimal_comma(tmp_path):
    path = write_text(tmp_path / "eu.csv", "a;b\n1,5;x\n-2,25;y\n3;z\n")
    table = load_table(path)
    assert table.df["a"].tolist() == [1.5, -2.25, 3.0]
    assert any("semicolon" in w for w in table.warnings)


def test_parquet_roundtrip_with_float32_and_nested_column(tmp_path, mixed_frame):
    frame = mixed_frame.assign(flux=np.array([0.1, 5.9, 3.3] * 13 + [7.7], dtype=np.float32),
                               spectrum=[[1.0, 2.0]] * 40)
    path = tmp_path / "mixed.parquet"
    frame.to_parquet(path)
    table = load_table(path)
    assert table.format == "parquet"
    assert "spectrum" not in table.columns
    assert any("spectrum" in w and "skipped" in w for w in table.warnings)
    assert {k: v for k, v in roles(table).items() if k != "flux"} == EXPECTED_ROLES
    # float32 values come back as the decimals they were written as
    assert table.df["flux"].iloc[:3].tolist() == [0.1, 5.9, 3.3]


def test_xlsx_first_sheet_with_note_about_others(tmp_path, mixed_frame):
    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        mixed_frame.to_excel(writer, sheet_name="galaxies", index=False)
        pd.DataFrame({"other": [1, 2]}).to_excel(writer, sheet_name="extra", index=False)
    table = load_table(path)
    assert table.format == "excel"
    assert table.columns == list(mixed_frame.columns)
    assert roles(table) == EXPECTED_ROLES
    np.testing.assert_allclose(table.df["mass"], mixed_frame["mass"])
    assert any("2 sheets" in w and "'galaxies'" in w for w in table.warnings)


def _astro_table():
    from astropy.table import Column, MaskedColumn
    from astropy.table import Table as AstropyTable

    n = 30
    rng = np.random.default_rng(5)
    t = AstropyTable()
    t["name"] = Column([f"gal{i:03d}".encode() for i in range(n)])
    t["mstar"] = Column(np.round(rng.normal(10, 1, n), 2).astype(np.float32), unit="solMass",
                        description="Stellar mass")
    t["sfr"] = MaskedColumn(rng.lognormal(0, 1, n), unit="solMass / yr", mask=[i % 5 == 0 for i in range(n)])
    t["barred"] = Column(np.array([True, False, True] * 10))
    t["morph"] = Column(np.array(["Sa", "Sb", "Sc"] * 10))
    return t


def test_fits_units_descriptions_masks_and_array_columns(tmp_path):
    t = _astro_table()
    t["sed"] = np.ones((30, 4))
    path = tmp_path / "cat.fits"
    t.write(path)
    table = load_table(path)
    assert table.format == "fits"
    assert table.columns == ["name", "mstar", "sfr", "barred", "morph"]
    assert any("'sed'" in w and "(4,)" in w for w in table.warnings)
    assert table.info["mstar"].unit == "solMass"
    assert table.info["mstar"].description == "Stellar mass"
    assert table.info["sfr"].unit == "solMass / yr"
    assert roles(table) == {"name": "identifier", "mstar": "numeric", "sfr": "numeric", "barred": "flag",
                            "morph": "categorical"}
    assert table.df["name"].iloc[2] == "gal002"  # bytes decoded
    assert table.df["mstar"].tolist() == [float(f"{v:.2f}") for v in t["mstar"]]
    assert table.df["sfr"].isna().sum() == 6
    assert table.df["barred"].tolist()[:3] == [1.0, 0.0, 1.0]


def test_fits_reads_first_table_hdu_and_says_so(tmp_path):
    from astropy.io import fits

    t = _astro_table()
    first = fits.table_to_hdu(t)
    second = fits.BinTableHDU.from_columns([fits.Column(name="q", format="E", array=np.ones(3))], name="EXTRA")
    path = tmp_path / "two.fits"
    fits.HDUList([fits.PrimaryHDU(), first, second]).writeto(path)
    table = load_table(path)
    assert table.n_rows == 30 and "q" not in table.columns
    assert any("2 table extensions" in w for w in table.warnings)


def test_fits_tcomm_keyword_becomes_description(tmp_path):
    from astropy.io import fits

    hdu = fits.BinTableHDU.from_columns([fits.Column(name="dist", format="D", unit="Mpc", array=np.arange(5.0)),
                                         fits.Column(name="v", format="E", array=np.arange(5.0) * 2)])
    hdu.header["TCOMM1"] = "Distance to the galaxy"
    path = tmp_path / "tcomm.fits"
    hdu.writeto(path)
    table = load_table(path)
    assert table.info["dist"].description == "Distance to the galaxy"
    assert table.info["dist"].unit == "Mpc"


def test_votable_units_descriptions_and_masks(tmp_path):
    t = _astro_table()
    path = tmp_path / "cat.vot"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t.write(path, format="votable")
    table = load_table(path)
    assert table.format == "votable"
    assert table.info["mstar"].unit == "solMass"
    assert table.info["mstar"].description == "Stellar mass"
    assert table.df["sfr"].isna().sum() == 6
    assert roles(table)["morph"] == "categorical"
    assert roles(table)["barred"] == "flag"
    assert table.df["name"].iloc[29] == "gal029"


def test_format_comes_from_content_when_the_extension_lies(tmp_path):
    t = _astro_table()
    fits_path = tmp_path / "really_fits.csv"
    t.write(fits_path, format="fits")
    table = load_table(fits_path)
    assert table.format == "fits" and table.n_rows == 30
    assert any("file name says" in w for w in table.warnings)

    csv_path = write_text(tmp_path / "no_extension", "a,b\n1,2\n3,4\n")
    assert load_table(csv_path).format == "csv"

    parquet_path = tmp_path / "table.dat"
    pd.DataFrame({"a": [1.0, 2.0]}).to_parquet(parquet_path)
    assert load_table(parquet_path).format == "parquet"


def test_gzipped_csv(tmp_path):
    path = tmp_path / "t.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("a,b\n1,x\n2,y\n")
    table = load_table(path)
    assert table.df["a"].tolist() == [1.0, 2.0]


# ----------------------------------------------------------------------------- catalogue conventions
def test_sentinels_masked_only_when_they_stand_apart(tmp_path):
    rng = np.random.default_rng(1)
    n = 300
    mag = np.round(rng.normal(20, 1.5, n), 2)
    mag[:10] = -99
    mag[10:15] = 99.99
    legit = np.round(rng.uniform(-200, 0, n))  # -99 is an ordinary value in this bulk
    legit[20:30] = -99
    mass = rng.lognormal(0, 1, n)
    mass[30:34] = 9.999e9
    path = tmp_path / "sentinels.csv"
    pd.DataFrame({"mag": mag, "legit": legit, "mass": mass}).to_csv(path, index=False)
    table = load_table(path)
    assert table.df["mag"].isna().sum() == 15
    assert sorted(table.info["mag"].sentinel_values) == [-99.0, 99.99]
    assert table.info["mag"].n_sentinel == 15
    assert table.df["mass"].isna().sum() == 4 and table.info["mass"].sentinel_values == [9.999e9]
    assert table.df["legit"].isna().sum() == 0
    assert (table.df["legit"] == -99).sum() >= 10
    assert table.info["legit"].sentinel_values == []
    assert any("'mag'" in w and "sentinel" in w for w in table.warnings)
    assert not any("'legit'" in w for w in table.warnings)


def test_sentinel_rules_directly():
    assert all(looks_like_sentinel(v) for v in (-99, -999, -9999, 99.99, 9.999e9, -32768, 1e30))
    assert not any(looks_like_sentinel(v) for v in (0, 9, -1, 100, 3.14, 98))
    positive = np.r_[np.linspace(1, 10, 50), [-99.0] * 3]
    masked, found, n = mask_sentinels(positive)
    assert found == [-99.0] and n == 3 and np.isnan(masked[-3:]).all()
    single = np.r_[np.linspace(1, 10, 50), [-99.0]]  # a single cell is not a spike
    assert mask_sentinels(single)[2] == 0
    adjacent = np.r_[np.arange(-98.0, 0.0), [-99.0] * 4]  # the bulk runs right up to it
    assert mask_sentinels(adjacent)[2] == 0


def test_limits_become_values_with_censored_flags(tmp_path):
    path = write_text(tmp_path / "limits.csv", "flux,err\n<0.3,1\n1.5,2\n> 5,3\n2.0,4\nNA,5\n<=0.1,6\n")
    table = load_table(path)
    assert table.info["flux"].role == "numeric"
    assert table.df["flux"].dtype == np.float64
    np.testing.assert_array_equal(table.df["flux"].to_numpy(), [0.3, 1.5, 5.0, 2.0, np.nan, 0.1])
    assert table.censored["flux"].tolist() == [-1, 0, 1, 0, 0, -1]
    assert table.info["flux"].n_censored == 3
    assert "err" not in table.censored


def test_thousands_separators_are_read_as_numbers_only_when_certain(tmp_path):
    path = write_text(tmp_path / "t.csv", 'flux,ambiguous,label\n"4,767.2","1,234",a\n980.5,17,b\n"12,001.0","2,500",c\n,"3,001",d\n')
    table = load_table(path)
    assert table.info["flux"].role == "numeric"
    np.testing.assert_array_equal(table.df["flux"].to_numpy(), [4767.2, 980.5, 12001.0, np.nan])
    assert any("thousands separators" in n for n in table.info["flux"].notes)
    assert table.info["ambiguous"].role != "numeric"  # '1,234' beside '17' may be a decimal comma: left as text
    assert table.df["ambiguous"].iloc[0] == "1,234"


def test_text_with_a_stray_less_than_stays_text(tmp_path):
    path = write_text(tmp_path / "t.csv", "comment,v\n<b>bold</b>,1\nplain,2\n<0.5,3\n")
    table = load_table(path)
    assert table.info["comment"].role != "numeric"
    assert "comment" not in table.censored


def test_infinities_are_missing(tmp_path):
    path = write_text(tmp_path / "inf.csv", "x,y\n1,inf\n2,-inf\n3,4\n4,Infinity\n")
    table = load_table(path)
    assert table.df["y"].isna().tolist() == [True, True, False, True]
    assert any("infinite" in note for note in table.info["y"].notes)


def test_duplicate_and_blank_names_made_unique(tmp_path):
    path = write_text(tmp_path / "names.csv", "a,a,,b, ,a_2\n1,2,3,4,5,6\n7,8,9,10,11,12\n")
    table = load_table(path)
    assert table.columns == ["a", "a_3", "column_3", "b", "column_5", "a_2"]
    assert table.df["a_3"].tolist() == [2.0, 8.0]
    assert table.df["a_2"].tolist() == [6.0, 12.0]
    assert table.info["a_3"].original_name == "a"
    assert any("duplicate" in w and "'a_3'" in w for w in table.warnings)
    assert sum("blank name" in w for w in table.warnings) == 2


def test_hostile_column_names_are_plain_names(tmp_path):
    long_name = "星" * 2500 + "é" * 2500
    names = ["__import__('os')", "<script>alert(1)</script>", long_name, "${HOME}", "'; DROP TABLE t; --"]
    frame = pd.DataFrame({name: [1.0 * i, 2.0 * i, 3.0 * i] for i, name in enumerate(names)})
    path = tmp_path / "hostile.csv"
    frame.to_csv(path, index=False, encoding="utf-8")
    table = load_table(path)
    assert table.columns == names
    assert len(table.columns[2]) == 5000
    assert table.df["__import__('os')"].tolist() == [0.0, 0.0, 0.0]
    assert table.df["<script>alert(1)</script>"].tolist() == [1.0, 2.0, 3.0]


def test_row_number_column_dropped_but_named_index_kept(tmp_path):
    frame = pd.DataFrame({"x": [0.5, 1.5, 2.5], "y": [1.0, 2.0, 3.0]})
    frame.to_csv(tmp_path / "with_index.csv")  # pandas writes a blank-named 0..N-1 column
    table = load_table(tmp_path / "with_index.csv")
    assert table.columns == ["x", "y"]
    assert any("row numbers 0..2" in w for w in table.warnings)

    frame.index = [10, 20, 30]
    frame.to_csv(tmp_path / "labels.csv")  # not row numbers: kept
    assert load_table(tmp_path / "labels.csv").columns == ["column_1", "x", "y"]


def test_comment_lines_skipped(tmp_path):
    path = write_text(tmp_path / "commented.csv", "# exported by a pipeline\n# units: mag\nu,g\n18.2,17.9\n19.0,18.5\n")
    table = load_table(path)
    assert table.columns == ["u", "g"] and table.n_rows == 2


def test_role_edge_cases(tmp_path):
    n = 60
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({
        "year": rng.choice([2007, 2008, 2009], n),          # few integers: numeric
        "binaryflag": rng.choice([0, 1, 2, 3], n),          # not 0/1: numeric
        "detected": rng.choice(["yes", "no"], n),           # yes/no words: flag
        "constant_one": np.ones(n),                         # a constant is not a flag
        "code": [f"{i:05d}" for i in range(n)],             # leading zeros kept
        "species": rng.choice(["Adelie", "Gentoo"], n),     # two string levels: categorical
    })
    path = tmp_path / "edge.csv"
    frame.to_csv(path, index=False)
    table = load_table(path)
    assert roles(table) == {"year": "numeric", "binaryflag": "numeric", "detected": "flag",
                            "constant_one": "numeric", "code": "identifier", "species": "categorical"}
    assert table.df["code"].iloc[7] == "00007"
    assert set(table.df["detected"].unique()) == {0.0, 1.0}


def test_mostly_numeric_text_column_becomes_numeric_with_a_note(tmp_path):
    values = [str(v) for v in range(1, 60)] + ["n.d."]
    path = tmp_path / "junk.csv"
    pd.DataFrame({"v": values, "w": range(60)}).to_csv(path, index=False)
    table = load_table(path)
    assert table.info["v"].role == "numeric"
    assert table.df["v"].isna().sum() == 1
    assert any("non-numeric" in w and "n.d." in w for w in table.warnings)


def test_from_dataframe_uses_the_same_cleaning():
    frame = pd.DataFrame({"m": [20.1, 19.5, -99.0, 21.0, -99.0, 18.2, 19.9], "f": ["<1", "2", "3", "4", "5", "6", "7"]})
    table = Table.from_dataframe(frame)
    assert table.df["m"].isna().sum() == 2
    assert table.censored["f"].tolist() == [-1, 0, 0, 0, 0, 0, 0]
    assert frame["m"].iloc[2] == -99.0  # the caller's frame is untouched


# ----------------------------------------------------------------------------- errors
def _corrupt_xlsx(path: Path) -> None:
    path.write_bytes(b"PK\x03\x04" + os.urandom(200))


def _image_fits(path: Path) -> None:
    from astropy.io import fits

    fits.PrimaryHDU(np.zeros((4, 4))).writeto(path)


ERROR_CASES = {
    "missing": (lambda p: None, "missing.csv", "no such file"),
    "empty": (lambda p: p.write_bytes(b""), "empty.csv", "empty"),
    "blank_lines": (lambda p: p.write_text("\n \n\n"), "blank.csv", "empty"),
    "header_only": (lambda p: p.write_text("a,b,c\n"), "header.csv", "header but no data rows"),
    "headerless": (lambda p: p.write_text("1,2,3\n4,5,6\n"), "nohead.csv",
                   "looks headerless: the first line holds only numbers; add a header row"),
    "ragged": (lambda p: p.write_text("a,b\n1,2\n3,4,5\n"), "ragged.csv", "line 3 has 3 fields"),
    "unknown_binary": (lambda p: p.write_bytes(bytes(range(256)) * 4), "blob.bin", "unknown format"),
    "corrupt_fits": (lambda p: p.write_bytes(b"SIMPLE  =                    T" + b"\x00garbage" * 50),
                     "bad.fits", "FITS"),
    "fits_without_table": (_image_fits, "image.fits", "no table extension"),
    "corrupt_parquet": (lambda p: p.write_bytes(b"PAR1" + b"\x07" * 100), "bad.parquet", "Parquet"),
    "corrupt_xlsx": (_corrupt_xlsx, "bad.xlsx", "corrupt"),
    "legacy_xls": (lambda p: p.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100), "old.xls", ".xls"),
    "plain_xml": (lambda p: p.write_text("<?xml version='1.0'?><root/>"), "x.xml", "not a VOTable"),
    "broken_votable": (lambda p: p.write_text("<?xml version='1.0'?><VOTABLE><RESOURCE><TABLE><FIELD"),
                       "bad.vot", "VOTable"),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_bad_input_gives_one_line_table_load_error(tmp_path, case):
    make, filename, expected = ERROR_CASES[case]
    path = tmp_path / filename
    make(path)
    with pytest.raises(TableLoadError) as caught:
        load_table(path)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400
    assert message.startswith(f"Cannot load '{filename}': ")
    assert expected in message


def test_directory_is_an_error(tmp_path):
    with pytest.raises(TableLoadError, match="directory"):
        load_table(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file_is_an_error(tmp_path):
    path = write_text(tmp_path / "secret.csv", "a\n1\n")
    path.chmod(0)
    with pytest.raises(TableLoadError, match="permission denied"):
        load_table(path)


# ----------------------------------------------------------------------------- input untouched
def test_input_files_are_never_modified(tmp_path, mixed_frame):
    paths = []
    mixed_frame.to_csv(tmp_path / "a.csv", index=False)
    paths.append(tmp_path / "a.csv")
    mixed_frame.to_parquet(tmp_path / "a.parquet")
    paths.append(tmp_path / "a.parquet")
    mixed_frame.to_excel(tmp_path / "a.xlsx", index=False)
    paths.append(tmp_path / "a.xlsx")
    _astro_table().write(tmp_path / "a.fits")
    paths.append(tmp_path / "a.fits")
    before = {p: fingerprint(p) for p in paths}
    for p in paths:
        p.chmod(0o444)  # any attempt to open for writing would fail loudly
    time.sleep(0.01)
    for p in paths:
        load_table(p)
    assert {p: fingerprint(p) for p in paths} == before


# ----------------------------------------------------------------------------- real datasets
@pytest.mark.realdata
def test_phangs_fits():
    path = shared_dataset("phangs_galaxies/phangs_sample_table_v1p6.fits")
    before = fingerprint(path)
    table = load_table(path)
    assert fingerprint(path) == before
    assert table.format == "fits"
    assert table.n_rows == 118 and len(table.columns) == 179
    info = table.info
    assert info["props_mstar"].role == "numeric" and info["props_mstar"].unit == "solMass"
    assert info["props_sfr"].unit == "solMass / yr"
    assert table.df["props_mstar"].notna().sum() == 116
    assert info["name"].role == "identifier" and info["pgc"].role == "identifier"
    assert table.df["pgc"].dtype == np.int64
    assert info["morph_t"].role == "numeric"
    assert info["morph_bar_flag"].role == "flag"
    assert info["agn_veron_y_n"].role == "flag"  # '0'/'1' strings with a '?'
    assert info["dist_label"].role == "categorical"
    assert info["survey_alma_status"].role == "categorical"
    assert info["morph_comments"].role == "text"
    assert info["orient_ra_unc"].role == "numeric"  # constant 1 arcsec, not a flag
    assert table.df["morph_t"].iloc[0] == round(table.df["morph_t"].iloc[0], 6)  # float32 digits as written
    assert table.df["name"].map(type).eq(str).all()


@pytest.mark.realdata
def test_exoplanet_catalogue():
    table = load_table(shared_dataset("exoplanets/open_exoplanet_catalogue.csv"))
    assert table.n_rows == 5414 and len(table.columns) == 25
    r = roles(table)
    assert r["name"] == "identifier"
    assert r["discoveryyear"] == "numeric" and r["binaryflag"] == "numeric"
    assert r["discoverymethod"] == "categorical" and r["list"] == "categorical"
    for column in ("mass", "radius", "period", "temperature", "hoststar_metallicity"):
        assert r[column] == "numeric"
    assert table.df["list"].str.contains("Confirmed").sum() > 3000


@pytest.mark.realdata
def test_sdss_emission_lines():
    table = load_table(shared_dataset("sdss_bpt/emission_lines.csv"))
    assert table.n_rows == 15000
    assert roles(table) == {c: "numeric" for c in table.columns}
    assert table.columns[0] == "log.AGN.NII.AGN.H_alpha..10."


@pytest.mark.realdata
def test_iris_row_numbers_dropped():
    table = load_table(shared_dataset("small/iris.csv"))
    assert table.columns == ["Sepal.Length", "Sepal.Width", "Petal.Length", "Petal.Width", "Species"]
    assert table.n_rows == 150
    assert roles(table)["Species"] == "categorical"
    assert any("row numbers 1..150" in w for w in table.warnings)


@pytest.mark.realdata
def test_penguins_na_and_roles():
    table = load_table(shared_dataset("small/penguins.csv"))
    assert table.n_rows == 344
    r = roles(table)
    assert r["species"] == r["island"] == r["sex"] == "categorical"
    assert r["year"] == "numeric" and r["body_mass_g"] == "numeric"
    assert table.df["bill_length_mm"].isna().sum() == 2
    assert table.df["sex"].isna().sum() == 11


@pytest.mark.realdata
@pytest.mark.parametrize("name, n_rows, columns", [("small/starsCYG.csv", 47, ["log.Te", "log.light"]),
                                                   ("small/galaxies.csv", 82, ["x"])])
def test_small_r_tables(name, n_rows, columns):
    table = load_table(shared_dataset(name))
    assert table.n_rows == n_rows and table.columns == columns
    assert table.numeric_columns == columns
