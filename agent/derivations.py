"""Which derived quantities a table's conventions call for: colours from magnitudes of adjacent bands,
absolute magnitude from apparent magnitude and parallax (or distance), line ratios from line fluxes.

Pure planning from column names, units and kinds: the ``derive`` tool computes them. Each plan says why,
for the report's "what was done and why".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from serendip.tools.loading.roles import BAND_ORDER, is_colour_name, photometric_band

PARALLAX_NAME = re.compile(r"^(parallax|plx|pi|parallax_mas|plx_mas)$", re.I)
DISTANCE_NAME = re.compile(r"^(dist|distance|d|d_pc|dist_pc|distance_pc|r_est|rgeo|r_med_geo|dist_kpc|d_kpc|"
                           r"distance_kpc|dist_mpc|d_mpc)$", re.I)
REFERENCE_BANDS = ["gaia_g", "v", "r", "g", "i", "k", "j"]
"""Bands preferred for the one magnitude kept beside the colours (and made absolute)."""
LINES = {
    "halpha": ({"halpha", "ha"}, ("halpha", "6563", "6565")),
    "hbeta": ({"hbeta", "hb"}, ("hbeta", "4861", "4863")),
    "nii": ({"nii", "n2"}, ("nii6584", "6584", "6585")),
    "oiii": ({"oiii", "o3"}, ("oiii5007", "5007", "5008")),
    "sii": ({"sii", "s2"}, ("sii6717", "6717", "6731")),
}
"""Emission lines: name tokens that are the line on their own, and substrings (with wavelengths) that name it."""
LINE_RATIOS = [("nii", "halpha"), ("oiii", "hbeta"), ("sii", "halpha")]


@dataclass(frozen=True)
class Derivation:
    """One planned derived column."""

    expression: str
    name: str
    reason: str
    kind: str  # colour, absolute_magnitude, line_ratio


def quoted(name: str) -> str:
    """A column name as the derive grammar reads it (backticks unless a plain identifier)."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and name not in ("log10", "ln", "exp", "sqrt", "abs", "pow"):
        return name
    return "`" + name.replace("`", "``") + "`"


def safe(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_")[:30] or "c"


def magnitude_bands(columns: list[dict]) -> dict[str, str]:
    """{band: column} for magnitude columns, blue to red (the first column per band)."""
    found: dict[str, str] = {}
    for c in columns:
        if c.get("kind") != "magnitude" or is_colour_name(c["name"]):
            continue
        band = photometric_band(c["name"])
        if band is None or band not in BAND_ORDER or band in found:
            continue
        found[band] = c["name"]
    return {b: found[b] for b in sorted(found, key=BAND_ORDER.index)}


def existing_colours(columns: list[dict]) -> set[frozenset[str]]:
    out = set()
    for c in columns:
        if is_colour_name(c["name"]):
            parts = re.split(r"[^0-9a-z]+", c["name"].lower())
            parts = [p for p in parts if p and p not in ("colour", "color")]
            if len(parts) == 2:
                out.add(frozenset(parts))
    return out


def plan_colours(bands: dict[str, str], columns: list[dict]) -> list[Derivation]:
    """Colours of adjacent bands, plus one long-baseline colour (bluest minus the middle band for four or
    more bands, as u − r for ugriz; bluest minus reddest for three) that separates stellar populations
    while avoiding the noisiest red band."""
    names = list(bands)
    have = existing_colours(columns)
    plans = []

    def short(b: str) -> str:
        return "g" if b == "gaia_g" else b

    def add(a: str, b: str, why: str) -> None:
        if frozenset((short(a), short(b))) in have:
            return
        ca, cb = bands[a], bands[b]
        plans.append(Derivation(f"{quoted(ca)} - {quoted(cb)}", f"{safe(ca)}_minus_{safe(cb)}", why, "colour"))

    for a, b in zip(names, names[1:]):
        add(a, b, f"colour of adjacent bands {short(a)} and {short(b)}")
    if len(names) >= 3:
        wide = names[len(names) // 2] if len(names) >= 4 else names[-1]
        if names.index(wide) > 1:
            add(names[0], wide, f"long-baseline colour {short(names[0])} − {short(wide)}")
    return plans


MIN_BAND_RHO = 0.6
"""Spearman ρ that magnitudes of neighbouring bands reach on any catalogue of stars or galaxies (measured
0.77–0.98 on SDSS, Galaxy Zoo and Gaia photometry); bands far apart may correlate less (u with z: 0.5)."""
MAX_MEDIAN_SPAN = 6.0
"""Magnitudes of one set of sources in several bands have medians within a few magnitudes of each other."""


def photometric_chain(medians: dict[str, float], rho: dict[frozenset, float]) -> list[str]:
    """Magnitude columns recognised from their values: the longest chain of columns, ordered from the faintest
    median to the brightest (for stars and galaxies, blue bands to red), in which each column correlates
    positively (ρ ≥ MIN_BAND_RHO) with the next. Neighbouring bands are required to correlate, not every
    pair: the brightness of a source ties each band to its neighbours, while distant bands differ by the
    colours that are the point of the exercise.

    Args:
        medians: Median of each candidate column (columns already on the magnitude scale).
        rho: Spearman ρ of candidate pairs, keyed by the pair as a frozenset (missing = not significant).

    Returns:
        The columns of the chain, faint to bright, or [] when fewer than three qualify.
    """
    ordered = sorted(medians, key=lambda c: (-medians[c], c))
    best: list[str] = []
    for start in range(len(ordered)):
        chain = [ordered[start]]
        for c in ordered[start + 1:]:  # a column that links to nothing is stepped over, not a break
            if (rho.get(frozenset((chain[-1], c))) or 0.0) >= MIN_BAND_RHO \
                    and medians[chain[0]] - medians[c] <= MAX_MEDIAN_SPAN:
                chain.append(c)
        if len(chain) > len(best):
            best = chain
    return best if len(best) >= 3 else []


def reference_magnitude(bands: dict[str, str]) -> str | None:
    """The magnitude kept beside the colours (and made absolute when a parallax or distance is known)."""
    for b in REFERENCE_BANDS:
        if b in bands:
            return bands[b]
    return next(iter(bands.values()), None)


def plan_absolute_magnitude(reference: str | None, columns: list[dict]) -> Derivation | None:
    """M = m + 5 log10(parallax / 100) with parallax in mas, or m − 5 log10(d / 10 pc)."""
    if reference is None:
        return None
    for c in columns:
        unit = (c.get("unit") or "").lower()
        if PARALLAX_NAME.match(c["name"]) and unit in ("", "mas", "milliarcsecond"):
            return Derivation(f"{quoted(reference)} + 5 * log10({quoted(c['name'])} / 100)",
                              f"abs_{safe(reference)}", f"absolute magnitude from {reference} and the parallax "
                              f"{c['name']} (in mas)", "absolute_magnitude")
    for c in columns:
        unit = (c.get("unit") or "").lower()
        name = c["name"].lower()
        if not DISTANCE_NAME.match(c["name"]):
            continue
        if unit in ("kpc",) or name.endswith("kpc"):
            scale, shown = "* 100", "kpc"
        elif unit in ("mpc",) or name.endswith("mpc"):
            scale, shown = "* 100000", "Mpc"
        elif unit in ("pc", "parsec", ""):
            scale, shown = "/ 10", "pc"
        else:
            continue
        return Derivation(f"{quoted(reference)} - 5 * log10({quoted(c['name'])} {scale})", f"abs_{safe(reference)}",
                          f"absolute magnitude from {reference} and the distance {c['name']} (taken in {shown})",
                          "absolute_magnitude")
    return None


def plan_line_ratios(columns: list[dict]) -> list[Derivation]:
    """log10 of the classic diagnostic line ratios ([NII]/Hα, [OIII]/Hβ, [SII]/Hα) from flux columns."""
    lines: dict[str, str] = {}
    for c in columns:
        name = c["name"]
        tokens = [t for t in re.split(r"[^0-9a-z]+", name.lower()) if t]
        joined = "".join(tokens)
        if "log" in joined or "ew" in tokens or re.search(r"err|sigma|unc|ratio", joined):
            continue
        hits = [line for line, (words, parts) in LINES.items()
                if set(tokens) & words or any(p in joined for p in parts)]
        if len(hits) == 1 and hits[0] not in lines:  # a name with two lines is already a ratio
            lines[hits[0]] = name
    out = []
    for top, bottom in LINE_RATIOS:
        if top in lines and bottom in lines:
            out.append(Derivation(f"log10({quoted(lines[top])} / {quoted(lines[bottom])})",
                                  f"log_{top}_{bottom}", f"line ratio log10({top}/{bottom}) from fluxes",
                                  "line_ratio"))
    return out
