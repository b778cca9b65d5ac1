"""The registry: schemas from docstrings, refusal of undocumented tools, fix-it error messages."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import pandas as pd
import pytest
from pydantic import Field

from serendip.tools.engine.jsonsafe import SUMMARY_LIMIT, bound_summary, dumps
from serendip.tools.engine.registry import UndocumentedArgumentError, build_spec, call_tool
from serendip.tools.engine.result import ToolResult


def test_undocumented_argument_is_refused():
    def bad(session, k: int = 2) -> ToolResult:
        """Does something.

        Args:
            other: Not k.
        """

    with pytest.raises(UndocumentedArgumentError, match="'k'"):
        build_spec(bad, "bad")


def test_untyped_argument_is_refused():
    def bad(session, k=2) -> ToolResult:
        """Does something.

        Args:
            k: A number.
        """

    with pytest.raises(UndocumentedArgumentError, match="type annotation"):
        build_spec(bad, "bad")


def test_schema_carries_descriptions_and_constraints():
    def good(session, k: Annotated[int, Field(ge=2, le=50)] = 3,
             how: Literal["a", "b"] = "a", cols: list[str] | None = None) -> ToolResult:
        """Groups rows.

        Args:
            k: Number of groups.
            how: Which way.
            cols: Columns to use; all numeric
                columns when omitted.
        """

    spec = build_spec(good, "good")
    schema = spec.openai_tool()["function"]["parameters"]
    assert schema["properties"]["k"]["minimum"] == 2 and schema["properties"]["k"]["maximum"] == 50
    assert schema["properties"]["how"]["enum"] == ["a", "b"]
    assert schema["properties"]["cols"]["description"] == "Columns to use; all numeric columns when omitted."
    assert schema["additionalProperties"] is False


def test_sklearn_style_messages(make_session):
    s = make_session(pd.DataFrame({"flux": np.arange(10.0), "size": np.arange(10.0) ** 2}))
    r = call_tool(s, "residualize", {"y": "size", "x": ["flux"], "n_bins": 1})
    assert r.error == "The 'n_bins' parameter of residualize must be an int in [3, 200]. Got 1 instead."
    r = call_tool(s, "residualize", {"y": "sizee", "x": ["flux"]})
    assert "unknown column 'sizee'" in r.error and "Did you mean 'size'" in r.error
    r = call_tool(s, "residualize", {"y": "size", "x": ["flux"], "method": "lowess"})
    assert "must be one of ['robust_linear', 'binned_median']" in r.error
    r = call_tool(s, "residualise", {})
    assert "Did you mean 'residualize'" in r.error
    r = call_tool(s, "residualize", '{"y": ')
    assert "not valid JSON" in r.error
    r = call_tool(s, "residualize", {"y": "size", "x": ["flux"], "bins": 3})
    assert "has no parameter 'bins'" in r.error and "n_bins" in r.error


def test_result_ids_and_evidence(make_session):
    s = make_session(pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) * 2 + np.sin(np.arange(20))}))
    r1 = call_tool(s, "residualize", {"y": "b", "x": ["a"]})
    r2 = call_tool(s, "residualize", {"y": "b", "x": ["a"]}, result_id="R77")
    assert r1.id == "R1" and r2.id == "R77" and r1.ok
    assert "resid_b_vs_a" in s.table.columns


def test_bound_summary_holds_whatever_the_width():
    wide = {"columns": [{"name": f"col_{i}_" + "é" * 50, "stats": list(range(30))} for i in range(1000)],
            "note": "x" * 10000, "n": 5}
    small = bound_summary(wide)
    assert len(dumps(small)) <= SUMMARY_LIMIT
    assert small["n"] == 5 and "truncated" in small
    assert bound_summary({"v": np.float64("nan"), "w": np.int64(3)}) == {"v": None, "w": 3}
