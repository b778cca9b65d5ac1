"""The ``plot`` tool: scatter, hexbin, histogram and corner plots of the active rows, written as PNG."""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Annotated, Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from pydantic import Field  # noqa: E402

from serendip.tools.engine.mdtext import code  # noqa: E402
from serendip.tools.engine.registry import tool  # noqa: E402
from serendip.tools.engine.result import ToolResult  # noqa: E402

MAX_LEVELS = 10
"""Most categories a color legend shows; the rest are drawn as 'other'."""

MAX_CORNER_COLUMNS = 6
LABEL_CHARS = 60


def plain_text(text: object, limit: int = LABEL_CHARS) -> str:
    """A table string made safe for a matplotlib label: shortened, one line, no mathtext (``$`` escaped)."""
    s = " ".join(str(text).split())
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return s.replace("$", r"\$")


@contextmanager
def figure_context():
    """Matplotlib settings for every tool figure (no TeX, quiet about missing glyphs); figures opened
    inside are closed if an error interrupts them."""
    opened_before = set(plt.get_fignums())
    with matplotlib.rc_context({"text.usetex": False, "figure.dpi": 100, "savefig.dpi": 100,
                                "axes.titlesize": 10, "axes.labelsize": 9}), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            yield
        except BaseException:
            for num in set(plt.get_fignums()) - opened_before:
                plt.close(num)
            raise


def save_figure(session, fig, stem: str) -> str:
    """Write ``fig`` as a PNG through the session, close it, and return its relative path."""
    abs_path, rel = session.figure_path(stem)
    try:
        try:
            fig.savefig(abs_path, format="png", bbox_inches="tight")
        except OverflowError:
            # Axis ranges near the float limit (finite values around ±1e308) overflow matplotlib's tick
            # arithmetic: the figure says so instead of the tool crashing.
            fig.clf()
            fig.text(0.5, 0.5, "Figure not drawn: the values span more than the float range can plot.\n"
                               "Transform the columns (asinh or log10) to see them.", ha="center", va="center")
            fig.savefig(abs_path, format="png")
    finally:
        plt.close(fig)
    return rel


def numeric_values(session, columns: list[str], rows: np.ndarray, log: dict[str, bool] | None = None,
                   min_points: int = 2) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Finite values of numeric ``columns`` for ``rows`` (rows missing any are dropped).

    Returns the (n, k) values, the kept table positions and notes about what was left out. Raises a
    :class:`ToolInputError` naming the fix when a column is unusable or too few points remain.
    """
    log = log or {}
    tool_name = session.current_tool or "plot"
    if len(rows) == 0:
        raise session.fail(f"{tool_name} got no rows: the table (or the current selection) is empty.")
    X = session.table.df.iloc[rows][list(columns)].to_numpy(dtype=float, na_value=np.nan, copy=True)
    notes: list[str] = []
    for j, c in enumerate(columns):
        fin = np.isfinite(X[:, j])
        if not fin.any():
            raise session.fail(f"{tool_name} cannot plot {c!r}: all its values are missing in the active rows.")
        if np.nanmin(X[:, j]) == np.nanmax(X[:, j]):
            raise session.fail(f"{tool_name} cannot plot {c!r}: it is constant ({np.nanmin(X[:, j]):g}) in the "
                               "active rows. Choose another column.")
        if log.get(c):
            pos = fin & (X[:, j] > 0)
            if not pos.any():
                raise session.fail(f"{tool_name} cannot use a log axis for {c!r}: it has no positive value. "
                                   "Set log_x/log_y to false.")
            if (fin & ~pos).any():
                notes.append(f"{int((fin & ~pos).sum())} non-positive values of {c!r} left out of the log axis")
            X[~pos, j] = np.nan
    ok = np.isfinite(X).all(axis=1)
    if (~ok).any():
        notes.append(f"{int((~ok).sum())} rows with missing values left out")
    if ok.sum() < min_points:
        raise session.fail(f"{tool_name} needs at least {min_points} rows with {', '.join(map(repr, columns))} "
                           f"present; got {int(ok.sum())}. Widen the selection or choose other columns.")
    return X[ok], np.asarray(rows)[ok], notes


def color_values(session, color_by: str, rows: np.ndarray) -> tuple[str, np.ndarray, str]:
    """Values to color ``rows`` by: ('numeric', floats, name) or ('categorical', strings, name).

    ``color_by`` is a column name or the name of a saved per-row artifact (cluster labels, outlier flags).
    """
    if color_by not in session.table.info and color_by in session.artifact_names:
        values = session.load_artifact(color_by)[rows]
        if values.dtype.kind in "iub":
            return "categorical", values.astype(str), color_by
        return "numeric", values.astype(float), color_by
    name = session.resolve_column(color_by, param="color_by")
    role = session.table.role(name)
    series = session.table.df[name].iloc[rows]
    if role == "numeric":
        return "numeric", series.to_numpy(dtype=float, na_value=np.nan), name
    if role == "datetime":
        raise session.fail(f"The 'color_by' parameter of plot cannot use the date column {name!r}; choose a numeric "
                           "or categorical column.")
    labels = series.astype(object).where(series.notna(), "missing").astype(str).to_numpy()
    return "categorical", labels, name


def level_order(labels: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The ≤ MAX_LEVELS most frequent levels (ties by name) and the labels with the rest mapped to 'other'."""
    uniq, counts = np.unique(labels, return_counts=True)
    order = sorted(range(len(uniq)), key=lambda i: (-counts[i], str(uniq[i])))
    keep = [str(uniq[i]) for i in order[:MAX_LEVELS]]
    if len(uniq) > MAX_LEVELS:
        mapped = np.where(np.isin(labels, keep), labels, "other")
        keep.append("other")
        return keep, mapped
    return keep, labels


def subsample(session, n: int, max_points: int, labels: np.ndarray | None = None) -> np.ndarray:
    """Seeded subsample of ``range(n)``; every point of a rare level (e.g. flagged outliers) is kept."""
    if n <= max_points:
        return np.arange(n)
    idx = np.sort(session.rng(101).choice(n, size=max_points, replace=False))
    if labels is not None:
        uniq, counts = np.unique(labels, return_counts=True)
        rare = uniq[counts <= max(1, max_points // 20)]
        if len(rare):
            idx = np.union1d(idx, np.flatnonzero(np.isin(labels, rare)))
    return idx


def draw_scatter(ax, x: np.ndarray, y: np.ndarray, color: tuple[str, np.ndarray, str] | None, size: float):
    """Scatter on ``ax``; returns the colorbar mappable (numeric color) and the legend handles (categories)."""
    if color is None:
        ax.scatter(x, y, s=size, alpha=0.6, linewidths=0, color="tab:blue", rasterized=True)
        return None, []
    kind, values, name = color
    if kind == "numeric":
        fin = np.isfinite(values)
        if (~fin).any():
            ax.scatter(x[~fin], y[~fin], s=size, color="lightgrey", linewidths=0, label="missing", rasterized=True)
        if not fin.any():
            return None, []
        return ax.scatter(x[fin], y[fin], c=values[fin], s=size, cmap="viridis", alpha=0.7, linewidths=0,
                          rasterized=True), []
    levels, mapped = level_order(values)
    cmap = plt.get_cmap("tab10")
    counts = {lv: int((mapped == lv).sum()) for lv in levels}
    handles = {}
    # Largest levels first so that small ones (outliers, rare classes) are drawn on top.
    for k, lv in sorted(enumerate(levels), key=lambda kv: -counts[kv[1]]):
        sel = mapped == lv
        col = "lightgrey" if lv == "other" else cmap(k % 10)
        handles[lv] = ax.scatter(x[sel], y[sel], s=size if counts[lv] > 50 else size * 3, color=col, alpha=0.7,
                                 linewidths=0, label=f"{plain_text(lv, 30)} ({counts[lv]})", rasterized=True)
    return None, [handles[lv] for lv in levels]  # legend in level order, 'other' last


def marker_size(n: int) -> float:
    """Marker area that keeps dense plots readable."""
    return float(np.clip(2000 / max(n, 1), 1, 20))


@tool
def plot(session, kind: Literal["scatter", "hexbin", "histogram", "corner"] = "scatter", x: str | None = None,
         y: str | None = None, columns: list[str] | None = None, color_by: str | None = None,
         log_x: bool = False, log_y: bool = False,
         max_points: Annotated[int, Field(ge=100, le=200_000)] = 20_000,
         bins: Annotated[int, Field(ge=5, le=200)] = 50) -> ToolResult:
    """Draw a figure of the active rows and save it as a PNG for the report.

    Use it to look at a relation, a distribution or a grouping before claiming it, and to give a finding
    its figure. 'scatter' plots y against x (a seeded subsample of max_points rows on big tables; rare
    color levels are always kept); 'hexbin' bins every row (best for big tables); 'histogram' shows the
    distribution of x (bars of the most frequent levels for a categorical x); 'corner' is a scatter
    matrix with histograms on the diagonal for 2-6 columns.

    Args:
        kind: 'scatter', 'hexbin', 'histogram' or 'corner'.
        x: Column on the horizontal axis (scatter, hexbin, histogram).
        y: Column on the vertical axis (scatter, hexbin).
        columns: 2-6 numeric columns for 'corner' (default: the first 6 numeric columns).
        color_by: A column or a saved artifact name (cluster labels, outlier flags) to color points by: a
            colormap for numbers, a legend of the 10 most frequent levels (the rest 'other') for categories.
            For hexbin a numeric color_by shows its median per cell; for histogram a categorical one
            splits the histogram by level.
        log_x: Logarithmic horizontal axis (non-positive values are left out).
        log_y: Logarithmic vertical axis (for histogram: log counts).
        max_points: Most points drawn by scatter and corner; more rows are subsampled (seeded).
        bins: Number of histogram bins (or hexbin grid size).
    """
    rows = session.active_rows
    if len(rows) == 0:
        raise session.fail("plot got no rows: the table (or the current selection) is empty.")
    with figure_context():
        if kind == "corner":
            return plot_corner(session, rows, columns, color_by, max_points, bins)
        if x is None:
            raise session.fail(f"The 'x' parameter of plot is required for kind={kind!r}. Numeric columns include: "
                               f"{', '.join(repr(c) for c in session.table.numeric_columns[:10])}.")
        if kind == "histogram":
            if y is not None:
                raise session.fail("The 'y' parameter of plot is not used by kind='histogram'; plot one column "
                                   "as x, or use kind='scatter' for two.")
            return plot_histogram(session, rows, x, color_by, log_x, log_y, bins)
        if y is None:
            raise session.fail(f"The 'y' parameter of plot is required for kind={kind!r}.")
        return plot_xy(session, rows, kind, x, y, color_by, log_x, log_y, max_points, bins)


def plot_xy(session, rows, kind, x, y, color_by, log_x, log_y, max_points, bins) -> ToolResult:
    """Scatter or hexbin of y against x."""
    x = session.resolve_column(x, param="x", roles=("numeric",))
    y = session.resolve_column(y, param="y", roles=("numeric",))
    if x == y:
        raise session.fail("The 'x' and 'y' parameters of plot name the same column; choose two columns, or use "
                           "kind='histogram' for one.")
    vals, kept, notes = numeric_values(session, [x, y], rows, log={x: log_x, y: log_y})
    color = color_values(session, color_by, kept) if color_by else None
    n = len(vals)
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    if kind == "hexbin":
        if color is not None and color[0] == "categorical":
            raise session.fail("The 'color_by' parameter of plot must be numeric for kind='hexbin'; use "
                               "kind='scatter' to color by categories.")
        hx = np.log10(vals[:, 0]) if log_x else vals[:, 0]
        hy = np.log10(vals[:, 1]) if log_y else vals[:, 1]
        if color is None:
            hb = ax.hexbin(hx, hy, gridsize=bins, bins="log", mincnt=1, cmap="viridis")
            cb_label = "rows per cell (log)"
        else:
            fin = np.isfinite(color[1])
            if not fin.any():
                raise session.fail(f"The 'color_by' column {color[2]!r} has no value in the plotted rows.")
            hb = ax.hexbin(hx[fin], hy[fin], C=color[1][fin], gridsize=bins, reduce_C_function=np.median,
                           mincnt=1, cmap="viridis")
            cb_label = f"median {plain_text(color[2], 40)}"
        fig.colorbar(hb, ax=ax, label=cb_label)
        ax.set_xlabel(("log10 " if log_x else "") + plain_text(x))
        ax.set_ylabel(("log10 " if log_y else "") + plain_text(y))
        shown = n
    else:
        labels = color[1] if color is not None and color[0] == "categorical" else None
        idx = subsample(session, n, max_points, labels)
        shown = len(idx)
        sub_color = (color[0], color[1][idx], color[2]) if color is not None else None
        mappable, handles = draw_scatter(ax, vals[idx, 0], vals[idx, 1], sub_color, marker_size(shown))
        if mappable is not None:
            fig.colorbar(mappable, ax=ax, label=plain_text(color[2], 40))
        if color is not None and color[0] == "categorical":
            ax.legend(handles=handles, fontsize=7, markerscale=4, loc="best",
                      title=plain_text(color[2], 30), title_fontsize=7)
        if log_x:
            ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel(plain_text(x))
        ax.set_ylabel(plain_text(y))
    sub = f" ({shown} of {n} drawn)" if shown < n else ""
    ax.set_title(plain_text(f"{y} vs {x}", 80) + sub)
    rel = save_figure(session, fig, f"{kind}_{x}_{y}")
    summary = {"kind": kind, "x": x, "y": y, "n_points": n, "n_drawn": shown, "subsampled": shown < n,
               "log_x": log_x, "log_y": log_y, "figure": rel, "selection": session.selection_label}
    if color is not None:
        summary["color_by"] = color_summary(color)
    if notes:
        summary["notes"] = notes
    md = (f"**{kind.capitalize()}** of {code(y)} against {code(x)} ({n} rows"
          f"{f', {shown} drawn' if shown < n else ''}"
          f"{', colored by ' + code(color[2]) if color is not None else ''}).")
    return ToolResult(summary=summary, markdown=md, figures=[rel])


def color_summary(color: tuple[str, np.ndarray, str]) -> dict:
    """What the color encodes, for the summary."""
    kind, values, name = color
    if kind == "numeric":
        return {"column": name, "type": "numeric"}
    levels, _ = level_order(values)
    return {"column": name, "type": "categorical", "levels_shown": levels}


def plot_histogram(session, rows, x, color_by, log_x, log_y, bins) -> ToolResult:
    """Histogram of a numeric column, or bars of the most frequent levels of a categorical one."""
    x = session.resolve_column(x, param="x")
    role = session.table.role(x)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    if role != "numeric":
        series = session.table.df[x].iloc[rows]
        counts = series.dropna().astype(str).value_counts()
        if counts.empty:
            raise session.fail(f"plot cannot draw {x!r}: all its values are missing in the active rows.")
        top = counts.iloc[:20]
        ax.barh([plain_text(v, 30) for v in top.index[::-1]], top.to_numpy()[::-1], color="tab:blue")
        ax.set_xlabel("rows")
        if log_y:
            ax.set_xscale("log")
        ax.set_title(plain_text(x, 80) + (f" (20 most frequent of {len(counts)} levels)" if len(counts) > 20 else ""))
        rel = save_figure(session, fig, f"histogram_{x}")
        n = int(counts.sum())
        summary = {"kind": "histogram", "x": x, "n_points": n, "n_levels": len(counts), "levels_shown": len(top),
                   "figure": rel, "selection": session.selection_label}
        return ToolResult(summary=summary, markdown=f"**Bar chart** of the levels of {code(x)} ({n} rows).",
                          figures=[rel])
    vals, kept, notes = numeric_values(session, [x], rows, log={x: log_x}, min_points=2)
    v = vals[:, 0]
    edges = np.geomspace(v.min(), v.max(), bins + 1) if log_x else np.histogram_bin_edges(v, bins=bins)
    if edges[0] == edges[-1]:
        raise session.fail(f"plot cannot draw a histogram of {x!r}: it is constant in the active rows.")
    color = color_values(session, color_by, kept) if color_by else None
    if color is not None and color[0] == "categorical":
        levels, mapped = level_order(color[1])
        cmap = plt.get_cmap("tab10")
        for k, lv in enumerate(levels):
            sel = mapped == lv
            ax.hist(v[sel], bins=edges, histtype="step", linewidth=1.4,
                    color="grey" if lv == "other" else cmap(k % 10), label=f"{plain_text(lv, 30)} ({int(sel.sum())})")
        ax.legend(fontsize=7, title=plain_text(color[2], 30), title_fontsize=7)
    elif color is not None:
        raise session.fail("The 'color_by' parameter of plot must be categorical for kind='histogram'; use "
                           "kind='scatter' or 'hexbin' to color by a numeric column.")
    else:
        ax.hist(v, bins=edges, color="tab:blue", alpha=0.8)
    if log_x:
        ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(plain_text(x))
    ax.set_ylabel("rows")
    ax.set_title(plain_text(x, 80) + f" (n={len(v)})")
    rel = save_figure(session, fig, f"histogram_{x}")
    summary = {"kind": "histogram", "x": x, "n_points": len(v), "bins": bins, "log_x": log_x, "log_y": log_y,
               "figure": rel, "selection": session.selection_label}
    if color is not None:
        summary["color_by"] = color_summary(color)
    if notes:
        summary["notes"] = notes
    return ToolResult(summary=summary, markdown=f"**Histogram** of {code(x)} ({len(v)} rows).", figures=[rel])


def plot_corner(session, rows, columns, color_by, max_points, bins) -> ToolResult:
    """Pairwise scatter matrix of 2-6 numeric columns with histograms on the diagonal."""
    if columns and len(columns) > MAX_CORNER_COLUMNS:
        raise session.fail(f"The 'columns' parameter of plot must name at most {MAX_CORNER_COLUMNS} columns for "
                           f"kind='corner'. Got {len(columns)} instead.")
    cols = session.resolve_columns(columns, param="columns", roles=("numeric",))
    defaulted = not columns
    if defaulted:
        frame = session.table.df.iloc[rows]
        cols = [c for c in cols if frame[c].nunique(dropna=True) > 1]
    cols = cols[:MAX_CORNER_COLUMNS]
    if len(cols) < 2:
        raise session.fail("The 'columns' parameter of plot must name at least 2 numeric columns for kind='corner'.")
    vals, kept, notes = numeric_values(session, cols, rows)
    color = color_values(session, color_by, kept) if color_by else None
    n = len(vals)
    labels = color[1] if color is not None and color[0] == "categorical" else None
    idx = subsample(session, n, max_points, labels)
    sub_color = (color[0], color[1][idx], color[2]) if color is not None else None
    k = len(cols)
    fig, axes = plt.subplots(k, k, figsize=(2.2 * k + 1, 2.2 * k), squeeze=False)
    size = marker_size(len(idx)) / 2
    mappable, handles = None, []
    for i in range(k):
        for j in range(k):
            ax = axes[i, j]
            if j > i:
                ax.set_visible(False)
                continue
            if i == j:
                ax.hist(vals[:, i], bins=min(bins, 40), color="tab:blue", alpha=0.8)
            else:
                m, h = draw_scatter(ax, vals[idx, j], vals[idx, i], sub_color, size)
                mappable, handles = mappable or m, handles or h
            ax.tick_params(labelsize=6)
            if i == k - 1:
                ax.set_xlabel(plain_text(cols[j], 30), fontsize=7)
            else:
                ax.set_xticklabels([])
            if j == 0 and i > 0:
                ax.set_ylabel(plain_text(cols[i], 30), fontsize=7)
            elif j > 0:
                ax.set_yticklabels([])
    if mappable is not None:
        fig.colorbar(mappable, ax=axes.ravel().tolist(), label=plain_text(color[2], 40), shrink=0.6)
    elif sub_color is not None and sub_color[0] == "categorical":
        fig.legend(handles=handles, loc="upper right", fontsize=7,
                   title=plain_text(color[2], 30), title_fontsize=7, markerscale=4)
    fig.suptitle(f"{n} rows" + (f" ({len(idx)} drawn)" if len(idx) < n else ""), fontsize=9)
    rel = save_figure(session, fig, "corner")
    summary = {"kind": "corner", "columns": cols, "n_points": n, "n_drawn": int(len(idx)),
               "subsampled": len(idx) < n, "figure": rel, "selection": session.selection_label}
    if defaulted:
        notes.append(f"columns not given: used the first {len(cols)} non-constant numeric columns")
    if color is not None:
        summary["color_by"] = color_summary(color)
    if notes:
        summary["notes"] = notes
    md = f"**Corner plot** of {', '.join(code(c) for c in cols)} ({n} rows)."
    return ToolResult(summary=summary, markdown=md, figures=[rel])
