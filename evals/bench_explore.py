"""``serendip bench --explore``: a full autopilot exploration against ydata-profiling on the same file.

For each size a seeded synthetic table (see :func:`serendip.evals.bench.synthetic_frame`) is written
as CSV; then, one after the other on that file, each in its own process tree:

- ``serendip explore FILE --model autopilot`` with the user's numba cache (warm after its first use),
  and with ``--cold`` also once with an empty numba cache (the first run on a new machine);
- ydata-profiling's minimal and full reports (``ProfileReport(df, minimal=...).to_file``) when a Python
  that can import ``ydata_profiling`` is found (this one, or ``--profiler-python``): it is never a
  dependency of Serendip (its pins, pandas < 3 and numpy < 2.4, conflict with Serendip's stack).

Wall time is measured around the process; peak memory is the highest sum of the resident sets of the
process and all its descendants (the tool workers), sampled every 0.2 s, so a short spike between two
samples can be missed. The memory target (4x the numeric array) is applied to the rise over a baseline
exploration of a 2,000-row table: the interpreters and libraries of the run and its workers alone take
about a gigabyte, more than the whole array of a 1M x 20 table. The load average is recorded with every run: on a shared machine it inflates
every timing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

SAMPLE_INTERVAL_S = 0.2
BASELINE_ROWS = 2_000
"""Rows of the small exploration whose peak memory (the processes and libraries, with next to no data) is
subtracted before comparing an exploration's memory with its table's numeric array."""
SECTION_START = "<!-- serendip bench --explore: start -->"
SECTION_END = "<!-- serendip bench --explore: end -->"
TARGETS_S = {(100_000, 20): 60.0, (1_000_000, 20): 300.0}
"""Wall-time targets of a warm-cache exploration on 2 cores."""
COLD_TARGET_S = {(100_000, 20): 90.0}
MAX_MEMORY_RATIO = 4.0
PROFILE_CODE = ("import sys, pandas as pd\n"
                "from ydata_profiling import ProfileReport\n"
                "df = pd.read_csv(sys.argv[1])\n"
                "ProfileReport(df, minimal=sys.argv[2] == 'minimal', progress_bar=False).to_file(sys.argv[3])\n")


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc (Linux)."""
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])  # after "pid (comm) state"
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def tree_rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` and all its descendants, in MiB (0 when it is gone)."""
    tree = _children()
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += _rss_kb(current)
        todo.extend(tree.get(current, []))
    return total / 1024


def measure(command: list[str], env: dict[str, str] | None = None, timeout_s: float = 3600.0) -> dict:
    """Run ``command``; return wall seconds, peak tree memory, exit code, load averages and the output tail."""
    load_start = os.getloadavg()[0]
    started = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, tree_rss_mb(proc.pid))
            if time.perf_counter() - started > timeout_s:
                proc.kill()
                proc.wait()
                break
            time.sleep(SAMPLE_INTERVAL_S)
        wall = time.perf_counter() - started
        log.seek(0)
        tail = [line for line in log.read().decode("utf-8", "replace").splitlines() if line.strip()][-3:]
    return {"wall_s": wall, "peak_mb": peak, "exit_code": proc.returncode, "load_start": round(load_start, 2),
            "load_end": round(os.getloadavg()[0], 2), "output_tail": tail}


def find_profiler_python(explicit: str | None) -> str | None:
    """A Python that can import ydata_profiling: ``explicit``, else this one; None when there is none."""
    for candidate in ([explicit] if explicit else [sys.executable]):
        try:
            ok = subprocess.run([candidate, "-c", "import ydata_profiling"], capture_output=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if ok.returncode == 0:
            return candidate
    return None


def findings_count(out: Path) -> int | None:
    try:
        return len(json.loads((out / "findings.json").read_text(encoding="utf-8"))["findings"])
    except (OSError, ValueError, KeyError):
        return None


def run_explore_bench(sizes, cold: bool = False, profiler_python: str | None = None,
                      log: Callable[[str], None] | None = None, timeout_s: float = 3600.0) -> dict:
    """Measure the exploration (and ydata-profiling when available) on each size; returns the report data."""
    from serendip.evals.bench import machine_description, synthetic_frame

    log = log or (lambda text: None)
    profiler = find_profiler_python(profiler_python)
    rows = []
    with tempfile.TemporaryDirectory(prefix="serendip-bench-explore-") as tmp:
        small = Path(tmp) / "baseline.csv"
        synthetic_frame(BASELINE_ROWS, max(s.n_cols for s in sizes)).to_csv(small, index=False)
        base = measure([sys.executable, "-m", "serendip.agent.cli", "explore", str(small), "--model", "autopilot",
                        "--out", str(Path(tmp) / "baseline"), "--quiet"], None, timeout_s)
        log(f"baseline exploration of {BASELINE_ROWS} rows: {base['wall_s']:.1f} s, peak {base['peak_mb']:.0f} MB")
        for size in sizes:
            table = Path(tmp) / f"synthetic_{size.n_rows}x{size.n_cols}.csv"
            synthetic_frame(size.n_rows, size.n_cols).to_csv(table, index=False)
            runs = [("explore, cold numba cache", {"NUMBA_CACHE_DIR": str(Path(tmp) / f"numba-{size.label}")})] \
                if cold else []
            runs.append(("explore", {}))
            for label, env in runs:
                out = Path(tmp) / f"run-{len(rows)}"
                row = measure([sys.executable, "-m", "serendip.agent.cli", "explore", str(table), "--model",
                               "autopilot", "--out", str(out), "--quiet"], env, timeout_s)
                row.update(size=size.label, n_rows=size.n_rows, n_cols=size.n_cols, run=label,
                           array_mb=size.array_mb, findings=findings_count(out))
                log(f"{label} @ {size.label}: {row['wall_s']:.1f} s, peak {row['peak_mb']:.0f} MB "
                    f"(load {row['load_start']} -> {row['load_end']})")
                rows.append(row)
            if profiler:
                for mode in ("minimal", "full"):
                    row = measure([profiler, "-c", PROFILE_CODE, str(table), mode, str(Path(tmp) / f"{mode}.html")],
                                  None, timeout_s)
                    row.update(size=size.label, n_rows=size.n_rows, n_cols=size.n_cols, array_mb=size.array_mb,
                               run=f"ydata-profiling {mode}", findings=None)
                    log(f"ydata-profiling {mode} @ {size.label}: {row['wall_s']:.1f} s, peak {row['peak_mb']:.0f} MB")
                    rows.append(row)
    for row in rows:
        row["above_baseline_mb"] = max(0.0, row["peak_mb"] - base["peak_mb"]) if row["run"].startswith("explore") \
            else None
    return {"machine": machine_description(), "profiler": profiler, "rows": rows, "baseline": base}


def verdict(row: dict, rows: list[dict]) -> str:
    """PASS/MISS against the targets for an exploration row ('' for other rows and sizes)."""
    if not row["run"].startswith("explore"):
        return ""
    key = (row["n_rows"], row["n_cols"])
    target = (COLD_TARGET_S if "cold" in row["run"] else TARGETS_S).get(key)
    if row["exit_code"] != 0:
        return "FAIL (exit code {})".format(row["exit_code"])
    if target is None:
        return ""
    misses = []
    if row["wall_s"] > target:
        misses.append(f"time > {target:g} s")
    if (row.get("above_baseline_mb") or 0.0) > MAX_MEMORY_RATIO * row["array_mb"]:
        misses.append(f"memory > {MAX_MEMORY_RATIO:g}x array")
    return "PASS" if not misses else "MISS (" + ", ".join(misses) + ")"


def render_section(report: dict) -> str:
    """The markdown section for evals/BENCH.md."""
    m = report["machine"]
    lines = [SECTION_START, "## Full exploration vs ydata-profiling (`serendip bench --explore`)", "",
             f"Run {m.get('date', '')} (commit {m.get('commit', '?')}) on {m.get('cpu', '?')}, "
             f"{m.get('cores', '?')} cores. Each run is a separate process tree on the same CSV; *peak MB* is the "
             "highest summed resident memory of the process and its tool workers (sampled every 0.2 s); *× array* "
             "divides it by the float64 numeric array; *above base × array* divides the rise over the peak of "
             f"the same exploration of a {BASELINE_ROWS:,}-row table ({report['baseline']['peak_mb']:.0f} MB: "
             "interpreters, libraries, tool workers) by the array, and is what the memory target applies to; *load* is the 1-minute load average at start → end "
             "(other work on the machine inflates every timing). Targets on 2 cores: 100k × 20 ≤ 60 s with a warm "
             "numba cache, ≤ 90 s cold; 1M × 20 ≤ 5 min; peak ≤ 4× the array.", ""]
    if not report["profiler"]:
        lines += ["ydata-profiling was not run: no Python here can import it (it is not a Serendip dependency, and "
                  "its pins — pandas < 3, numpy < 2.4, scipy < 1.17, numba < 0.63 — conflict with Serendip's stack, "
                  "so it needs its own environment: pass `--profiler-python /path/to/that/python`).", ""]
    lines += ["| size | run | wall s | vs ydata minimal | vs ydata full | peak MB | × array | above base × array | "
              "findings | load | result |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for row in report["rows"]:
        same = {r["run"]: r["wall_s"] for r in report["rows"] if r["size"] == row["size"]}
        ratio = {mode: (f"{row['wall_s'] / same[f'ydata-profiling {mode}']:.2f}×"
                        if same.get(f"ydata-profiling {mode}") else "—") for mode in ("minimal", "full")}
        lines.append(f"| {row['size']} | {row['run']} | {row['wall_s']:.1f} | {ratio['minimal']} | {ratio['full']} | "
                     f"{row['peak_mb']:.0f} | {row['peak_mb'] / row['array_mb']:.1f} | "
                     f"{'—' if row.get('above_baseline_mb') is None else format(row['above_baseline_mb'] / row['array_mb'], '.1f')} | "
                     f"{'—' if row['findings'] is None else row['findings']} | "
                     f"{row['load_start']} → {row['load_end']} | {verdict(row, report['rows'])} |")
    lines += ["", SECTION_END]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Put ``section`` into ``path`` in place of the previous one (appended when there is none)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    pattern = re.compile(re.escape(SECTION_START) + r".*?" + re.escape(SECTION_END) + r"\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section
    path.write_text(text, encoding="utf-8")
