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
