"""Real tables with published results: where they live, how to read them, and named rules that turn a
published classification into a truth label per row.

Eval cases refer to the functions here by name (``rule = "sdss_sf_vs_agn"``, ``prepare =
"exoplanets_hot_jupiters"``); nothing is ever evaluated from a string. A group rule returns an int label
per row (-1 = left out of scoring, e.g. composites between two classes); an outlier rule returns the
0-based row positions that should be flagged; a preparer returns a derived table (a subset of rows or
columns) that the eval writes as CSV and hands to the explorer.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

DATASETS_ENV = "SERENDIP_DATASETS"

GROUP_RULES: dict[str, Callable[[pd.DataFrame], np.ndarray]] = {}
OUTLIER_RULES: dict[str, Callable[[pd.DataFrame], np.ndarray]] = {}
PREPARERS: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {}


def datasets_root() -> Path:
    """The shared datasets folder: ``$SERENDIP_DATASETS``, else ``../shared/datasets`` from the project root."""
    env = os.environ.get(DATASETS_ENV)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def dataset_path(relative: str) -> Path:
    """Absolute path of a file under the shared datasets folder (it may not exist)."""
    return datasets_root() / relative


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a table file as raw values (strings such as '<0.3' kept; row order = file order).

    CSV/TSV are read with pandas' defaults (``NA`` and blanks become missing); FITS and VOTable through
    astropy, with byte strings decoded.
    """
    path = Path(path)
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix.lower() == ".gz" else path.suffix.lower()
    if suffix in (".fits", ".fit", ".fits.gz", ".vot", ".xml"):
        from astropy.table import Table as AstropyTable

        table = AstropyTable.read(path, format="votable" if suffix in (".vot", ".xml") else "fits")
        names = [n for n in table.colnames if table[n].ndim <= 1]
        frame = table[names].to_pandas()
        for name in frame.columns:
            if frame[name].dtype == object:
                frame[name] = frame[name].map(lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
        return frame.reset_index(drop=True)
    if suffix in (".tsv", ".tab"):
        return pd.read_csv(path, sep="\t")
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    return pd.read_csv(path)


def group_rule(func: Callable[[pd.DataFrame], np.ndarray]) -> Callable[[pd.DataFrame], np.ndarray]:
    """Register a rule that labels each row with its published class (-1 = not scored)."""
    GROUP_RULES[func.__name__] = func
    return func


def outlier_rule(func: Callable[[pd.DataFrame], np.ndarray]) -> Callable[[pd.DataFrame], np.ndarray]:
    """Register a rule that returns the row positions of published outliers."""
    OUTLIER_RULES[func.__name__] = func
    return func


def preparer(func: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Register a function that derives the table an eval case explores from a source table."""
    PREPARERS[func.__name__] = func
    return func


def _column(frame: pd.DataFrame, position: int) -> np.ndarray:
    return pd.to_numeric(frame.iloc[:, position], errors="coerce").to_numpy(dtype=float)


# ---------------------------------------------------------------------- SDSS emission-line galaxies
def bpt_lines(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x = log [NII]/Hα, w = log EW(Hα), y = log [OIII]/Hβ (the file's columns in order)."""
    return _column(frame, 0), _column(frame, 1), _column(frame, 2)


def bpt_classes(frame: pd.DataFrame) -> np.ndarray:
    """0 star-forming (below Kauffmann et al. 2003), 1 composite, 2 AGN (above Kewley et al. 2001); -1 missing."""
    x, _, y = bpt_lines(frame)
    with np.errstate(divide="ignore", invalid="ignore"):
        kauffmann = np.where(x < 0.05, 0.61 / (x - 0.05) + 1.3, -np.inf)
        kewley = np.where(x < 0.47, 0.61 / (x - 0.47) + 1.19, -np.inf)
    star_forming = (x < 0.05) & (y < kauffmann)
    agn = ~star_forming & ((x >= 0.47) | (y > kewley))
    labels = np.where(star_forming, 0, np.where(agn, 2, 1))
    return np.where(np.isfinite(x) & np.isfinite(y), labels, -1)


@group_rule
def sdss_bpt_classes(frame: pd.DataFrame) -> np.ndarray:
    """Kauffmann/Kewley classes: 0 star-forming, 1 composite, 2 AGN."""
    return bpt_classes(frame)


@group_rule
def sdss_sf_vs_agn(frame: pd.DataFrame) -> np.ndarray:
    """The two BPT branches: 0 star-forming, 1 AGN; composites (between the lines) are not scored."""
    classes = bpt_classes(frame)
    return np.select([classes == 0, classes == 2], [0, 1], default=-1)


@group_rule
def sdss_whan_classes(frame: pd.DataFrame) -> np.ndarray:
    """WHAN classes (Cid Fernandes et al. 2011): 0 star-forming, 1 strong AGN, 2 weak AGN, 3 retired; -1 other."""
    x, w, _ = bpt_lines(frame)
    ew = 10.0 ** w
    return np.select([ew < 3, (x < -0.4) & (ew > 3), (x > -0.4) & (ew > 6), (x > -0.4) & (ew > 3) & (ew <= 6)],
                     [3, 0, 1, 2], default=-1)


# ---------------------------------------------------------------------- classic small tables
@group_rule
def penguin_species(frame: pd.DataFrame) -> np.ndarray:
    """The palmerpenguins species (Adelie, Chinstrap, Gentoo) as 0, 1, 2."""
    return _categories(frame["species"])


@group_rule
def iris_species(frame: pd.DataFrame) -> np.ndarray:
    """Iris species (setosa, versicolor, virginica) as 0, 1, 2."""
    return _categories(frame["Species"])


@group_rule
def iris_setosa(frame: pd.DataFrame) -> np.ndarray:
    """1 for setosa, 0 for the other two species."""
    return (frame["Species"].astype(str).to_numpy() == "setosa").astype(int)


@group_rule
def corona_borealis_velocity_groups(frame: pd.DataFrame) -> np.ndarray:
    """Roeder's (1990) three velocity groups, split at the two empty gaps (13,000 and 29,000 km/s).

    The cuts give exactly the members of a 1-D Gaussian mixture with k=3 (means ≈ 9.7k, 21.4k, 33.0k km/s).
    """
    v = _column(frame, frame.shape[1] - 1)
    labels = np.digitize(v, [13_000.0, 29_000.0])
    return np.where(np.isfinite(v), labels, -1)


@outlier_rule
def cyg_ob1_giants(frame: pd.DataFrame) -> np.ndarray:
    """The four red giants of CYG OB1 (Rousseeuw & Leroy 1987): the only stars with log Te < 3.6."""
    return np.flatnonzero(pd.to_numeric(frame["log.Te"], errors="coerce").to_numpy() < 3.6)


# ---------------------------------------------------------------------- PHANGS
@outlier_rule
def phangs_quenched(frame: pd.DataFrame) -> np.ndarray:
    """Galaxies more than 1 dex below the star-forming main sequence (``props_deltams`` < -1)."""
    delta = pd.to_numeric(frame["props_deltams"], errors="coerce").to_numpy(dtype=float)
    return np.flatnonzero(delta < -1)


# ---------------------------------------------------------------------- exoplanets
EXOPLANET_COLUMNS = ["name", "mass", "radius", "period", "semimajoraxis", "eccentricity", "temperature",
                     "hoststar_mass", "hoststar_metallicity", "hoststar_temperature", "discoveryyear"]


def confirmed_planets(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows whose ``list`` says 'Confirmed' (not controversial, retracted or Solar System)."""
    return frame[frame["list"].astype(str).str.contains("Confirmed", regex=False).to_numpy()]


@preparer
def exoplanets_small_planets(frame: pd.DataFrame) -> pd.DataFrame:
    """Confirmed planets below 0.1 Jupiter masses with a measured mass and radius."""
    c = confirmed_planets(frame)
    keep = (c["mass"] < 0.1) & c["radius"].notna()
    return c.loc[keep, EXOPLANET_COLUMNS].reset_index(drop=True)


@preparer
def exoplanets_hot_jupiters(frame: pd.DataFrame) -> pd.DataFrame:
    """Confirmed giants of 0.3–13 Jupiter masses with a measured radius and temperature."""
    c = confirmed_planets(frame)
    keep = c["mass"].between(0.3, 13.0) & c["radius"].notna() & c["temperature"].notna()
    return c.loc[keep, EXOPLANET_COLUMNS].reset_index(drop=True)


@preparer
def exoplanets_giant_orbits(frame: pd.DataFrame) -> pd.DataFrame:
    """Confirmed giants (mass > 0.3 Jupiter masses) with a period: name, mass and orbit columns only."""
    c = confirmed_planets(frame)
    keep = (c["mass"] > 0.3) & (c["period"] > 0)
    return c.loc[keep, ["name", "mass", "period", "semimajoraxis", "eccentricity"]].reset_index(drop=True)


@group_rule
def exoplanet_giant_period_modes(frame: pd.DataFrame) -> np.ndarray:
    """Hot-Jupiter pile-up (log10 P/d < 1) as 0, the long-period peak (log10 P/d > 2) as 1; the valley is not scored."""
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p = np.log10(pd.to_numeric(frame["period"], errors="coerce").to_numpy(dtype=float))
    return np.select([log_p < 1.0, log_p > 2.0], [0, 1], default=-1)


def _categories(values: pd.Series) -> np.ndarray:
    """Codes of a categorical column in order of first appearance (-1 for missing)."""
    codes, _ = pd.factorize(values)
    return np.asarray(codes, dtype=int)


# ---------------------------------------------------------------------- group finding on real catalogues
@group_rule
def pleiades_cg18_member(frame: pd.DataFrame) -> np.ndarray:
    """Cantat-Gaudin et al. (2018) Pleiades members (probability ≥ 0.5) as 1, field stars as 0."""
    return pd.to_numeric(frame["cg18_member"], errors="coerce").fillna(0).to_numpy(dtype=int)


def _galaxyzoo_u_minus_r(frame: pd.DataFrame) -> np.ndarray:
    """u − r for rows whose magnitudes are real (not 0 and not −9999 sentinels), NaN otherwise."""
    u = pd.to_numeric(frame["mag_u"], errors="coerce").to_numpy(dtype=float)
    r = pd.to_numeric(frame["mag_r"], errors="coerce").to_numpy(dtype=float)
    ok = (u > 5) & (u < 40) & (r > 5) & (r < 40)
    return np.where(ok, u - r, np.nan)


@group_rule
def galaxyzoo_red_blue(frame: pd.DataFrame) -> np.ndarray:
    """Red sequence (1) / blue cloud (0): a seeded 2-component Gaussian mixture on u − r (peaks ≈ 1.83 and
    2.81); rows without valid magnitudes are not scored."""
    from sklearn.mixture import GaussianMixture

    colour = _galaxyzoo_u_minus_r(frame)
    ok = np.isfinite(colour)
    gmm = GaussianMixture(2, random_state=0, n_init=3).fit(colour[ok, None])
    red = int(np.argmax(gmm.means_[:, 0]))
    labels = np.full(len(frame), -1)
    labels[ok] = (gmm.predict(colour[ok, None]) == red).astype(int)
    return labels


@group_rule
def sdss_dr14_classes(frame: pd.DataFrame) -> np.ndarray:
    """Spectroscopic classes GALAXY / STAR / QSO as 0 / 1 / 2."""
    mapping = {"GALAXY": 0, "STAR": 1, "QSO": 2}
    return frame["class"].astype(str).str.strip().str.upper().map(mapping).fillna(-1).to_numpy(dtype=int)


@group_rule
def rrlyrae_types(frame: pd.DataFrame) -> np.ndarray:
    """RR Lyrae pulsation types (Sesar et al. 2010): ab as 0, c as 1."""
    kind = frame["type"].astype(str).str.strip().str.lower()
    return np.select([kind == "ab", kind == "c"], [0, 1], default=-1)


@group_rule
def gaia_white_dwarfs(frame: pd.DataFrame) -> np.ndarray:
    """White dwarfs (1): more than 4 magnitudes below the main sequence M_G ≈ 3.0 (BP−RP) + 2.8 in
    absolute magnitude M_G = G + 5 log10(parallax / 100); other stars 0; rows without values not scored."""
    g = pd.to_numeric(frame["phot_g_mean_mag"], errors="coerce").to_numpy(dtype=float)
    plx = pd.to_numeric(frame["parallax"], errors="coerce").to_numpy(dtype=float)
    colour = pd.to_numeric(frame["bp_rp"], errors="coerce").to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        absolute = g + 5 * np.log10(plx / 100)
    ok = np.isfinite(absolute) & np.isfinite(colour)
    wd = absolute > 3.0 * colour + 2.8 + 4.0
    return np.where(ok, wd.astype(int), -1)


@group_rule
def m13_horizontal_branch(frame: pd.DataFrame) -> np.ndarray:
    """Blue horizontal-branch stars of M13 (1): g, r errors < 0.05, 14.5 < g < 16, g − r < 0.25; other
    well-measured stars 0; stars with poor or missing g, r not scored."""
    def col(name: str) -> np.ndarray:
        v = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
        return np.where(v >= 99.0, np.nan, v)

    g, r = col("g"), col("r")
    ge, re_ = pd.to_numeric(frame["gError"], errors="coerce").to_numpy(), pd.to_numeric(frame["rError"],
                                                                                       errors="coerce").to_numpy()
    good = np.isfinite(g) & np.isfinite(r) & (ge < 0.05) & (re_ < 0.05)
    hb = good & (g > 14.5) & (g < 16.0) & (g - r < 0.25)
    return np.where(good, hb.astype(int), -1)
