"""Which inputs are explored through Dask, and their partitions.

A Parquet folder, a glob of Parquet files, or one Parquet file whose values would not fit in the memory
budget. The partitions are the files' row groups, listed from the Parquet footers with pyarrow (no data
read); each has a fixed global row offset, so a row's position in the dataset is the same on every
worker and in every output.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
EXPANSION = 10.0
"""In-memory run size over the raw values (measured: 1M x 20 float64 = 160 MB raw peaks at ~1.6 GB)."""


class DatasetError(Exception):
    """The dataset cannot be explored; the message is one line."""


@dataclass(frozen=True)
class Part:
    """One partition: a row group of one file, at a global row offset."""

    path: str
    row_group: int
    n_rows: int
    offset: int


@dataclass
class Dataset:
    """A partitioned Parquet dataset.

    Attributes:
        source: What the user gave (folder, glob or file).
        files: The Parquet files, sorted.
        parts: Partitions in file then row-group order.
        columns: Column names.
        numeric: Numeric (and boolean) columns.
        text: String / dictionary columns.
        n_rows: Rows in all partitions.
    """

    source: str
    files: list[str]
    parts: list[Part]
    columns: list[str]
    numeric: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return sum(p.n_rows for p in self.parts)

    @property
    def raw_bytes(self) -> int:
        """Bytes of the values as float64 / object cells."""
        return self.n_rows * 8 * max(1, len(self.columns))


def parquet_files(table: str) -> list[str] | None:
    """The Parquet files a folder or glob names (None when ``table`` is neither)."""
    p = Path(table)
    if p.is_dir():
        files = [str(f) for f in sorted(p.rglob("*")) if f.is_file() and f.suffix.lower() in PARQUET_SUFFIXES
                 and not any(part.startswith((".", "_")) for part in f.relative_to(p).parts)]
        return files
    if any(ch in table for ch in "*?[") and not p.exists():
        return [f for f in sorted(glob.glob(table, recursive=True))
                if Path(f).is_file() and Path(f).suffix.lower() in PARQUET_SUFFIXES]
    return None


def open_dataset(table: str) -> Dataset:
    """List a Parquet folder, glob or file: partitions, offsets and column kinds (footers only).

    Raises:
        DatasetError: No Parquet file, an unreadable file, or files whose columns differ.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = parquet_files(table)
    if files is None:
        files = [table]
    if not files:
        raise DatasetError(f"{table} holds no Parquet file (*.parquet, *.parq, *.pq)")
    parts: list[Part] = []
    schema = None
    offset = 0
    for f in files:
        try:
            meta = pq.ParquetFile(f).metadata
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a broken file
            raise DatasetError(f"cannot read the Parquet file {f}: {str(exc).splitlines()[0][:200]}") from None
        file_schema = meta.schema.to_arrow_schema()
        if schema is None:
            schema = file_schema
        elif file_schema.names != schema.names:
            raise DatasetError(f"the Parquet files of {table} do not share their columns ({Path(f).name} differs)")
        for g in range(meta.num_row_groups):
            n = meta.row_group(g).num_rows
            if n:
                parts.append(Part(f, g, n, offset))
                offset += n
    numeric, text = [], []
    for fld in schema:
        t = fld.type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
            numeric.append(fld.name)
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            text.append(fld.name)
    return Dataset(table, files, parts, list(schema.names), numeric, text)


def wants_dask(table: str, memory_budget_mb: int) -> bool:
    """Whether ``table`` goes the Dask way: a Parquet folder or glob, or a Parquet file too big for the budget."""
    files = parquet_files(table)
    if files is not None:
        return True
    p = Path(table)
    if p.is_file() and p.suffix.lower() in PARQUET_SUFFIXES:
        try:
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(p).metadata
        except Exception:  # noqa: BLE001 - an unreadable file goes the ordinary way, which says why
            return False
        return meta.num_rows * 8 * max(1, meta.num_columns) * EXPANSION > memory_budget_mb * 2**20
    return False


def read_part(part: Part, columns: list[str]):
    """One partition as a pyarrow Table (only ``columns``)."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(part.path).read_row_group(part.row_group, columns=columns)


def float_values(chunk) -> "np.ndarray":
    """A pyarrow array as float64 numpy values, nulls as NaN, read straight from its buffers.

    Why not ``Array.to_numpy``: that path imports pandas (~45 MiB) in a Dask worker that may have 256 MB.
    """
    import numpy as np
    import pyarrow as pa

    if pa.types.is_dictionary(chunk.type):
        chunk = chunk.dictionary_decode()
    chunk = chunk.cast(pa.float64())
    n, off = len(chunk), chunk.offset
    validity, data = chunk.buffers()[:2]
    values = np.frombuffer(data, dtype=np.float64, count=off + n)[off:].copy() if n else np.zeros(0)
    if chunk.null_count:
        bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")[off:off + n]
        values[bits == 0] = np.nan
    return values


def numeric_arrays(table, columns: list[str]) -> dict:
    """Float64 numpy arrays of numeric columns (nulls as NaN, booleans as 0/1)."""
    import numpy as np

    out = {}
    for c in columns:
        chunks = table.column(c).chunks
        out[c] = np.concatenate([float_values(ch) for ch in chunks]) if chunks else np.zeros(0)
    return out


def arrow_array(values: "np.ndarray"):
    """A numpy array (int8/int32/int64/float32/float64, no missing) as a pyarrow array, without pandas."""
    import numpy as np
    import pyarrow as pa

    values = np.ascontiguousarray(values)
    kind = {np.dtype(np.int8): pa.int8(), np.dtype(np.int32): pa.int32(), np.dtype(np.int64): pa.int64(),
            np.dtype(np.float32): pa.float32(), np.dtype(np.float64): pa.float64()}[values.dtype]
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])


def text_lists(table, columns: list[str]) -> dict:
    """Python lists of text columns (None for nulls)."""
    return {c: table.column(c).to_pylist() for c in columns}
