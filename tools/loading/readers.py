"""One reader per file format, each returning the raw table: header as written, values, units, notes.

Readers open files read-only and raise :class:`BadTable` (one line, no file name) for unusable input;
cleaning (names, limits, sentinels, roles) happens afterwards in :mod:`prepare`.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import warnings as pywarnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from serendip.tools.loading.budget import check_cells, check_sheet, check_text_cells, load_budget
from serendip.tools.loading.formats import Detected, open_binary
from serendip.tools.loading.problems import BadTable, one_line

SAMPLE_BYTES = 1 << 18
SNIFF_LINES = 50
DELIMITERS = ",\t;|"
# Besides pandas' defaults (NA, N/A, nan, NaN, null, NULL, None, '' ...), for Excel; in text files such
# cells make a column text, and prepare turns them into missing values.
EXTRA_NA = ["--", "?", "n/a", "N/A", "na", "NAN", "Null"]
_DECIMAL_COMMA = re.compile(r"(?:^|;)\s*-?\d+,\d+\s*(?:;|$)", re.M)
_ZERO_PADDED = re.compile(r"^\s*[-+]?0\d+\s*$")
_NUMBER = re.compile(r"^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*$")


@dataclass
class RawTable:
    """A table as the file holds it, before cleaning.

    Attributes:
        df: Values; columns in file order, labelled with the header cells as written (possibly blank or
            repeated).
        format: csv, tsv, parquet, excel, fits or votable.
        units: Unit per column (same order), or None.
        descriptions: Description per column (same order), or None.
        warnings: Notes about the read (delimiter, skipped columns, other sheets ...).
    """

    df: pd.DataFrame
    format: str
    units: list[str | None] | None = None
    descriptions: list[str | None] | None = None
    warnings: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- delimited text
def read_delimited(path: Path, detected: Detected) -> RawTable:
    """CSV, TSV and other delimited text: delimiter sniffed, ``#`` comment lines above the header skipped."""
    notes: list[str] = []
    sample, encoding, truncated = _text_sample(path, detected.compression)
    if encoding != "utf-8":
        notes.append(f"the file is not UTF-8; read it as {encoding}")
    lines = sample.splitlines()
    if truncated and lines:
        lines = lines[:-1]
    n_skip, comments = _leading_comments(lines)
    body = lines[n_skip:]
    if not any(line.strip() for line in body):
        raise BadTable("the file holds no table (only comment lines)" if comments else "the file is empty")
    delimiter = _sniff_delimiter(body[:SNIFF_LINES])
    header = _first_record(body, delimiter)
    use_comment_header = False
    if _all_numbers(header):
        candidate = _comment_header(comments, delimiter, len(header))
        if candidate is None:
            raise BadTable("it looks headerless: the first line holds only numbers; add a header row")
        header, use_comment_header = candidate, True
        notes.append("the column names were read from the last '#' comment line")
    if n_skip:
        notes.append(f"skipped {n_skip} comment line(s) starting with '#' above the table")

    check_text_cells(path, detected.compression, detected.text_bytes, len(header), load_budget())
    sep = r"\s+" if delimiter == " " else delimiter
    options = dict(sep=sep, compression=detected.compression, encoding=encoding, skiprows=n_skip,
                   index_col=None, skipinitialspace=_spaced(body[:SNIFF_LINES], delimiter))
    if delimiter == ";" and _DECIMAL_COMMA.search("\n".join(body[1:SNIFF_LINES])):
        options.update(decimal=",")
        notes.append("numbers use a decimal comma (3,14)")
    if use_comment_header:
        options.update(header=None)
    zero_padded = _zero_padded_columns(body[1:SNIFF_LINES], delimiter)
    if zero_padded:
        options.update(dtype={j: str for j in zero_padded})
    try:
        try:
            df = pd.read_csv(path, **options)
        except UnicodeDecodeError:
            notes.append(f"some bytes are not valid {encoding}; they were replaced by '\ufffd'")
            df = pd.read_csv(path, encoding_errors="replace", **options)
    except pd.errors.EmptyDataError:
        raise BadTable("the file is empty") from None
    except pd.errors.ParserError as exc:
        raise BadTable(_parser_problem(exc, n_skip)) from None
    except (UnicodeError, ValueError, OSError, EOFError) as exc:
        raise BadTable(f"could not be read as delimited text; it may be damaged or truncated "
                       f"({one_line(exc)})") from None

    if not isinstance(df.index, pd.RangeIndex):
        # One header field fewer than the data fields: the first column holds row labels (R's write.table).
        df = df.reset_index()
        df.columns = [""] + list(header) if len(header) == df.shape[1] - 1 else list(df.columns)
    elif len(header) == df.shape[1]:
        df.columns = list(header)
    fmt = "tsv" if delimiter == "\t" else "csv"
    if delimiter not in (",", "\t"):
        notes.append(f"values are separated by {_delimiter_name(delimiter)}")
    return RawTable(df=df, format=fmt, warnings=notes)


def _text_sample(path: Path, compression: str | None) -> tuple[str, str, bool]:
    """The first bytes of the file as text, the encoding to read it with, and whether it was cut."""
    with open_binary(path, compression) as handle:
        raw = handle.read(SAMPLE_BYTES + 1)
    truncated = len(raw) > SAMPLE_BYTES
    raw = raw[:SAMPLE_BYTES]
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16", errors="replace"), "utf-16", truncated
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(raw, final=not truncated)
        return text.lstrip("\ufeff"), "utf-8", truncated
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace"), "cp1252", truncated


def _leading_comments(lines: list[str]) -> tuple[int, list[str]]:
    """Number of lines above the table that are '#' comments or blank, and the comment texts."""
    comments = []
    n = 0
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#"):
            comments.append(stripped.lstrip("#").strip())
        elif stripped:
            break
        n += 1
    return n, comments


def _sniff_delimiter(lines: list[str]) -> str:
    """The delimiter that splits the lines into the same number (>1) of fields; comma by default."""
    text = "\n".join(lines)
    try:
        dialect = csv.Sniffer().sniff(text, delimiters=DELIMITERS)
        if _consistent_width(lines, dialect.delimiter) > 1:
            return dialect.delimiter
    except csv.Error:
        pass
    widths = {d: _consistent_width(lines, d) for d in DELIMITERS}
    best = max(widths, key=lambda d: widths[d])
    if widths[best] > 1:
        return best
    if _consistent_width(lines, " ") > 1:
        return " "
    return ","


def _consistent_width(lines: list[str], delimiter: str) -> int:
    """The field count shared by (almost) every line when split by ``delimiter``, or 0."""
    rows = [r for r in _records(lines, delimiter) if r]
    if not rows:
        return 0
    widths = [len(r) for r in rows]
    first = widths[0]
    agree = sum(w == first for w in widths)
    return first if agree >= 0.9 * len(widths) else 0


def _zero_padded_columns(lines: list[str], delimiter: str) -> list[int]:
    """Positions of columns holding integers written with leading zeros (``00731``), read as text so
    that codes keep their zeros."""
    out: set[int] = set()
    for row in _records(lines, delimiter):
        for j, cell in enumerate(row):
            if _ZERO_PADDED.match(cell):
                out.add(j)
    return sorted(out)


def _spaced(lines: list[str], delimiter: str) -> bool:
    """True when fields are padded after the delimiter (``a, b, c``), so the padding is skipped."""
    if delimiter == " ":
        return False
    with_delimiter = [line for line in lines if delimiter in line]
    return bool(with_delimiter) and sum(f"{delimiter} " in line for line in with_delimiter) >= 0.5 * len(with_delimiter)


def _records(lines: list[str], delimiter: str) -> list[list[str]]:
    if delimiter == " ":
        return [line.split() for line in lines if line.strip()]
    reader = csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter, skipinitialspace=True)
    try:
        return [row for row in reader]
    except csv.Error:
        return []


def _first_record(lines: list[str], delimiter: str) -> list[str]:
    """The header row's cells."""
    for row in _records(lines, delimiter):
        if any(cell.strip() for cell in row):
            return row
    return []


def _all_numbers(cells: list[object]) -> bool:
    """True when every non-blank header cell is a number (and there is at least one)."""
    texts = [str(c).strip() for c in cells if c is not None and not (isinstance(c, float) and c != c)]
    texts = [t for t in texts if t]
    return bool(texts) and all(_NUMBER.match(t) for t in texts)


def _comment_header(comments: list[str], delimiter: str, width: int) -> list[str] | None:
    """Column names from the last comment line when it has as many fields as the data."""
    if not comments:
        return None
    cells = _records([comments[-1]], delimiter)
    if cells and len(cells[0]) == width and not _all_numbers(cells[0]):
        return [c.strip() for c in cells[0]]
    return None


def _parser_problem(exc: Exception, n_skip: int) -> str:
    match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
    if match:
        expected, line, saw = match.groups()
        return f"line {int(line) + n_skip} has {saw} fields but the header has {expected}"
    return f"could not be parsed as delimited text ({one_line(exc)})"


def _delimiter_name(delimiter: str) -> str:
    return {";": "semicolons", "|": "vertical bars", " ": "spaces", "\t": "tabs", ",": "commas"}[delimiter]


# ----------------------------------------------------------------------------- Parquet
def read_parquet(path: Path, detected: Detected) -> RawTable:
    """Parquet via pyarrow; nested columns skipped, units/descriptions from astropy metadata if present."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
        check_cells(meta.num_rows, meta.num_columns, load_budget())
        table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise BadTable(f"could not be read as Parquet; it may be damaged or truncated ({one_line(exc)})") from None
    notes: list[str] = []
    index_fields = _pandas_index_fields(table.schema)
    names: list[object] = []
    columns: list[pd.Series] = []
    for i, fld in enumerate(table.schema):
        if pa.types.is_nested(fld.type):
            notes.append(f"column {fld.name!r} holds nested values ({fld.type}); skipped")
            continue
        series = table.column(i).to_pandas().reset_index(drop=True)
        if fld.name in index_fields:
            # A pandas index saved as a column: a plain row counter is dropped, a named one comes first.
            if fld.name.startswith("__index_level_"):
                if _is_row_counter(series):
                    continue
                names.insert(0, "index")
            else:
                names.insert(0, fld.name)
            columns.insert(0, series)
            continue
        names.append(fld.name)
        columns.append(series)
    df = _frame(columns, names, table.num_rows)
    units, descriptions = _astropy_parquet_meta(table.schema, names)
    return RawTable(df=df, format="parquet", units=units, descriptions=descriptions, warnings=notes)


def _is_row_counter(series: pd.Series) -> bool:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return len(values) > 0 and not np.isnan(values).any() and values[0] in (0.0, 1.0) \
        and bool(np.all(np.diff(values) == 1))


def _pandas_index_fields(schema) -> set[str]:
    import json

    meta = (schema.metadata or {}).get(b"pandas")
    if not meta:
        return set()
    try:
        return {c for c in json.loads(meta).get("index_columns", []) if isinstance(c, str)}
    except (ValueError, AttributeError):
        return set()


def _astropy_parquet_meta(schema, names: list[object]) -> tuple[list | None, list | None]:
    """Units and descriptions that astropy stores in the Parquet schema as YAML."""
    yaml_meta = (schema.metadata or {}).get(b"table_meta_yaml")
    if not yaml_meta:
        return None, None
    try:
        from astropy.table.meta import get_header_from_yaml

        header = get_header_from_yaml(yaml_meta.decode("utf-8").splitlines())
    except Exception:  # noqa: BLE001 - metadata is optional; a malformed block is ignored
        return None, None
    by_name = {d.get("name"): d for d in header.get("datatype", []) if isinstance(d, dict)}
    units = [_text_or_none(by_name.get(n, {}).get("unit")) for n in names]
    descriptions = [_text_or_none(by_name.get(n, {}).get("description")) for n in names]
    return units, descriptions


# ----------------------------------------------------------------------------- Excel
def read_excel(path: Path, detected: Detected) -> RawTable:
    """The first sheet of an .xlsx workbook; its first non-empty row is the header."""
    from openpyxl import load_workbook

    notes: list[str] = []
    check_sheet(path, load_budget())  # the dense grid pandas would build, measured before it is built
    try:
        with pywarnings.catch_warnings():
            pywarnings.simplefilter("ignore")
            workbook = load_workbook(path, read_only=True, data_only=True)
            sheets = list(workbook.sheetnames)
            workbook.close()
            grid = pd.read_excel(path, sheet_name=0, header=None, engine="openpyxl", na_values=EXTRA_NA)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many types for a damaged workbook
        raise BadTable(f"could not be read as an Excel workbook; it may be damaged ({one_line(exc)})") from None
    if len(sheets) > 1:
        others = ", ".join(repr(s) for s in sheets[1:6]) + (" ..." if len(sheets) > 6 else "")
        notes.append(f"the workbook has {len(sheets)} sheets; read the first ({sheets[0]!r}), not {others}")
    grid = grid.dropna(how="all").dropna(axis=1, how="all")
    if grid.empty:
        raise BadTable("the file is empty (the first sheet has no cells)")
    header = list(grid.iloc[0])
    if _all_numbers(header):
        raise BadTable("it looks headerless: the first row holds only numbers; add a header row")
    body = grid.iloc[1:].reset_index(drop=True)
    columns = [body.iloc[:, j].infer_objects() for j in range(body.shape[1])]
    df = _frame(columns, header, len(body))
    return RawTable(df=df, format="excel", warnings=notes)


# ----------------------------------------------------------------------------- FITS and VOTable
def read_fits(path: Path, detected: Detected) -> RawTable:
    """The first table extension of a FITS file, with units and column descriptions."""
    from astropy.io import fits
    from astropy.table import Table as AstropyTable

    notes: list[str] = []
    try:
        with pywarnings.catch_warnings():
            pywarnings.simplefilter("ignore")
            with fits.open(path, mode="readonly", memmap=False) as hdul:
                tables = [i for i, hdu in enumerate(hdul) if isinstance(hdu, (fits.BinTableHDU, fits.TableHDU))]
                if not tables:
                    kinds = ", ".join(type(h).__name__ for h in hdul[:4])
                    raise BadTable(f"the FITS file has no table extension (it holds {kinds}); "
                                   "Serendip reads binary or ASCII table HDUs")
                first = tables[0]
                header = hdul[first].header
                check_cells(int(header.get("NAXIS2", 0) or 0), int(header.get("TFIELDS", 0) or 0), load_budget())
                label = hdul[first].name or str(first)
                table = AstropyTable.read(hdul, hdu=first, format="fits")
    except BadTable:
        raise
    except Exception as exc:  # noqa: BLE001 - astropy raises many types for a damaged file
        raise BadTable(f"could not be read as FITS; it may be damaged or truncated ({one_line(exc)})") from None
    if len(tables) > 1:
        notes.append(f"the file has {len(tables)} table extensions; read the first (HDU {first}, {label!r})")
    from_header = _fits_descriptions(header, len(table.colnames))
    raw = astropy_to_raw(table, "fits", notes)
    raw.descriptions = [from_header.get(str(name)) or described
                        for name, described in zip(raw.df.columns, raw.descriptions or [])]
    return raw


def read_votable(path: Path, detected: Detected) -> RawTable:
    """The first table (RESOURCE/TABLE) of a VOTable, with units and field descriptions."""
    from astropy.io.votable import parse

    notes: list[str] = []
    try:
        with pywarnings.catch_warnings():
            pywarnings.simplefilter("ignore")
            with open_binary(path, detected.compression) as handle:
                votable = parse(handle, verify="ignore")
            tables = list(votable.iter_tables())
            if not tables:
                raise BadTable("the VOTable holds no TABLE element")
            table = tables[0].to_table(use_names_over_ids=True)
    except BadTable:
        raise
    except Exception as exc:  # noqa: BLE001 - the VOTable parser raises many types for a damaged file
        raise BadTable(f"could not be read as a VOTable; it may be damaged or truncated ({one_line(exc)})") from None
    if len(tables) > 1:
        notes.append(f"the VOTable holds {len(tables)} tables; read the first")
    return astropy_to_raw(table, "votable", notes)


def astropy_to_raw(table, fmt: str, notes: list[str]) -> RawTable:
    """An astropy Table as a raw frame: bytes decoded, masked cells missing, array cells skipped."""
    names: list[object] = []
    columns: list[pd.Series] = []
    units: list[str | None] = []
    descriptions: list[str | None] = []
    for col in table.itercols():
        if col.ndim > 1 or col.dtype.shape:
            shape = col.shape[1:] or col.dtype.shape
            notes.append(f"column {col.name!r} holds an array of shape {tuple(shape)} per row; skipped")
            continue
        values = _astropy_values(col)
        if values is None:
            notes.append(f"column {col.name!r} holds variable-length arrays per row; skipped")
            continue
        names.append(col.name)
        columns.append(values)
        units.append(_unit_text(col.unit))
        descriptions.append(_text_or_none(col.description))
    df = _frame(columns, names, len(table))
    return RawTable(df=df, format=fmt, units=units, descriptions=descriptions, warnings=notes)


def _astropy_values(col) -> pd.Series | None:
    """One astropy column as a pandas Series (None for variable-length array cells)."""
    data = np.asarray(col.data if hasattr(col, "data") else col)
    mask = np.asarray(getattr(col, "mask", False), dtype=bool)
    if mask.shape != data.shape:
        mask = np.broadcast_to(mask, data.shape)
    kind = data.dtype.kind
    if data.dtype.byteorder not in ("=", "|"):
        data = data.astype(data.dtype.newbyteorder("="))
    if kind == "S":
        text = np.char.strip(np.char.decode(data, "utf-8", errors="replace"))
        out = pd.Series(text.astype(object))
    elif kind == "U":
        out = pd.Series(np.char.strip(data).astype(object))
    elif kind == "O":
        if any(isinstance(v, (np.ndarray, list, tuple)) for v in data[:1000] if v is not None):
            return None
        out = pd.Series([v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in data], dtype=object)
    elif kind in "iu":
        out = pd.Series(data.astype(float) if mask.any() else data)
    elif kind == "b":
        out = pd.Series(data.astype(float) if mask.any() else data)
    else:
        out = pd.Series(data)
    if mask.any():
        out = out.mask(pd.Series(mask))
    return out


def _fits_descriptions(header, n_fields: int) -> dict[str, str]:
    """Column descriptions from TCOMMn / TDESCn keywords or the comment of TTYPEn, by column name."""
    out: dict[str, str] = {}
    for k in range(1, n_fields + 1):
        name = header.get(f"TTYPE{k}")
        if name is None:
            continue
        text = header.get(f"TCOMM{k}") or header.get(f"TDESC{k}") or header.comments[f"TTYPE{k}"]
        if text and str(text).strip():
            out[str(name).strip()] = str(text).strip()
    return out


def _unit_text(unit) -> str | None:
    if unit is None:
        return None
    try:
        text = unit.to_string()
    except Exception:  # noqa: BLE001 - an unrecognised unit still has its raw text
        text = str(unit)
    return text.strip() or None


# ----------------------------------------------------------------------------- shared
def _frame(columns: list[pd.Series], names: list[object], n_rows: int) -> pd.DataFrame:
    """A frame from columns in order, allowing blank or repeated labels."""
    if not columns:
        return pd.DataFrame(index=pd.RangeIndex(n_rows))
    df = pd.concat([c.reset_index(drop=True) for c in columns], axis=1, ignore_index=True)
    df.columns = list(names)
    return df


def _text_or_none(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


READERS = {"csv": read_delimited, "parquet": read_parquet, "excel": read_excel, "fits": read_fits,
           "votable": read_votable}
