"""The ``pca`` tool: how many directions carry the variance of the numeric columns, and what each means."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from pydantic import Field  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from serendip.tools.engine.mdtext import code  # noqa: E402
from serendip.tools.plot import figure_context, plain_text, save_figure  # noqa: E402
from serendip.tools.engine.registry import tool  # noqa: E402
from serendip.tools.engine.result import ToolResult  # noqa: E402

VARIANCE_TARGET = 0.9
"""Default number of components: the fewest that explain this fraction of the variance."""
MAX_DEFAULT_COMPONENTS = 10
MAX_SHOWN_RATIOS = 20
MAX_NAME_FEATURES = 4
MAX_TOP_LOADINGS = 6


@dataclass
class PrincipalComponents:
    """A fitted principal component decomposition.

    Attributes:
        mean: Per-column mean removed before projecting.
        components: (n_components, n_columns) unit loading vectors, one per row; each oriented so that
            its largest absolute loading is positive.
        variance: Variance of the data along each component.
        ratio: Fraction of the total variance along each component.
    """

    mean: np.ndarray
    components: np.ndarray
    variance: np.ndarray
    ratio: np.ndarray

    def scores(self, X: np.ndarray, n: int | None = None) -> np.ndarray:
        """Coordinates of the rows of ``X`` on the first ``n`` components (all when None)."""
        V = self.components if n is None else self.components[:n]
        return (X - self.mean) @ V.T


def principal_components(X: np.ndarray) -> PrincipalComponents:
    """All principal components of ``X`` (rows = objects), with a deterministic sign per component."""
    n, p = X.shape
    # The covariance route costs one p x p eigenproblem, whatever the number of rows. One BLAS thread:
    # the products are small, and extra threads were measured 2-10x slower on a busy 2-core machine.
    solver = "covariance_eigh" if n >= 10 * p else "full"
    with threadpool_limits(limits=1):
        fit = PCA(svd_solver=solver).fit(X)
    comps = fit.components_.copy()
    flip = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    comps *= np.where(flip == 0, 1.0, flip)[:, None]
    return PrincipalComponents(mean=fit.mean_, components=comps, variance=fit.explained_variance_,
                               ratio=fit.explained_variance_ratio_)


def count(n: int, noun: str) -> str:
    """'1 row', '3 rows'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def incomplete_rows(session, columns: list[str], rows: np.ndarray) -> int:
    """Number of ``rows`` with a missing value in any of ``columns`` (those a median imputation filled)."""
    values = session.table.df.iloc[rows][list(columns)].to_numpy(dtype=float, na_value=np.nan)
    return int((~np.isfinite(values)).any(axis=1).sum())


def components_for_variance(ratio: np.ndarray, target: float = VARIANCE_TARGET,
                            cap: int = MAX_DEFAULT_COMPONENTS) -> int:
    """The fewest components whose cumulative variance ratio reaches ``target`` (at most ``cap``)."""
    k = int(np.searchsorted(np.cumsum(ratio), target - 1e-12) + 1)
    return int(max(1, min(k, cap, len(ratio))))


def naming_features(loadings: np.ndarray, max_features: int = MAX_NAME_FEATURES) -> list[int]:
    """Indices of the features that name a component: the largest loadings, at least half the largest."""
    order = np.argsort(-np.abs(loadings), kind="stable")
    top = np.abs(loadings[order[0]])
    return [int(j) for j in order[:max_features] if np.abs(loadings[j]) >= 0.5 * top]


def component_label(loadings: np.ndarray, columns: list[str], max_features: int = MAX_NAME_FEATURES) -> str:
    """'+mass +sfr -age': the naming features of a component with the signs of their loadings."""
    return " ".join(f"{'+' if loadings[j] >= 0 else '-'}{columns[j]}"
                    for j in naming_features(loadings, max_features))


def dominant_component(pc: PrincipalComponents, X: np.ndarray, columns: list[str], share: float,
                       ratio_to_next: float) -> dict | None:
    """Describe PC1 when it dominates (ratio > ``share`` and > ``ratio_to_next`` x PC2), else None."""
    r1 = float(pc.ratio[0])
    r2 = float(pc.ratio[1]) if len(pc.ratio) > 1 else 0.0
    if not (r1 > share and r1 > ratio_to_next * r2):
        return None
    sd = X.std(axis=0, ddof=1)
    corr = np.sqrt(pc.variance[0]) * pc.components[0] / np.where(sd > 0, sd, 1.0)
    j = int(np.argmax(np.abs(corr)))
    return {"component": "PC1", "variance_ratio": r1, "ratio_to_pc2": (r1 / r2) if r2 > 0 else None,
            "driver": columns[j], "driver_correlation": float(np.clip(corr[j], -1, 1)),
            "rule": f"PC1 > {share:.0%} of the variance and > {ratio_to_next:g}x PC2",
            "hint": (f"One direction dominates: the columns share one strong trend, often a known one (luminosity, "
                     f"distance, size). {columns[j]!r} follows PC1 most closely; residualize the other columns on "
                     f"it to look beneath the trend.")}


def pca_figure(session, pc: PrincipalComponents, columns: list[str], n_show: int) -> str:
    """Scree plot and a heat map of the loadings of the first components."""
    n_ratio = min(len(pc.ratio), MAX_SHOWN_RATIOS)
    n_comp = min(n_show, 5, len(pc.ratio))
    weight = (pc.components[:n_comp] ** 2 * pc.variance[:n_comp, None]).sum(axis=0)
    feats = np.argsort(-weight, kind="stable")[:15]
    with figure_context():
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1, 1.2]})
        xs = np.arange(1, n_ratio + 1)
        ax1.bar(xs, pc.ratio[:n_ratio], color="tab:blue", alpha=0.8, label="per component")
        ax1.plot(xs, np.cumsum(pc.ratio)[:n_ratio], "o-", color="tab:orange", label="cumulative")
        ax1.axhline(VARIANCE_TARGET, color="grey", ls=":", lw=1)
        ax1.set_xlabel("component")
        ax1.set_ylabel("fraction of variance")
        ax1.set_ylim(0, 1.02)
        ax1.set_xticks(xs)
        ax1.legend(fontsize=8)
        ax1.set_title("Scree")
        L = pc.components[:n_comp, feats].T
        im = ax2.imshow(L, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
        ax2.set_xticks(range(n_comp), [f"PC{i + 1}" for i in range(n_comp)])
        ax2.set_yticks(range(len(feats)), [plain_text(columns[j], 28) for j in feats], fontsize=7)
        if L.size <= 80:
            for (i, k), v in np.ndenumerate(L):
                ax2.text(k, i, f"{v:+.2f}", ha="center", va="center", fontsize=7)
        fig.colorbar(im, ax=ax2, label="loading")
        ax2.set_title("Loadings")
        fig.tight_layout()
        return save_figure(session, fig, "pca")


@tool
def pca(session, columns: list[str] | None = None, scaling: Literal["standard", "robust"] = "standard",
        missing: Literal["drop", "impute"] = "drop",
        n_components: Annotated[int, Field(ge=1, le=50)] | None = None,
        dominant_share: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.5,
        dominant_ratio: Annotated[float, Field(ge=1.0, le=100.0)] = 2.0,
        save_scores: Annotated[int, Field(ge=0, le=10)] = 3) -> ToolResult:
    """Principal component analysis: how many independent directions the numeric columns span, and what each one is.

    Use it early to see whether one trend dominates the table (e.g. everything scales with luminosity or
    distance; then residualize on the flagged driver and look again), to name the main axes of variation
    by their loadings, and as a compact space for cluster/umap (space='pca'). Scores of the first
    components are saved as per-row artifacts (NaN for rows left out).

    Args:
        columns: Numeric columns to use (default: all numeric columns).
        scaling: 'standard' (mean/std) or 'robust' (median/IQR, less sensitive to outliers) scaling of each
            column before the decomposition.
        missing: 'drop' rows with any missing value in the columns, or 'impute' missing cells with the
            column median; the number of rows affected is reported.
        n_components: Components to describe (default: the fewest explaining 90% of the variance, at most 10).
        dominant_share: PC1 is flagged as dominant when its variance share exceeds this ...
        dominant_ratio: ... and it is more than this many times PC2's share.
        save_scores: How many leading components' scores to save as per-row artifacts (0 for none).
    """
    cols = session.resolve_columns(columns, param="columns")
    m = session.matrix(cols, scaling=scaling, missing=missing, min_rows=3)
    if len(m.columns) < 2:
        raise session.fail(f"pca needs at least two usable numeric columns; got {m.columns} "
                           f"(left out: {m.dropped_columns or 'none'}). Add columns.")
    pc = principal_components(m.X)
    n_avail = len(pc.ratio)
    notes: list[str] = []
    if n_components is None:
        k = components_for_variance(pc.ratio)
        rule = f"fewest explaining {VARIANCE_TARGET:.0%} of the variance (at most {MAX_DEFAULT_COMPONENTS})"
    else:
        k = min(n_components, n_avail)
        rule = "requested"
        if k < n_components:
            notes.append(f"n_components lowered from {n_components} to {k}, the number of components available")
    cum = np.cumsum(pc.ratio)
    comps = []
    for i in range(k):
        order = np.argsort(-np.abs(pc.components[i]), kind="stable")[:MAX_TOP_LOADINGS]
        comps.append({"name": f"PC{i + 1}", "label": component_label(pc.components[i], m.columns),
                      "variance_ratio": float(pc.ratio[i]), "cumulative": float(cum[i]),
                      "top_loadings": {m.columns[j]: float(pc.components[i, j]) for j in order}})
    dominant = dominant_component(pc, m.X, m.columns, dominant_share, dominant_ratio)

    n_save = min(save_scores, k)
    artifacts = []
    if n_save:
        S = pc.scores(m.X, n_save)
        for i in range(n_save):
            artifacts.append(session.save_artifact(session.artifact_name(f"pc{i + 1}"), S[:, i], rows=m.rows,
                                                   fill=np.nan))
    figure = pca_figure(session, pc, m.columns, k)

    if m.dropped_columns:
        notes.append("left out: " + "; ".join(f"{c} ({why})" for c, why in list(m.dropped_columns.items())[:10]))
    n_missing = m.n_dropped_rows if missing == "drop" else incomplete_rows(session, m.columns, m.rows)
    if n_missing:
        verb = "had missing values imputed with the column median" if missing == "impute" else \
            "were dropped for missing values (their scores are NaN)"
        notes.append(f"{count(n_missing, 'row')} {verb}")
    summary = {
        "n_rows": len(m.rows), "n_columns": len(m.columns), "scaling": scaling, "missing": missing,
        "n_rows_missing": n_missing,
        "explained_variance_ratio": pc.ratio[:MAX_SHOWN_RATIOS].tolist(),
        "n_components": k, "n_components_rule": rule, "components": comps[:MAX_DEFAULT_COMPONENTS],
        "dominant": dominant, "score_artifacts": artifacts, "notes": notes,
    }

    capped = n_components is None and cum[k - 1] < VARIANCE_TARGET and k < n_avail
    missing_text = f"; {count(n_missing, 'row')} {'imputed' if missing == 'impute' else 'dropped'}" if n_missing else ""
    lines = [f"**PCA** of {len(m.columns)} columns on {len(m.rows)} rows ({scaling} scaling, missing={missing}"
             f"{missing_text}): {count(k, 'component')} explain {cum[k - 1]:.1%} of the variance"
             + (f" (capped at {MAX_DEFAULT_COMPONENTS})" if capped else "") + ".", "",
             "| component | variance | cumulative | named by |", "| --- | --- | --- | --- |"]
    for i, c in enumerate(comps):
        named = " ".join(f"{'+' if pc.components[i, j] >= 0 else '-'}{code(m.columns[j], 40)}"
                         for j in naming_features(pc.components[i]))
        lines.append(f"| {c['name']} | {c['variance_ratio']:.1%} | {c['cumulative']:.1%} | {named} |")
    if dominant:
        lines += ["", f"PC1 dominates ({dominant['variance_ratio']:.1%} of the variance; rule: {dominant['rule']}). "
                      f"It follows {code(dominant['driver'])} most closely "
                      f"(r = {dominant['driver_correlation']:+.2f}): "
                      "a single strong trend, often a known one such as luminosity or distance; `residualize` "
                      "on it to look beneath."]
    if notes:
        lines += ["", "Notes: " + "; ".join(notes) + "."]
    return ToolResult(summary=summary, markdown="\n".join(lines), figures=[figure], artifacts=artifacts)
