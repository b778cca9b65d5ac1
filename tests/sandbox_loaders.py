"""Table loaders injected into sandbox workers by tests (module-level, so they pickle by reference)."""

from __future__ import annotations

from serendip.tools.engine.errors import TableLoadError
from serendip.tools.engine.table import Table


def unreadable_loader(path: str) -> Table:
    """Fail the way load_table fails on a bad file."""
    raise TableLoadError(f"cannot read {path}: not a table")


def oversized_loader(path: str) -> Table:
    """Fail the way a table too big for the worker's memory cap fails while loading."""
    import numpy as np

    blocks = [np.ones(1 << 27) for _ in range(64)]  # 64 GiB: far past any cap the tests set
    raise AssertionError(f"allocated {len(blocks)} blocks under a memory cap")
