"""Inferring a column's role: numeric, categorical, identifier, flag, text or datetime."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

# Name tokens that mark a unique integer column as a catalogue identifier rather than a measurement.
_ID_TOKENS = {
    "id", "ids", "uid", "uuid", "objid", "specobjid", "objectid", "sourceid", "designation", "identifier",
    "key", "index", "idx", "recno", "seq", "row", "rownum", "obj", "name",
    "pgc", "ngc", "ugc", "ic", "hip", "hd", "hr", "tic", "kic", "epic", "koi", "toi", "gaia", "sdss",
}
_TRUE_WORDS = {"true", "t", "yes", "y"}
_FALSE_WORDS = {"false", "f", "no", "n"}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}(-\d{2})?([T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")

MAX_CATEGORICAL_LEVELS = 200
MAX_CATEGORY_LENGTH = 60
MAX_IDENTIFIER_LENGTH = 40


def looks_like_id_name(name: str) -> bool:
    """True for names such as ``id``, ``objid``, ``source_id``, ``pgc``, ``HIP``, ``planetId``."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name or "")
    tokens = [t for t in re.split(r"[^0-9a-zA-Z]+", spaced.lower()) if t]
    if any(t in _ID_TOKENS for t in tokens):
        return True
    flat = "".join(tokens)
    return len(flat) >= 4 and flat.endswith("id")


def bool_words(values: pd.Series) -> dict[str, float] | None:
    """The word -> 1/0 mapping when every value is a yes/no-like word (None otherwise)."""
    levels = set(values.astype(str).str.strip().str.lower().unique())
    if levels and levels <= _TRUE_WORDS | _FALSE_WORDS:
        return {**{w: 1.0 for w in _TRUE_WORDS}, **{w: 0.0 for w in _FALSE_WORDS}}
    return None


def infer_role(col: pd.Series, name: str, unit: str | None = None) -> str:
    """Guess the role of one column after limits are parsed and sentinels masked.

    - bool dtype, numbers that take both values 0 and 1 and no other (``morph_bar_flag``) unless
      they carry a unit, or yes/no words: ``flag``;
    - other numbers: ``numeric``, even with few distinct integer values (``morph_t``, ``year``),
      except a unique integer column named like an identifier (``id``, ``objid``, ``pgc``) or holding
      the row numbers 0..N-1 / 1..N (N >= 20): ``identifier``;
    - strings that are (>= 95%) numbers are judged as numbers (the rest become missing), except
      that a unique one stays an ``identifier`` so leading zeros survive;
    - ISO 8601 dates and times (and datetime dtypes): ``datetime``;
    - unique short strings (names, designations): ``identifier``;
    - short strings with few levels (each level used twice on average, at most 200): ``categorical``;
    - anything else: ``text``.

    Args:
        col: The column's values.
        name: The column's name (an id-like name makes a unique integer column an identifier).
        unit: The column's unit, if any (a column with a unit is a measurement, never a flag).
    """
    if pd.api.types.is_bool_dtype(col):
        return "flag"
    if pd.api.types.is_datetime64_any_dtype(col):
        return "datetime"
    if pd.api.types.is_numeric_dtype(col) and not isinstance(col.dtype, pd.CategoricalDtype):
        return _numeric_role(col, name, unit)
    s = col.dropna()
    n = len(s)
    if n == 0:
        return "text"
    text = s.astype(str)
    numbers = pd.to_numeric(text, errors="coerce")
    n_numbers = int(numbers.notna().sum())
    if n_numbers and n_numbers >= 0.95 * n:
        role = _numeric_role(numbers, name, unit)
        if role == "identifier" or (n_numbers == n and text.nunique() == n and _leading_zeros(text)):
            return "identifier"
        return role
    if bool_words(text) is not None:
        return "flag"
    sample = text.iloc[: 200]
    if sample.str.match(_ISO_DATE).mean() >= 0.9:
        return "datetime"
    uniq = text.nunique()
    lengths = text.str.len()
    if uniq == n and n >= 5 and lengths.median() <= MAX_IDENTIFIER_LENGTH:
        return "identifier"
    if lengths.mean() <= MAX_CATEGORY_LENGTH and uniq <= min(MAX_CATEGORICAL_LEVELS, 0.5 * n):
        return "categorical"
    return "text"


def _numeric_role(col: pd.Series, name: str, unit: str | None = None) -> str:
    """Role of a numeric column: flag, identifier or numeric."""
    x = col.to_numpy(dtype=float, na_value=np.nan)
    # A look at the first values settles most measurement columns without a full pass.
    head = x[:2000]
    head = head[~np.isnan(head)]
    if len(head) and bool(np.any(np.mod(head, 1) != 0)) and not np.all((head == 0) | (head == 1)):
        return "numeric"
    present = ~np.isnan(x)
    values = x[present]
    n = len(values)
    if n == 0:
        return "numeric"
    if not unit and bool(np.all((values == 0) | (values == 1))) and values.min() != values.max():
        return "flag"
    if n < 3 or not bool(np.all(np.mod(values, 1) == 0)):
        return "numeric"
    if pd.api.types.is_integer_dtype(col.dtype) and n == len(x) >= 20 and values[0] in (0.0, 1.0) \
            and bool(np.all(np.diff(values) == 1)):
        return "identifier"  # the row numbers 0..N-1 or 1..N
    if looks_like_id_name(name) and col.dropna().nunique() == n:
        return "identifier"
    return "numeric"


def _leading_zeros(text: pd.Series) -> bool:
    """True when some value is written with a leading zero (``007``), which a number would lose."""
    return bool(text.str.match(r"^0\d").any())


# ---------------------------------------------------------------------- what a numeric column measures
# The role above says how a column is stored; the kind below says what it measures, which decides how it
# is used: an angle is never log-transformed, identifiers and survey bookkeeping are never analysed as
# physics, sky coordinates are kept out of physical groupings unless asked for, and magnitudes in several
# bands are photometry whose colours (differences) are the informative quantities.

_ANGLE_NAMES = re.compile(
    r"^(ra|dec|de|decl|raj2000|dej2000|decj2000|ra_?deg|dec_?deg|ra_?j2000|dec_?j2000|glon|glat|elon|elat|"
    r"l|b|gal_?l|gal_?b|lii|bii|alpha|delta|pa|posang|position_?angle|theta_?j2000|ra_?icrs|de_?icrs)$", re.I)
_AMBIGUOUS_ANGLES = {"l": "b", "b": "l", "alpha": "delta", "delta": "alpha", "pa": "pa", "glon": "glat",
                     "glat": "glon", "lii": "bii", "bii": "lii"}
"""Short angle names that are often something else; each needs its partner column (or a unit)."""
_ANGLE_UNITS = {"deg", "degree", "degrees", "rad", "radian", "radians", "arcdeg", "hourangle", "h", "hms", "dms"}
_TIME_NAMES = re.compile(r"^(mjd|jd|hjd|bjd|rjd|epoch|time|date|t0|tmid|obs_?time|obs_?date|mjd_?obs|"
                         r"date_?obs|jd_?obs|hjd0|bjd0|mjd0|ref_?epoch)$", re.I)
_TIME_UNITS = {"d", "day", "days", "yr", "year", "mjd", "jd", "s"}
_BOOKKEEPING = {"run", "rerun", "camcol", "field", "plate", "mjd", "fiberid", "fiber", "fibre", "fibreid", "tile",
                "tileid", "ifu", "ifudsgn", "stripe", "frame", "ccd", "chip", "expnum", "exposure", "obsid",
                "plateid", "fieldid", "segment", "healpix", "hpx", "pix", "htmid", "mode", "clean", "thing_id",
                "specobjid", "objid", "bestobjid", "skyversion"}
_BOOKKEEPING_ALWAYS = {"rerun", "camcol", "fiberid", "fibreid", "ifudsgn", "specobjid", "objid", "bestobjid",
                       "plateid", "fieldid", "htmid", "skyversion"}
"""Names that are bookkeeping on their own; the others (run, field, plate, mjd ...) need a companion."""
_COUNT_NAMES = re.compile(r"^(n|num|nb|count|cnt)_?[a-z0-9_]*$|_(count|num|n)$|^n[a-z]+$", re.I)
_MAGNITUDE_UNITS = {"mag", "magnitude", "mags", "abmag", "vegamag"}
HUGE_INTEGER = 1e15
"""Integers this large exceed what a float64 holds exactly (2^53 ≈ 9e15) or nearly: catalogue IDs."""


def _has_sky_partner(flat: str, table_names: list[str] | None) -> bool:
    """True for a Dec-like name with an RA-like column beside it (declinations near the equator are small;
    right ascensions span 0-360, so a small 'ra' is more likely an amplitude)."""
    if not flat.startswith("de"):
        return False
    names = {re.sub(r"[^0-9a-z]+", "_", str(t).lower()).strip("_") for t in (table_names or [])} - {flat}
    return any(_ANGLE_NAMES.match(n) and n.startswith("ra") for n in names)


def column_kind(name: str, unit: str | None, values: np.ndarray | None = None,
                table_names: list[str] | None = None) -> str | None:
    """What a numeric column measures, when its name, unit or values say so (None = an ordinary quantity).

    Kinds: ``angle`` (RA/Dec, l/b, position angles), ``time`` (MJD, JD, epochs), ``identifier`` (by name,
    or by content: integers of 1e15 or more, i.e. float-rounded catalogue IDs), ``bookkeeping`` (survey
    run/rerun/camcol/field/plate/mjd/fiberid...), ``magnitude`` (photometry), ``count``.

    Args:
        name: The column's name.
        unit: Its unit string, if known.
        values: Its values (for content checks: huge or integer values).
        table_names: All column names of the table (ambiguous bookkeeping names such as ``run`` or
            ``field`` count only when another bookkeeping column is present).
    """
    low = (name or "").strip().lower()
    flat = re.sub(r"[^0-9a-z]+", "_", low).strip("_")
    u = (unit or "").strip().lower()
    fin = None
    integer = False
    if values is not None:
        v = np.asarray(values, dtype=float)
        fin = v[np.isfinite(v)]
        integer = bool(len(fin)) and bool(np.all(np.mod(fin, 1) == 0))
    if fin is not None and integer and len(fin) and np.nanmax(np.abs(fin)) >= HUGE_INTEGER:
        return "identifier"
    if flat in _BOOKKEEPING and (values is None or integer):
        others = {re.sub(r"[^0-9a-z]+", "_", str(t).lower()).strip("_") for t in (table_names or [])} - {flat}
        if flat in _BOOKKEEPING_ALWAYS or others & _BOOKKEEPING:
            return "bookkeeping"
    if looks_like_id_name(name) and (values is None or integer):
        return "identifier"
    if _ANGLE_NAMES.match(flat) or u in _ANGLE_UNITS:
        if flat in _AMBIGUOUS_ANGLES and u not in _ANGLE_UNITS:
            # A bare 'b' or 'alpha' is an angle only beside its partner and within an angle's range.
            partner = _AMBIGUOUS_ANGLES[flat]
            names = {re.sub(r"[^0-9a-z]+", "_", str(t).lower()).strip("_") for t in (table_names or [])}
            in_range = fin is not None and len(fin) and fin.min() >= -360 and fin.max() <= 360
            if partner not in names or not in_range:
                return None
        elif u not in _ANGLE_UNITS and fin is not None and len(fin) and float(np.median(np.abs(fin))) < 2.0 \
                and not _has_sky_partner(flat, table_names):
            # 'rA' (an r-band amplitude) is spelt like RA; sky coordinates in degrees are larger, except a
            # declination near the equator, which has its right ascension beside it.
            return None
        return "angle"
    if _TIME_NAMES.match(flat) or (u in _TIME_UNITS and re.search(r"time|epoch|date|mjd|jd", flat)):
        return "time"
    if u in _MAGNITUDE_UNITS or photometric_band(name) is not None:
        # A bare letter (z, r, i, b) is often redshift, radius or inclination: magnitudes need values in the
        # range photometry takes.
        if u not in _MAGNITUDE_UNITS and len(flat) == 1 and fin is not None and len(fin) \
                and not (5.0 <= float(np.median(fin)) <= 35.0):
            return None
        return "magnitude"
    if integer and _COUNT_NAMES.search(flat) and len(fin) and fin.min() >= 0:
        return "count"
    if integer and looks_like_codes(fin):
        return "bookkeeping"
    return None


CODE_MIN_ROWS = 100
CODE_MIN_SHARE = 3.0
"""Rows per distinct value at least this (objects grouped by plate, run, night ...)."""
CODE_MAX_OCCUPANCY = 0.25
"""Share of the lattice points inside the interquartile range that hold a value, at most this."""


def looks_like_codes(fin: np.ndarray) -> bool:
    """True for integers that label groups of rows rather than measure something (plate, run or MJD numbers
    in a table whose names say nothing): each value is shared by several rows, yet most integers between
    the quartiles, counted in the column's own step (25 for masses written to 25 g), never occur. A measured
    quantity rounded to a step fills its lattice where its density is highest; labels do not.

    Args:
        fin: The column's finite values, all integers.
    """
    if len(fin) < CODE_MIN_ROWS:
        return False
    distinct = np.unique(fin)
    if len(distinct) < 8 or len(fin) / len(distinct) < CODE_MIN_SHARE:
        return False  # few distinct values: a discrete column, handled as such
    step = float(np.gcd.reduce(np.diff(distinct).astype(np.int64)))
    q1, q3 = np.percentile(fin, [25, 75])
    slots = (q3 - q1) / step + 1
    if slots < 8:
        return False
    inside = np.count_nonzero((distinct >= q1) & (distinct <= q3))
    return inside / slots <= CODE_MAX_OCCUPANCY


# Photometric bands from blue to red; a column's band is found from its name.
BAND_ORDER = ["fuv", "nuv", "u", "b", "g", "bp", "v", "gaia_g", "r", "rp", "i", "z", "y", "j", "h", "k", "ks",
              "w1", "w2", "w3", "w4"]
_BAND_PATTERNS = [
    re.compile(r"^(?:phot_)?(?P<band>bp|rp|g)_mean_mag$"),
    re.compile(r"^(?:mag|m|abs_?mag|petro_?mag|model_?mag|psf_?mag|fiber_?mag|cmodel_?mag|dered|"
               r"extinction_free_mag|mag_auto|mag_petro|mag_psf)_?(?P<band>fuv|nuv|ks|bp|rp|w[1-4]|[ugrizyjhkvb])$"),
    re.compile(r"^(?P<band>fuv|nuv|ks|bp|rp|w[1-4]|[ugrizyjhkvb])_?(?:mag|mpro|m|_mag|ab|mean_mag|petro|model|psf|0)$"),
    re.compile(r"^(?P<band>[ugrizyjhkvb])$"),
]


def photometric_band(name: str) -> str | None:
    """The band of a magnitude column from its name ('mag_u' → 'u', 'phot_g_mean_mag' → 'gaia_g',
    'Gmag' → 'gaia_g' when written with a capital G, 'W1mpro' → 'w1'), or None."""
    raw = (name or "").strip()
    flat = re.sub(r"[^0-9A-Za-z]+", "_", raw).strip("_")
    low = flat.lower()
    for pat in _BAND_PATTERNS:
        m = pat.match(low)
        if m:
            band = m.group("band")
            if band == "g" and ("mean_mag" in low or re.match(r"^G(mag|_mag)?$", flat)):
                return "gaia_g"
            return band
    return None


def is_colour_name(name: str) -> bool:
    """True for names of colours: two bands joined ('bp_rp', 'g-r', 'u_g', 'BP-RP')."""
    low = re.sub(r"[^0-9a-z]+", "_", (name or "").lower()).strip("_")
    bands = r"(fuv|nuv|ks|bp|rp|w[1-4]|[ugrizyjhkvb])"
    return bool(re.fullmatch(rf"{bands}_{bands}(_colou?r)?", low))
