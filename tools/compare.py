"""The ``compare`` tool: how numeric columns differ across the levels of a categorical column, and
whether one level stands out alone (a field, galaxy or instrument with a calibration offset)."""

from __future__ import annotations

import re
from typing import Annotated

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from pydantic import Field  # noqa: E402
from scipy import stats as sps  # noqa: E402

from serendip.tools.engine.mdtext import code  # noqa: E402
from serendip.tools.plot import figure_context, plain_text, save_figure  # noqa: E402
from serendip.tools.engine.registry import tool  # noqa: E402
from serendip.tools.engine.result import ToolResult  # noqa: E402
from serendip.tools.stats import bh_qvalues  # noqa: E402

OFFSET_SIGMA = 1.0
"""A level whose median sits this many within-level robust sigmas from the other levels stands out..."""
OTHERS_SIGMA = 0.5
"""...provided the other levels' medians agree within this many sigmas: one level alone is offset."""
MAX_SHOWN = 15
OBSERVATIONAL_SPLIT = re.compile(r"field|tile|plate|run|instrument|camera|chip|ccd|survey|galaxy|night|epoch|"
                                 r"telescope|detector|pointing|mjd|date|batch|site|observer|program|release|pipeline",
                                 re.I)
"""Names of columns that usually split a table by how it was observed rather than by what the objects are."""
OBJECT_SPLIT = re.compile(r"class|type|morph|spiral|elliptical|irregular|merger|species|kind|category|population|"
                          r"member|variab|binary|agn|qso|quasar|star|galaxy_?type|spectral|sptype|hubble", re.I)
"""Names of flags and classes that describe the objects themselves (physics, not observing conditions)."""
MIN_LEVELS_FOR_OFFSET = 3


def robust_sigma(x: np.ndarray) -> float:
    """1.4826 × MAD, falling back to the standard deviation for nearly constant data."""
    mad = np.median(np.abs(x - np.median(x))) * 1.4826
    return float(mad if mad > 0 else np.std(x))


def level_shifts(values: np.ndarray, codes: np.ndarray, n_levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Each level's median minus the median of the other levels' medians, in within-level robust sigmas.

    Returns the shifts and, per level, the spread (max - min, in the same sigmas) of the other levels'
    medians: a level stands out alone when its shift is large and that spread is small.
    """
    medians = np.full(n_levels, np.nan)
    sigmas = []
    for k in range(n_levels):
        inside = values[codes == k]
        if len(inside) >= 2:
            medians[k] = np.median(inside)
            sigmas.append(robust_sigma(inside))
    sigma = float(np.median(sigmas)) if sigmas else 0.0
    shifts = np.full(n_levels, np.nan)
    spread = np.full(n_levels, np.nan)
    if sigma <= 0:
        return shifts, spread
    for k in range(n_levels):
        others = np.delete(medians, k)
        others = others[np.isfinite(others)]
        if np.isfinite(medians[k]) and len(others):
            shifts[k] = (medians[k] - np.median(others)) / sigma
            spread[k] = np.ptp(others) / sigma
    return shifts, spread


@tool
def compare(session, by: str, columns: list[str] | None = None,
            min_level_size: Annotated[int, Field(ge=2, le=10_000)] = 5,
            max_levels: Annotated[int, Field(ge=2, le=100)] = 30) -> ToolResult:
    """Compare numeric columns across the levels of a categorical column (field, galaxy, instrument, class).

    Use it to find systematics: when one level alone is offset in a column (a calibration offset in one
    field or galaxy), the rest of the analysis should control for it or leave that level out. Reports a
    Kruskal–Wallis test per column (with Benjamini–Hochberg q-values), its effect size (epsilon squared),
    and each level's median shift from the other levels in within-level robust sigmas.

    Args:
        by: The categorical or flag column whose levels define the groups.
        columns: Numeric columns to compare; all numeric columns when omitted.
        min_level_size: Levels with fewer rows than this are left out.
        max_levels: At most this many of the most frequent levels are compared.
    """
    by = session.resolve_column(by, param="by", roles=("categorical", "flag", "identifier", "text"))
    cols = session.resolve_columns(columns, param="columns")
    rows = session.active_rows
    if len(rows) == 0:
        raise session.fail("compare got no rows: the table (or the current selection) is empty.")
    labels = session.table.df[by].iloc[rows].astype("string").fillna("<missing>").to_numpy(dtype=object)
    levels, counts = np.unique(labels, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    levels = [lv for lv, c in zip(levels[order], counts[order]) if c >= min_level_size][:max_levels]
    if len(levels) < 2:
        raise session.fail(f"compare needs at least 2 levels of {by!r} with {min_level_size} or more rows each; "
                           f"found {len(levels)}. Lower min_level_size or choose another 'by' column.")
    index = {lv: k for k, lv in enumerate(levels)}
    codes_all = np.array([index.get(lv, -1) for lv in labels])
    data = session.table.df.iloc[rows][cols].to_numpy(dtype=float, na_value=np.nan)

    entries, tests = [], []
    for j, col in enumerate(cols):
        v = data[:, j]
        ok = np.isfinite(v) & (codes_all >= 0)
        vals, codes = v[ok], codes_all[ok]
        groups = [vals[codes == k] for k in range(len(levels))]
        usable = [g for g in groups if len(g) >= 2]
        if len(usable) < 2 or np.ptp(vals) == 0:
            continue
        h, p = sps.kruskal(*usable)
        k, n = len(usable), len(vals)
        eps2 = float(max(0.0, (h - k + 1) / (n - k))) if n > k else float("nan")
        shifts, spread = level_shifts(vals, codes, len(levels))
        entries.append({"column": col, "n": n, "h": float(h), "p_value": float(p), "epsilon2": eps2,
                        "shifts": shifts, "spread": spread})
        tests.append([f"compare:{by}:{col}", float(p)])
    if not entries:
        raise session.fail(f"compare found no numeric column with values in two or more levels of {by!r}.")
    q = bh_qvalues([e["p_value"] for e in entries])
    for e, qv in zip(entries, q):
        e["q_value"] = float(qv)

    findings, offsets = [], []
    th = session.thresholds
    for e in entries:
        s = e["shifts"]
        fin = np.isfinite(s)
        # With two levels "one level alone is offset" is true of any difference at all: the rule needs a
        # third level to tell one odd level from a plain difference between classes.
        if fin.sum() < MIN_LEVELS_FOR_OFFSET or e["q_value"] > th.q_max:
            continue
        k = int(np.nanargmax(np.abs(s)))
        if abs(s[k]) >= OFFSET_SIGMA and e["spread"][k] < OTHERS_SIGMA:
            offsets.append({"column": e["column"], "level": str(levels[k]), "shift_sigma": float(s[k]),
                            "q_value": e["q_value"]})
    by_level: dict[str, list[dict]] = {}
    for o in offsets:
        by_level.setdefault(o["level"], []).append(o)
    figures = []
    if entries:
        top = max(entries, key=lambda e: (e["epsilon2"] if np.isfinite(e["epsilon2"]) else -1))
        figures.append(box_figure(session, data[:, cols.index(top["column"])], codes_all, levels, by, top["column"]))
    observational = bool(OBSERVATIONAL_SPLIT.search(by)) and not OBJECT_SPLIT.search(by)
    for level, items in by_level.items():
        names = [o["column"] for o in items]
        reading = ("a calibration or selection systematic is likely" if observational else
                   "if it splits the table by how it was observed (field, instrument, epoch) this is likely a "
                   "systematic; if it is a physical class, a real difference of that class")
        shifts_txt = ", ".join(f"{code(o['column'])} {o['shift_sigma']:+.2f} σ" for o in items)
        findings.append({
            "kind": "data_quality",
            "title": f"{by} = {level} alone is offset in {', '.join(names[:4])}",
            "summary": (f"Rows with {code(by)} = {code(level)} differ from all other levels in {shifts_txt} "
                        f"(median shift from the other levels, in within-level robust sigmas), while the other levels agree "
                        f"within {OTHERS_SIGMA} σ: {reading}."),
            "columns": [by] + names, "labels": None, "figures": figures[:1], "novelty": "systematic" if observational else "candidate",
            "score": float(min(1.0, 0.4 + 0.1 * max(abs(o["shift_sigma"]) for o in items))),
            "stats": {"by": by, "level": level, "offsets": {o["column"]: o["shift_sigma"] for o in items},
                      "q_values": {o["column"]: o["q_value"] for o in items}, "method": "kruskal-wallis + median shift"},
        })

    entries.sort(key=lambda e: -(e["epsilon2"] if np.isfinite(e["epsilon2"]) else -1))
    shown = []
    for e in entries[:MAX_SHOWN]:
        s = e["shifts"]
        k = int(np.nanargmax(np.abs(s))) if np.isfinite(s).any() else 0
        shown.append({"column": e["column"], "n": e["n"], "epsilon2": e["epsilon2"], "p_value": e["p_value"],
                      "q_value": e["q_value"], "most_shifted_level": str(levels[k]),
                      "shift_sigma": float(s[k]) if np.isfinite(s[k]) else None})
    summary = {"by": by, "levels": [str(lv) for lv in levels[:MAX_SHOWN]], "n_levels": len(levels),
               "n_columns_tested": len(entries),
               "n_significant": int(sum(e["q_value"] <= th.q_max for e in entries)),
               "single_level_offsets": offsets[:MAX_SHOWN], "columns": shown}
    md = [f"**Compared** {len(entries)} columns across {len(levels)} levels of {code(by)} (Kruskal–Wallis, "
          f"BH q-values; ε² = effect size).", "", "| column | ε² | q | most shifted level | shift (σ) |",
          "|---|---|---|---|---|"]
    for e in shown:
        md.append(f"| {code(e['column'])} | {e['epsilon2']:.3f} | {e['q_value']:.3g} | {code(e['most_shifted_level'])} "
                  f"| {e['shift_sigma'] if e['shift_sigma'] is None else format(e['shift_sigma'], '+.2f')} |")
    if offsets:
        md += ["", "Single-level offsets (possible systematics): " +
               "; ".join(f"{code(o['level'])} in {code(o['column'])} ({o['shift_sigma']:+.2f} σ)" for o in offsets[:10])]
    return ToolResult(summary=summary, markdown="\n".join(md), figures=figures, findings=findings, tests=tests)


def box_figure(session, values: np.ndarray, codes: np.ndarray, levels: list, by: str, column: str) -> str:
    """Box plot of one column per level (at most 12 levels)."""
    shown = list(range(min(len(levels), 12)))
    data = [values[(codes == k) & np.isfinite(values)] for k in shown]
    with figure_context():
        fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(shown) + 2), 3.6))
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, len(shown) + 1))
        ax.set_xticklabels([plain_text(levels[k], 14) for k in shown], rotation=45, ha="right")
        ax.set_xlabel(plain_text(by))
        ax.set_ylabel(plain_text(column))
        ax.set_title(plain_text(f"{column} by {by}", 60))
        return save_figure(session, fig, f"compare_{column}")
