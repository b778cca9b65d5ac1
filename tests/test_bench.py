"""The benchmark: sizes, the synthetic table, verdicts, and a tiny end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from serendip.evals.bench import (MAX_MEMORY_RATIO, Size, judge, main, parse_sizes, render_markdown,
                                  synthetic_frame, tool_arguments)


def test_parse_sizes():
    sizes = parse_sizes("100k x 20, 1M x 20,10k X 500,2.5k×3")
    assert [(s.n_rows, s.n_cols) for s in sizes] == [(100_000, 20), (1_000_000, 20), (10_000, 500), (2_500, 3)]
    assert sizes[1].array_mb == pytest.approx(1_000_000 * 20 * 8 / 2**20)
    with pytest.raises(ValueError, match="'100 rows'"):
        parse_sizes("100 rows")


def test_synthetic_frame_is_seeded_and_structured():
    frame = synthetic_frame(20_000, 10)
    assert frame.equals(synthetic_frame(20_000, 10))
    assert list(frame.columns) == [f"x{j:02d}" for j in range(10)] + ["field"]
    df = frame.drop(columns="field")
    rho = df.corr(method="spearman")
    assert rho.loc["x00", "x01"] > 0.7 and rho.loc["x00", "x02"] > 0.8 and rho.loc["x00", "x03"] < -0.4
    assert abs(rho.loc["x00", "x09"]) < 0.05
    # Three groups of 50/30/20%: column x05 is shifted by 0, +3 and -3 in them.
    hist, _ = np.histogram(df["x05"].clip(-6, 6), bins=[-6, -1.5, 1.5, 6])
    assert hist / len(df) == pytest.approx([0.2, 0.5, 0.3], abs=0.05)
    z = (df - df.median()) / (df.quantile(0.75) - df.quantile(0.25)) * 1.349
    assert 0.005 < (z.abs() > 7).any(axis=1).mean() < 0.02  # about 1% outliers
    # The categorical field has 8 levels and one of them is offset in the last column.
    medians = frame.groupby("field")["x09"].median()
    assert len(medians) == 8 and medians.idxmax() == "F3" and medians["F3"] - medians.drop("F3").max() > 0.3
    assert synthetic_frame(50, 3).shape == (50, 4)  # narrow tables work too


def test_tool_arguments_fill_required_from_schema():
    schema = {"required": ["target", "features", "k"], "properties": {
        "target": {"type": "string"}, "features": {"type": "array"},
        "k": {"anyOf": [{"type": "integer", "minimum": 2}, {"type": "null"}]}}}
    assert tool_arguments("new_tool", ["a", "b", "c"], schema) == {"target": "a", "features": ["a", "b"], "k": 2}
    assert tool_arguments("residualize", ["a", "b"], {}) == {"y": "b", "x": ["a"]}


def test_verdicts_apply_at_the_target_size_only():
    target = Size(1_000_000, 20, "1M x 20")
    fast = judge({"tool": "pca", "tool_s": 2.0, "bare_s": 1.8, "peak_mb": 300.0}, target)
    assert fast["verdict"] == "PASS" and fast["target_s"] == 5.0
    slow = judge({"tool": "pca", "tool_s": 9.0, "bare_s": 1.0, "peak_mb": target.array_mb * (MAX_MEMORY_RATIO + 1)},
                 target)
    assert slow["verdict"] == "MISS (time, memory, overhead)"
    other = judge({"tool": "pca", "tool_s": 9.0, "bare_s": 1.0, "peak_mb": 1.0}, Size(100, 5, "100 x 5"))
    assert other["verdict"] == "—" and other["overhead"] == 9.0
    failed = judge({"tool": "pca", "error": "boom"}, target)
    assert failed["verdict"] == "ERROR"
    report = {"machine": {"date": "d", "commit": "c", "cpu": "cpu", "cores": 2, "ram_gb": 1, "os": "os",
                          "python": "3", "versions": {"numpy": "2"}},
              "results": [fast, slow, failed], "total_s": 1.0}
    text = render_markdown(report)
    assert "| pca | 1M x 20 | 2 | 5 |" in text and "MISS (time, memory, overhead)" in text
    assert "- pca at 1M x 20: boom" in text


@pytest.mark.slow
def test_tiny_bench_end_to_end(tmp_path):
    out, js = tmp_path / "BENCH.md", tmp_path / "bench.json"

    code = main(["--sizes", "2k x 5", "--tools", "residualize,select", "--out", str(out), "--json", str(js),
                 "--sandbox"])

    assert code == 0
    data = json.loads(js.read_text())
    assert data["schema"] == "serendip.bench/1"
    assert {"cpu", "cores", "ram_gb", "python", "versions", "date"} <= set(data["machine"])
    assert data["machine"]["versions"]["numpy"] == np.__version__
    rows = {r["tool"]: r for r in data["results"]}
    assert set(rows) == {"residualize", "select"}
    for row in rows.values():
        assert row["n_rows"] == 2000 and row["n_cols"] == 5 and row["verdict"] == "—"
        assert row["tool_s"] > 0 and row["bare_s"] > 0 and row["peak_mb"] >= 0
        assert row["overhead"] == pytest.approx(row["tool_s"] / row["bare_s"])
    text = out.read_text()
    assert text.startswith("# Serendip tool benchmark")
    assert "| tool | size | time s | target s |" in text
    assert "\n| residualize | 2k x 5 | " in text and "\n| select | 2k x 5 | " in text
    assert "HuberRegressor" in text
    assert [(r["tool"], r["result"]) for r in data["sandbox"]] == [
        ("(worker start)", "ok"), ("residualize", "ok"), ("select", "ok")]
    assert "## In the sandbox" in text and "| 2k x 5 | select |" in text


# ---------------------------------------------------------------------- serendip bench --explore
def test_explore_bench_measures_a_process_tree_and_keeps_its_section(tmp_path):
    import sys

    from serendip.evals.bench import Size
    from serendip.evals.bench_explore import SECTION_START, measure, render_section, write_section

    child = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import time; b = bytearray(120_000_000); time.sleep(0.6)'])"
    row = measure([sys.executable, "-c", child])
    assert row["exit_code"] == 0 and row["wall_s"] >= 0.6
    assert row["peak_mb"] >= 110, row  # the grandchild's memory is counted

    size = Size(100_000, 20, "100k x 20")
    rows = [{**row, "size": size.label, "n_rows": size.n_rows, "n_cols": size.n_cols, "array_mb": size.array_mb,
             "run": run, "findings": 3, "wall_s": wall} for run, wall in
            (("explore", 50.0), ("ydata-profiling minimal", 10.0), ("ydata-profiling full", 100.0))]
    rows[0]["peak_mb"], rows[0]["above_baseline_mb"] = 1000 + 5 * size.array_mb, 5 * size.array_mb
    section = render_section({"machine": {"date": "today", "commit": "abc", "cpu": "cpu", "cores": 2},
                              "profiler": "python", "rows": rows, "baseline": {"peak_mb": 1000.0}})
    assert "| 100k x 20 | explore | 50.0 | 5.00× | 0.50× |" in section and "MISS (memory > 4x array)" in section
    assert "| 5.0 |" in section  # the rise over the baseline, in arrays
    out = tmp_path / "BENCH.md"
    out.write_text("# tools\n", encoding="utf-8")
    write_section(out, section)
    write_section(out, section.replace("50.0", "40.0"))
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# tools\n") and text.count(SECTION_START) == 1 and "| 40.0 |" in text
