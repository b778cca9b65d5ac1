"""The table profile the page shows (columns, roles, missing values, sentinels, the first rows).

It is computed inside the sandboxed worker, by the loader the session's worker is started with
(:func:`load_and_profile`), so that an uploaded file is only ever parsed in the worker, under its time and
memory limits, and only once. The profile holds text for display; it is escaped where it is shown.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from serendip.tools.engine.jsonsafe import to_jsonable
from serendip.tools.engine.table import Table

PREVIEW_ROWS = 20
PREVIEW_COLUMNS = 40
PROFILE_COLUMNS = 2000
CELL_CHARS = 80


def _cell(value) -> str:
    """One preview cell as short text ('' for missing)."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.6g}"
    try:
        if value != value:  # NaT, pd.NA
            return ""
    except (TypeError, ValueError):
        pass
    text = str(value)
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


def table_profile(table: Table) -> dict:
    """What the page shows about a freshly loaded table.

    Args:
        table: The loaded table.

    Returns:
        ``{n_rows, n_columns, format, warnings, columns: [{name, role, unit, missing, missing_fraction,
        sentinel_values, n_sentinel, n_censored, original_name, notes}], preview: {columns, rows}}``;
        columns beyond :data:`PROFILE_COLUMNS` and preview cells beyond the first rows and columns are
        left out (``columns_shown`` says how many are listed).
    """
    names = [c for c in table.columns if not table.info[c].derived]
    n = table.n_rows
    missing = table.df[names].isna().sum() if names else {}
    columns = []
    for name in names[:PROFILE_COLUMNS]:
        info = table.info[name]
        n_missing = int(missing[name])
        columns.append({
            "name": name, "role": info.role, "unit": info.unit or "",
            "missing": n_missing, "missing_fraction": round(n_missing / n, 4) if n else 0.0,
            "sentinel_values": list(info.sentinel_values[:5]),
            "n_sentinel": int(info.n_sentinel), "n_censored": int(info.n_censored),
            "original_name": info.original_name or "", "notes": [str(x) for x in info.notes[:5]],
        })
    shown = names[:PREVIEW_COLUMNS]
    head = table.df[shown].head(PREVIEW_ROWS)
    rows = [[_cell(v) for v in row] for row in head.itertuples(index=False, name=None)]
    return {"n_rows": n, "n_columns": len(names), "columns_shown": len(columns), "format": table.format,
            "warnings": [str(w) for w in table.warnings[:50]], "columns": columns,
            "preview": {"columns": shown, "rows": rows, "n_rows": len(rows)}}


def load_and_profile(path: str, profile_path: str) -> Table:
    """Load a table (the worker's loader) and write its profile next to the upload once.

    Used as ``WorkerRunner(loader=functools.partial(load_and_profile, profile_path=...))``; on a worker
    restart the profile is already there and is not rewritten.

    Args:
        path: The stored upload.
        profile_path: Where the profile JSON goes.

    Raises:
        TableLoadError: The file cannot be read as a table (one-line message).
    """
    from serendip.tools.loading import load_table

    table = load_table(path)
    target = Path(profile_path)
    if not target.exists():
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(to_jsonable(table_profile(table), digits=6), ensure_ascii=False),
                       encoding="utf-8")
        os.replace(tmp, target)
    return table
