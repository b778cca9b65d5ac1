"""The ``select`` tool: restrict the rows later tools work on with a safe filter expression."""

from __future__ import annotations

import numpy as np

from serendip.tools.filter_grammar import MAX_LENGTH, FilterSyntaxError, parse_filter
from serendip.tools.engine.mdtext import code
from serendip.tools.engine.registry import tool
from serendip.tools.engine.result import ToolResult

RESET_WORDS = {"", "all", "*", "all rows", "reset"}


@tool
def select(session, expression: str = "all", label: str | None = None) -> ToolResult:
    """Restrict the active rows (the rows every later tool works on) to those matching a filter expression.

    Use it to study a subsample (one class, a range of a property, rows without missing values) or to
    check whether a trend holds within a subset. A new selection REPLACES the previous one: the
    expression is applied to all rows of the table, not nested inside the current selection (combine
    conditions with 'and' instead). expression='all' (or empty) goes back to every row. Selecting no
    row is an error and leaves the current selection unchanged.

    Filter language: comparisons < <= > >= == != between a column and a value or between two columns;
    chained ranges `0.3 < mass <= 13`; and / or / not (also && || !); parentheses; `kind in ('A', 'B')`
    and `not in`; `x is null` / `x is not null`; values are numbers, 'quoted text', true, false, null.
    Column names with spaces, dots or other characters go in backticks: `log.AGN.NII` > -0.4. A flag
    column alone (`is_agn`) means it is true. Missing values satisfy no comparison (nor its negation).

    Args:
        expression: The filter, e.g. "mass > 0.3 and `log radius` < 1 and list in ('Confirmed')"; 'all' or
            empty resets to every row. At most 2000 characters.
        label: Short name for the selection used in later results and the report; default the expression.
    """
    text = (expression or "").strip()
    n_total = session.table.n_rows
    previous = session.selection_label
    if n_total == 0:
        raise session.fail("select has no rows to choose from: the table is empty.")
    if len(text) > MAX_LENGTH:
        raise session.fail(f"The 'expression' parameter of select must be at most {MAX_LENGTH} characters. "
                           f"Got {len(text)} characters instead.")
    if text.lower() in RESET_WORDS:
        mask = np.ones(n_total, dtype=bool)
        session.set_selection(None, "all rows")
        label_used = "all rows"
    else:
        try:
            parsed = parse_filter(text)
        except FilterSyntaxError as exc:
            raise session.fail(f"The 'expression' parameter of select is not a valid filter. {exc.one_line()}") from None
        names = {name: session.resolve_column(name, param="expression") for name in parsed.columns}
        df = session.table.df
        roles = {actual: session.table.role(actual) for actual in names.values()}
        try:
            mask = parsed.evaluate(lambda name: df[names[name]], roles)
        except FilterSyntaxError as exc:
            raise session.fail(f"The 'expression' parameter of select cannot be applied. {exc.one_line()}") from None
        n_sel = int(mask.sum())
        if n_sel == 0:
            raise session.fail(f"select matched no rows: {text[:200]!r} is false (or missing) for all {n_total} "
                               f"rows, so the selection stays {previous!r}. Loosen the condition, check values "
                               "with describe, and note that missing values satisfy no comparison.")
        label_used = (label or text)[:200]
        session.set_selection(np.flatnonzero(mask), label_used)
    n_sel = int(mask.sum())
    artifact = session.save_artifact(session.artifact_name("selection"), mask.astype(np.int8))
    summary = {"label": label_used, "n_selected": n_sel, "n_total": n_total, "fraction": n_sel / n_total,
               "replaced": previous,
               "note": "The selection applies to all rows of the table (it replaces the previous one); "
                       "later tools use only these rows until the next select."}
    if label_used != "all rows":
        summary["expression"] = text[:300]
    if label_used == "all rows":
        md = f"**Selection reset**: all {n_total} rows are active again."
    else:
        md = (f"**Selection** {code(label_used, limit=200)}: {n_sel} of {n_total} rows ({n_sel / n_total:.1%}) match "
              f"{code(text, limit=300)}.")
    return ToolResult(summary=summary, markdown=md, artifacts=[artifact])
