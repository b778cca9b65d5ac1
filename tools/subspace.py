"""The ``subspace`` tool: compact clumps in pairs of columns, and which columns carry any dependence at all
(methods in :mod:`serendip.tools.subspace_search`)."""

from __future__ import annotations

from typing import Annotated

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from pydantic import Field  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from serendip.tools import subspace_search as ss  # noqa: E402
from serendip.tools.engine.mdtext import code  # noqa: E402
from serendip.tools.plot import figure_context, plain_text, save_figure  # noqa: E402
from serendip.tools.engine.registry import tool  # noqa: E402
from serendip.tools.engine.result import ToolResult  # noqa: E402
from serendip.tools.stats import bh_qvalues  # noqa: E402

MIN_DISTINCT = 20
MAX_FINDINGS = 3
MAX_SHOWN = 20
SAME_CLUMP_OVERLAP = 0.5
MAX_PLOT_POINTS = 20_000


def clump_figure(session, x: np.ndarray, y: np.ndarray, member: np.ndarray, names: list[str], stem: str) -> str:
    rng = session.rng(41)
    idx = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    if len(idx) > MAX_PLOT_POINTS:
        idx = np.sort(rng.choice(idx, MAX_PLOT_POINTS, replace=False))
    with figure_context():
        fig, ax = plt.subplots(figsize=(6, 5))
        rest, inside = idx[~member[idx]], idx[member[idx]]
        ax.scatter(x[rest], y[rest], s=3, color="lightgrey", linewidths=0, rasterized=True, label=f"other ({len(rest)})")
        ax.scatter(x[inside], y[inside], s=5, color="tab:red", linewidths=0, rasterized=True,
                   label=f"clump ({len(inside)})")
        ax.set_xlabel(plain_text(names[0]))
        ax.set_ylabel(plain_text(names[1]))
        ax.legend(fontsize=7, markerscale=3)
        ax.set_title("compact clump in a column pair")
        fig.tight_layout()
        return save_figure(session, fig, stem)


@tool
def subspace(session, columns: list[str] | None = None,
             max_pairs: Annotated[int, Field(ge=1, le=200)] = 30,
             min_fraction: Annotated[float, Field(ge=0.002, le=0.2)] = 0.01) -> ToolResult:
    """Search pairs of columns for compact clumps of rows, and say which columns depend on nothing.

    Use it when a group may live in a few columns of many (a star cluster in proper motions, a class in
    two colours): clustering all columns at once dilutes such groups. Columns are compared by the mutual
    information of their ranks; columns that depend on no other column are left out (and listed, so a
    group search can drop them). The most dependent pairs are searched with HDBSCAN for clumps (robustly
    scaled columns), and a clump counts only as an excess over the null that keeps each column's
    distribution and the pair's rank correlation: found in one random half of the rows, tested in the
    other half (Poisson p-value, contrast = observed / expected rows in its region), with stability =
    agreement with the clump found independently in that half. Budgeted: at most max_pairs pairs are
    searched, the rest are listed as skipped.

    Args:
        columns: Numeric columns to search (default: all numeric columns with at least 20 distinct values).
        max_pairs: Most column pairs searched for clumps (the most dependent first).
        min_fraction: Smallest clump searched for, as a fraction of the rows (default 1%).
    """
    names = session.resolve_columns(columns, param="columns")
    rows = session.active_rows
    df = session.table.df
    X_all = df.iloc[rows][names].to_numpy(dtype=float, na_value=np.nan)
    distinct = [len(np.unique(X_all[np.isfinite(X_all[:, j]), j])) for j in range(len(names))]
    use = [j for j in range(len(names)) if distinct[j] >= MIN_DISTINCT]
    few = [names[j] for j in range(len(names)) if distinct[j] < MIN_DISTINCT]
    if len(use) < 2:
        raise session.fail(f"subspace needs at least two numeric columns with {MIN_DISTINCT} or more distinct "
                           f"values among the active rows; got {len(use)}.")
    cols = [names[j] for j in use]
    X = X_all[:, use]
    if len(rows) < 100:
        raise session.fail(f"subspace needs at least 100 active rows; got {len(rows)}.")
    rng = session.rng(37)
    sample = np.arange(len(X)) if len(X) <= ss.MI_ROWS else np.sort(rng.choice(len(X), ss.MI_ROWS, replace=False))
    mi, pv = ss.rank_mutual_information(X[sample], ss.mi_bins(len(sample)))
    iu = np.triu_indices(len(cols), 1)
    q = np.ones_like(pv)
    q[iu] = bh_qvalues(pv[iu])
    q[(iu[1], iu[0])] = q[iu]
    dependent = (q <= ss.DEPENDENCE_Q) & ~np.eye(len(cols), dtype=bool)
    informative = [c for j, c in enumerate(cols) if dependent[j].any()]
    unrelated = [c for j, c in enumerate(cols) if not dependent[j].any()]
    pairs = sorted(((mi[a, b], a, b) for a, b in zip(*iu) if dependent[a, b]), reverse=True)
    searched, skipped = pairs[:max_pairs], pairs[max_pairs:]

    clumps = []
    tests = []
    with threadpool_limits(limits=1):
        for value, a, b in searched:
            a, b = int(a), int(b)
            ok = np.isfinite(X[:, a]) & np.isfinite(X[:, b])
            V = X[ok][:, [a, b]]
            for c in ss.clumps_in_pair(V, session.rng(43 + 7 * a + 1009 * b), min_fraction):
                member = np.zeros(len(X), dtype=bool)
                member[np.flatnonzero(ok)] = ss.members(V, c)
                c.update({"columns": [cols[a], cols[b]], "member": member, "mi": float(value)})
                clumps.append(c)
                tests.append([f"subspace:{cols[a]}:{cols[b]}", c["p_value"]])
    real = [c for c in clumps if c["contrast"] >= ss.MIN_CONTRAST]
    real.sort(key=lambda c: (-(c["stability"] >= session.thresholds.min_stability), -c["contrast"] * c["stability"]))
    chosen = []
    for c in real:
        if all(_overlap(c["member"], d["member"]) < SAME_CLUMP_OVERLAP for d in chosen):
            chosen.append(c)
        if len(chosen) >= MAX_FINDINGS:
            break

    findings, figures, artifacts = [], [], []
    for i, c in enumerate(chosen, start=1):
        labels = np.where(c["member"], 0, -1).astype(np.int64)
        name = session.save_artifact(session.artifact_name(f"clump{i}"), labels, rows=rows, fill=-1)
        artifacts.append(name)
        xi, yi = cols.index(c["columns"][0]), cols.index(c["columns"][1])
        fig = clump_figure(session, X[:, xi], X[:, yi], c["member"], c["columns"], f"clump{i}")
        figures.append(fig)
        c["labels"] = name
        size = int(c["member"].sum())
        med = [float(np.nanmedian(X[c["member"], j])) for j in (xi, yi)]
        findings.append({
            "kind": "group",
            "title": f"A compact clump of {size} rows in {c['columns'][0]} and {c['columns'][1]}",
            "summary": (f"{size} rows ({size / len(X):.1%}) form a clump in ({c['columns'][0]}, {c['columns'][1]}) "
                        f"around ({med[0]:.4g}, {med[1]:.4g}): {c['contrast']:.1f} times the rows expected in its region "
                        f"from the columns' own distributions and their rank correlation (held-out half: "
                        f"{c['observed']} observed vs {c['expected']:.1f} expected, Poisson p = {c['p_value']:.2g}); "
                        f"stability {c['stability']:.2f} (agreement with the clump found independently in the "
                        "other half)."),
            "columns": list(c["columns"]),
            "stats": {"n_groups": 1, "sizes": [size], "stability": c["stability"], "method": "subspace_clump",
                      "contrast": c["contrast"], "p_value": c["p_value"], "observed": c["observed"],
                      "expected": c["expected"], "n": int(len(X)), "test": "held-out Poisson excess"},
            "labels": name, "figures": [fig], "novelty": "candidate",
            "score": float(np.clip(0.5 * c["stability"] + 0.5 * min(1.0, np.log10(max(c["contrast"], 1.0))), 0, 1)),
        })

    shown = [{"columns": c["columns"], "size": int(c["member"].sum()), "contrast": round(c["contrast"], 2),
              "p_value": c["p_value"], "stability": round(c["stability"], 3), "labels": c.get("labels")}
             for c in sorted(clumps, key=lambda c: -c["contrast"])[:MAX_SHOWN]]
    summary = {
        "informative_columns": informative, "unrelated_columns": unrelated, "few_values": few,
        "pairs_searched": [[cols[a], cols[b]] for _, a, b in searched][:MAX_SHOWN],
        "n_pairs_searched": len(searched), "n_pairs_skipped": len(skipped),
        "skipped_pairs": [[cols[a], cols[b]] for _, a, b in skipped][:10],
        "clumps": shown, "labels": [c["labels"] for c in chosen], "dependence_q": ss.DEPENDENCE_Q,
    }
    lines = [f"**Subspace search** of {len(cols)} columns ({len(rows)} rows): {len(informative)} depend on another "
             f"column (rank mutual information, G-test q ≤ {ss.DEPENDENCE_Q}), {len(searched)} pairs searched for clumps"
             + (f", {len(skipped)} less dependent pairs skipped (budget {max_pairs})" if skipped else "") + "."]
    if unrelated:
        lines.append(f"Columns that depend on no other column (left out of group searches): "
                     f"{', '.join(code(c) for c in unrelated[:20])}" + (" …" if len(unrelated) > 20 else "") + ".")
    if chosen:
        lines += ["", "| columns | rows | contrast | p (held-out) | stability |", "| --- | --- | --- | --- | --- |"]
        for c in chosen:
            lines.append(f"| {code(c['columns'][0])}, {code(c['columns'][1])} | {int(c['member'].sum())} | "
                         f"{c['contrast']:.1f} | {c['p_value']:.2g} | {c['stability']:.2f} |")
    else:
        lines.append(f"No clump holds {ss.MIN_CONTRAST:g} times the rows expected from the columns' own distributions.")
    return ToolResult(summary=summary, markdown="\n".join(lines), figures=figures, artifacts=artifacts,
                      findings=findings, tests=tests, details={"informative_columns": informative,
                                                               "unrelated_columns": unrelated})


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Share of the smaller set that is in the other."""
    small = min(int(a.sum()), int(b.sum()))
    return float((a & b).sum() / small) if small else 0.0
