"""The session workspace survives a worker restart: derived columns and the selection come back."""

import numpy as np
import pandas as pd

from serendip.tools.engine.session import Session
from serendip.tools.engine.table import Table


def test_restore_ignores_a_file_left_by_a_killed_worker(tmp_path):
    df = pd.DataFrame({"a": np.arange(10.0)})
    s = Session(Table.from_dataframe(df), tmp_path)
    s.add_derived_column("first", np.arange(10.0) * 2, "twice a")
    # A worker killed between writing a derived file and recording it leaves a stray file behind.
    np.save(tmp_path / ".workspace" / "derived" / "0001.npy", np.full(10, -1.0))
    s.add_derived_column("second", np.arange(10.0) * 3, "three times a")
    s.set_selection(np.array([1, 2, 3]), "a few rows")

    again = Session(Table.from_dataframe(df), tmp_path)
    np.testing.assert_array_equal(again.table.df["first"], np.arange(10.0) * 2)
    np.testing.assert_array_equal(again.table.df["second"], np.arange(10.0) * 3)
    assert again.table.info["second"].derived
    assert list(again.active_rows) == [1, 2, 3] and again.selection_label == "a few rows"
