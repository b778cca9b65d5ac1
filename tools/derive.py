"""The ``derive`` tool: a new column from an arithmetic expression over columns (colours, line ratios,
absolute magnitudes), parsed by the project's own grammar (:mod:`serendip.tools.derive_grammar`)."""

from __future__ import annotations

import re

import numpy as np

from serendip.tools.derive_grammar import (
    DeriveSyntaxError, canonical, columns_used, evaluate, parse, unit_of)
from serendip.tools.engine.mdtext import code
from serendip.tools.engine.registry import tool
from serendip.tools.engine.result import ToolResult

MAX_NAME_LENGTH = 80
_OPERATOR_WORDS = {"+": "plus", "-": "minus", "*": "times", "/": "over", ",": "_"}


def default_name(expression: str) -> str:
    """A column name from an expression: 'mag_u - mag_r' → 'mag_u_minus_mag_r'."""
    text = expression
    for op, word in _OPERATOR_WORDS.items():
        text = text.replace(op, f" {word} ")
    name = re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_")
    return (name or "derived")[:MAX_NAME_LENGTH]


@tool
def derive(session, expression: str, name: str | None = None) -> ToolResult:
    """Add a new numeric column computed from other columns by an arithmetic expression.

    Use it to reach the quantities astronomers work in: colours from magnitudes (`g - r`), line ratios
    (`log10(NII / Halpha)`), absolute magnitudes (`G + 5 * log10(parallax / 100)` with parallax in mas),
    ratios and differences of any columns. The language: numbers, columns, + - * /, unary minus,
    parentheses and the functions log10, ln, exp, sqrt, abs and pow(x, number). Column names with spaces,
    dots or other characters go in backticks: `log.NII` - 1. Nothing else is allowed (no attributes, no
    other calls). Rows where an input is missing, or the operation is undefined (division by zero, log
    of a non-positive value, square root of a negative), get a missing value; both are counted. Units
    are carried where the columns' units are known (mag - mag is in mag).

    Args:
        expression: The formula, e.g. "mag_u - mag_r" or "phot_g_mean_mag + 5 * log10(parallax / 100)";
            at most 2000 characters.
        name: Name of the new column (letters, digits, underscores; default made from the expression).
            It must not be an existing column of the table.
    """
    text = (expression or "").strip()
    numeric = [c for c in session.table.columns if session.table.role(c) in ("numeric", "flag")]
    try:
        tree = parse(text, numeric)
    except DeriveSyntaxError as exc:
        others = [c for c in session.table.columns if c not in set(numeric)]
        reason = exc.one_line()
        if "Unknown column" in exc.reason:
            bad = text[exc.position:].split()[0].strip("`()") if text[exc.position:].strip() else ""
            if bad in others:
                reason = (f"Column {bad!r} is not numeric (role {session.table.role(bad)}); derive works on numeric "
                          "columns. " + reason)
        raise session.fail(f"The 'expression' parameter of derive is not a valid formula. {reason}") from None
    used = columns_used(tree)
    if not used:
        raise session.fail("The 'expression' parameter of derive must use at least one column; got a constant "
                           f"({text[:60]!r}).")
    new_name = (name or default_name(canonical(tree))).strip()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,79}", new_name):
        raise session.fail(f"The 'name' parameter of derive must be letters, digits and underscores (at most "
                           f"{MAX_NAME_LENGTH}, not starting with a digit). Got {new_name[:100]!r} instead.")
    if new_name in session.table.info and not session.table.info[new_name].derived:
        raise session.fail(f"The 'name' parameter of derive must not be an existing column; {new_name!r} is one of "
                           "the table's columns. Choose another name.")
    df = session.table.df
    n = session.table.n_rows
    values = {c: df[c].to_numpy(dtype=float, na_value=np.nan) for c in used}
    result = evaluate(tree, values, n)
    inputs_missing = np.zeros(n, dtype=bool)
    for v in values.values():
        inputs_missing |= ~np.isfinite(v)
    undefined = ~inputs_missing & ~np.isfinite(result)
    n_missing_inputs, n_undefined = int(inputs_missing.sum()), int(undefined.sum())
    n_defined = int(np.isfinite(result).sum())
    if n_defined == 0:
        raise session.fail(f"derive's expression {canonical(tree)!r} is undefined or missing in every row "
                           f"({n_undefined} undefined, {n_missing_inputs} with a missing input); check the columns "
                           "and the operation (e.g. log10 of non-positive values).")
    units = {c: session.table.info[c].unit for c in used}
    unit, unit_notes = unit_of(tree, units)
    formula = canonical(tree)
    description = f"derived: {formula}" + (f" [{unit}]" if unit else "")
    session.add_derived_column(new_name, result, description)
    if unit is not None:
        session.table.info[new_name].unit = unit
    fin = result[np.isfinite(result)]
    q = np.percentile(fin, [5, 50, 95])
    summary = {"new_column": new_name, "expression": formula, "columns_used": used, "unit": unit,
               "n_defined": n_defined, "n_missing_inputs": n_missing_inputs, "n_undefined": n_undefined,
               "median": float(q[1]), "p5": float(q[0]), "p95": float(q[2]), "unit_notes": unit_notes}
    missing = []
    if n_missing_inputs:
        missing.append(f"{n_missing_inputs} rows with a missing input")
    if n_undefined:
        missing.append(f"{n_undefined} rows where the operation is undefined (set missing)")
    md = (f"**Derived** {code(new_name)} = {code(formula, 200)}" + (f" [{unit}]" if unit else "")
          + f": defined in {n_defined} rows, median {q[1]:.4g} (5–95%: {q[0]:.4g} to {q[2]:.4g})"
          + (f"; {', '.join(missing)}" if missing else "") + "."
          + (f" Note: the expression {'; '.join(unit_notes)}." if unit_notes else ""))
    return ToolResult(summary=summary, markdown=md, details={"new_columns": [new_name]})
