"""From a raw DataFrame to a :class:`Table`: unique names, limits, sentinels, infinities and roles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from serendip.tools.loading.limits import parse_limits
from serendip.tools.loading.names import make_unique_names
from serendip.tools.loading.roles import bool_words, column_kind, infer_role
from serendip.tools.loading.sentinels import mask_sentinels
from serendip.tools.loading.thousands import parse_thousands
from serendip.tools.engine.table import ColumnInfo, Table

# Cell texts that mean "no value" in any string column (CSV readers already catch most of them).
MISSING_MARKERS = ["", "NA", "N/A", "n/a", "na", "NaN", "nan", "NAN", "null", "NULL", "Null", "None", "none",
                   "--", "?", "<NA>", "#N/A", "-nan", "NaT"]

KIND_NOTES = {
    "bookkeeping": "survey bookkeeping (how the data were taken): not analysed as a physical quantity",
    "angle": "an angle or sky coordinate: never log-transformed, kept out of physical groupings",
    "time": "a time or epoch: kept out of physical groupings",
}
"""Load notes recorded for column kinds that change how a column is used."""

ColumnMeta = Mapping[object, str | None] | Sequence[str | None] | None


def prepare_frame(df: pd.DataFrame, *, clean: bool = True, units: ColumnMeta = None,
                  descriptions: ColumnMeta = None) -> Table:
    """Clean a raw frame and wrap it in a :class:`Table`.

    Every column is made one of the six roles: numeric and flag columns become float64 (NaN for
    missing, infinite and sentinel cells; flags hold 0/1), identifiers keep their values (integers stay
    exact), categorical and text columns are strings, datetime columns are datetime64.

    Args:
        df: The raw frame; its header may hold blanks and duplicates. It is not modified.
        clean: Parse limits and mask sentinels (True) or only normalise types and infer roles (False).
        units: Unit strings, by original column name or as a list in column order.
        descriptions: Column descriptions, by original column name or as a list in column order.
    """
    original = list(df.columns)
    names, warnings = make_unique_names(original)
    unit_list = _aligned(units, original)
    description_list = _aligned(descriptions, original)

    info: dict[str, ColumnInfo] = {}
    censored: dict[str, np.ndarray] = {}
    out: dict[str, object] = {}
    for j, name in enumerate(names):
        orig = original[j]
        ci = ColumnInfo(name=name, unit=unit_list[j] or None, description=description_list[j] or None,
                        original_name=None if _text(orig).strip() == name else _text(orig))
        values, column_warnings = _prepare_column(df.iloc[:, j], ci, censored, clean)
        warnings.extend(f"column {_quoted(name)}: {w}" for w in column_warnings)
        out[name] = values
        info[name] = ci
    frame = pd.DataFrame(out, index=pd.RangeIndex(len(df)))
    for name, ci in info.items():
        if ci.role in ("numeric", "identifier"):
            values = out[name]
            try:
                numbers = np.asarray(values, dtype=float)
            except (TypeError, ValueError):
                continue
            ci.kind = column_kind(name, ci.unit, numbers, names)
            if ci.kind == "identifier" and ci.role == "numeric":
                ci.role = "identifier"
                ci.notes.append("integers too large for physics (float-rounded catalogue IDs): an identifier")
            elif ci.kind == "bookkeeping" and column_kind(name, ci.unit, None, names) != "bookkeeping":
                # not bookkeeping by its name, so by its values (see looks_like_codes)
                ci.notes.append("integers that label groups of rows (each value shared by several rows, most integers "
                                "between the quartiles unused), as plate, run or date numbers do: survey "
                                "bookkeeping, not analysed as a physical quantity")
            elif ci.kind in KIND_NOTES:
                ci.notes.append(KIND_NOTES[ci.kind])
    return Table(df=frame, info=info, censored=censored, warnings=warnings)


def _prepare_column(raw: pd.Series, ci: ColumnInfo, censored: dict[str, np.ndarray],
                    clean: bool) -> tuple[object, list[str]]:
    """Clean one column, fill in ``ci`` (role, notes, sentinels) and return its values and warnings."""
    warnings: list[str] = []
    col = normalise_dtype(raw)
    flags = None
    if clean:
        col, grouped = parse_thousands(col)
        if grouped:
            ci.notes.append(grouped)
            warnings.append(grouped)
        col, flags, note = parse_limits(col)
        if flags is not None:
            censored[ci.name] = flags
            ci.n_censored = int(np.count_nonzero(flags))
            ci.notes.append(note)

    if not _is_number_dtype(col):
        role = infer_role(col, ci.name, ci.unit)
        ci.role = role
        if role == "flag" and bool_words(col.dropna()) is not None:
            return _to_flag(col), warnings
        if role not in ("numeric", "flag"):
            return _as_text_role(col, ci), warnings
        numbers = pd.to_numeric(col, errors="coerce")
        junk = col.notna().to_numpy() & numbers.isna().to_numpy()
        if junk.any():
            examples = ", ".join(repr(v) for v in pd.unique(col[junk].astype(str))[:3])
            message = f"{int(junk.sum())} non-numeric cells ({examples}) treated as missing"
            ci.notes.append(message)
            warnings.append(message)
        col = numbers

    values = col.to_numpy(dtype=float, na_value=np.nan)
    n_inf = int(np.isinf(values).sum())
    if n_inf:
        values = np.where(np.isinf(values), np.nan, values)
        ci.notes.append(f"{n_inf} infinite values treated as missing")
        warnings.append(f"{n_inf} infinite values treated as missing")
    if clean:
        values, found, n_masked = mask_sentinels(values, flags)
        if n_masked:
            shown = ", ".join(f"{v:g}" for v in found)
            ci.sentinel_values = found
            ci.n_sentinel = n_masked
            ci.notes.append(f"{n_masked} sentinel values ({shown}) masked as missing")
            warnings.append(f"{n_masked} cells equal to {shown} treated as missing (sentinel)")
    cleaned = n_inf or ci.n_sentinel
    # A column with limits is a measurement whatever its values look like.
    role = "numeric" if flags is not None else \
        infer_role(pd.Series(values, copy=False) if cleaned else col, ci.name, ci.unit)
    ci.role = role
    if role == "identifier":
        return col.to_numpy(), warnings
    if role == "flag":
        values = np.where((values == 0) | (values == 1), values, np.nan)
    elif not np.isfinite(values).any():
        ci.notes.append("all values missing")
        warnings.append("no values (all missing)")
    return np.ascontiguousarray(values, dtype=np.float64), warnings


def _is_number_dtype(col: pd.Series) -> bool:
    """Numbers or bools (both take the numeric path)."""
    return pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype)


def _as_text_role(col: pd.Series, ci: ColumnInfo) -> object:
    """Values for an identifier, categorical, text or datetime column."""
    if ci.role == "datetime":
        if pd.api.types.is_datetime64_any_dtype(col):
            return col
        try:
            return pd.to_datetime(col, errors="coerce", format="ISO8601", utc=_mixed_offsets(col))
        except (ValueError, TypeError, OverflowError):
            ci.role = "text"
    if pd.api.types.is_string_dtype(col) and not pd.api.types.is_object_dtype(col):
        return col
    return col.astype("str")


def normalise_dtype(col: pd.Series) -> pd.Series:
    """One column in plain types: float32 as the decimals it was written with, nullable and categorical
    types as numpy floats or strings, strings stripped with missing-value markers as missing."""
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        col = col.astype(object).where(col.notna(), None)
        dtype = col.dtype
    if pd.api.types.is_extension_array_dtype(dtype) and pd.api.types.is_numeric_dtype(dtype) \
            and not pd.api.types.is_bool_dtype(dtype):
        if pd.api.types.is_integer_dtype(dtype) and not col.isna().any():
            return col.astype(np.int64)
        return pd.Series(col.to_numpy(dtype=float, na_value=np.nan), index=col.index, name=col.name)
    if pd.api.types.is_bool_dtype(dtype):
        if col.isna().any():
            return pd.Series(col.to_numpy(dtype=float, na_value=np.nan), index=col.index, name=col.name)
        return col.astype(bool)
    if dtype == np.float32 or dtype == np.float16:
        return pd.Series(float32_as_decimal(col.to_numpy()), index=col.index, name=col.name)
    if dtype == np.float64 and _upcast_float32(col.to_numpy()):
        return pd.Series(float32_as_decimal(col.to_numpy(), keep_integers=True), index=col.index, name=col.name)
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype) \
            or pd.api.types.is_timedelta64_dtype(dtype):
        return col
    if pd.api.types.is_object_dtype(dtype):
        if col.map(_is_bool_cell).all():
            return col.map(lambda v: np.nan if v is None or v != v else float(v)).astype(float)
        col = col.map(_decode, na_action="ignore")
    text = col.astype("str").str.strip()
    return text.mask(text.isin(MISSING_MARKERS))


def float32_as_decimal(values: np.ndarray, keep_integers: bool = False) -> np.ndarray:
    """Float64 copies of float32 values, each the shortest decimal that rounds to it (5.9 not
    5.900000095367432), so values read as written and sentinel codes compare exactly.

    Args:
        values: float32 values (or float64 values that are all float32 numbers).
        keep_integers: Leave whole numbers as they are (for float64 input, where a large integer
            may be exact rather than a rounded float32).
    """
    source = values.astype(np.float32)
    out = source.astype(np.float64)
    todo = np.isfinite(out) & (out != 0)
    if keep_integers:
        with np.errstate(invalid="ignore"):
            todo &= np.mod(out, 1) != 0
    todo = np.flatnonzero(todo)
    for digits in (7, 8, 9):
        if len(todo) == 0:
            break
        rounded = _round_significant(out[todo], digits)
        exact = rounded.astype(np.float32) == source[todo]
        out[todo[exact]] = rounded[exact]
        todo = todo[~exact]
    return out


def _upcast_float32(values: np.ndarray) -> bool:
    """True when float64 values are all float32 numbers (a float32 column saved as double, e.g.
    3.299999952316284), so that they can be read as the decimals they were written as."""
    head = values[:1000]
    head = head[np.isfinite(head)]
    if len(head) and not _all_float32(head):
        return False  # the usual case, settled without a pass over the column
    finite = values[np.isfinite(values)]
    return len(finite) > 0 and _all_float32(finite)


def _all_float32(finite: np.ndarray) -> bool:
    if np.abs(finite).max() > 3e38:
        return False
    return bool(np.array_equal(finite.astype(np.float32).astype(np.float64), finite))


def _round_significant(v: np.ndarray, digits: int) -> np.ndarray:
    """Round to ``digits`` significant digits, dividing by exact powers of ten (|k| <= 22)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        k = (digits - 1) - np.floor(np.log10(np.abs(v))).astype(np.int64)
    out = v.copy()
    scale = 10.0 ** np.abs(np.clip(k, -22, 22))
    up = (k >= 0) & (k <= 22)
    down = (k < 0) & (k >= -22)
    out[up] = np.round(v[up] * scale[up]) / scale[up]
    out[down] = np.round(v[down] / scale[down]) * scale[down]
    return out


def _to_flag(col: pd.Series) -> np.ndarray:
    """0/1 floats (NaN for missing) from yes/no-like words."""
    words = bool_words(col.dropna()) or {}
    lowered = col.astype("str").str.strip().str.lower()
    return lowered.map(words).to_numpy(dtype=float, na_value=np.nan)


def _is_bool_cell(value: object) -> bool:
    return value is None or isinstance(value, (bool, np.bool_)) or (isinstance(value, float) and value != value)


def _decode(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def _mixed_offsets(col: pd.Series) -> bool:
    """Parse as UTC when some stamps carry a time-zone offset (pandas refuses mixed offsets otherwise)."""
    return bool(col.dropna().astype(str).str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True).any())


def _aligned(meta: ColumnMeta, original: list[object]) -> list[str | None]:
    """Per-position metadata from a mapping keyed by original name or a list in column order."""
    if meta is None:
        return [None] * len(original)
    if isinstance(meta, Mapping):
        out = []
        for name in original:
            try:
                out.append(meta.get(name))
            except TypeError:  # unhashable header cell
                out.append(None)
        return [None if v is None else str(v) for v in out]
    values = list(meta) + [None] * max(0, len(original) - len(meta))
    return [None if v is None else str(v) for v in values[: len(original)]]


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)


def _quoted(name: str, limit: int = 80) -> str:
    shown = name if len(name) <= limit else name[: limit - 1] + "…"
    return repr(shown)
