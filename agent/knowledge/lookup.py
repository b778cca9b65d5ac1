"""Known results that involve given columns: what the model's ``lookup_known`` tool returns."""

from __future__ import annotations

from serendip.agent.knowledge.novelty import Knowledge, TableContext

MAX_RESULTS = 8


def known_for_columns(knowledge: Knowledge, ctx: TableContext, columns: list[str]) -> dict:
    """The quantities the columns measure and the known results among them, best first.

    A trend result is listed when two of its quantities are measured by two different columns; a
    grouping or outlier result when all its quantities are.
    """
    measured: dict[str, list[tuple[str, int]]] = {}
    per_column = {}
    for col in columns:
        base, qs, _ = knowledge.quantities(col, ctx)
        per_column[col] = [{"quantity": m.quantity, "sense": m.sense, "via": m.via} for m in qs]
        for m in qs:
            measured.setdefault(m.quantity, []).append((col, m.sense))
    found = []
    for r in knowledge.results:
        cols = {q: measured[q][0] for q in r.quantities if q in measured}
        distinct = {c for c, _ in cols.values()}
        trend_ok = "trend" in r.kinds and len(distinct) >= 2
        set_ok = any(k in r.kinds for k in ("group", "outlier")) and len(cols) == len(r.quantities)
        if not (trend_ok or set_ok):
            continue
        sign = r.sign
        if sign and len(r.quantities) >= 2 and r.quantities[0] in cols and r.quantities[1] in cols:
            sign *= cols[r.quantities[0]][1] * cols[r.quantities[1]][1]
        found.append({"id": r.id, "name": r.name, "kinds": list(r.kinds),
                      "columns": {c: q for q, (c, _) in cols.items()},
                      "expected_sign": sign if len(distinct) >= 2 else None,
                      "control_for": cols[r.x][0] if r.x and r.x in cols else None,
                      "shape": r.shape, "citation": r.citation})
    if len(found) > 1:
        sims = knowledge.similarity(ctx.text + " " + " ".join(columns),
                                    [r for r in knowledge.results if r.id in {f["id"] for f in found}])
        found.sort(key=lambda f: -sims.get(f["id"], 0.0))
    return {"ok": True, "quantities": per_column, "known_results": found[:MAX_RESULTS],
            "more": max(0, len(found) - MAX_RESULTS),
            "advice": ("A finding that matches one of these is known, not new. When a known relation is strong, "
                       "control for it (residualize on its 'control_for' column) and explore the residuals."
                       if found else "No known result of the pack or the user's list involves these columns.")}
