"""How big a table may be, checked before anything large is allocated.

A decompression bomb (a few KB of gzip that inflate to gigabytes), a Parquet file whose metadata
promises billions of cells, or an .xlsx sheet with one cell at Z1048576 (5 KB on disk, a dense grid of
27 million cells once read) would otherwise be bounded only by the worker's memory cap, after seconds
to minutes of work and with an unclear end. Each is refused early, in one line that says which bound
was crossed and how to get past it.

The bounds follow the memory the loader may use: the process's address-space cap (the sandbox worker
sets one) or else the machine's physical memory.
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from xml.etree.ElementTree import iterparse

from serendip.tools.loading.problems import BadTable

TEXT_FRACTION = 0.4
"""Largest (decompressed) text, as a fraction of the memory budget: parsing holds the frame and a chunk."""
CELL_BYTES = 32
"""Memory to allow per cell (8 for a float, far more for text; copies made while cleaning)."""
SHEET_CELL_BYTES = 200
"""Memory per cell of an .xlsx grid while openpyxl and pandas read it (Python objects, row lists)."""
SPARSE_MIN_CELLS = 5_000_000
SPARSE_RATIO = 50
"""A sheet whose dense grid exceeds SPARSE_MIN_CELLS and holds SPARSE_RATIO times more grid cells than
filled cells is stretched by a stray far-away cell: refused rather than filled with blanks."""


@dataclass(frozen=True)
class LoadBudget:
    """Bounds of one table load.

    Attributes:
        memory_bytes: The memory the bounds are derived from.
        max_text_bytes: Largest delimited-text or VOTable content, after decompression.
        max_cells: Most rows × columns of a table.
        max_sheet_cells: Most cells of an .xlsx sheet's dense grid.
    """

    memory_bytes: int
    max_text_bytes: int
    max_cells: int
    max_sheet_cells: int


def memory_bytes() -> int:
    """The address-space cap of this process when set, else the machine's physical memory."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft not in (resource.RLIM_INFINITY, -1) and soft > 0:
            return int(soft)
    except (ImportError, ValueError, OSError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def load_budget(memory: int | None = None) -> LoadBudget:
    """The bounds for a load with ``memory`` bytes (default: :func:`memory_bytes`)."""
    mem = int(memory if memory is not None else memory_bytes())
    return LoadBudget(memory_bytes=mem, max_text_bytes=int(mem * TEXT_FRACTION), max_cells=mem // CELL_BYTES,
                      max_sheet_cells=mem // SHEET_CELL_BYTES)


def size_text(n: float) -> str:
    """A byte count for a message: '512 MB', '4.0 GB'."""
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


def _hint(budget: LoadBudget) -> str:
    return (f"the limit follows the {size_text(budget.memory_bytes)} of memory the loader may use; raise "
            "--memory-limit, or load a subset of the rows or columns")


def check_text_size(path, compression: str | None, budget: LoadBudget) -> int:
    """Refuse a text table whose (decompressed) content is over ``budget.max_text_bytes``.

    Compressed content is counted by streaming it through the decompressor, stopping at the bound,
    so a bomb costs no memory and at most the bound's worth of decompression.

    Returns:
        The content's size in bytes.
    """
    limit = budget.max_text_bytes
    if not compression:
        size = os.path.getsize(path)
        if size > limit:
            raise BadTable(f"the file is {size_text(size)}, over the loading limit of {size_text(limit)} ({_hint(budget)})")
        return size
    from serendip.tools.loading.formats import open_binary

    total = 0
    with open_binary(path, compression) as handle:
        while True:
            block = handle.read(1 << 22)
            if not block:
                return total
            total += len(block)
            if total > limit:
                raise BadTable(f"its {compression} content decompresses to more than {size_text(limit)}, the loading "
                               f"limit ({_hint(budget)})")


def check_cells(n_rows: int, n_columns: int, budget: LoadBudget, what: str = "the table") -> None:
    """Refuse a table of more than ``budget.max_cells`` cells (from its metadata, before reading it)."""
    cells = int(n_rows) * int(n_columns)
    if cells > budget.max_cells:
        raise BadTable(f"{what} has {int(n_rows):,} rows × {int(n_columns):,} columns = {cells:,} cells, over the "
                       f"loading limit of {budget.max_cells:,} cells ({_hint(budget)})")


def check_text_cells(path, compression: str | None, n_bytes: int, n_columns: int, budget: LoadBudget) -> None:
    """Refuse delimited text with more than ``budget.max_cells`` cells (lines × header fields).

    Every cell takes at least two bytes (a character and a delimiter), so files too small to cross the
    bound are not read again; larger ones have their lines counted by streaming.
    """
    if n_bytes // 2 <= budget.max_cells:
        return
    from serendip.tools.loading.formats import open_binary

    lines = 0
    with open_binary(path, compression) as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            lines += block.count(b"\n")
            if lines * n_columns > budget.max_cells:
                check_cells(lines, n_columns, budget, what="the file")
    check_cells(lines, n_columns, budget, what="the file")


_CELL_REF = re.compile(r"^([A-Z]{1,3})(\d{1,7})$")


def _column_number(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ord(ch) - 64)
    return n


def first_sheet_part(path) -> str:
    """The zip member holding the workbook's first worksheet."""
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        return workbook.worksheets[0]._worksheet_path  # openpyxl's read-only sheets know their part
    finally:
        workbook.close()


def check_sheet(path, budget: LoadBudget) -> None:
    """Refuse an .xlsx first sheet whose dense grid is too large or stretched by far-away cells.

    pandas reads a sheet as the dense grid from A1 to its last filled cell (it ignores the sheet's
    declared dimension), so the grid is measured from the cells actually present, streaming the XML.
    """
    part = first_sheet_part(path)
    max_row = max_col = filled = row = col = 0
    parent = None
    with zipfile.ZipFile(path) as archive, archive.open(part) as xml:
        for event, elem in iterparse(xml, events=("start", "end")):
            tag = elem.tag.rsplit("}", 1)[-1]
            if event == "start":
                if tag == "sheetData":
                    parent = elem
                elif tag == "row":  # 'r' is optional: rows and cells may be numbered implicitly
                    ref = elem.get("r")
                    row = int(ref) if ref and ref.isdigit() else row + 1
                    col = 0
                continue
            if tag == "c":
                match = _CELL_REF.match(elem.get("r") or "")
                col = _column_number(match.group(1)) if match else col + 1
                cell_row = int(match.group(2)) if match else row
                max_col, max_row = max(max_col, col), max(max_row, cell_row)
                filled += 1
                grid = max_row * max_col
                if grid > budget.max_sheet_cells:
                    raise BadTable(f"its first sheet reaches row {max_row:,} and column {max_col:,}: a grid of "
                                   f"{grid:,} cells, over the loading limit of {budget.max_sheet_cells:,} "
                                   f"({_hint(budget)})")
            elif tag == "row" and parent is not None:
                parent.clear()  # rows already measured are dropped: memory stays flat
    grid = max_row * max_col
    if grid > SPARSE_MIN_CELLS and grid > SPARSE_RATIO * max(filled, 1):
        raise BadTable(f"its first sheet is almost empty but stretched to a grid of {grid:,} cells by a far-away "
                       f"cell (only {filled:,} cells hold anything); delete the stray cells or save the table as CSV")
