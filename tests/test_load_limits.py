"""Tables too big for the memory the loader may use are refused before anything large is allocated:
decompression bombs, sparse .xlsx sheets stretched by one far-away cell, Parquet/FITS whose metadata
promise too many cells. Each is a bad input: one line, exit status 2."""

from __future__ import annotations

import gzip
import time

import numpy as np
import pandas as pd
import pytest

from serendip.agent.cli import main as cli_main
from serendip.tools.engine.errors import TableLoadError
from serendip.tools.loading import budget as budget_module
from serendip.tools.loading import load_table


@pytest.fixture
def small_memory(monkeypatch):
    """Pretend the loader may use 64 MB: text up to ~26 MB, 2M cells, 335k sheet cells."""
    monkeypatch.setattr(budget_module, "memory_bytes", lambda: 64 << 20)


def gzip_bomb(path, megabytes: int) -> None:
    line = b"1,2,3,4\n" * (1 << 17)  # 1 MB
    with gzip.open(path, "wb", compresslevel=9) as fh:
        fh.write(b"a,b,c,d\n")
        for _ in range(megabytes):
            fh.write(line)


def test_a_decompression_bomb_is_refused_while_streaming(tmp_path, small_memory):
    bomb = tmp_path / "bomb.csv.gz"
    gzip_bomb(bomb, 40)
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(TableLoadError, match=r"decompresses to more than .*loading limit.*--memory-limit") as err:
        load_table(bomb)
    assert "\n" not in str(err.value)


def test_too_many_cells_in_plain_text_is_refused(tmp_path, small_memory):
    path = tmp_path / "wide.csv"
    with open(path, "wb") as fh:  # 20 MB of 1-character cells: under the byte limit, over the cell limit
        fh.write(b",".join(f"c{j}".encode() for j in range(50)) + b"\n")
        row = b",".join([b"1"] * 50) + b"\n"
        fh.write(row * (20_000_000 // len(row)))
    with pytest.raises(TableLoadError, match=r"cells, over the loading limit"):
        load_table(path)


def test_a_table_within_the_limits_still_loads(tmp_path, small_memory):
    path = tmp_path / "ok.csv.gz"
    pd.DataFrame({"a": np.arange(1000), "b": np.arange(1000) * 2.0}).to_csv(path, index=False)
    assert load_table(path).n_rows == 1000


def test_a_sparse_xlsx_with_a_cell_at_z1048576_is_refused_fast(tmp_path):
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws["A1"], ws["B1"], ws["A2"], ws["B2"] = "a", "b", 1, 2
    ws["Z1048576"] = 1
    path = tmp_path / "sparse.xlsx"
    wb.save(path)
    assert path.stat().st_size < 20_000
    started = time.monotonic()
    with pytest.raises(TableLoadError, match=r"stretched to a grid of 27,262,976 cells"):
        load_table(path)
    assert time.monotonic() - started < 10


def test_a_dense_sheet_over_the_cell_budget_is_refused(tmp_path, small_memory):
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["a", "b", "c"])
    for i in range(300):
        ws.append([i, i, i])
    ws.cell(row=2000, column=200, value=1)  # 400k-cell grid > 335k, with enough cells not to look sparse
    path = tmp_path / "big.xlsx"
    wb.save(path)
    with pytest.raises(TableLoadError, match=r"reaches row 2,000 and column 200"):
        load_table(path)


def test_parquet_metadata_over_the_cell_budget_is_refused(tmp_path, small_memory):
    path = tmp_path / "long.parquet"
    pd.DataFrame({f"c{j}": np.zeros(300_000, dtype=np.int8) for j in range(10)}).to_parquet(path)
    with pytest.raises(TableLoadError, match=r"300,000 rows × 10 columns"):
        load_table(path)


def test_fits_header_over_the_cell_budget_is_refused(tmp_path, small_memory):
    from astropy.table import Table as AstropyTable

    path = tmp_path / "long.fits"
    AstropyTable({f"c{j}": np.zeros(300_000, dtype=np.int16) for j in range(10)}).write(path)
    with pytest.raises(TableLoadError, match=r"300,000 rows × 10 columns"):
        load_table(path)


@pytest.mark.slow
def test_a_bomb_exits_2_through_the_command_line(tmp_path, capsys):
    from openpyxl import Workbook

    wb = Workbook()
    wb.active["A1"], wb.active["A2"], wb.active["Z1048576"] = "a", 1, 1
    path = tmp_path / "sparse.xlsx"
    wb.save(path)
    assert cli_main(["explore", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("serendip: error:") and "stretched" in err and "\n" not in err
