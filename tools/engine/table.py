"""The typed in-memory table that every tool reads: values plus per-column metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

Role = Literal["numeric", "categorical", "identifier", "flag", "text", "datetime"]
ROLES: tuple[str, ...] = ("numeric", "categorical", "identifier", "flag", "text", "datetime")


@dataclass
class ColumnInfo:
    """What is known about one column besides its values.

    Attributes:
        name: The column's (unique) name in the table.
        role: One of numeric, categorical, identifier, flag, text, datetime.
        unit: Unit string from the file (FITS/VOTable), if any.
        description: Free-text description from the file, if any.
        original_name: The header text before it was made unique or non-blank.
        sentinel_values: Values detected as missing-value sentinels and masked.
        n_sentinel: Number of cells masked as sentinels.
        n_censored: Number of cells written as limits (``<x`` or ``>x``).
        derived: True for columns created during the session (e.g. residuals).
        notes: Human-readable notes about how the column was read.
        kind: What a numeric column measures when its name, unit or values say so (angle, time,
            identifier, bookkeeping, magnitude, count; see ``loading.roles.column_kind``), else None.
    """

    name: str
    role: str = "numeric"
    unit: str | None = None
    description: str | None = None
    original_name: str | None = None
    sentinel_values: list[float] = field(default_factory=list)
    n_sentinel: int = 0
    n_censored: int = 0
    derived: bool = False
    notes: list[str] = field(default_factory=list)
    kind: str | None = None


@dataclass
class Table:
    """A loaded table.

    ``df`` holds cleaned values with a RangeIndex equal to the 0-based position of each data row in the
    input file: numeric columns are float64 with NaN for missing, sentinel or infinite cells, and limit
    values (``<0.3``) hold the limit's number with the direction kept in ``censored``.

    Attributes:
        df: The cleaned values.
        info: Per-column metadata, keyed by column name, in column order.
        censored: Per numeric column with limits, an int8 array per row: -1 upper limit (true value
            <= stored value), +1 lower limit, 0 a measured value.
        path: The file the table came from ('' for an in-memory table).
        sha256: Hex digest of the input file's bytes ('' for an in-memory table).
        format: csv, tsv, parquet, excel, fits, votable or dataframe.
        warnings: Notes about the whole load (renamed columns, skipped columns, masked sentinels...).
    """

    df: pd.DataFrame
    info: dict[str, ColumnInfo]
    censored: dict[str, np.ndarray] = field(default_factory=dict)
    path: str = ""
    sha256: str = ""
    format: str = "dataframe"
    warnings: list[str] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        """Number of data rows."""
        return len(self.df)

    @property
    def columns(self) -> list[str]:
        """Column names in table order."""
        return list(self.df.columns)

    def role(self, name: str) -> str:
        """The role of column ``name``."""
        return self.info[name].role

    def columns_with_role(self, *roles: str) -> list[str]:
        """Column names whose role is one of ``roles``, in table order."""
        return [c for c in self.df.columns if self.info[c].role in roles]

    @property
    def numeric_columns(self) -> list[str]:
        """Names of numeric columns (including derived ones)."""
        return self.columns_with_role("numeric")

    def add_column(self, name: str, values: np.ndarray, info: ColumnInfo) -> None:
        """Add or replace a derived column (one value per row of the whole table)."""
        values = np.asarray(values)
        if len(values) != self.n_rows:
            raise ValueError(f"column {name!r} has {len(values)} values for {self.n_rows} rows")
        self.df[name] = values
        self.info[name] = info

    @classmethod
    def from_dataframe(cls, df: pd.DataFrame, *, name: str = "", clean: bool = True) -> "Table":
        """Build a table from an in-memory DataFrame, applying the same cleaning as files get.

        Args:
            df: The raw frame; it is copied, never modified.
            name: A label used as ``path`` in provenance.
            clean: Detect roles, sentinels and limits (True), or only infer roles (False).
        """
        from serendip.tools.loading.prepare import prepare_frame

        table = prepare_frame(df.copy(), clean=clean)
        table.path = name
        return table
