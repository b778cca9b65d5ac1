"""One contract suite, run over every registered tool.

Each tool must: describe itself and every argument; give the same result for the same seed; answer
degenerate input (empty, single row, constant, all missing, non-numeric) with a clear one-line error
result instead of an exception; and keep its model summary JSON-safe and bounded on a wide table.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from serendip.tools.engine.jsonsafe import SUMMARY_LIMIT
from serendip.tools.engine.registry import REGISTRY, call_tool, load_builtin_tools

load_builtin_tools()

# Typical arguments for each tool on a table with numeric columns a, b, c (c > 0), d and categorical cat.
EXAMPLE_ARGUMENTS: dict[str, dict] = {
    "describe": {},
    "correlate": {},
    "pca": {},
    "umap": {},
    "cluster": {"method": "kmeans"},
    "outliers": {"method": "isolation_forest"},
    "residualize": {"y": "b", "x": ["a"]},
    "select": {"expression": "a > 0"},
    "plot": {"kind": "scatter", "x": "a", "y": "b"},
    "transform": {"columns": ["c"], "kind": "log10"},
    "compare": {"by": "cat"},
    "derive": {"expression": "a - b"},
    "subspace": {},
}
# Tools that describe or reshape rather than analyse may succeed on degenerate input (with warnings).
MAY_SUCCEED_ON_DEGENERATE = {"describe", "plot", "select", "transform", "derive"}
SLOW_TOOLS = {"umap"}
TOOLS = sorted(REGISTRY)


def tool_param(name: str):
    return pytest.param(name, marks=[pytest.mark.slow] if name in SLOW_TOOLS else [])


def standard_frame(n: int = 300, seed: int = 1) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    a = r.normal(size=n)
    groups = r.integers(0, 3, size=n)
    return pd.DataFrame({
        "a": a + 3 * groups, "b": 0.7 * a + r.normal(scale=0.5, size=n) + 2 * groups,
        "c": np.exp(r.normal(size=n)), "d": r.normal(size=n) - 2 * groups,
        "cat": np.array(["x", "y", "z"])[groups],
    })


def comparable(result) -> str:
    d = result.to_dict()
    for key in ("elapsed",):
        d.pop(key, None)
    return json.dumps(d, sort_keys=True, default=str)


def test_every_tool_has_contract_arguments():
    assert set(REGISTRY) == set(EXAMPLE_ARGUMENTS), "add example arguments for new tools to the contract suite"


@pytest.mark.parametrize("name", [tool_param(t) for t in TOOLS])
def test_schema_and_docstrings(name):
    spec = REGISTRY[name]
    assert spec.description and len(spec.description.splitlines()[0]) > 10
    schema = spec.openai_tool()
    assert schema["function"]["name"] == name
    for prop, body in schema["function"]["parameters"].get("properties", {}).items():
        assert body.get("description"), f"{name}.{prop} has no description"
    json.dumps(schema)


@pytest.mark.parametrize("name", [tool_param(t) for t in TOOLS])
def test_runs_and_is_deterministic(name, make_session):
    df = standard_frame()
    r1 = call_tool(make_session(df, seed=3), name, EXAMPLE_ARGUMENTS[name], result_id="R1")
    r2 = call_tool(make_session(df, seed=3), name, EXAMPLE_ARGUMENTS[name], result_id="R1")
    assert r1.ok, r1.error
    assert comparable(r1) == comparable(r2)
    assert r1.markdown.strip()
    json.dumps(r1.to_dict())
    for f in r1.findings:
        assert f["kind"] in ("trend", "group", "outlier", "data_quality")
        assert f["evidence"][0] == "R1" and f.get("title")


def degenerate_frames() -> dict[str, pd.DataFrame]:
    cols = ["a", "b", "c", "d"]
    def with_cat(df: pd.DataFrame) -> pd.DataFrame:
        df["cat"] = pd.Series(["x", "y"] * (len(df) // 2) + ["x"] * (len(df) % 2), dtype="str")
        return df

    return {
        "empty": with_cat(pd.DataFrame({c: pd.Series([], dtype=float) for c in cols})),
        "single_row": with_cat(pd.DataFrame({c: [1.0] for c in cols})),
        "constant": with_cat(pd.DataFrame({c: [2.0] * 50 for c in cols})),
        "all_missing": with_cat(pd.DataFrame({c: [np.nan] * 50 for c in cols})),
        "non_numeric": pd.DataFrame({c: [f"v{i % 7}" for i in range(50)] for c in cols + ["cat"]}),
    }


@pytest.mark.parametrize("case", list(degenerate_frames()))
@pytest.mark.parametrize("name", [tool_param(t) for t in TOOLS])
def test_degenerate_input_gives_clear_error(name, case, make_session):
    df = degenerate_frames()[case]
    result = call_tool(make_session(df), name, EXAMPLE_ARGUMENTS[name])
    if result.error is None:
        assert name in MAY_SUCCEED_ON_DEGENERATE, f"{name} accepted {case} input without error"
        json.dumps(result.to_dict())
        return
    assert "\n" not in result.error.strip() and "Traceback" not in result.error
    assert 10 < len(result.error) < 1000


@pytest.mark.parametrize("name", [tool_param(t) for t in TOOLS])
def test_summary_bounded_on_wide_table(name, make_session):
    r = np.random.default_rng(0)
    n, width = 60, 1000
    data = {f"feature_with_a_long_name_{j:04d}": r.normal(size=n) for j in range(width)}
    data.update({"a": r.normal(size=n), "b": r.normal(size=n), "c": np.exp(r.normal(size=n)), "d": r.normal(size=n),
                 "cat": np.array(["x", "y", "z"])[np.arange(n) % 3]})
    result = call_tool(make_session(pd.DataFrame(data)), name, EXAMPLE_ARGUMENTS[name])
    text = result.for_model()
    assert len(text) <= SUMMARY_LIMIT + 1500, len(text)
    json.loads(text)
