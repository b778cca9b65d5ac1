"""Property-based fuzzing of every registered tool: arguments drawn from the tool's own JSON schema (mostly
valid, sometimes out of range, of the wrong type or naming unknown columns) on small degenerate tables
(constant columns, all missing, 1-3 rows, values near the float limit, infinities). Whatever comes, the
tool answers with a result or a clear one-line error, and never raises.

Bounded so the suite stays fast: a modest number of examples per tool and no per-example deadline.
UMAP (seconds per fit) is fuzzed under the slow marker only.
"""

from __future__ import annotations

import tempfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serendip.tools.engine.registry import REGISTRY, call_tool, load_builtin_tools
from serendip.tools.engine.session import Session
from serendip.tools.engine.table import Table

load_builtin_tools()
MAX_EXAMPLES = 6
COLUMNS = ["a", "b", "c", "cat", "flag"]


def degenerate_frames() -> dict[str, pd.DataFrame]:
    r = np.random.default_rng(0)
    n = 40
    normal = r.normal(size=n)
    return {
        "constant": pd.DataFrame({"a": np.ones(n), "b": np.full(n, 2.0), "c": r.normal(size=n),
                                  "cat": ["x"] * n, "flag": [True] * n}),
        "all_missing": pd.DataFrame({"a": np.full(n, np.nan), "b": r.normal(size=n), "c": r.normal(size=n),
                                     "cat": [None] * n, "flag": r.integers(0, 2, n).astype(bool)}),
        "one_row": pd.DataFrame({"a": [1.0], "b": [2.0], "c": [3.0], "cat": ["x"], "flag": [False]}),
        "three_rows": pd.DataFrame({"a": [1.0, 2.0, 4.0], "b": [0.5, np.nan, 3.0], "c": [1.0, 1.0, 2.0],
                                    "cat": ["x", "y", "x"], "flag": [True, False, True]}),
        "huge": pd.DataFrame({"a": normal * 1e307, "b": -np.abs(r.normal(size=n)) * 4e307, "c": normal + 1,
                              "cat": np.array(["x", "y"])[r.integers(0, 2, n)], "flag": r.integers(0, 2, n) > 0}),
        "infinite": pd.DataFrame({"a": np.where(np.arange(n) % 3 == 0, np.inf, normal),
                                  "b": np.where(np.arange(n) % 5 == 0, -np.inf, r.normal(size=n)),
                                  "c": r.normal(size=n), "cat": np.array(["x", "y", "z"])[r.integers(0, 3, n)],
                                  "flag": r.integers(0, 2, n) > 0}),
    }


FRAMES = degenerate_frames()
column_name = st.sampled_from(COLUMNS + ["missing_col", "../../etc/passwd", "R1_umap", "", "a" * 300])


def strategy_for(schema: dict) -> st.SearchStrategy:
    """Values for one JSON-schema property: mostly valid, with some out-of-range or ill-typed ones."""
    if "anyOf" in schema:
        return st.one_of([strategy_for(s) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | st.sampled_from(["bogus", ""])
    kind = schema.get("type")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        lo, hi = schema.get("minimum", -5), schema.get("maximum", 10_000)
        return st.integers(lo, min(hi, lo + 60)) | st.sampled_from([lo - 1, hi + 1, 0, -1])
    if kind == "number":
        lo, hi = schema.get("minimum", -1e6), schema.get("maximum", 1e6)
        return st.floats(lo, hi, allow_nan=False) | st.sampled_from([float("nan"), float("inf"), -1e308, lo])
    if kind == "string":
        return column_name | st.sampled_from(["a > 0", "b < 1e300 and cat == 'x'", "flag", "all", "a >",
                                              "`a` > -inf", "((((a))))"]) | st.text(max_size=20)
    if kind == "array":
        return st.lists(strategy_for(schema.get("items", {"type": "string"})), max_size=5)
    if kind == "object":
        return st.dictionaries(st.text(max_size=5), st.integers(), max_size=2)
    return st.none()


def arguments_for(name: str) -> st.SearchStrategy:
    props = REGISTRY[name].json_schema().get("properties", {})
    fixed = {k: strategy_for(v) for k, v in props.items()}
    optional = st.fixed_dictionaries({}, optional=fixed)
    junk = st.dictionaries(st.sampled_from(["nonsense", "k"]), st.integers(), max_size=1)
    return st.one_of(optional, st.tuples(optional, junk).map(lambda t: {**t[0], **t[1]}))


FAST_TOOLS = sorted(t for t in REGISTRY if t != "umap")


def check_one(name: str, frame_name: str, arguments: dict) -> None:
    with tempfile.TemporaryDirectory(prefix="serendip-fuzz-") as workdir:
        session = Session(Table.from_dataframe(FRAMES[frame_name]), workdir, seed=0)
        result = call_tool(session, name, arguments, result_id="R1")  # never raises
        if not result.ok:
            assert result.error and "\n" not in result.error.strip() and "Traceback" not in result.error
            assert len(result.error) < 2_000
        else:
            result.to_dict()
            result.for_model()


@pytest.mark.parametrize("name", FAST_TOOLS)
def test_any_arguments_on_degenerate_tables_give_a_result_or_a_clear_error(name):
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(frame_name=st.sampled_from(sorted(FRAMES)), arguments=arguments_for(name))
    def run(frame_name, arguments):
        check_one(name, frame_name, arguments)

    run()


@pytest.mark.slow
def test_umap_fuzzed():
    @settings(max_examples=4, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(frame_name=st.sampled_from(sorted(FRAMES)), arguments=arguments_for("umap"))
    def run(frame_name, arguments):
        check_one("umap", frame_name, arguments)

    run()
