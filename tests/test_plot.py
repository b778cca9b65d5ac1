"""The plot tool: every kind writes a valid PNG; hostile names render; bad arguments give clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serendip.tools.plot import plain_text
from serendip.tools.engine.registry import call_tool

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HOSTILE_X = r"$\frac{1}{0}$ mass"
HOSTILE_Y = "<script>alert(1)</script>"


@pytest.fixture
def session(make_session):
    rng = np.random.default_rng(0)
    n = 3000
    x = rng.normal(size=n)
    return make_session(pd.DataFrame({
        HOSTILE_X: x,
        HOSTILE_Y: 2 * x + rng.normal(size=n),
        "flux": rng.lognormal(size=n),
        "z": rng.uniform(0, 2, size=n),
        "w": rng.normal(size=n),
        "kind": rng.choice(["A", "B", "$$", "<b>x</b>"] + [f"k{i}" for i in range(12)], size=n),
        "const": np.ones(n),
        "empty": np.full(n, np.nan),
    }))


def assert_png(session, res):
    assert res.ok, res.error
    assert len(res.figures) == 1 and res.figures[0].startswith("figures/")
    path = session.workdir / res.figures[0]
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 1024
    assert res.summary["figure"] == res.figures[0]


@pytest.mark.parametrize("args", [
    {"kind": "scatter", "x": HOSTILE_X, "y": HOSTILE_Y},
    {"kind": "scatter", "x": HOSTILE_X, "y": "flux", "color_by": "z", "log_y": True},
    {"kind": "scatter", "x": HOSTILE_X, "y": HOSTILE_Y, "color_by": "kind"},
    {"kind": "hexbin", "x": HOSTILE_X, "y": HOSTILE_Y},
    {"kind": "hexbin", "x": "flux", "y": HOSTILE_Y, "log_x": True, "color_by": "z"},
    {"kind": "histogram", "x": HOSTILE_X},
    {"kind": "histogram", "x": "flux", "log_x": True, "log_y": True, "color_by": "kind"},
    {"kind": "histogram", "x": "kind"},
    {"kind": "corner", "columns": [HOSTILE_X, HOSTILE_Y, "flux", "z"], "color_by": "kind"},
    {"kind": "corner", "columns": [HOSTILE_X, HOSTILE_Y], "color_by": "z"},
    {"kind": "corner"},
])
def test_each_kind_writes_a_png(session, args):
    res = call_tool(session, "plot", args)
    assert_png(session, res)
    assert res.summary["kind"] == args["kind"]
    assert res.summary["n_points"] > 0
    assert "<script>" not in res.figures[0] and "$" not in res.figures[0]


def test_categorical_color_keeps_ten_levels_and_other(session):
    res = call_tool(session, "plot", {"kind": "scatter", "x": HOSTILE_X, "y": HOSTILE_Y, "color_by": "kind"})
    levels = res.summary["color_by"]["levels_shown"]
    assert len(levels) == 11 and levels[-1] == "other"


def test_scatter_subsamples_but_keeps_rare_levels(make_session):
    rng = np.random.default_rng(3)
    n = 30_000
    flag = np.zeros(n, dtype=int)
    flag[rng.choice(n, 25, replace=False)] = 1
    s = make_session(pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)}))
    name = s.save_artifact("R0_flags", flag)
    res = call_tool(s, "plot", {"kind": "scatter", "x": "a", "y": "b", "max_points": 1000, "color_by": name})
    assert_png(s, res)
    assert res.summary["subsampled"] and res.summary["n_points"] == n
    assert 1000 <= res.summary["n_drawn"] <= 1025
    hex_res = call_tool(s, "plot", {"kind": "hexbin", "x": "a", "y": "b", "max_points": 1000})
    assert hex_res.summary["n_drawn"] == n  # hexbin sees every row


def test_deterministic_figure_bytes(make_session):
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"a": rng.normal(size=5000), "b": rng.normal(size=5000)})
    outs = []
    for _ in range(2):
        s = make_session(df)
        res = call_tool(s, "plot", {"kind": "scatter", "x": "a", "y": "b", "max_points": 500})
        outs.append((s.workdir / res.figures[0]).read_bytes())
    assert outs[0] == outs[1]


def test_plot_respects_selection(session):
    assert call_tool(session, "select", {"expression": "z < 0.5"}).ok
    res = call_tool(session, "plot", {"kind": "histogram", "x": "z"})
    assert res.summary["n_points"] == int((session.table.df["z"] < 0.5).sum())
    assert res.summary["selection"] == "z < 0.5"


def test_plain_text_escapes_mathtext_and_shortens():
    assert plain_text("$x$") == r"\$x\$"
    assert len(plain_text("a" * 500)) <= 60
    assert "\n" not in plain_text("a\nb")


@pytest.mark.parametrize("args, message", [
    ({"kind": "scatter", "y": "z"}, "'x' parameter of plot is required"),
    ({"kind": "scatter", "x": "z"}, "'y' parameter of plot is required"),
    ({"kind": "hexbin", "x": "zz", "y": "flux"}, "Did you mean"),
    ({"kind": "scatter", "x": "kind", "y": "z"}, "needs a column of role numeric"),
    ({"kind": "scatter", "x": "z", "y": "z"}, "same column"),
    ({"kind": "scatter", "x": "z", "y": "w", "log_y": True}, None),
    ({"kind": "scatter", "x": HOSTILE_X, "y": "w", "log_x": True}, None),
    ({"kind": "scatter", "x": "z", "y": "const"}, "constant"),
    ({"kind": "scatter", "x": "z", "y": "empty"}, "all its values are missing"),
    ({"kind": "hexbin", "x": "z", "y": "w", "color_by": "kind"}, "must be numeric for kind='hexbin'"),
    ({"kind": "histogram", "x": "z", "color_by": "w"}, "must be categorical for kind='histogram'"),
    ({"kind": "histogram", "x": "z", "y": "w"}, "not used by kind='histogram'"),
    ({"kind": "corner", "columns": ["z", "w", "flux", HOSTILE_X, HOSTILE_Y, "z", "w"]}, "at most 6"),
    ({"kind": "corner", "columns": ["z"]}, "at least 2"),
    ({"kind": "pie", "x": "z"}, "must be one of"),
    ({"kind": "scatter", "x": "z", "y": "w", "max_points": 5}, "in [100, 200000]"),
    ({"kind": "scatter", "x": "z", "y": "w", "color_by": "nope"}, "unknown column"),
])
def test_bad_arguments_give_clear_errors(session, args, message):
    res = call_tool(session, "plot", args)
    if message is None:  # log axis on a column with negative values: those rows are left out, with a note
        assert res.ok, res.error
        assert any("non-positive" in note for note in res.summary["notes"])
        return
    assert not res.ok
    assert message in res.error


def test_log_axis_without_positive_values(make_session):
    s = make_session(pd.DataFrame({"a": -np.arange(1.0, 20.0), "b": np.arange(1.0, 20.0)}))
    res = call_tool(s, "plot", {"kind": "scatter", "x": "a", "y": "b", "log_x": True})
    assert not res.ok and "no positive value" in res.error


@pytest.mark.parametrize("df", [
    pd.DataFrame({"a": pd.Series([], dtype=float), "b": pd.Series([], dtype=float)}),
    pd.DataFrame({"a": [1.0], "b": [2.0]}),
])
def test_empty_and_single_row_tables(make_session, df):
    s = make_session(df)
    res = call_tool(s, "plot", {"kind": "scatter", "x": "a", "y": "b"})
    assert not res.ok
    assert "no rows" in res.error or "constant" in res.error or "at least 2" in res.error


def test_failed_calls_leave_no_open_figures(session):
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    for args in [{"kind": "histogram", "x": "z", "color_by": "w"}, {"kind": "hexbin", "x": "z", "y": "w",
                                                                    "color_by": "kind"},
                 {"kind": "histogram", "x": "empty"}, {"kind": "scatter", "x": "z", "y": "w"}]:
        call_tool(session, "plot", args)
    assert len(plt.get_fignums()) == before
