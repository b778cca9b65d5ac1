"""The checks a command makes on its table path before it imports the analysis stack.

Kept free of heavy imports so that ``serendip chat missing.csv`` answers in a fraction of a second instead of
after the seconds that pandas, scikit-learn and the knowledge store take to import.
"""

from __future__ import annotations

from pathlib import Path


class RunSetupError(Exception):
    """The run cannot start (bad table, bad output folder, nothing to resume); the message is one line."""


def check_table_path(path: str) -> Path:
    """Fail early, in one line, on a table path that cannot be a table.

    Args:
        path: The table file as the user gave it.

    Returns:
        The resolved path.

    Raises:
        RunSetupError: It does not exist, is a directory or is empty.
    """
    p = Path(path)
    if not p.exists():
        raise RunSetupError(f"table not found: {path}")
    if p.is_dir():
        raise RunSetupError(f"{path} is a directory, not a table file")
    if p.stat().st_size == 0:
        raise RunSetupError(f"{path} is empty")
    return p.resolve()


def missing_input(path: str) -> str | None:
    """The one-line error for an input that plainly does not exist (not a glob), else None.

    ``serendip explore`` also takes Parquet folders and globs, so only a path with no wildcard that names
    nothing is refused here; everything else is judged by the loader.
    """
    if any(ch in path for ch in "*?[") or Path(path).exists():
        return None
    return f"table not found: {path}"
