"""``serendip bench``: time every registered tool on synthetic tables and compare with the targets.

Each (tool, size) runs in a fresh subprocess that builds a seeded synthetic table, warms the tool up on
2,000 rows (lazy imports, numba compilation), then times one call of the tool on the whole table and
one "bare" call of the library routine the tool wraps on the same numeric array. Peak memory is the
resident-set high-water mark of that subprocess during the call (reset with ``/proc/self/clear_refs``
just before it) minus the resident set just before it: tracemalloc cannot see memory allocated by C
code such as BLAS or numba. The ratio tool time / bare time is the tool's overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from serendip.evals.bench_explore import SECTION_END, SECTION_START, render_section, run_explore_bench, write_section

DEFAULT_SIZES = "100k x 20,1M x 20,10k x 500"
EXPLORE_SIZES = "100k x 20,1M x 20"
DEFAULT_OUT = "evals/BENCH.md"
TARGET_SIZE = (1_000_000, 20)
TARGET_SECONDS = {"describe": 5.0, "correlate": 15.0, "pca": 5.0, "umap": 180.0, "umap_embed": 180.0,
                  "cluster": 120.0, "outliers": 90.0}
"""Wall-time targets at 1M rows x 20 columns on 2 cores."""
MAX_MEMORY_RATIO = 4.0
"""Peak memory of a call, in multiples of the table's numeric array."""
MAX_OVERHEAD = 1.3
"""Tool time over bare library time."""
WARMUP_ROWS = 2_000
REPEATS = 3
REPEAT_BELOW_S = 10.0
WARMUP_ARGUMENTS = {"umap": {"max_fit_rows": 500}}
"""Warm-up overrides: UMAP must also place rows with ``transform`` to compile it before the timed call."""
RESULT_MARKER = "BENCH_RESULT "
SEED = 0
N_FIELDS = 8
LIBRARIES = ("numpy", "pandas", "scipy", "sklearn", "umap", "numba", "matplotlib", "pydantic")


# ====================================================================== sizes and the synthetic table
@dataclass(frozen=True)
class Size:
    """A table shape to benchmark."""

    n_rows: int
    n_cols: int
    label: str

    @property
    def array_mb(self) -> float:
        """Size of the float64 numeric array in MiB."""
        return self.n_rows * self.n_cols * 8 / 2**20


def parse_sizes(text: str) -> list[Size]:
    """Parse '100k x 20,1M x 20' into sizes; raise ValueError with the bad part."""
    sizes = []
    for part in text.split(","):
        if not part.strip():
            continue
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*[xX×*]\s*(\d+)\s*", part)
        if not m:
            raise ValueError(f"cannot read size {part.strip()!r}: write it like '100k x 20' or '1M x 20'")
        rows = float(m.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2).lower()]
        cols = int(m.group(3))
        if rows < 10 or cols < 2:
            raise ValueError(f"size {part.strip()!r} is too small: use at least 10 rows and 2 columns")
        sizes.append(Size(int(rows), cols, part.strip()))
    if not sizes:
        raise ValueError("no sizes given")
    return sizes


def column_names(n_cols: int) -> list[str]:
    """x00, x01 ... (zero-padded to the width of the largest index)."""
    width = max(2, len(str(n_cols - 1)))
    return [f"x{j:0{width}d}" for j in range(n_cols)]


def synthetic_frame(n_rows: int, n_cols: int, seed: int = SEED):
    """A seeded numeric table with structure for every tool to find.

    Columns 1-3 follow column 0 (linear, monotone non-linear, negative); columns 4-7 are shifted by
    membership in 3 groups of 50/30/20%; 1% of the rows are outliers displaced by 8-12 sd in 3 random
    columns; the rest is independent noise. A categorical column ``field`` (8 levels, independent of the
    groups) follows the numeric ones; in level F3 the last numeric column is offset by 0.5 (a systematic).
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, n_cols))
    latent = X[:, 0].copy()
    if n_cols > 1:
        X[:, 1] = 0.8 * latent + 0.6 * X[:, 1]
    if n_cols > 2:
        X[:, 2] = np.exp(0.7 * latent) + 0.3 * X[:, 2]
    if n_cols > 3:
        X[:, 3] = -0.5 * latent + 0.87 * X[:, 3]
    group = rng.choice(3, size=n_rows, p=[0.5, 0.3, 0.2])
    shifted = list(range(4, min(8, n_cols))) or [n_cols - 1]
    centers = np.array([[0.0] * len(shifted), [3.0] * len(shifted), [-3.0] * len(shifted)])
    centers[2, ::2] = 3.0  # the third group differs from the second in every other column
    X[:, shifted] += centers[group]
    n_out = max(1, n_rows // 100)
    rows = rng.choice(n_rows, size=n_out, replace=False)
    for r in rows:
        cols = rng.choice(n_cols, size=min(3, n_cols), replace=False)
        X[r, cols] += rng.choice([-1.0, 1.0], size=len(cols)) * rng.uniform(8, 12, size=len(cols))
    field = rng.integers(0, N_FIELDS, size=n_rows)
    X[field == 2, -1] += 0.5
    df = pd.DataFrame(X, columns=column_names(n_cols))
    df["field"] = np.array([f"F{i + 1}" for i in range(N_FIELDS)])[field]
    return df


# ====================================================================== tool arguments and bare calls
def tool_arguments(tool: str, columns: list[str], schema: dict | None = None) -> dict:
    """Arguments for one benchmark call of ``tool`` (its defaults where it has them)."""
    a, b = columns[0], columns[1]
    known = {
        "compare": {"by": "field"},
        "residualize": {"y": b, "x": [a]},
        "select": {"expression": f"{a} > 0"},
        "plot": {"kind": "hexbin", "x": a, "y": b},
        "transform": {"columns": columns[:5], "kind": "asinh"},
    }
    if tool in known:
        return known[tool]
    args: dict[str, Any] = {}
    for name in (schema or {}).get("required", []):  # a tool the bench does not know yet
        prop = schema["properties"].get(name, {})
        kind = prop.get("type") or next((t.get("type") for t in prop.get("anyOf", []) if t.get("type") != "null"), "")
        if kind == "array":
            args[name] = columns[:2]
        elif kind == "string":
            args[name] = a
        elif kind in ("integer", "number"):
            args[name] = prop.get("minimum", 2)
        elif kind == "boolean":
            args[name] = False
    return args


def find_number(data: Any, keys: tuple[str, ...]) -> float | None:
    """The first number stored under one of ``keys`` anywhere in a nested summary."""
    if isinstance(data, dict):
        for key in keys:
            value = data.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return value
        for value in data.values():
            found = find_number(value, keys)
            if found is not None:
                return found
    elif isinstance(data, list):
        for value in data:
            found = find_number(value, keys)
            if found is not None:
                return found
    return None


def _standardized(X: np.ndarray) -> np.ndarray:
    sd = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def bare_describe(df, X, columns, summary):
    df[columns].describe()
    return "DataFrame.describe()"


def bare_correlate(df, X, columns, summary):
    from scipy.stats import rankdata

    np.corrcoef(rankdata(X, axis=0), rowvar=False)
    return "rankdata + np.corrcoef (Spearman matrix)"


def bare_pca(df, X, columns, summary):
    from sklearn.decomposition import PCA

    PCA().fit_transform(_standardized(X))
    return "standardize + PCA().fit_transform"


def bare_umap(df, X, columns, summary):
    import umap

    n_fit = int(find_number(summary, ("n_fit", "fit_rows", "n_fit_rows", "sample_size", "n_sample", "n_sampled"))
                or min(len(X), 20_000))
    Z = _standardized(X)
    rng = np.random.default_rng(SEED)
    sample = rng.choice(len(Z), size=min(n_fit, len(Z)), replace=False)
    model = umap.UMAP(random_state=SEED).fit(Z[sample])
    if len(sample) < len(Z):
        model.transform(Z)
    return f"umap.UMAP fit on {len(sample):,} rows" + (" + transform of all" if len(sample) < len(Z) else "")


def bare_cluster(df, X, columns, summary):
    from sklearn.cluster import KMeans

    k = max(2, int(find_number(summary, ("k", "n_clusters", "n_groups", "chosen_k", "best_k")) or 3))
    n_fit = int(find_number(summary, ("fit_rows", "n_fit")) or len(X))
    Z = _standardized(X)
    sample = np.random.default_rng(SEED).choice(len(Z), size=min(n_fit, len(Z)), replace=False)
    model = KMeans(n_clusters=k, random_state=SEED, n_init=1).fit(Z[sample])
    if len(sample) < len(Z):
        model.predict(Z)
        return f"KMeans(k={k}, n_init=1) fit on {len(sample):,} rows + predict all"
    return f"KMeans(k={k}, n_init=1).fit"


def bare_outliers(df, X, columns, summary):
    from sklearn.ensemble import IsolationForest

    Z = _standardized(X)
    IsolationForest(n_estimators=200, random_state=SEED).fit(Z).score_samples(Z)  # the tool's forest size
    return "IsolationForest(200 trees) fit + score_samples"


def bare_compare(df, X, columns, summary):
    from scipy.stats import kruskal

    codes = df["field"].to_numpy()
    masks = [codes == level for level in np.unique(codes)]
    for j in range(X.shape[1]):
        kruskal(*[X[m, j] for m in masks])
    return "scipy.stats.kruskal per column"


def bare_residualize(df, X, columns, summary):
    from sklearn.linear_model import HuberRegressor

    x = _standardized(X[:, :1])
    HuberRegressor(max_iter=500).fit(x, X[:, 1]).predict(x)
    return "HuberRegressor fit + predict"


def bare_transform(df, X, columns, summary):
    np.arcsinh(X[:, :5])
    return "np.arcsinh"


def bare_select(df, X, columns, summary):
    np.flatnonzero(X[:, 0] > 0)
    return "boolean mask"


def bare_plot(df, X, columns, summary):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.hexbin(X[:, 0], X[:, 1], gridsize=50)
    with tempfile.TemporaryDirectory() as tmp:
        fig.savefig(Path(tmp) / "bare.png")
    plt.close(fig)
    return "matplotlib hexbin + savefig"


BARE_CALLS: dict[str, Callable] = {
    "describe": bare_describe, "correlate": bare_correlate, "pca": bare_pca, "umap": bare_umap,
    "umap_embed": bare_umap, "cluster": bare_cluster, "compare": bare_compare, "outliers": bare_outliers,
    "residualize": bare_residualize, "transform": bare_transform, "select": bare_select, "plot": bare_plot,
}


# ====================================================================== one measurement (in a fresh process)
def _status_mb(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> bool:
    """Reset the resident high-water mark (Linux >= 4.0); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _measured(func: Callable[[], Any], ok: Callable[[Any], bool] = lambda value: True) -> tuple[Any, float, float]:
    """Run ``func``; return its value, wall seconds and peak extra resident MiB.

    Calls shorter than ``REPEAT_BELOW_S`` are repeated up to ``REPEATS`` times and the best time is
    kept (as timeit does): on a shared machine a single short timing is mostly noise. The peak is the
    first run's; a repeat whose value fails ``ok`` does not count.
    """
    import gc

    gc.collect()
    can_reset = _reset_peak()
    before = _status_mb("VmRSS")
    if not can_reset:  # fall back to the lifetime high-water mark, which may include the load
        import resource

        before = min(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    start = time.perf_counter()
    value = func()
    elapsed = time.perf_counter() - start
    peak = max(0.0, _status_mb("VmHWM") - before)
    for _ in range(REPEATS - 1):
        if elapsed >= REPEAT_BELOW_S:
            break
        start = time.perf_counter()
        again = func()
        if not ok(again):
            break
        elapsed = min(elapsed, time.perf_counter() - start)
    return value, elapsed, peak


def run_job(job: dict) -> dict:
    """Measure one (tool, size) in this process (meant to be a fresh one)."""
    from serendip.tools.engine.registry import call_tool, load_builtin_tools
    from serendip.tools.engine.session import Session
    from serendip.tools.engine.table import Table

    tool, n_rows, n_cols = job["tool"], job["n_rows"], job["n_cols"]
    out: dict[str, Any] = {"tool": tool, "n_rows": n_rows, "n_cols": n_cols}
    load_builtin_tools()
    start = time.perf_counter()
    df = synthetic_frame(n_rows, n_cols)
    table = Table.from_dataframe(df, name=f"synthetic {n_rows}x{n_cols}")
    out["build_s"] = time.perf_counter() - start
    columns = table.numeric_columns
    args = job["arguments"]
    with tempfile.TemporaryDirectory(prefix="serendip-bench-") as tmp:
        small = Table.from_dataframe(synthetic_frame(min(WARMUP_ROWS, n_rows), n_cols, seed=SEED + 1))
        warm_session = Session(small, Path(tmp) / "warmup", seed=SEED)
        t0 = time.perf_counter()
        warm = call_tool(warm_session, tool, {**args, **WARMUP_ARGUMENTS.get(tool, {})}, result_id="R1")
        out["warmup_s"] = time.perf_counter() - t0
        if warm.error:
            out["warmup_error"] = warm.error[:300]
        session = Session(table, Path(tmp) / "run", seed=SEED)
        result, out["tool_s"], out["peak_mb"] = _measured(lambda: call_tool(session, tool, args, result_id="R2"),
                                                          ok=lambda res: res.error is None)
        if result.error:
            out["error"] = result.error[:500]
            return out
        out["model_chars"] = len(result.for_model())  # what the model reads of the result
        bare = BARE_CALLS.get(tool)
        if bare is not None:
            X = np.ascontiguousarray(table.df[columns].to_numpy(dtype=float))
            out["bare_call"], out["bare_s"], out["bare_peak_mb"] = _measured(
                lambda: bare(table.df, X, columns, result.summary))
    return out


def _child_main() -> None:
    job = json.loads(sys.stdin.read())
    print(RESULT_MARKER + json.dumps(run_job(job)), flush=True)


def run_in_subprocess(job: dict, timeout_s: float, env: dict[str, str] | None = None) -> dict:
    """Run one job in a fresh interpreter with the sandbox's thread settings (plus ``env``)."""
    from serendip.tools.engine.sandbox import worker_environment

    env = {**os.environ, **worker_environment(), **(env or {})}
    code = "from serendip.evals.bench import _child_main; _child_main()"
    base = {"tool": job["tool"], "n_rows": job["n_rows"], "n_cols": job["n_cols"]}
    try:
        proc = subprocess.run([sys.executable, "-c", code], input=json.dumps(job), capture_output=True, text=True,
                              timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {**base, "error": f"did not finish within the bench timeout of {timeout_s:g} s", "status": "timeout"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER):])
    tail = [line for line in proc.stderr.splitlines() if line.strip()][-1:] or [f"exit code {proc.returncode}"]
    return {**base, "error": f"the benchmark process failed: {tail[0][:300]}", "status": "crash"}


# ====================================================================== judging and reporting
def judge(row: dict, size: Size) -> dict:
    """Add overhead, memory ratio, target and the PASS/MISS verdict to a measured row.

    The targets are stated for 1M rows x 20 columns; other sizes are reported without a verdict.
    """
    row["size"] = size.label
    row["array_mb"] = size.array_mb
    if "error" in row:
        row["verdict"] = "ERROR"
        return row
    row["overhead"] = row["tool_s"] / row["bare_s"] if row.get("bare_s") else None
    row["memory_ratio"] = row["peak_mb"] / size.array_mb
    row["target_s"] = TARGET_SECONDS.get(row["tool"]) if (size.n_rows, size.n_cols) == TARGET_SIZE else None
    if (size.n_rows, size.n_cols) != TARGET_SIZE:
        row["verdict"] = "—"
        return row
    misses = []
    if row["target_s"] is not None and row["tool_s"] > row["target_s"]:
        misses.append("time")
    if row["memory_ratio"] > MAX_MEMORY_RATIO:
        misses.append("memory")
    if row["overhead"] is not None and row["overhead"] > MAX_OVERHEAD:
        misses.append("overhead")
    row["verdict"] = "MISS (" + ", ".join(misses) + ")" if misses else "PASS"
    return row


def _read_first(path: str, prefix: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def machine_description() -> dict:
    """CPU, cores, RAM, Python and library versions, date and commit."""
    from importlib import metadata

    versions = {}
    for lib in LIBRARIES:
        dist = {"sklearn": "scikit-learn", "umap": "umap-learn"}.get(lib, lib)
        try:
            versions[lib] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[lib] = "not installed"
    mem = _read_first("/proc/meminfo", "MemTotal")
    ram_gb = round(int(mem.split()[0]) / 2**20, 1) if mem != "unknown" else None
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=Path(__file__).resolve().parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {"cpu": _read_first("/proc/cpuinfo", "model name"), "cores": cores, "ram_gb": ram_gb,
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "versions": versions, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "commit": commit, "load_average": round(os.getloadavg()[0], 2)}


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: dict) -> str:
    """The benchmark report as markdown."""
    m = report["machine"]
    lines = [
        "# Serendip tool benchmark", "",
        f"Run {m['date']} (commit {m['commit']}) on {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM, "
        f"{m['os']}, Python {m['python']}; load average {m.get('load_average', '?')} at the "
        f"start and {m.get('load_average_end', '?')} at the end (other work on the machine slows every timing).", "",
        "Libraries: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".", "",
        "Each (tool, size) ran in a fresh process on a seeded synthetic table (columns 1-3 follow column 0, "
        "3 groups shift columns 4-7, 1% outliers, plus a categorical `field` with an offset in one level), "
        "after a warm-up call on "
        f"{WARMUP_ROWS:,} rows (lazy imports, numba compilation: the *first call* column). Times are the best of "
        f"{REPEATS} runs for calls under {REPEAT_BELOW_S:g} s, else of one. *Peak MB* is the "
        "rise of the process's resident high-water mark during the call; *× array* divides it by the "
        "float64 numeric array. *Overhead* is tool time over the bare library call on the same array. "
        "*Model chars* is the length of what the model reads of the result. "
        f"Targets (1M × 20 on 2 cores): time per tool as listed, peak ≤ {MAX_MEMORY_RATIO:g}× the array, "
        f"overhead ≤ {MAX_OVERHEAD:g}×; other sizes are shown without a verdict.", "",
        "| tool | size | time s | target s | first call s | bare s | overhead | peak MB | × array | model chars "
        "| result |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in report["results"]:
        if "error" in r:
            lines.append(f"| {r['tool']} | {r['size']} | — | — | — | — | — | — | — | — | ERROR |")
            continue
        lines.append(
            f"| {r['tool']} | {r['size']} | {_fmt(r['tool_s'])} | {_fmt(r.get('target_s'))} | "
            f"{_fmt(r.get('warmup_s'))} | {_fmt(r.get('bare_s'))} | {_fmt(r.get('overhead'))} | "
            f"{_fmt(r['peak_mb'])} | {_fmt(r['memory_ratio'])} | {r.get('model_chars', '—')} | {r['verdict']} |")
    bare: dict[str, list[str]] = {}
    for r in report["results"]:
        if r.get("bare_call"):
            bare.setdefault(r["tool"], [])
            if r["bare_call"] not in bare[r["tool"]]:
                bare[r["tool"]].append(r["bare_call"])
    if bare:
        lines += ["", "Bare calls:"] + [f"- {tool}: {' / '.join(calls)}" for tool, calls in sorted(bare.items())]
    errors = [r for r in report["results"] if "error" in r]
    if errors:
        lines += ["", "## Errors", ""]
        lines += [f"- {r['tool']} at {r['size']}: {_cell(r['error'])}" for r in errors]
    warm_errors = [r for r in report["results"] if r.get("warmup_error") and "error" not in r]
    if warm_errors:
        lines += ["", "Warm-up calls that failed (the timed call still ran): "
                  + "; ".join(f"{r['tool']} at {r['size']}: {_cell(r['warmup_error'])}" for r in warm_errors)]
    if report.get("sandbox"):
        lines += ["", "## In the sandbox", "",
                  "Every tool called in turn in one worker per size with the default limits (600 s, 8192 MB "
                  "address space), as a run would; the time includes the pipe, and the first UMAP call its "
                  "numba compilation. Tools that change the session ran last.", "",
                  "| size | tool | time s | result |", "| --- | --- | ---: | --- |"]
        lines += [f"| {r['size']} | {r['tool']} | {_fmt(r['time_s'])} | {_cell(r['result'])} |" for r in report["sandbox"]]
    lines += ["", f"Total bench time {report['total_s']:.0f} s.", ""]
    return "\n".join(lines)


MUTATING_TOOLS = ("transform", "residualize", "select")
"""Tools that change the session (new columns, the active rows): run last in a sandbox session."""


def run_sandbox_session(size: Size, tools: list[str], registry: dict,
                        log: Callable[[str], None] | None = None) -> list[dict]:
    """Call every tool in turn in one sandbox worker with the default limits, as an agent's run would."""
    from serendip.tools.engine.sandbox import SandboxLimits, ToolCrash, WorkerRunner
    from serendip.tools.engine.table import Table

    columns = column_names(size.n_cols)
    order = [t for t in tools if t not in MUTATING_TOOLS] + [t for t in MUTATING_TOOLS if t in tools]
    table = Table.from_dataframe(synthetic_frame(size.n_rows, size.n_cols), name=f"synthetic {size.label}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="serendip-bench-") as tmp:
        t0 = time.perf_counter()
        with WorkerRunner(None, tmp, seed=SEED, limits=SandboxLimits(), table=table) as runner:
            rows.append({"tool": "(worker start)", "size": size.label, "time_s": time.perf_counter() - t0,
                         "result": "ok"})
            for i, tool in enumerate(order):
                args = tool_arguments(tool, columns, registry[tool].json_schema())
                t0 = time.perf_counter()
                try:
                    res = runner.call(tool, args, f"R{i + 1}")
                    outcome = "ok" if res.ok else f"error: {res.error[:200]}"
                except ToolCrash as exc:
                    outcome = f"crash: {exc}"[:250]
                row = {"tool": tool, "size": size.label, "time_s": time.perf_counter() - t0, "result": outcome,
                       "restarts": runner.restarts}
                if log:
                    log(f"sandbox {tool} @ {size.label}: {row['time_s']:.2f} s, {outcome[:120]}")
                rows.append(row)
    return rows


def run_bench(sizes: list[Size], tools: list[str], timeout_s: float = 3600.0,
              log: Callable[[str], None] | None = None, sandbox: bool = False) -> dict:
    """Measure every (tool, size) and return the report data (plus sandbox sessions when asked)."""
    from serendip.tools.engine.registry import load_builtin_tools

    registry = load_builtin_tools()
    machine = machine_description()
    started = time.perf_counter()
    results = []
    mpl_dir = tempfile.TemporaryDirectory(prefix="serendip-bench-mpl-")  # one font cache for all jobs
    env = {} if "MPLCONFIGDIR" in os.environ else {"MPLCONFIGDIR": mpl_dir.name}
    for size in sizes:
        columns = column_names(size.n_cols)
        for tool in tools:
            job = {"tool": tool, "n_rows": size.n_rows, "n_cols": size.n_cols,
                   "arguments": tool_arguments(tool, columns, registry[tool].json_schema())}
            t0 = time.perf_counter()
            row = judge(run_in_subprocess(job, timeout_s, env), size)
            if log:
                shown = row.get("error") or f"{row['tool_s']:.2f} s, peak {row['peak_mb']:.0f} MB"
                log(f"{tool} @ {size.label}: {shown} [{row['verdict']}] ({time.perf_counter() - t0:.0f} s)")
            results.append(row)
    mpl_dir.cleanup()
    sessions = [row for size in sizes for row in run_sandbox_session(size, tools, registry, log)] if sandbox else []
    machine["load_average_end"] = round(os.getloadavg()[0], 2)
    return {"schema": "serendip.bench/1", "machine": machine, "results": results, "sandbox": sessions,
            "targets": {"size": list(TARGET_SIZE), "seconds": TARGET_SECONDS, "max_memory_ratio": MAX_MEMORY_RATIO,
                        "max_overhead": MAX_OVERHEAD},
            "total_s": time.perf_counter() - started}


def main(argv: list[str] | None = None) -> int:
    """Command line of ``serendip bench``; returns the exit code (1 when any call errors)."""
    from serendip.tools.engine.registry import load_builtin_tools

    parser = argparse.ArgumentParser(prog="serendip bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help=f"comma-separated rows x columns (default {DEFAULT_SIZES!r})")
    parser.add_argument("--tools", default="", help="comma-separated tool names (default: every registered tool)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"markdown report to write (default {DEFAULT_OUT})")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                        help="also write the results as JSON to PATH (stdout when no PATH)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per (tool, size)")
    parser.add_argument("--sandbox", action="store_true",
                        help="also call every tool in turn in one sandbox worker per size (default limits)")
    parser.add_argument("--explore", action="store_true",
                        help=f"instead: time full autopilot explorations (default sizes {EXPLORE_SIZES!r}) against "
                             "ydata-profiling on the same file; writes its section of --out")
    parser.add_argument("--cold", action="store_true", help="with --explore: also run once with an empty numba cache")
    parser.add_argument("--profiler-python", default=None, metavar="PYTHON",
                        help="with --explore: a Python that has ydata-profiling (default: this one, if it does)")
    args = parser.parse_args(argv)
    try:
        sizes = parse_sizes(EXPLORE_SIZES if args.explore and args.sizes == DEFAULT_SIZES else args.sizes)
    except ValueError as exc:
        parser.error(str(exc))
    if args.explore:
        return explore_main(args, sizes)
    registry = load_builtin_tools()
    tools = [t.strip() for t in args.tools.split(",") if t.strip()] or sorted(registry)
    unknown = [t for t in tools if t not in registry]
    if unknown:
        parser.error(f"unknown tool(s) {', '.join(unknown)}; tools: {', '.join(sorted(registry))}")
    report = run_bench(sizes, tools, args.timeout, log=lambda text: print(text, file=sys.stderr, flush=True),
                       sandbox=args.sandbox)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = out.read_text(encoding="utf-8") if out.exists() else ""
    out.write_text(render_markdown(report), encoding="utf-8")
    if SECTION_START in previous:  # keep the --explore section
        write_section(out, previous[previous.index(SECTION_START):previous.index(SECTION_END)] + SECTION_END + "\n")
    if args.json == "-":
        print(json.dumps(report, indent=2))
    elif args.json:
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    failed = any("error" in r for r in report["results"]) or any(r["result"] != "ok" for r in report["sandbox"])
    return 1 if failed else 0


def explore_main(args, sizes: list[Size]) -> int:
    """``serendip bench --explore``: write the exploration section of ``--out``; 1 when an exploration failed."""
    report = run_explore_bench(sizes, cold=args.cold, profiler_python=args.profiler_python,
                               log=lambda text: print(text, file=sys.stderr, flush=True), timeout_s=args.timeout)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_section(out, render_section(report))
    if args.json == "-":
        print(json.dumps(report, indent=2))
    elif args.json:
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    return 1 if any(r["exit_code"] != 0 for r in report["rows"]) else 0


if __name__ == "__main__":
    sys.exit(main())
