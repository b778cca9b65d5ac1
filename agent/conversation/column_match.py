"""Finding the columns a question names: whole names, their parts and common synonyms.

"does sfr depend on mass?" names ``props_sfr`` and ``props_mstar``; "body mass" names ``body_mass_g``.
Each column gets aliases (its name, its name with separators as spaces, the name without a survey-style
prefix or a unit suffix, and the synonyms of its parts); a question names a column where an alias occurs
as whole words. Longer aliases win over shorter ones that overlap them; a tie between columns goes to the
column whose name the alias covers best, then to table order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Words scientists use for a quantity, and the short forms in column names (both directions are used).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "sfr": ("star formation rate", "star-formation rate", "star formation"),
    "mstar": ("stellar mass", "mass"),
    "mass": ("mass", "weight", "masses"),
    "stellar_mass": ("stellar mass", "mass"),
    "mh2": ("molecular gas", "molecular gas mass", "h2 mass", "h2"),
    "mhi": ("atomic gas", "hi mass", "atomic gas mass"),
    "feh": ("metallicity", "[fe/h]", "iron abundance"),
    "metallicity": ("metallicity", "metal content"),
    "teff": ("temperature", "effective temperature"),
    "temp": ("temperature",),
    "temperature": ("temperature", "temp"),
    "dist": ("distance",),
    "distance": ("distance", "dist"),
    "incl": ("inclination",),
    "mag": ("magnitude", "brightness"),
    "lum": ("luminosity",),
    "vel": ("velocity", "speed"),
    "rv": ("radial velocity",),
    "z": ("redshift",),
    "redshift": ("redshift", "z"),
    "ew": ("equivalent width",),
    "age": ("age",),
    "period": ("period", "orbital period"),
    "radius": ("radius", "size", "radii"),
    "ra": ("right ascension",),
    "dec": ("declination",),
    "pmra": ("proper motion in ra", "proper motion"),
    "pmdec": ("proper motion in dec", "proper motion"),
    "plx": ("parallax",),
    "parallax": ("parallax", "plx"),
    "br": ("colour", "color", "bp-rp", "bp rp"),
    "morph": ("morphology",),
    "ecc": ("eccentricity",),
    "eccentricity": ("eccentricity", "ecc"),
    "len": ("length",),
    "length": ("length",),
}
UNIT_SUFFIXES = {"mm", "cm", "m", "km", "g", "kg", "deg", "rad", "mas", "pc", "kpc", "mpc", "dex", "yr", "gyr",
                 "myr", "k", "d", "days", "au", "msun", "jy", "mjy", "s", "log"}
PREFIXES = {"props", "prop", "phot", "spec", "log", "orient", "sdss", "gaia"}
STOP_WORDS = {"the", "a", "an", "of", "on", "in", "is", "and", "or", "to", "with", "by", "for", "at", "as", "x",
              "y", "id", "i", "it", "be", "do", "does", "vs", "no"}


def normalise(text: str) -> str:
    """Lower case, separators (_ . - /) and punctuation as single spaces, padded for whole-word search."""
    text = text.lower()
    text = re.sub(r"[_.\-/]+", " ", text)
    text = re.sub(r"[^\w\[\]/+ ]+", " ", text)
    return " " + re.sub(r"\s+", " ", text).strip() + " "


def name_parts(name: str) -> list[str]:
    """The words of a column name (``props_mstar`` -> props, mstar; ``bodyMass`` -> body, mass)."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)
    return [p for p in normalise(spaced).split() if p]


def aliases(name: str) -> dict[str, float]:
    """Phrases that name the column, each with how much of the name it covers (0-1)."""
    parts = name_parts(name)
    out: dict[str, float] = {}
    if not parts:
        return out
    full = " ".join(parts)
    out[full] = 1.0
    core = [p for p in parts if p not in UNIT_SUFFIXES] or parts
    if core and core[0] in PREFIXES and len(core) > 1:
        core = core[1:]
    core_phrase = " ".join(core)
    out.setdefault(core_phrase, 0.95)
    joined = "_".join(core)
    for key in (joined, core_phrase, *core):
        for syn in SYNONYMS.get(key, ()):
            cover = 0.9 if key in (joined, core_phrase) else 0.6 / len(core)
            out[syn] = max(out.get(syn, 0.0), cover)
    if len(core) > 1:
        for p in core:
            if p not in STOP_WORDS and len(p) > 1 and not p.isdigit():
                out.setdefault(p, 0.5 / len(core))
    return {a: c for a, c in out.items() if a and a not in STOP_WORDS}


@dataclass
class ColumnMention:
    """A column named in a question.

    Attributes:
        column: The column's name as in the table.
        alias: The phrase that named it.
        start: Where the phrase starts in the normalised question.
        role: The column's role ('numeric', 'categorical', ...).
    """

    column: str
    alias: str
    start: int
    role: str


def find_columns(question: str, columns: list[dict]) -> list[ColumnMention]:
    """The columns a question names, in the order they appear (each at most once).

    Args:
        question: The user's question.
        columns: The table's columns as ``{"name", "role"}`` dicts (the table overview).
    """
    text = normalise(question)
    hits: list[tuple[int, int, float, int, str, str, str]] = []  # start, end, cover, order, column, alias, role
    for order, col in enumerate(columns):
        name, role = str(col.get("name", "")), str(col.get("role", ""))
        for alias, cover in aliases(name).items():
            for m in re.finditer(" " + re.escape(alias) + "(?:s|es)? ", text):  # plurals name the column too
                hits.append((m.start() + 1, m.end() - 1, cover, order, name, alias, role))
    # Longest phrase first, then best coverage of the column's name, then table order.
    hits.sort(key=lambda h: (-(h[1] - h[0]), -h[2], h[3]))
    taken: list[tuple[int, int]] = []
    chosen: dict[str, ColumnMention] = {}
    for start, end, _cover, _order, name, alias, role in hits:
        if name in chosen or any(start < e and s < end for s, e in taken):
            continue
        taken.append((start, end))
        chosen[name] = ColumnMention(column=name, alias=alias, start=start, role=role)
    return sorted(chosen.values(), key=lambda m: m.start)
