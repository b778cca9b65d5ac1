"""Table loaders injected into sandbox workers by tests (module-level, so they pickle by reference)."""

from __future__ import annotations

from serendip.tools.errors import TableLoadError
from serendip.tools.table import Table


def unreadable_loader(path: str) -> Table:
    """Fail the way load_table fails on a bad file."""
    raise TableLoadError(f"cannot read {path}: not a table")
