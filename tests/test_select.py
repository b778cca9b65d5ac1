"""The filter grammar (tokenizer, parser, evaluator) and the select tool."""

from __future__ import annotations

import builtins

import numpy as np
import pandas as pd
import pytest

from serendip.tools import filter_grammar as fg
from serendip.tools.filter_grammar import FilterSyntaxError, parse_filter
from serendip.tools.engine.registry import call_tool


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 300
    mass = rng.lognormal(0, 1.5, n)
    mass[rng.choice(n, 20, replace=False)] = np.nan
    kind = rng.choice(["A", "B", "C", "hot Jupiter"], n).astype(object)
    kind[rng.choice(n, 15, replace=False)] = None
    return pd.DataFrame({
        "mass": mass,
        "radius": rng.normal(1, 0.3, n),
        "log.AGN.NII": rng.normal(-0.3, 0.3, n),
        "period days": rng.lognormal(1, 1, n),
        "kind": kind,
        "is_agn": rng.random(n) < 0.3,
        "detected": rng.integers(0, 2, n),
    })


def columns_of(df: pd.DataFrame):
    return lambda name: df[name]


def evaluate(text: str, df: pd.DataFrame, roles: dict | None = None) -> np.ndarray:
    return parse_filter(text).evaluate(columns_of(df), roles)


# --------------------------------------------------------------------------- grammar vs numpy
def hand_cases(df: pd.DataFrame) -> list[tuple[str, np.ndarray]]:
    m = df["mass"].to_numpy()
    r = df["radius"].to_numpy()
    nii = df["log.AGN.NII"].to_numpy()
    per = df["period days"].to_numpy()
    k = df["kind"]
    known = k.notna().to_numpy()
    ks = k.astype(str).to_numpy()
    agn = df["is_agn"].to_numpy()
    det = df["detected"].to_numpy()
    fin = np.isfinite(m)
    with np.errstate(invalid="ignore"):
        return [
            ("mass > 1", fin & (m > 1)),
            ("mass >= 1", fin & (m >= 1)),
            ("mass < 1", fin & (m < 1)),
            ("mass <= 1.5e0", fin & (m <= 1.5)),
            ("mass != 1", fin & (m != 1)),
            ("radius == radius", r == r),
            ("0.3 < mass <= 13", fin & (m > 0.3) & (m <= 13)),
            ("13 >= mass > 0.3", fin & (m > 0.3) & (m <= 13)),
            ("`log.AGN.NII` > -0.4", nii > -0.4),
            ("`log.AGN.NII` > - 0.4", nii > -0.4),
            ("`period days` < 3 and radius > 1", (per < 3) & (r > 1)),
            ("`period days` < 3 && radius > 1 || mass > 10", ((per < 3) & (r > 1)) | (fin & (m > 10))),
            ("(`period days` < 3 or radius > 1) and mass > 10", ((per < 3) | (r > 1)) & fin & (m > 10)),
            ("not mass > 1", fin & ~(m > 1)),
            ("!(mass > 1)", fin & ~(m > 1)),
            ("not not mass > 1", fin & (m > 1)),
            ("mass > radius", fin & (m > r)),
            ("kind == 'A'", known & (ks == "A")),
            ('kind == "hot Jupiter"', known & (ks == "hot Jupiter")),
            ("kind != 'A'", known & (ks != "A")),
            ("kind in ('A', 'B')", known & np.isin(ks, ["A", "B"])),
            ("kind in ('A', 'B',)", known & np.isin(ks, ["A", "B"])),
            ("kind not in ('A', 'B')", known & ~np.isin(ks, ["A", "B"])),
            ("not kind in ('A')", known & (ks != "A")),
            ("kind in ('A', null)", (known & (ks == "A")) | ~known),
            ("kind is null", ~known),
            ("kind IS NOT NULL", known),
            ("kind == null", ~known),
            ("mass is null or mass > 100", ~fin | (m > 100)),
            ("is_agn", agn),
            ("!is_agn", ~agn),
            ("is_agn == true", agn),
            ("is_agn == FALSE", ~agn),
            ("detected", det == 1),
            ("detected == 1 and not is_agn", (det == 1) & ~agn),
            ("detected in (1)", det == 1),
            ("mass in (1, 2, 3)", fin & np.isin(m, [1, 2, 3])),
            ("radius > 1 or radius <= 1", np.ones(len(r), bool)),
            ("mass > 1 or not mass > 1", fin),
            ("  radius\n>\t1  ", r > 1),
            ("radius > .5", r > 0.5),
            ("radius > 1.", r > 1.0),
            ("radius > +1", r > 1.0),
        ]


def test_grammar_matches_hand_computed_masks(frame):
    for text, expected in hand_cases(frame):
        got = evaluate(text, frame)
        assert got.dtype == bool
        np.testing.assert_array_equal(got, expected, err_msg=text)


def random_expression(rng, df, depth=0):
    """A random filter text and its expected (true, false) masks under three-valued logic."""
    numeric = ["mass", "radius", "log.AGN.NII", "period days"]
    choice = rng.integers(0, 5) if depth < 4 else 0
    if choice <= 1:
        col = numeric[rng.integers(len(numeric))]
        v = df[col].to_numpy()
        known = np.isfinite(v)
        op = ["<", "<=", ">", ">=", "==", "!="][rng.integers(6)]
        t = float(np.round(rng.choice(v[known]) if rng.random() < 0.3 else rng.normal(0, 2), 3))
        name = f"`{col}`" if not col.isidentifier() or rng.random() < 0.3 else col
        cmp = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
               "==": np.equal, "!=": np.not_equal}[op]
        with np.errstate(invalid="ignore"):
            res = cmp(v, t)
        if rng.random() < 0.5:
            text = f"{name} {op} {t!r}"
        else:
            text = f"{t!r} {fg.FLIPPED[op]} {name}"
        return text, (res & known, ~res & known)
    if choice == 2:
        text, (t, f) = random_expression(rng, df, depth + 1)
        return f"not ({text})", (f, t)
    a_text, (at, af) = random_expression(rng, df, depth + 1)
    b_text, (bt, bf) = random_expression(rng, df, depth + 1)
    if choice == 3:
        word = ["and", "AND", "&&"][rng.integers(3)]
        return f"({a_text}) {word} ({b_text})", (at & bt, af | bf)
    word = ["or", "Or", "||"][rng.integers(3)]
    return f"({a_text}) {word} ({b_text})", (at | bt, af & bf)


def test_random_expressions_match_reference(frame):
    rng = np.random.default_rng(42)
    for _ in range(300):
        text, (expected, _) = random_expression(rng, frame)
        np.testing.assert_array_equal(evaluate(text, frame), expected, err_msg=text)


def test_missing_values_satisfy_no_comparison_nor_its_negation(frame):
    nan_rows = frame["mass"].isna().to_numpy()
    assert not evaluate("mass > 1", frame)[nan_rows].any()
    assert not evaluate("not (mass > 1)", frame)[nan_rows].any()
    assert evaluate("mass is null", frame)[nan_rows].all()


def test_columns_listed_in_order(frame):
    f = parse_filter("`period days` < 3 and (kind in ('A') or mass > radius) and is_agn")
    assert f.columns == ["period days", "kind", "mass", "radius", "is_agn"]


def test_dates_compare_as_dates():
    df = pd.DataFrame({"when": pd.to_datetime(["2020-01-01", "2021-06-01", None, "2019-12-31"])})
    np.testing.assert_array_equal(evaluate("when >= '2020-01-01'", df), [True, True, False, False])
    text_dates = pd.DataFrame({"when": ["2020-01-01", "2021-06-01", None, "2019-12-31"]})
    got = evaluate("when < '2020-06-01'", text_dates, roles={"when": "datetime"})
    np.testing.assert_array_equal(got, [True, False, False, True])


def test_text_flag_column_reads_yes_no():
    df = pd.DataFrame({"ok": ["yes", "no", "Y", None, "n"]})
    np.testing.assert_array_equal(evaluate("ok", df, roles={"ok": "flag"}), [True, False, True, False, False])
    np.testing.assert_array_equal(evaluate("ok == false", df, roles={"ok": "flag"}), [False, True, False, False, True])


# --------------------------------------------------------------------------- rejected inputs
HOSTILE = [
    "__import__('os').system('touch /tmp/serendip_pwned')",
    "a.__class__",
    "a.__class__.__bases__[0].__subclasses__()",
    "lambda: 1",
    "lambda x: x",
    "mass > 1; import os",
    "exec('1')",
    "eval('1') > 0",
    "mass > 1 if True else 0",
    "[x for x in ()]",
    "mass @ 2",
    "mass > 1 # comment",
    "{'a': 1}",
    "mass ** 2 > 1",
    "f'{mass}' == 'x'",
    "mass > 1e",
    "mass > 0x10",
    "mass > 1_000",
    "mass >",
    "> 1",
    "mass > 1 and",
    "(mass > 1",
    "mass > 1)",
    "mass 1",
    "mass in 1",
    "mass in (1",
    "mass in ()",
    "mass is 1",
    "mass is not",
    "1 < 2",
    "'a' == 'a'",
    "true",
    "mass > 'unterminated",
    "`unterminated > 1",
    "`` > 1",
    "mass > 'bad \\q escape'",
    "mass = = 1",
    "mass <> 1",
    "-1 < radius - 0",
    "ｍass > 1",          # fullwidth letter
    "mass ＞ 1",          # fullwidth operator
    "mass\u00a0> 1",      # no-break space
    "mass > 1\u200b",     # zero-width space
    "\u202emass > 1",     # right-to-left override
    "mαss > 1",
    "mass > ١",           # Arabic-Indic digit
    "",
    "   ",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_and_malformed_inputs_are_parse_errors(text):
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(text)
    assert 0 <= info.value.position <= len(text)
    assert "^" in str(info.value)


def test_parse_error_says_where_and_what_was_expected():
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter("mass > 1 and (radius <")
    err = info.value
    assert err.position == len("mass > 1 and (radius <")
    assert "expected a column name or a value" in str(err)
    lines = str(err).splitlines()
    assert lines[-1].index("^") == lines[-2].index("<") + 1  # the caret sits just after the "<"


def test_attribute_access_hint_mentions_backticks():
    with pytest.raises(FilterSyntaxError, match="backticks"):
        parse_filter("log.AGN.NII > 0")


def test_nesting_limit():
    ok = "(" * fg.MAX_DEPTH + "a > 1" + ")" * fg.MAX_DEPTH
    parse_filter(ok)
    with pytest.raises(FilterSyntaxError, match="levels deep"):
        parse_filter("(" * (fg.MAX_DEPTH + 1) + "a > 1" + ")" * (fg.MAX_DEPTH + 1))
    with pytest.raises(FilterSyntaxError, match="levels deep"):
        parse_filter("not " * 60 + "a > 1")
    with pytest.raises(FilterSyntaxError, match="levels deep"):
        parse_filter("!" * 60 + "a")


def test_length_limit():
    long = " or ".join(["a > 1"] * 1000)
    assert len(long) > fg.MAX_LENGTH
    with pytest.raises(FilterSyntaxError, match="limit is 2000"):
        parse_filter(long)
    with pytest.raises(FilterSyntaxError):
        parse_filter("(" * 10_000)


def test_type_errors_are_clear(frame):
    with pytest.raises(FilterSyntaxError, match="numeric; compare it with a number"):
        evaluate("mass > 'heavy'", frame)
    with pytest.raises(FilterSyntaxError, match="holds text; quote"):
        evaluate("kind == 1", frame)
    with pytest.raises(FilterSyntaxError, match="ordering comparisons"):
        evaluate("kind < 'B'", frame)
    with pytest.raises(FilterSyntaxError, match="not a true/false flag"):
        evaluate("radius", frame)
    with pytest.raises(FilterSyntaxError, match="Cannot compare column"):
        evaluate("kind == mass", frame)
    with pytest.raises(FilterSyntaxError, match="null"):
        evaluate("mass > null", frame)


# --------------------------------------------------------------------------- the tool
def test_select_sets_selection_and_saves_artifact(make_session, frame):
    s = make_session(frame)
    res = call_tool(s, "select", {"expression": "`log.AGN.NII` > -0.4 and kind in ('A', 'B')", "label": "AB"})
    assert res.ok, res.error
    expected = evaluate("`log.AGN.NII` > -0.4 and kind in ('A', 'B')", s.table.df)
    np.testing.assert_array_equal(s.active_rows, np.flatnonzero(expected))
    assert s.selection_label == "AB"
    assert res.summary["n_selected"] == expected.sum() and res.summary["n_total"] == len(frame)
    assert res.summary["fraction"] == pytest.approx(expected.mean())
    art = s.load_artifact(res.artifacts[0])
    np.testing.assert_array_equal(art, expected.astype(int))
    assert "AB" in res.markdown


def test_new_selection_replaces_the_old_one(make_session, frame):
    s = make_session(frame)
    assert call_tool(s, "select", {"expression": "radius > 1.2"}).ok
    res = call_tool(s, "select", {"expression": "radius < 1"})
    assert res.ok
    r = s.table.df["radius"].to_numpy()
    np.testing.assert_array_equal(s.active_rows, np.flatnonzero(r < 1))  # not nested inside radius > 1.2
    assert res.summary["replaced"] == "radius > 1.2"
    res = call_tool(s, "select", {"expression": "all"})
    assert res.ok and s.selection is None and len(s.active_rows) == len(frame)
    assert call_tool(s, "select", {"expression": ""}).ok and s.selection is None


def test_zero_rows_is_an_error_and_keeps_selection(make_session, frame):
    s = make_session(frame)
    call_tool(s, "select", {"expression": "radius > 1"})
    before = s.active_rows.copy()
    res = call_tool(s, "select", {"expression": "radius > 1000"})
    assert not res.ok and "matched no rows" in res.error and "radius > 1" in res.error
    np.testing.assert_array_equal(s.active_rows, before)


def test_unknown_column_gets_did_you_mean(make_session, frame):
    s = make_session(frame)
    res = call_tool(s, "select", {"expression": "radiuss > 1"})
    assert not res.ok and "radius" in res.error and "Did you mean" in res.error


def test_tool_parse_error_has_caret_and_position(make_session, frame):
    s = make_session(frame)
    res = call_tool(s, "select", {"expression": "radius >> 1"})
    assert not res.ok
    assert "position 8" in res.error and "radius >⟦here⟧> 1" in res.error
    assert "\n" not in res.error  # tool errors are one line


def test_tool_rejects_10k_characters(make_session, frame):
    s = make_session(frame)
    res = call_tool(s, "select", {"expression": "radius > 1 and " * 700 + "radius > 1"})
    assert not res.ok and "at most 2000 characters" in res.error
    assert s.selection is None


def test_hostile_expressions_execute_nothing(make_session, frame, monkeypatch, tmp_path):
    s = make_session(frame)
    marker = tmp_path / "pwned"

    def refuse(*args, **kwargs):
        raise AssertionError("dynamic evaluation was called")

    monkeypatch.setattr(builtins, "eval", refuse)
    monkeypatch.setattr(builtins, "exec", refuse)
    monkeypatch.setattr(pd, "eval", refuse)
    monkeypatch.setattr(pd.DataFrame, "query", refuse)
    monkeypatch.setattr(pd.DataFrame, "eval", refuse)
    for text in HOSTILE[:20] + [f"__import__('os').system('touch {marker}')"]:
        if not text.strip():
            continue
        res = call_tool(s, "select", {"expression": text})
        assert not res.ok, text
        assert "not a valid filter" in res.error, (text, res.error)
    assert not marker.exists()
    assert s.selection is None
    # Ordinary filters work with the dynamic evaluators refused.
    assert call_tool(s, "select", {"expression": "radius > 1 and kind in ('A')"}).ok


def test_backticked_hostile_names_are_just_names(make_session):
    names = ["__import__('os').system('x')", "a.__class__", "x`y", "lambda: 1", "mass [M☉] $x$", "<script>"]
    rng = np.random.default_rng(1)
    df = pd.DataFrame({n: rng.normal(size=50) for n in names})
    s = make_session(df)
    for name in names:
        quoted = "`" + name.replace("`", "``") + "`"
        res = call_tool(s, "select", {"expression": f"{quoted} > 0"})
        assert res.ok, (name, res.error)
        np.testing.assert_array_equal(s.active_rows, np.flatnonzero(df[name].to_numpy() > 0))
    res = call_tool(s, "select", {"expression": "`x``y` > 0 and `a.__class__` < 0"})
    assert res.ok
    assert "``" in res.markdown  # the code span is fenced so the backtick inside stays literal


def test_select_on_empty_table(make_session):
    s = make_session(pd.DataFrame({"a": pd.Series([], dtype=float)}))
    res = call_tool(s, "select", {"expression": "a > 1"})
    assert not res.ok and "empty" in res.error
