"""``load_table``: any supported table file to a cleaned :class:`Table`, or one clear line saying why not."""

from __future__ import annotations

import errno
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from serendip.tools.engine.errors import TableLoadError
from serendip.tools.loading.budget import check_text_size, load_budget
from serendip.tools.loading.formats import detect_format
from serendip.tools.loading.prepare import prepare_frame
from serendip.tools.loading.problems import BadTable, one_line
from serendip.tools.loading.readers import READERS, RawTable
from serendip.tools.engine.table import Table

_FORMAT_NAMES = {"csv": "delimited text", "parquet": "Parquet", "excel": "an Excel workbook", "fits": "FITS",
                 "votable": "a VOTable"}


def load_table(path: str | Path) -> Table:
    """Read a table file (CSV/TSV, Parquet, Excel .xlsx, FITS binary/ASCII table, VOTable) into a Table.

    The format comes from the file's content (magic bytes), with the extension only as a hint, so
    misnamed files still load (with a warning). The file is only ever opened for reading. Catalogue
    conventions are applied (see :func:`prepare_frame`): blank/duplicate names made unique, ``<x``/``>x``
    limits, sentinel codes and infinities masked, roles inferred. A leading unnamed column holding the
    row numbers (as R's ``write.csv`` writes) is dropped with a note.

    Args:
        path: The file to read.

    Returns:
        The table, with ``path`` (absolute), ``sha256`` of the file's bytes, ``format`` and ``warnings``.

    Raises:
        TableLoadError: The file is missing, a directory, unreadable, empty, header-only, headerless,
            corrupt or of an unknown format; the message is one line that says which.
    """
    file = Path(path)
    shown = repr(file.name or str(file))
    try:
        _check_file(file)
        detected = detect_format(file)
        if detected.format in ("csv", "votable"):  # text: bounded before any parsing (bombs included)
            detected.text_bytes = check_text_size(file, detected.compression, load_budget())
        with ThreadPoolExecutor(max_workers=1) as pool:
            digest = pool.submit(_sha256, file)  # hashing overlaps parsing (both release the GIL)
            raw = _read(file, detected)
            sha256 = digest.result()
        _drop_row_numbers(raw)
        _drop_empty_blank_columns(raw)
        if raw.df.shape[1] == 0:
            raise BadTable("no readable columns")
        if len(raw.df) == 0:
            raise BadTable("it has a header but no data rows")
    except BadTable as problem:
        reason = str(problem).replace(str(file.resolve()), file.name).replace(str(file), file.name)
        raise TableLoadError(f"Cannot load {shown}: {one_line(reason, 300)}") from None
    except OSError as exc:
        raise TableLoadError(f"Cannot load {shown}: {_os_problem(exc)}") from None

    table = prepare_frame(raw.df, units=raw.units, descriptions=raw.descriptions)
    table.path = os.path.abspath(file)
    table.sha256 = sha256
    table.format = raw.format
    table.warnings = detected.warnings + raw.warnings + table.warnings
    return table


def _check_file(file: Path) -> None:
    if not file.exists():
        raise BadTable("no such file")
    if file.is_dir():
        raise BadTable("it is a directory, not a table file")
    if not file.is_file():
        raise BadTable("it is not a regular file")
    if not os.access(file, os.R_OK):
        raise BadTable("permission denied (the file is not readable)")
    if file.stat().st_size == 0:
        raise BadTable("the file is empty")


def _read(file: Path, detected) -> RawTable:
    """Run the format's reader; a library failure on bad content becomes a one-line BadTable."""
    try:
        return READERS[detected.format](file, detected)
    except (BadTable, MemoryError):
        raise
    except OSError as exc:
        raise BadTable(_os_problem(exc)) from None
    except Exception as exc:  # noqa: BLE001 - parsers fail in many ways on damaged files
        raise BadTable(f"could not be read as {_FORMAT_NAMES[detected.format]}; it may be damaged or truncated "
                       f"({type(exc).__name__}: {one_line(exc)})") from None


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _os_problem(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied (the file is not readable)"
    if exc.errno == errno.ENOENT:
        return "no such file"
    if exc.errno == errno.EISDIR:
        return "it is a directory, not a table file"
    return f"the file could not be read ({one_line(exc.strerror or exc)})"


def _is_blank(label: object) -> bool:
    if label is None or (isinstance(label, float) and label != label):
        return True
    text = str(label).strip()
    return text == "" or text.startswith("Unnamed: ")


def _drop_row_numbers(raw: RawTable) -> None:
    """Drop a leading unnamed column that holds 1..N or 0..N-1 (row labels written by R or pandas)."""
    df = raw.df
    if df.shape[1] < 2 or len(df) == 0 or not _is_blank(df.columns[0]):
        return
    values = pd.to_numeric(df.iloc[:, 0], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    if np.isnan(values).any() or values[0] not in (0.0, 1.0) or not np.all(np.diff(values) == 1):
        return
    raw.df = df.iloc[:, 1:]
    raw.units = raw.units[1:] if raw.units else raw.units
    raw.descriptions = raw.descriptions[1:] if raw.descriptions else raw.descriptions
    first = int(values[0])
    raw.warnings.append(f"dropped the leading unnamed column holding the row numbers {first}..{first + len(df) - 1}")


def _drop_empty_blank_columns(raw: RawTable) -> None:
    """Drop columns with no name and no values (e.g. from a delimiter at the end of every line)."""
    df = raw.df
    keep = [j for j in range(df.shape[1]) if not (_is_blank(df.columns[j]) and df.iloc[:, j].isna().all())]
    if len(keep) == df.shape[1] or not keep:
        return
    raw.warnings.append(f"dropped {df.shape[1] - len(keep)} column(s) with neither a name nor any value")
    raw.df = df.iloc[:, keep]
    raw.units = [raw.units[j] for j in keep] if raw.units else raw.units
    raw.descriptions = [raw.descriptions[j] for j in keep] if raw.descriptions else raw.descriptions
