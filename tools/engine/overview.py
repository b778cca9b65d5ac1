"""What the agent is told about a loaded table."""

from __future__ import annotations

from serendip.tools.engine.table import Table


def table_overview(table: Table) -> dict:
    """A small description of a table for the agent: size, columns with roles and units, load notes.

    Columns derived during the session (residuals, transforms; restored after a worker restart or on
    resume) are listed apart, so the overview always describes the input table.
    """
    cols, derived = [], []
    for name, info in table.info.items():
        if info.derived:
            derived.append(name)
            continue
        entry = {"name": name, "role": info.role}
        if info.unit:
            entry["unit"] = info.unit
        if getattr(info, "kind", None):
            entry["kind"] = info.kind
        cols.append(entry)
    return {"n_rows": table.n_rows, "n_columns": len(cols), "columns": cols, "derived_columns": derived,
            "warnings": list(table.warnings), "sha256": table.sha256, "format": table.format, "path": table.path}
