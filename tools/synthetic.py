"""Seeded synthetic tables with planted structure, and the truth about each.

Every generator returns ``(frame, truth)``. ``truth`` holds what an honest explorer should report:
``trends`` as (column, column, sign), ``groups`` as a label per row, ``outliers`` as row positions,
``data_quality`` as implicated columns, and ``negative_controls`` as columns that relate to nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def trends_table(n: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """A linear trend, a monotonic non-linear trend, a negative trend and two unrelated columns."""
    r = _rng(seed)
    a = r.normal(size=n)
    b = 0.8 * a + r.normal(scale=0.6, size=n)
    c = np.exp(1.2 * r.normal(size=n))
    d = np.log(c) ** 3 * -1 + r.normal(scale=1.0, size=n)  # monotonic decreasing in c
    e = r.standard_t(3, size=n)
    f = r.lognormal(size=n)
    df = pd.DataFrame({"a": a, "b": b, "c": c, "d": d, "noise1": e, "noise2": f})
    truth = {"trends": [("a", "b", 1), ("c", "d", -1)], "negative_controls": ["noise1", "noise2"]}
    return df, truth


def groups_table(n: int = 1500, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Three well-separated Gaussian groups in four features."""
    r = _rng(seed)
    labels = r.integers(0, 3, size=n)
    centers = np.array([[0, 0, 0, 0], [4, 4, 0, -2], [-4, 2, 4, 2]], dtype=float)
    X = centers[labels] + r.normal(size=(n, 4))
    df = pd.DataFrame(X, columns=["f1", "f2", "f3", "f4"])
    return df, {"groups": labels}


def hidden_groups_table(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Groups visible only after a dominant trend (a 'luminosity' driving every column) is removed."""
    r = _rng(seed)
    lum = r.normal(scale=3.0, size=n)
    labels = r.integers(0, 3, size=n)
    offsets = np.array([[0.0, 0.0, 0.0, 0.0], [1.6, -1.6, 1.2, 0.0], [-1.6, 0.0, -1.2, 1.6]])
    slopes = np.array([1.0, 0.9, 1.1, 0.8])
    X = lum[:, None] * slopes[None, :] + offsets[labels] + r.normal(scale=0.35, size=(n, 4))
    df = pd.DataFrame(X, columns=["m1", "m2", "m3", "m4"])
    df.insert(0, "luminosity", lum + r.normal(scale=0.05, size=n))
    return df, {"groups": labels, "dominant": "luminosity"}


def sequence_groups_table(n: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Groups strung along a sequence: two dense clumps on one curved relation."""
    r = _rng(seed)
    labels = r.integers(0, 2, size=n)
    t = np.where(labels == 0, r.normal(-1.5, 0.35, n), r.normal(1.5, 0.35, n))
    x = t + r.normal(scale=0.1, size=n)
    y = 0.5 * t**2 + t + r.normal(scale=0.1, size=n)
    z = -t + r.normal(scale=0.2, size=n)
    return pd.DataFrame({"x": x, "y": y, "z": z}), {"groups": labels}


def outliers_table(n: int = 2000, seed: int = 0, fraction: float = 0.02) -> tuple[pd.DataFrame, dict]:
    """Global outliers (far in several features) plus off-relation outliers (normal marginals, off y≈2x)."""
    r = _rng(seed)
    X = r.normal(size=(n, 4))
    x = r.normal(size=n)
    y = 2 * x + r.normal(scale=0.1, size=n)
    k = int(fraction * n)
    rows = r.choice(n, size=2 * k, replace=False)
    glob, off = rows[:k], rows[k:]
    X[glob] += r.choice([-1, 1], size=(k, 4)) * r.uniform(5, 8, size=(k, 4))
    y[off] = -2 * x[off] + r.choice([-1, 1], size=k) * 0.8  # within y's range, far off the relation
    df = pd.DataFrame(X, columns=["p", "q", "r", "s"])
    df["x"], df["y"] = x, y
    return df, {"outliers": np.sort(glob), "off_relation_outliers": np.sort(off), "trends": [("x", "y", 1)]}


def catalogue_conventions_table(n: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Upper limits written '<x', -99 sentinels and NA cells in a correlated pair."""
    r = _rng(seed)
    a = r.normal(10, 1, size=n)
    b = a * 0.5 + r.normal(scale=0.3, size=n)
    flux = np.round(np.exp(a - 10 + r.normal(scale=0.2, size=n)), 3)
    cells = flux.astype(object)
    lim = r.choice(n, size=n // 10, replace=False)
    for i in lim:
        cells[i] = f"<{max(flux[i], 0.05):.2f}"
    b_cells = b.copy()
    sent = r.choice(n, size=n // 20, replace=False)
    b_cells[sent] = -99.0
    df = pd.DataFrame({"a": a, "b": b_cells, "flux": cells})
    df.loc[r.choice(n, size=n // 25, replace=False), "a"] = np.nan
    return df, {"trends": [("a", "b", 1), ("a", "flux", 1)], "sentinel_rows": np.sort(sent),
                "limit_rows": np.sort(lim), "data_quality": ["b"]}


def systematic_table(n: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """One field's calibration offset: groups that coincide with a categorical 'field' column."""
    r = _rng(seed)
    field = r.choice(["F1", "F2", "F3"], size=n)
    X = r.normal(size=(n, 3))
    offset = np.where(field == "F3", 4.0, 0.0)
    X[:, 0] += offset
    X[:, 1] += 0.8 * offset
    df = pd.DataFrame(X, columns=["mag_g", "mag_r", "size"])
    df.insert(0, "field", field)
    return df, {"data_quality": ["field"], "groups": (field == "F3").astype(int)}


def simpson_table(n: int = 1500, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Simpson's paradox: negative overall, positive within each of three types."""
    r = _rng(seed)
    kind = r.integers(0, 3, size=n)
    x = r.normal(size=n) + 3 * kind
    y = 0.8 * (x - 3 * kind) - 3 * kind + r.normal(scale=0.5, size=n)
    df = pd.DataFrame({"x": x, "y": y, "type": np.array(["A", "B", "C"])[kind]})
    return df, {"trends": [("x", "y", -1)], "within_group_sign": 1, "groups": kind}


def null_table(n: int = 500, n_columns: int = 60, seed: int = 0, missing: float = 0.05) -> tuple[pd.DataFrame, dict]:
    """Independent skewed, heavy-tailed columns with missing values: nothing to find."""
    r = _rng(seed)
    cols = {}
    for j in range(n_columns):
        kind = j % 3
        if kind == 0:
            v = r.lognormal(sigma=1.0, size=n)
        elif kind == 1:
            v = r.standard_t(2, size=n)
        else:
            v = r.pareto(2.5, size=n)
        v[r.random(n) < missing] = np.nan
        cols[f"n{j + 1}"] = v
    return pd.DataFrame(cols), {"negative_controls": list(cols), "null": True}


def bimodal_colour_table(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Two overlapping populations visible in a colour that must be derived from two magnitudes.

    A red population (40%) and a blue one: g − r ~ N(0.95, 0.12) vs N(0.55, 0.13); the magnitudes
    themselves are dominated by brightness (r spread 1 mag), so the groups show only in the colour.
    """
    r = _rng(seed)
    red = (r.random(n) < 0.4).astype(int)
    mag_r = r.normal(17.0, 1.0, size=n) + 0.3 * red
    colour = np.where(red == 1, r.normal(0.95, 0.12, size=n), r.normal(0.55, 0.13, size=n))
    mag_g = mag_r + colour
    size = 10 ** (0.8 - 0.2 * (mag_r - 17) + 0.1 * red + r.normal(scale=0.15, size=n))
    redshift = np.abs(0.08 + 0.03 * (mag_r - 17) + r.normal(scale=0.02, size=n))
    df = pd.DataFrame({"mag_g": np.round(mag_g, 4), "mag_r": np.round(mag_r, 4), "size": size,
                       "redshift": np.round(redshift, 5)})
    return df, {"groups": red}


def subspace_clump_table(n: int = 3000, seed: int = 0, fraction: float = 0.03) -> tuple[pd.DataFrame, dict]:
    """A tight clump of 3% of the rows in two of nine columns (a co-moving group in proper motion).

    The field follows broad, correlated distributions; the clump rows are ordinary in the other seven
    columns. Clustering all nine standardised columns dilutes the clump to nothing.
    """
    r = _rng(seed)
    member = np.zeros(n, dtype=int)
    member[r.choice(n, int(round(fraction * n)), replace=False)] = 1
    latent = r.normal(size=n)
    pm_x = r.normal(0, 8, size=n) + 2 * latent
    pm_y = r.normal(-3, 10, size=n) + 0.5 * pm_x
    pm_x[member == 1] = r.normal(14.0, 0.6, size=member.sum())
    pm_y[member == 1] = r.normal(-20.0, 0.6, size=member.sum())
    cols = {"pm_x": pm_x, "pm_y": pm_y, "mag": 14 + 2 * latent + r.normal(scale=1.0, size=n),
            "colour": 1.0 + 0.3 * latent + r.normal(scale=0.3, size=n)}
    for j in range(5):
        cols[f"f{j + 1}"] = r.normal(size=n) + (0.6 * latent if j < 2 else 0.0)
    return pd.DataFrame(cols), {"groups": member}


def few_column_classes_table(n: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Three classes that separate in two of thirteen columns (period and colour); the other eleven columns
    are independent of the classes and of each other."""
    r = _rng(seed)
    cls = r.choice(3, size=n, p=[0.5, 0.3, 0.2])
    log_period = np.array([-0.25, -0.5, 0.1])[cls] + r.normal(scale=0.07, size=n)
    colour = np.array([0.3, 0.15, 0.6])[cls] + r.normal(scale=0.06, size=n)
    cols = {"log_period": log_period, "colour": colour}
    for j in range(11):
        cols[f"x{j + 1}"] = r.normal(size=n) if j % 2 else r.gamma(3.0, size=n)
    return pd.DataFrame(cols), {"groups": cls}


def curve_groups_table(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Six groups strung along a curved sequence, plus two noise columns."""
    r = _rng(seed)
    labels = r.integers(0, 6, size=n)
    t = np.linspace(-2.5, 2.5, 6)[labels] + r.normal(scale=0.22, size=n)
    x = t + r.normal(scale=0.08, size=n)
    y = np.sin(t) * 2.0 + 0.3 * t ** 2 + r.normal(scale=0.08, size=n)
    df = pd.DataFrame({"x": x, "y": y, "noise1": r.normal(size=n), "noise2": r.exponential(size=n)})
    return df, {"groups": labels, "negative_controls": ["noise1", "noise2"]}


def example_galaxy_regions(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """The demo table: 150-pc regions of six nearby galaxies, with everything a real catalogue has.

    A dominant size/luminosity trend runs through the masses and star formation; beneath it lie three
    populations (star-forming, quiescent, starburst); one galaxy has a calibration offset in its
    metallicity; a few regions sit far off the gas–star-formation relation; dust has -99 sentinels and
    H-alpha equivalent widths include upper limits.
    """
    r = _rng(seed)
    galaxies = np.array(["NGC0628", "NGC1300", "NGC3351", "NGC4254", "NGC4321", "NGC5068"])
    gal = r.choice(galaxies, size=n)
    pop = r.choice(3, size=n, p=[0.6, 0.25, 0.15])
    size = r.normal(size=n)
    log_mstar = 7.0 + 0.9 * size + r.normal(scale=0.12, size=n)
    log_gas = 6.6 + 0.8 * size + np.array([0.0, -0.55, 0.45])[pop] + r.normal(scale=0.12, size=n)
    log_sfr = -2.6 + 0.95 * size + np.array([0.0, -0.9, 0.8])[pop] + r.normal(scale=0.12, size=n)
    metal = 8.45 + 0.08 * size + np.array([0.0, 0.1, -0.06])[pop] + r.normal(scale=0.03, size=n)
    metal = metal + np.where(gal == "NGC4254", 0.25, 0.0)  # a calibration offset in one galaxy
    ew = 10 ** (1.1 + np.array([0.0, -0.9, 0.6])[pop] + r.normal(scale=0.15, size=n))
    dust = np.clip(r.gamma(2.0, 0.4, size=n) + 0.2 * size, 0.0, None)
    k = max(1, int(0.01 * n))
    off = r.choice(np.flatnonzero(pop == 0), size=k, replace=False)
    log_sfr[off] = log_sfr[off] - r.choice([-1, 1], size=k) * 1.6
    df = pd.DataFrame({
        "region_id": [f"R{i:05d}" for i in range(n)],
        "galaxy": gal,
        "stellar_mass": np.round(10 ** log_mstar, 1),
        "gas_mass": np.round(10 ** log_gas, 1),
        "sfr": 10 ** log_sfr,
        "metallicity": np.round(metal, 3),
        "dust_av": np.round(dust, 3),
        "halpha_ew": np.round(ew, 2),
    })
    sent = r.choice(n, size=n // 50, replace=False)
    df.loc[sent, "dust_av"] = -99.0
    ew_cells = df["halpha_ew"].astype(object).to_numpy().copy()
    low = np.flatnonzero(df["halpha_ew"].to_numpy() < 2.0)
    for i in low:
        ew_cells[i] = "<2.0"
    df["halpha_ew"] = ew_cells
    truth = {"groups": pop, "off_relation_outliers": np.sort(off), "dominant": "stellar_mass",
             "data_quality": ["galaxy", "dust_av"], "trends": [("stellar_mass", "sfr", 1), ("stellar_mass", "gas_mass", 1)]}
    return df, truth


def write_example_table(path: str | Path, n_rows: int = 3000, seed: int = 0) -> Path:
    """Write the demo table as CSV (sentinels and '<x' limits written as a catalogue would) and return its path."""
    df, _ = example_galaxy_regions(n_rows, seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return path


GENERATORS = {
    "trends": trends_table, "groups": groups_table, "hidden_groups": hidden_groups_table,
    "sequence_groups": sequence_groups_table, "outliers": outliers_table,
    "catalogue_conventions": catalogue_conventions_table, "systematic": systematic_table,
    "simpson": simpson_table, "null": null_table, "example": example_galaxy_regions,
    "bimodal_colour": bimodal_colour_table, "subspace_clump": subspace_clump_table,
    "few_column_classes": few_column_classes_table, "curve_groups": curve_groups_table,
}
