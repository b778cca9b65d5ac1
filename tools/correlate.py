"""The ``correlate`` tool: which numeric columns move together, with FDR-controlled p-values, partial
correlations, checks of columns with limits, and a search for strong non-monotonic dependence."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from pydantic import Field  # noqa: E402

from serendip.tools.dependence import (PairStats, correlation_stats, pair_indices, partial_stats,  # noqa: E402
                                       weaker_of, xi_pairs)
from serendip.tools.engine.mdtext import code  # noqa: E402
from serendip.tools.plot import figure_context, plain_text, save_figure  # noqa: E402
from serendip.tools.engine.registry import tool  # noqa: E402
from serendip.tools.engine.result import ToolResult  # noqa: E402
from serendip.tools.stats import bh_qvalues  # noqa: E402

MAX_LOOP_PAIRS = 2000
"""Most pairs for the per-pair methods (Kendall, the non-monotonic check)."""
XI_SAMPLE_ROWS = 2000
XI_STRONG = 0.2
"""Smallest Chatterjee xi called strong dependence."""
XI_EXCESS = 0.1
"""How far xi must exceed |Spearman rho| to call dependence non-monotonic (monotonic relations have
xi <= |rho|: about 0.15 at rho = 0.5, 0.58 at rho = 0.9 for Gaussian data)."""
HEATMAP_MAX_COLUMNS = 40
HEXBIN_ABOVE = 5000
N_SCATTER = 3
MAX_FINDINGS = 10
NAME_CHARS = 80
MAX_DETAIL_PAIRS = 3000
"""Significant pairs listed in the result's details (for planners and reports; the model sees a page)."""
SYMBOL = {"spearman": "ρ", "pearson": "r", "kendall": "τ"}


@dataclass
class Inputs:
    """The values a call correlates.

    Attributes:
        V: (n_rows, n_columns) values; in target mode the target is the last column.
        names: Column names of ``V``.
        C: Control values (complete rows only) or None.
        controls: Control column names.
        rows: Table positions of the rows of ``V``.
        target: The target column name or None.
        dropped: Columns left out and why.
    """

    V: np.ndarray
    names: list[str]
    C: np.ndarray | None
    controls: list[str]
    rows: np.ndarray
    target: str | None
    dropped: dict[str, str]


@dataclass
class Correlations:
    """Everything computed for the pairs (ia[k], ib[k]) of one call.

    ``primary`` is what is ranked and tested (partial when controls are given, and for pairs with a
    censored column the weaker of with/without the limit rows); ``raw`` is without controls.
    """

    ia: np.ndarray
    ib: np.ndarray
    primary: PairStats
    raw: PairStats
    q: np.ndarray
    q_raw: np.ndarray
    ranked: np.ndarray
    with_limits: PairStats | None = None
    without_limits: PairStats | None = None
    not_chosen: PairStats | None = None
    censored: dict[int, int] = field(default_factory=dict)
    censored_pairs: set[int] = field(default_factory=set)
    xi: np.ndarray | None = None
    xi_p: np.ndarray | None = None
    xi_q: np.ndarray | None = None
    xi_n: np.ndarray | None = None
    non_monotonic: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))
    notes: list[str] = field(default_factory=list)

    @property
    def tested(self) -> np.ndarray:
        """Mask of pairs with a p-value."""
        return np.isfinite(self.primary.p)


def usable_columns(X: np.ndarray, names: list[str]) -> tuple[list[int], dict[str, str]]:
    """Indices of columns with at least 3 values and some variation, and why the others were left out."""
    keep, dropped = [], {}
    for j, name in enumerate(names):
        col = X[:, j]
        present = col[~np.isnan(col)]
        if len(present) == 0:
            dropped[name] = "all values missing"
        elif present.min() == present.max():
            dropped[name] = "constant"
        elif len(present) < 3:
            dropped[name] = "fewer than 3 values"
        else:
            keep.append(j)
    return keep, dropped


def values(session, names: list[str], rows: np.ndarray) -> np.ndarray:
    """Float values of ``names`` for ``rows`` (NaN for missing)."""
    df = session.table.df
    frame = df[names] if session.selection is None and len(rows) == len(df) else df.iloc[rows][names]
    return frame.to_numpy(dtype=float, na_value=np.nan)


def gather_inputs(session, columns, method, target, control) -> Inputs:
    """Resolve and check the columns of a call and read their values for the active rows."""
    rows = np.asarray(session.active_rows)
    if len(rows) < 3:
        raise session.fail(f"correlate needs at least 3 rows; the table (or the current selection) has {len(rows)}.")
    target = session.resolve_column(target, param="target", roles=("numeric",)) if target else None
    controls = session.resolve_columns(control, param="control", default_all=False) if control else []
    if controls and method == "kendall":
        raise session.fail("The 'control' parameter of correlate works with method='spearman' or 'pearson'; "
                           "partial Kendall correlation is not supported. Use method='spearman'.")
    if target and target in controls:
        raise session.fail(f"The 'target' column {target!r} cannot also be in 'control'.")
    names = [c for c in session.resolve_columns(columns, param="columns", roles=("numeric",))
             if c != target and c not in controls]
    if not names:
        raise session.fail("correlate has no column left to correlate after removing the target and controls; "
                           "pass more 'columns'.")
    X = values(session, names, rows)
    keep, dropped = usable_columns(X, names)
    names, V = [names[j] for j in keep], X[:, keep]
    if target:
        t = values(session, [target], rows)
        if not usable_columns(t, [target])[0]:
            raise session.fail(f"The 'target' column {target!r} is constant or has fewer than 3 values in the active "
                               "rows; choose another target.")
        V, names = np.column_stack([V, t]), names + [target]
    if len(names) < 2:
        reasons = "; ".join(f"{k}: {v}" for k, v in list(dropped.items())[:8])
        raise session.fail(f"correlate needs at least two usable numeric columns; got {len(names)}"
                           f"{' (left out: ' + reasons + ')' if reasons else ''}. Choose other columns.")
    C = None
    if controls:
        C = values(session, controls, rows)
        bad = usable_columns(C, controls)[1]
        if bad:
            raise session.fail(f"The 'control' columns must vary in the active rows; unusable: {bad}.")
        complete = ~np.isnan(C).any(axis=1)
        if complete.sum() < len(controls) + 4:
            raise session.fail(f"Too few rows ({int(complete.sum())}) have every control column present; "
                               "use fewer controls.")
        V, C, rows = V[complete], C[complete], rows[complete]
    return Inputs(V=V, names=names, C=C, controls=controls, rows=rows, target=target, dropped=dropped)


def compute(session, inp: Inputs, method: str, max_rows: int) -> Correlations:
    """Raw and partial statistics, the limit-row variants, q-values and the non-monotonic check."""
    th = session.thresholds
    target_mode = inp.target is not None
    ia, ib = pair_indices(len(inp.names), target_mode)
    if method == "kendall" and len(ia) > MAX_LOOP_PAIRS:
        raise session.fail(f"method='kendall' is limited to {MAX_LOOP_PAIRS} pairs and this call has {len(ia)}; pass "
                           "fewer 'columns' or a 'target', or use method='spearman'.")

    def stats_of(V: np.ndarray) -> tuple[PairStats, PairStats | None]:
        raw = correlation_stats(V, ia, ib, target_mode, method, session.rng(11), max_rows)
        return raw, (partial_stats(V, inp.C, ia, ib, target_mode, method) if inp.C is not None else None)

    raw, part = stats_of(inp.V)
    notes = list(raw.notes)
    censored = {}
    for j, name in enumerate(inp.names):
        flags = session.table.censored.get(name)
        if flags is not None and np.count_nonzero(flags[inp.rows]):
            censored[j] = int(np.count_nonzero(flags[inp.rows]))
    with_limits = without_limits = not_chosen = None
    censored_pairs = np.array([], dtype=np.int64)
    if censored:
        # The same statistics with the limit cells left out; each censored pair keeps the weaker result.
        V_measured = inp.V.copy()
        for j in censored:
            V_measured[session.table.censored[inp.names[j]][inp.rows] != 0, j] = np.nan
        censored_pairs = np.flatnonzero(np.isin(ia, list(censored)) | np.isin(ib, list(censored)))
        alt_raw, alt_part = stats_of(V_measured)
        with_limits, without_limits = (part, alt_part) if part else (raw, alt_raw)
        raw, raw_other = weaker_of(raw, alt_raw, censored_pairs)
        not_chosen = raw_other
        if part:
            part, not_chosen = weaker_of(part, alt_part, censored_pairs)
    primary = part or raw
    q = bh_qvalues(primary.p)
    significant = np.isfinite(primary.p) & (q <= th.q_max) & (np.abs(primary.effect) >= th.min_effect)
    ranked = np.flatnonzero(significant)
    ranked = ranked[np.argsort(-np.abs(primary.effect[ranked]), kind="stable")]
    out = Correlations(ia=ia, ib=ib, primary=primary, raw=raw, q=q, q_raw=bh_qvalues(raw.p) if part else q,
                       ranked=ranked, with_limits=with_limits, without_limits=without_limits, not_chosen=not_chosen,
                       censored=censored, censored_pairs=set(censored_pairs.tolist()), notes=notes)
    check_non_monotonic(session, inp, out)
    return out


def check_non_monotonic(session, inp: Inputs, c: Correlations) -> None:
    """Flag pairs whose dependence is strong (Chatterjee's xi) but not monotonic (xi well above |rho|)."""
    if len(c.ia) > MAX_LOOP_PAIRS:
        c.notes.append(f"non-monotonic check skipped: {len(c.ia)} pairs (limit {MAX_LOOP_PAIRS}); pass a 'target' "
                       "or fewer 'columns'")
        return
    c.xi, c.xi_p, rho, c.xi_n, n_sample = xi_pairs(inp.V, c.ia, c.ib, session.rng(23), XI_SAMPLE_ROWS)
    c.xi_q = bh_qvalues(c.xi_p)
    strong = (np.nan_to_num(c.xi_q, nan=1.0) <= session.thresholds.q_max) & (np.nan_to_num(c.xi) >= XI_STRONG)
    flagged = np.flatnonzero(strong & (c.xi > np.abs(np.nan_to_num(rho)) + XI_EXCESS))
    c.non_monotonic = flagged[np.argsort(-c.xi[flagged], kind="stable")]
    c.notes.append(f"non-monotonic check: Chatterjee's xi for {int(np.isfinite(c.xi_p).sum())} pairs on a seeded "
                   f"sample of {n_sample} rows")


def test_list(inp: Inputs, c: Correlations, method: str) -> list[list]:
    """Every p-value computed, as [key, p], for run-wide FDR (plain lists: wide tables have ~500k pairs)."""
    pair_names = [f"{a}|{b}" for a, b in zip([inp.names[i] for i in c.ia], [inp.names[i] for i in c.ib])]

    def entries(kind: str, p: np.ndarray, which: np.ndarray | None = None) -> list[list]:
        which = np.flatnonzero(np.isfinite(p)) if which is None else which[np.isfinite(p[which])]
        return [[f"correlate:{kind}:{pair_names[k]}", pv] for k, pv in zip(which.tolist(), p[which].tolist())]

    tag = f"{method}_partial" if inp.controls else method
    tests = entries(tag, c.primary.p)
    if inp.controls:
        tests += entries(method, c.raw.p)
    if c.not_chosen is not None:
        tests += entries(tag + "_other_limit_handling", c.not_chosen.p, np.array(sorted(c.censored_pairs)))
    if c.xi_p is not None:
        tests += entries("chatterjee_xi", c.xi_p)
    return tests


def pair_entry(inp: Inputs, c: Correlations, k: int) -> dict:
    """The summary entry of pair k."""
    e = {"x": inp.names[c.ia[k]][:NAME_CHARS], "y": inp.names[c.ib[k]][:NAME_CHARS],
         "effect": c.primary.effect[k], "p": c.primary.p[k], "q": c.q[k], "n": int(c.primary.n[k])}
    if inp.controls:
        e["raw_effect"] = c.raw.effect[k]
        e["raw_q"] = c.q_raw[k]
    if k in c.censored_pairs:
        e["effect_limits_as_values"] = c.with_limits.effect[k]
        e["effect_without_limit_rows"] = c.without_limits.effect[k]
    return e


def build_summary(session, inp: Inputs, c: Correlations, method: str, page: int, n_pages: int,
                  shown: np.ndarray) -> dict:
    """The compact, ranked and paged summary for the model."""
    th = session.thresholds
    summary: dict = {
        "method": method, "n_rows": len(inp.rows), "n_columns": len(inp.names), "selection": session.selection_label,
        "pairs_tested": int(c.tested.sum()), "significant_pairs": int(len(c.ranked)),
        "thresholds": {"q_max": th.q_max, "min_effect": th.min_effect}, "page": page, "n_pages": n_pages,
        "top_pairs": [pair_entry(inp, c, k) for k in shown],
    }
    if inp.target:
        summary["target"] = inp.target
    if inp.controls:
        summary["controls"] = inp.controls
        summary["ranked_by"] = "partial correlation given the controls (raw_effect is without them)"
    if len(c.ranked) == 0 and c.tested.any():
        tested = np.flatnonzero(c.tested)
        strongest = tested[np.argsort(-np.abs(c.primary.effect[tested]), kind="stable")][:5]
        summary["strongest_not_significant"] = [pair_entry(inp, c, k) for k in strongest]
    if c.xi is not None:
        summary["non_monotonic"] = [{"x": inp.names[c.ia[k]][:NAME_CHARS], "y": inp.names[c.ib[k]][:NAME_CHARS],
                                     "xi": c.xi[k], method: c.raw.effect[k], "q": c.xi_q[k]}
                                    for k in c.non_monotonic[:10]]
        summary["n_non_monotonic"] = int(len(c.non_monotonic))
    if c.censored:
        summary["warnings"] = [f"{len(c.censored)} column(s) hold upper/lower limits (censored_columns): their pairs "
                               "were computed with the limits as values and with the limit rows left out, and the "
                               "weaker result (larger p-value) is reported; treat trends involving them with care"]
        summary["censored_columns"] = {inp.names[j][:NAME_CHARS]: k for j, k in list(c.censored.items())[:10]}
    if inp.dropped:
        summary["dropped_columns"] = dict(list(inp.dropped.items())[:10])
        if len(inp.dropped) > 10:
            summary["n_dropped_columns"] = len(inp.dropped)
    summary["notes"] = c.notes
    return summary


def fmt(v: float, digits: int = 2) -> str:
    """A signed effect for text."""
    return "n/a" if not np.isfinite(v) else f"{v:+.{digits}f}"


def fmt_p(v: float) -> str:
    """A p- or q-value for text."""
    if not np.isfinite(v):
        return "n/a"
    return "<1e-300" if v < 1e-300 else f"{v:.2g}"


def build_markdown(session, inp: Inputs, c: Correlations, method: str, page: int, n_pages: int,
                   shown: np.ndarray) -> str:
    """The result for the report: counts, the page's pairs, flags and notes (table strings in code spans)."""
    th = session.thresholds
    sym = SYMBOL[method]
    partial = f", partial given {', '.join(code(x) for x in inp.controls)}" if inp.controls else ""
    against = f", against {code(inp.target)}" if inp.target else ""
    lines = [f"**Correlations** ({method}{partial}{against}; {len(inp.rows)} rows, {len(inp.names)} columns): "
             f"{int(c.tested.sum())} pairs tested, {len(c.ranked)} significant (q ≤ {th.q_max}, "
             f"|{sym}| ≥ {th.min_effect})."]
    if len(shown):
        lines += ["", f"| x | y | {sym} | q | n |" + (f" raw {sym} |" if inp.controls else ""),
                  "|---|---|---|---|---|" + ("---|" if inp.controls else "")]
        for k in shown:
            row = (f"| {code(inp.names[c.ia[k]], 40)} | {code(inp.names[c.ib[k]], 40)} | {fmt(c.primary.effect[k])} | "
                   f"{fmt_p(c.q[k])} | {int(c.primary.n[k])} |")
            lines.append(row + (f" {fmt(c.raw.effect[k])} |" if inp.controls else ""))
        if n_pages > 1:
            lines.append(f"\nPage {page} of {n_pages}.")
    if len(c.non_monotonic):
        lines += ["", "Strong non-monotonic dependence (Chatterjee's xi): " + "; ".join(
            f"{code(inp.names[c.ia[k]], 40)} – {code(inp.names[c.ib[k]], 40)} xi = {c.xi[k]:.2f} "
            f"({sym} = {fmt(c.raw.effect[k])})" for k in c.non_monotonic[:5]) + "."]
    if c.censored:
        lines += ["", "Columns with limits: " + ", ".join(f"{code(inp.names[j], 40)} ({k} limits)"
                                                          for j, k in list(c.censored.items())[:10])
                  + ". Their pairs were computed with the limits as values and without the limit rows; the weaker "
                    "result is shown."]
    if inp.dropped:
        more = f" and {len(inp.dropped) - 10} more" if len(inp.dropped) > 10 else ""
        lines += ["", "Left out: " + ", ".join(f"{code(n, 40)} ({why})" for n, why in list(inp.dropped.items())[:10])
                  + more + "."]
    if c.notes:
        lines += [""] + [f"- {n}" for n in c.notes]
    return "\n".join(lines)


def log_axis(v: np.ndarray) -> bool:
    """A log axis for positive values spanning more than three decades."""
    v = v[np.isfinite(v)]
    return len(v) > 0 and v.min() > 0 and v.max() / v.min() > 1e3


def pair_figure(session, x: np.ndarray, y: np.ndarray, xname: str, yname: str, title: str, stem: str) -> str:
    """Scatter (or hexbin above HEXBIN_ABOVE points) of y against x."""
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    lx, ly = log_axis(x), log_axis(y)
    with figure_context():
        fig, ax = plt.subplots(figsize=(5.6, 4.6))
        if len(x) > HEXBIN_ABOVE:
            hb = ax.hexbin(x, y, gridsize=60, bins="log", mincnt=1, cmap="viridis",
                           xscale="log" if lx else "linear", yscale="log" if ly else "linear")
            fig.colorbar(hb, ax=ax, label="rows per cell (log)")
        else:
            ax.scatter(x, y, s=float(np.clip(2000 / max(len(x), 1), 2, 20)), alpha=0.6, linewidths=0,
                       rasterized=True)
            if lx:
                ax.set_xscale("log")
            if ly:
                ax.set_yscale("log")
        ax.set_xlabel(plain_text(xname))
        ax.set_ylabel(plain_text(yname))
        ax.set_title(plain_text(title, 90))
        return save_figure(session, fig, stem)


def heatmap_figure(session, matrix: np.ndarray, names: list[str], label: str) -> str:
    """Correlation matrix as a heatmap (diverging colors, -1..1)."""
    k = len(names)
    with figure_context():
        size = min(3 + 0.32 * k, 14)
        fig, ax = plt.subplots(figsize=(size + 1.2, size))
        im = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
        short = [plain_text(n, 24) for n in names]
        ax.set_xticks(range(k), short, rotation=90, fontsize=7)
        ax.set_yticks(range(k), short, fontsize=7)
        if k <= 12:
            for i in range(k):
                for j in range(k):
                    if np.isfinite(matrix[i, j]):
                        ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=6,
                                color="white" if abs(matrix[i, j]) > 0.6 else "black")
        fig.colorbar(im, ax=ax, label=label, shrink=0.8)
        ax.set_title(label)
        return save_figure(session, fig, "correlation_matrix")


def make_figures(session, inp: Inputs, c: Correlations, method: str) -> tuple[list[str], dict[int, str]]:
    """The heatmap (up to HEATMAP_MAX_COLUMNS columns) and scatter/hexbin plots of the top pairs."""
    sym = SYMBOL[method]
    pair_figs: dict[int, str] = {}
    top = list(c.ranked[:N_SCATTER])
    for k in top + [k for k in c.non_monotonic[:2] if k not in top]:
        xn, yn = inp.names[c.ia[k]], inp.names[c.ib[k]]
        xv, yv = values(session, [xn, yn], inp.rows).T
        label = f"{sym} = {fmt(c.primary.effect[k])}" if k in top else f"xi = {c.xi[k]:.2f}"
        pair_figs[k] = pair_figure(session, xv, yv, xn, yn, f"{yn} vs {xn} ({label}, n={int(c.primary.n[k])})",
                                   f"pair_{xn}_{yn}")
    figures = []
    if inp.target is None and len(inp.names) <= HEATMAP_MAX_COLUMNS:
        mat = np.eye(len(inp.names))
        mat[c.ia, c.ib] = mat[c.ib, c.ia] = c.primary.effect
        figures.append(heatmap_figure(session, mat, inp.names,
                                      f"{method.capitalize()} {sym}" + (" (partial)" if inp.controls else "")))
    return figures + list(pair_figs.values()), pair_figs


def make_findings(inp: Inputs, c: Correlations, method: str, pair_figs: dict[int, str]) -> list[dict]:
    """Trend candidates for the strongest significant pairs and for non-monotonic dependence."""
    sym = SYMBOL[method]
    control_text = f" controlling for {', '.join(code(x) for x in inp.controls)}" if inp.controls else ""
    tag = f"{method}_partial" if inp.controls else method
    findings = []
    for k in c.ranked[:MAX_FINDINGS]:
        xn, yn = inp.names[c.ia[k]], inp.names[c.ib[k]]
        eff = float(c.primary.effect[k])
        relation = f"{code(yn)} rises with {code(xn)}" if eff > 0 else f"{code(yn)} falls as {code(xn)} rises"
        stats = {"method": tag, "effect": eff, "sign": 1 if eff > 0 else -1, "n": int(c.primary.n[k]),
                 "p_value": float(c.primary.p[k]), "q_value": float(c.q[k])}
        if inp.controls:
            stats.update({"controls": inp.controls, "raw_effect": float(c.raw.effect[k]),
                          "raw_p_value": float(c.raw.p[k]), "raw_q_value": float(c.q_raw[k])})
        if k in c.censored_pairs:
            stats.update({"censored_columns": [inp.names[j] for j in (c.ia[k], c.ib[k]) if j in c.censored],
                          "effect_limits_as_values": float(c.with_limits.effect[k]),
                          "effect_without_limit_rows": float(c.without_limits.effect[k])})
        without = f" Without the controls {sym} = {fmt(c.raw.effect[k])}." if inp.controls else ""
        findings.append({
            "kind": "trend", "title": f"{relation} ({method} {sym} = {fmt(eff)}){control_text}",
            "summary": (f"{method.capitalize()} {sym} = {fmt(eff)} between {code(xn)} and {code(yn)}{control_text} "
                        f"over {int(c.primary.n[k])} rows (p = {fmt_p(c.primary.p[k])}, q = {fmt_p(c.q[k])} among "
                        f"{int(c.tested.sum())} pairs).{without}"),
            "columns": [xn, yn], "stats": stats, "labels": None,
            "figures": [pair_figs[k]] if k in pair_figs else [], "novelty": "candidate",
            "score": round(min(1.0, abs(eff)), 3)})
    for k in c.non_monotonic[:3]:
        xn, yn = inp.names[c.ia[k]], inp.names[c.ib[k]]
        findings.append({
            "kind": "trend",
            "title": f"{code(yn)} depends non-monotonically on {code(xn)} (xi = {c.xi[k]:.2f}, "
                     f"{sym} = {fmt(c.raw.effect[k])})",
            "summary": (f"Chatterjee's xi = {c.xi[k]:.2f} (q = {fmt_p(c.xi_q[k])}) shows strong dependence between "
                        f"{code(xn)} and {code(yn)} that the {method} coefficient ({fmt(c.raw.effect[k])}) misses: "
                        "look for a U shape, a peak or a change of slope."),
            "columns": [xn, yn],
            "stats": {"method": "chatterjee_xi", "effect": float(c.xi[k]), "sign": 1, "monotonic": False,
                      "n": int(c.xi_n[k]), "p_value": float(c.xi_p[k]), "q_value": float(c.xi_q[k]),
                      f"{method}_effect": float(c.raw.effect[k])},
            "labels": None, "figures": [pair_figs[k]] if k in pair_figs else [], "novelty": "candidate",
            "score": round(float(min(1.0, c.xi[k])), 3)})
    return findings


@tool
def correlate(session, columns: list[str] | None = None,
              method: Literal["spearman", "pearson", "kendall"] = "spearman",
              target: str | None = None, control: list[str] | None = None,
              max_rows: Annotated[int, Field(ge=1000, le=5_000_000)] = 50_000,
              page: Annotated[int, Field(ge=1)] = 1,
              page_size: Annotated[int, Field(ge=1, le=50)] = 20) -> ToolResult:
    """Find pairs of numeric columns that move together, with p-values and false-discovery control.

    Use it early to see which trends exist, with `target` to rank every column against one property,
    and with `control` to see whether a relation survives removing a known driver (partial
    correlation). Pairs use all rows where both values are present; Benjamini-Hochberg q-values are
    taken over every pair tested in the call. It also flags pairs whose dependence is strong but not
    monotonic (e.g. y = x**2), which a correlation coefficient misses (Chatterjee's xi on a sample of
    2,000 rows). Columns with upper/lower limits are correlated with and without the limit rows; the
    weaker result is reported. Results are ranked by |effect| among significant pairs and paged.

    Args:
        columns: Numeric columns to correlate (default: all numeric columns).
        method: 'spearman' (rank, robust to outliers and monotonic non-linear trends; default),
            'pearson' (linear) or 'kendall' (rank; computed on at most max_rows rows and 2,000 pairs).
        target: Correlate every column with this one column only, instead of all pairs.
        control: Columns to control for: partial correlations given these columns are reported (and
            ranked) next to the raw ones. Works with spearman and pearson.
        max_rows: Rows sampled (seeded) for Kendall on big tables; Spearman and Pearson use all rows.
        page: Page of the ranked significant pairs to show (1 = strongest).
        page_size: Pairs per page.
    """
    inp = gather_inputs(session, columns, method, target, control)
    c = compute(session, inp, method, max_rows)
    n_pages = max(1, math.ceil(len(c.ranked) / page_size))
    if page > n_pages:
        raise session.fail(f"The 'page' parameter of correlate must be in [1, {n_pages}]: there are {len(c.ranked)} "
                           f"significant pairs at {page_size} per page. Got {page} instead.")
    shown = c.ranked[(page - 1) * page_size: page * page_size]
    figures, findings = [], []
    if page == 1:  # later pages only page the list; figures and findings would repeat
        figures, pair_figs = make_figures(session, inp, c, method)
        findings = make_findings(inp, c, method, pair_figs)
    details = {"significant_pairs": [[inp.names[c.ia[k]], inp.names[c.ib[k]], float(c.primary.effect[k]),
                                      float(c.q[k]), int(c.primary.n[k])] for k in c.ranked[:MAX_DETAIL_PAIRS]],
               "pair_fields": ["x", "y", "effect", "q", "n"]}
    return ToolResult(summary=build_summary(session, inp, c, method, page, n_pages, shown),
                      markdown=build_markdown(session, inp, c, method, page, n_pages, shown),
                      figures=figures, findings=findings, tests=test_list(inp, c, method), details=details)
