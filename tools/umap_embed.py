"""The ``umap`` tool: a seeded 2-D UMAP map of the rows, and what drives each part of it."""

from __future__ import annotations

import warnings
from typing import Annotated, Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from pydantic import Field
from scipy.spatial.distance import cdist

from serendip.tools.engine.mdtext import code
from serendip.tools.engine.numba_cache import APPROXIMATE_FROM_ROWS, UMAP_LOCK, import_umap
from serendip.tools.cluster_methods import model_rows
from serendip.tools.umap_neighbours import neighbour_arguments, use_exact
from serendip.tools.pca import components_for_variance, count, incomplete_rows, principal_components
from serendip.tools.plot import figure_context, plain_text, save_figure
from serendip.tools.engine.registry import tool
from serendip.tools.engine.result import ToolResult

MIN_ROWS = 10
DRIVER_ROWS = 100_000
"""Rows (a seeded sample) on which the Spearman correlations with the map axes are computed."""
TRANSFORM_CHUNK = 200_000
LARGE_TABLE_EPOCHS = 200
"""umap-learn's layout epochs for a graph of more than 10,000 rows (also used for a sample of a larger table)."""
MAX_DRIVERS_SHOWN = 8
REGION_FEATURES = 4
MAX_PLOT_POINTS = 50_000
GRID_WORDS = {2: (["left", "right"], ["bottom", "top"]),
              3: (["left", "center", "right"], ["bottom", "middle", "top"])}


def embedding_drivers(values: np.ndarray, columns: list[str], embedding: np.ndarray,
                      rng: np.random.Generator, max_rows: int = DRIVER_ROWS) -> list[dict]:
    """Spearman correlation of each feature with each map axis, strongest first (NaN for a feature with
    values in fewer than 10% of the rows).

    Args:
        values: (n, p) raw feature values (NaN = missing).
        columns: Feature names.
        embedding: (n, 2) map coordinates.
        rng: For the row sample on big tables.
        max_rows: Rows used at most.
    """
    idx = np.arange(len(values)) if len(values) <= max_rows else np.sort(rng.choice(len(values), max_rows,
                                                                                    replace=False))
    # A feature present in only a handful of rows gets a meaningless |rho| near 1: demand enough pairs.
    min_pairs = max(10, int(0.1 * len(idx)))
    axes = [pd.Series(embedding[idx, a]) for a in range(2)]
    out = []
    for j, name in enumerate(columns):
        feature = pd.Series(values[idx, j])
        r1, r2 = (float(feature.corr(axis, method="spearman", min_periods=min_pairs)) for axis in axes)
        out.append({"feature": name, "rho_umap1": r1, "rho_umap2": r2,
                    "strength": float(np.nanmax(np.abs([r1, r2]))) if np.isfinite([r1, r2]).any() else 0.0})
    out.sort(key=lambda d: -d["strength"])
    return out


def region_of(embedding: np.ndarray, grid: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Cell index (column + grid * row) of each point on a grid x grid over the 1-99% range of each axis."""
    edges = []
    cells = np.zeros(len(embedding), dtype=np.int64)
    for a in range(2):
        lo, hi = np.percentile(embedding[:, a], [1, 99])
        if hi <= lo:
            lo, hi = embedding[:, a].min(), embedding[:, a].max() + 1e-12
        e = np.linspace(lo, hi, grid + 1)
        edges.append(e)
        b = np.clip(np.searchsorted(e, embedding[:, a], side="right") - 1, 0, grid - 1)
        cells += b * (1 if a == 0 else grid)
    return cells, edges


def cell_name(cell: int, grid: int) -> str:
    i, j = cell % grid, cell // grid
    if grid in GRID_WORDS:
        xs, ys = GRID_WORDS[grid]
        return f"{ys[j]} {xs[i]}"
    return f"umap1 bin {i + 1}/{grid}, umap2 bin {j + 1}/{grid}"


def region_medians(values: np.ndarray, columns: list[str], embedding: np.ndarray, features: list[str],
                   grid: int = 3, min_fraction: float = 0.01) -> list[dict]:
    """"The average object in each part of the map": per grid cell, its share of rows and the medians of
    ``features`` (cells with fewer than ``min_fraction`` of the rows or 5 rows are left out)."""
    cells, _ = region_of(embedding, grid)
    cols = [columns.index(f) for f in features]
    overall = {columns[j]: _nanmedian(values[:, j]) for j in cols}
    out = []
    for c in range(grid * grid):
        sel = cells == c
        n = int(sel.sum())
        if n < max(5, min_fraction * len(cells)):
            continue
        out.append({"region": cell_name(c, grid), "n": n, "fraction": n / len(cells),
                    "medians": {columns[j]: _nanmedian(values[sel, j]) for j in cols}})
    for r in out:
        r["vs_all"] = overall
    return out


def _nanmedian(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(np.median(x)) if len(x) else None


def fit_umap(Z: np.ndarray, fit_idx: np.ndarray, n_neighbors: int, min_dist: float, seed: int) -> np.ndarray:
    """UMAP fitted on ``Z[fit_idx]``; the other rows are placed with ``transform`` (in chunks)."""
    umap = import_umap()  # lazy (~15 s), with numba's on-disk cache switched on for umap's functions

    with UMAP_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        E = np.empty((len(Z), 2))
        if len(fit_idx) == len(Z) and len(Z) < APPROXIMATE_FROM_ROWS:  # umap's exact branch, vectorised
            model = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed,
                              metric="precomputed")
            E[:] = model.fit_transform(cdist(Z, Z))
            return E
        # umap-learn gives a graph of at most 10,000 rows 500 epochs, a larger one 200: a sample stands for the
        # whole (larger) table, so it gets the large-table count rather than 2.5x the layout work.
        model = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed,
                          transform_seed=seed, n_epochs=LARGE_TABLE_EPOCHS if len(fit_idx) < len(Z) else None,
                          **neighbour_arguments(Z[fit_idx], n_neighbors, use_exact(len(Z), len(fit_idx), Z.shape[1])))
        E[fit_idx] = model.fit_transform(Z[fit_idx])
        model.n_epochs = None  # transform reads it too (a third of it); None gives umap's own count for the chunk
        rest = np.setdiff1d(np.arange(len(Z)), fit_idx)
        for start in range(0, len(rest), TRANSFORM_CHUNK):
            chunk = rest[start:start + TRANSFORM_CHUNK]
            E[chunk] = model.transform(Z[chunk])
    return E


def umap_figure(session, E: np.ndarray, edges: list[np.ndarray], driver: str | None,
                driver_values: np.ndarray | None) -> str:
    """The map coloured by density and by the feature that drives it most."""
    rng = session.rng(31)
    idx = np.arange(len(E)) if len(E) <= MAX_PLOT_POINTS else np.sort(rng.choice(len(E), MAX_PLOT_POINTS,
                                                                                 replace=False))
    with figure_context():
        fig, axes = plt.subplots(1, 2, figsize=(12, 5))
        hb = axes[0].hexbin(E[:, 0], E[:, 1], gridsize=60, norm=LogNorm(), cmap="viridis", mincnt=1)
        fig.colorbar(hb, ax=axes[0], label="rows per cell")
        for e in edges[0][1:-1]:
            axes[0].axvline(e, color="white", lw=0.6, alpha=0.7)
        for e in edges[1][1:-1]:
            axes[0].axhline(e, color="white", lw=0.6, alpha=0.7)
        axes[0].set_title("Density (grid: regions in the summary)")
        ax = axes[1]
        size = float(np.clip(20000 / len(idx), 1, 15))
        if driver_values is not None:
            v = driver_values[idx]
            fin = np.isfinite(v)
            ax.scatter(E[idx[~fin], 0], E[idx[~fin], 1], s=size, color="lightgrey", linewidths=0, rasterized=True)
            if fin.any():
                lo, hi = np.percentile(v[fin], [2, 98])
                sc = ax.scatter(E[idx[fin], 0], E[idx[fin], 1], c=np.clip(v[fin], lo, hi), s=size, cmap="plasma",
                                linewidths=0, rasterized=True)
                fig.colorbar(sc, ax=ax, label=plain_text(driver, 40))
            ax.set_title(plain_text(f"Coloured by {driver}", 70))
        for a in axes:
            a.set_xlabel("umap1")
            a.set_ylabel("umap2")
        fig.tight_layout()
        return save_figure(session, fig, "umap")


@tool(name="umap")
def umap_embed(session, columns: list[str] | None = None, scaling: Literal["standard", "robust"] = "standard",
               missing: Literal["drop", "impute"] = "drop", space: Literal["features", "pca"] = "features",
               n_pca: Annotated[int, Field(ge=2, le=50)] | None = None,
               n_neighbors: Annotated[int, Field(ge=2, le=200)] = 15,
               min_dist: Annotated[float, Field(ge=0.0, le=0.99)] = 0.1,
               max_fit_rows: Annotated[int, Field(ge=500, le=100_000)] | None = None,
               grid: Annotated[int, Field(ge=2, le=5)] = 3) -> ToolResult:
    """A seeded 2-D UMAP map of the rows, with the features that drive it and the typical object in each part.

    Use it to look for non-linear structure (branches, islands, sequences) that PCA and clustering in
    feature space miss; then cluster the map with cluster(space='umap', embedding=<this result's
    'embedding'>). Big tables are fitted on a seeded sample and the other rows placed with UMAP's
    transform. Gaps and sizes in a UMAP map are distorted: confirm any group in feature space. Slow on first
    use on a machine: numba compiles UMAP's code (~1 minute), then keeps it in an on-disk cache.

    Args:
        columns: Numeric columns to embed (default: all numeric columns).
        scaling: 'standard' or 'robust' scaling of each column before the embedding.
        missing: 'drop' rows with a missing value (they get no position) or 'impute' the column median.
        space: 'features' (the scaled columns) or 'pca' (their leading principal components; faster and
            less noisy for many columns).
        n_pca: With space='pca': number of components (default: enough for 90% of the variance).
        n_neighbors: UMAP neighbourhood size: small values show local detail, large ones global shape.
        min_dist: How tightly UMAP packs points (0 = clumps, larger = more even).
        max_fit_rows: Rows in the seeded sample the map is fitted on; the other rows are transformed.
            Default: sized by the dimensions as for cluster (10,000-20,000).
        grid: The map is cut into grid x grid regions whose median objects are reported.
    """
    cols = session.resolve_columns(columns, param="columns")
    m = session.matrix(cols, scaling=scaling, missing=missing, min_rows=MIN_ROWS)
    notes: list[str] = []
    if m.dropped_columns:
        notes.append("left out: " + "; ".join(f"{c} ({why})" for c, why in list(m.dropped_columns.items())[:10]))
    n_missing = m.n_dropped_rows if missing == "drop" else incomplete_rows(session, m.columns, m.rows)
    if n_missing:
        notes.append(f"{count(n_missing, 'row')} with missing values "
                     + ("imputed with the column median" if missing == "impute" else "left without a position (NaN)"))
    Z = m.X
    space_text = f"{count(len(m.columns), 'feature')} ({scaling} scaling)"
    if space == "pca":
        pc = principal_components(m.X)
        k = min(n_pca or max(2, components_for_variance(pc.ratio)), len(pc.ratio))
        Z = pc.scores(m.X, k)
        space_text = f"{k} principal components ({pc.ratio[:k].sum():.0%} of the variance) of {space_text}"
    n = len(Z)
    rng = session.rng(37)
    max_fit_rows = max_fit_rows or model_rows(Z.shape[1])
    fit_idx = np.arange(n) if n <= max_fit_rows else np.sort(rng.choice(n, max_fit_rows, replace=False))
    if len(fit_idx) < n:
        notes.append(f"fitted on a seeded sample of {len(fit_idx)} of {n} rows; the other {n - len(fit_idx)} rows "
                     "were placed with UMAP's transform")
    k_nn = min(n_neighbors, len(fit_idx) - 1)
    if k_nn < n_neighbors:
        notes.append(f"n_neighbors lowered to {k_nn} for {len(fit_idx)} rows")
    E = fit_umap(Z, fit_idx, k_nn, min_dist, int(session.seed))

    stem = session.artifact_name("umap")
    artifacts = [session.save_artifact(f"{stem}{a + 1}", E[:, a], rows=m.rows, fill=np.nan) for a in range(2)]
    values = session.table.df.iloc[m.rows][list(m.columns)].to_numpy(dtype=float, na_value=np.nan)
    drivers = embedding_drivers(values, m.columns, E, session.rng(41))
    if n > DRIVER_ROWS:
        notes.append(f"correlations with the map axes computed on a seeded sample of {DRIVER_ROWS} rows")
    top = [d["feature"] for d in drivers[:REGION_FEATURES]]
    regions = region_medians(values, m.columns, E, top, grid)
    _, edges = region_of(E, grid)
    lead = drivers[0]["feature"] if drivers else None
    figure = umap_figure(session, E, edges, lead, values[:, m.columns.index(lead)] if lead else None)
    notes.append("UMAP distorts distances, gaps and cluster sizes; confirm structure in feature space")

    summary = {
        "embedding": stem, "artifacts": artifacts, "n_rows": n, "n_rows_missing": n_missing, "space": space_text,
        "n_neighbors": k_nn, "min_dist": min_dist, "seed": int(session.seed), "fit_rows": len(fit_idx),
        "transformed_rows": n - len(fit_idx), "top_driver": lead,
        "drivers": [{k: v for k, v in d.items() if k != "strength"} for d in drivers[:MAX_DRIVERS_SHOWN]],
        "regions": [{k: v for k, v in r.items() if k != "vs_all"} for r in regions],
        "overall_medians": regions[0]["vs_all"] if regions else {},
        "next": f"cluster(space='umap', embedding='{stem}') finds groups in this map", "notes": notes,
    }
    lines = [f"**UMAP map** of {n} rows on {space_text} (n_neighbors={k_nn}, min_dist={min_dist:g}, "
             f"seed={session.seed}); coordinates saved as {code(artifacts[0])} and {code(artifacts[1])}.", "",
             "| feature | Spearman with umap1 | Spearman with umap2 |", "| --- | --- | --- |"]
    for d in drivers[:MAX_DRIVERS_SHOWN]:
        lines.append(f"| {code(d['feature'], 40)} | {_fmt(d['rho_umap1'], '+.2f')} | {_fmt(d['rho_umap2'], '+.2f')} |")
    if regions:
        lines += ["", "The median object in each part of the map:", "",
                  "| region | rows | " + " | ".join(code(f, 30) for f in top) + " |",
                  "| --- | --- | " + " | ".join("---" for _ in top) + " |"]
        for r in regions:
            lines.append(f"| {r['region']} | {r['n']} ({r['fraction']:.0%}) | "
                         + " | ".join(_fmt(r["medians"][f], ".4g") for f in top) + " |")
        lines.append("| all rows | " + str(n) + " | " + " | ".join(_fmt(regions[0]["vs_all"][f], ".4g") for f in top)
                     + " |")
    lines += ["", "Notes: " + "; ".join(notes) + "."]
    return ToolResult(summary=summary, markdown="\n".join(lines), figures=[figure], artifacts=artifacts)


def _fmt(v: float | None, spec: str) -> str:
    return "n/a" if v is None or not np.isfinite(v) else format(v, spec)
