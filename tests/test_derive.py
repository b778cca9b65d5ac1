"""The derive tool and its grammar: precedence, functions, units, undefined values, hostile text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serendip.tools.derive_grammar import DeriveSyntaxError, canonical, columns_used, evaluate, parse, unit_of
from serendip.tools.engine.registry import call_tool

COLUMNS = ["a", "b", "mag_u", "mag_r", "log.NII", "exp"]


def value(text: str, **cols) -> np.ndarray:
    tree = parse(text, list(cols))
    return evaluate(tree, {k: np.asarray(v, dtype=float) for k, v in cols.items()}, len(next(iter(cols.values()))))


def test_precedence_and_associativity():
    a, b = np.array([2.0]), np.array([3.0])
    assert value("a + b * 2", a=a, b=b)[0] == 8.0
    assert value("(a + b) * 2", a=a, b=b)[0] == 10.0
    assert value("a - b - 1", a=a, b=b)[0] == -2.0
    assert value("a / b / 2", a=a, b=b)[0] == pytest.approx(1 / 3)
    assert value("-a * b", a=a, b=b)[0] == -6.0
    assert value("- -a", a=a, b=b)[0] == 2.0
    assert value("a * -b", a=a, b=b)[0] == -6.0


def test_functions():
    x = np.array([100.0, 4.0])
    assert value("log10(x)", x=x)[0] == pytest.approx(2.0)
    assert value("ln(exp(x))", x=np.array([1.5]))[0] == pytest.approx(1.5)
    assert value("sqrt(x)", x=x)[1] == pytest.approx(2.0)
    assert value("abs(-x)", x=x)[1] == 4.0
    assert value("pow(x, 2)", x=x)[1] == 16.0
    assert value("pow(x, -0.5)", x=x)[1] == pytest.approx(0.5)
    # a function name without "(" is a column
    assert value("exp + 1", exp=np.array([2.0]))[0] == 3.0


def test_undefined_values_become_missing():
    x, y = np.array([1.0, 2.0, -1.0, np.nan]), np.array([0.0, 2.0, 1.0, 1.0])
    out = value("x / y", x=x, y=y)
    assert np.isnan(out[0]) and out[1] == 1.0 and np.isnan(out[3])
    assert np.isnan(value("log10(x)", x=x)[2])
    assert np.isnan(value("sqrt(x)", x=x)[2])


def test_backticked_names_and_canonical_form():
    tree = parse("`log.NII` - 2 * (a + b)", COLUMNS)
    assert columns_used(tree) == ["log.NII", "a", "b"]
    assert canonical(tree) == "log.NII - 2 * (a + b)"
    assert canonical(parse("a - (b - 1)", COLUMNS)) == "a - (b - 1)"


@pytest.mark.parametrize("text", [
    "__import__('os')", "a.__class__", "os.system('ls')", "a ** 2", "a ^ 2", "eval(a)", "a; b", "a[0]",
    "lambda: 1", "", "a +", "(a", "pow(a)", "pow(a, b)", "1 + 2", "a b",
])
def test_hostile_and_malformed_text_is_refused(text):
    try:
        tree = parse(text, COLUMNS)
    except DeriveSyntaxError as exc:
        assert "\n" not in exc.one_line()
        return
    assert not columns_used(tree), f"{text!r} was accepted"  # a constant is parsed; the tool refuses it


def test_unknown_column_suggests_names():
    with pytest.raises(DeriveSyntaxError, match="Did you mean 'mag_u'"):
        parse("mag_uu - mag_r", COLUMNS)
    with pytest.raises(DeriveSyntaxError, match="Did you mean log10"):
        parse("log(a)", COLUMNS)


def test_units_are_carried():
    units = {"mag_u": "mag", "mag_r": "mag", "a": "mas", "b": "pc"}
    assert unit_of(parse("mag_u - mag_r", COLUMNS), units)[0] == "mag"
    assert unit_of(parse("mag_u + 5 * log10(a / 100)", COLUMNS), units)[0] == "mag"
    assert unit_of(parse("a / a", COLUMNS), units)[0] == ""
    unit, notes = unit_of(parse("a + b", COLUMNS), units)
    assert unit is None and notes


def test_derive_tool_adds_a_column_and_counts_missing(make_session):
    df = pd.DataFrame({"x": [1.0, 2.0, 0.0, np.nan, 4.0], "y": [1.0, 0.0, 1.0, 1.0, 2.0]})
    s = make_session(df)
    r = call_tool(s, "derive", {"expression": "x / y", "name": "ratio"})
    assert r.ok, r.error
    assert r.summary["n_undefined"] == 1 and r.summary["n_missing_inputs"] == 1 and r.summary["n_defined"] == 3
    assert "ratio" in s.table.columns
    np.testing.assert_allclose(s.table.df["ratio"].to_numpy()[[0, 2, 4]], [1.0, 0.0, 2.0])
    assert list(df.columns) == ["x", "y"]  # the input frame is not modified


def test_derive_tool_errors_are_one_line(make_session):
    s = make_session(pd.DataFrame({"mag_g": [1.0, 2.0], "mag_r": [0.5, 1.0]}))
    for args in ({"expression": "__import__('os').system('true')"}, {"expression": "mag_gg - mag_r"},
                 {"expression": "mag_g - mag_r", "name": "mag_g"}, {"expression": "log10(mag_g - 5)"}):
        r = call_tool(s, "derive", args)
        assert r.error and "\n" not in r.error.strip(), args
    assert "Did you mean 'mag_g'" in call_tool(s, "derive", {"expression": "mag_gg - mag_r"}).error
