"""The ``cluster`` tool: find groups of rows, check that they are real (better than featureless data, or
overlapping populations that a test against one population supports; reproducible under resampling), say
what separates them, and whether they merely repeat a categorical.

Summary keys added for population tests: ``verdict`` may be ``overlapping``; ``separation_test`` (the dip
test per neighbouring pair, ``min_ashman_d``, the combined ``p_value``, ``decided_by``), ``bootstrap_lr``
(statistic, p-value, replicates; None when not run) and ``overlap`` (mixtures only). An overlapping group
finding carries ``stats.overlapping = True``, ``stats.overlap``, ``stats.p_value`` (its run-wide
``q_value`` is added by the ledger) and ``stats.separation_test``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from pydantic import Field  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from serendip.tools import cluster_methods as cm  # noqa: E402
from serendip.tools import group_tests as gt  # noqa: E402
from serendip.tools.group_profile import (  # noqa: E402
    categorical_coincidence, coincidence_candidates, group_effects, group_profiles, most_separating_features,
    relabel_by_size)
from serendip.tools.engine.mdtext import code  # noqa: E402
from serendip.tools.pca import components_for_variance, count, principal_components  # noqa: E402
from serendip.tools.plot import figure_context, plain_text, save_figure  # noqa: E402
from serendip.tools.engine.registry import tool  # noqa: E402
from serendip.tools.engine.result import ToolResult  # noqa: E402
from serendip.tools.stats import resampling_stability  # noqa: E402

MIN_ROWS = 10
GMM_FULL_MAX_DIMS = 20
"""Above this many dimensions a mixture uses diagonal covariances (full ones cost d^3 and many parameters)."""
ASSIGN_CHUNK = 200_000
MAX_PLOT_POINTS = 20_000
MAX_GROUPS_SHOWN = 10
MAX_COINCIDENCE_SHOWN = 3
STEP_DOWN_ROWS = 5000
"""Rows on which mixtures with fewer components than BIC's choice are screened."""
REDUNDANT_R2 = 0.9999
"""A column this well predicted by a linear combination of the columns before it (a colour u − r beside
u − g and g − r, a total beside its parts) adds no information and makes a mixture's covariance singular."""


@dataclass
class Space:
    """The coordinates a clustering runs in, and the raw features used to describe the groups.

    Attributes:
        Z: (n, d) coordinates of the rows to cluster.
        rows: Table positions of those rows.
        axis_names: Names of the d axes (features, PCs or UMAP axes).
        description: Words for the report ('4 features, standard scaling').
        profile_columns: Features that describe the groups.
        profile_values: (n, p) raw values of ``profile_columns`` (NaN = missing).
        notes: What was done to the data on the way (rows dropped, dimensions reduced).
    """

    Z: np.ndarray
    rows: np.ndarray
    axis_names: list[str]
    description: str
    profile_columns: list[str]
    profile_values: np.ndarray
    notes: list[str] = field(default_factory=list)


def raw_values(session, columns: list[str], rows: np.ndarray) -> np.ndarray:
    return session.table.df.iloc[rows][list(columns)].to_numpy(dtype=float, na_value=np.nan)


def embedding_stem(name: str) -> str:
    """'R5_umap' from 'R5_umap', 'R5_umap1' or 'R5'."""
    name = name.strip()
    if name.endswith(("umap1", "umap2")):
        return name[:-1]
    if not name.endswith("umap"):
        return f"{name}_umap"
    return name


def build_space(session, columns, space: str, embedding: str | None, scaling: str, missing: str,
                n_pca: int | None) -> Space:
    """The clustering coordinates for ``space`` ('features', 'pca' or 'umap')."""
    if space == "umap":
        stem = embedding_stem(embedding)
        u1, u2 = session.load_artifact(f"{stem}1"), session.load_artifact(f"{stem}2")
        rows = session.active_rows
        E = np.column_stack([u1[rows], u2[rows]]).astype(float)
        ok = np.isfinite(E).all(axis=1)
        rows, E = np.asarray(rows)[ok], E[ok]
        if len(rows) < MIN_ROWS:
            raise session.fail(f"cluster needs at least {MIN_ROWS} active rows with a position in embedding "
                               f"{stem!r}; got {len(rows)}. Run umap on the current selection first.")
        cols = session.resolve_columns(columns, param="columns")
        return Space(E, rows, [f"{stem}1", f"{stem}2"], f"the UMAP map {stem}", cols, raw_values(session, cols, rows),
                     [f"clustered the 2-D UMAP embedding {stem} (not recomputed); UMAP can split or join groups, "
                      "so check the groups in feature space too"])
    cols = session.resolve_columns(columns, param="columns")
    m = session.matrix(cols, scaling=scaling, missing=missing, min_rows=MIN_ROWS)
    notes = []
    if m.dropped_columns:
        notes.append("left out: " + "; ".join(f"{c} ({why})" for c, why in list(m.dropped_columns.items())[:10]))
    redundant = redundant_columns(m.X)
    if redundant and len(redundant) < m.X.shape[1]:
        keep = [j for j in range(m.X.shape[1]) if j not in set(redundant)]
        notes.append("left out as linear combinations of the other columns (R² ≥ "
                     f"{REDUNDANT_R2}; they add nothing and make covariances singular): "
                     + ", ".join(m.columns[j] for j in redundant[:10]))
        m.X = np.ascontiguousarray(m.X[:, keep])
        m.columns = [m.columns[j] for j in keep]
    values = raw_values(session, m.columns, m.rows)
    if missing == "drop" and m.n_dropped_rows:
        notes.append(f"{count(m.n_dropped_rows, 'row')} with missing values left out (label -1)")
    elif missing == "impute" and (n_imputed := int((~np.isfinite(values)).any(axis=1).sum())):
        notes.append(f"{count(n_imputed, 'row')} with missing values imputed with the column median")
    if space == "features":
        return Space(m.X, m.rows, list(m.columns), f"{count(len(m.columns), 'feature')}, {scaling} scaling",
                     list(m.columns), values, notes)
    pc = principal_components(m.X)
    n = min(n_pca or max(2, components_for_variance(pc.ratio)), len(pc.ratio))
    notes.append(f"clustered the first {n} principal components ({pc.ratio[:n].sum():.0%} of the variance)")
    return Space(pc.scores(m.X, n), m.rows, [f"PC{i + 1}" for i in range(n)],
                 f"{count(n, 'principal component')} of {count(len(m.columns), 'feature')} ({scaling} scaling)",
                 list(m.columns), values, notes)


def redundant_columns(X: np.ndarray, max_rows: int = 20_000) -> list[int]:
    """Indices of columns that are (near-)exact linear combinations of the columns before them.

    Each column in turn is regressed on the ones kept so far (least squares with an intercept, on at most
    ``max_rows`` evenly spaced rows); it is redundant when R² ≥ :data:`REDUNDANT_R2`.
    """
    if X.shape[1] < 2:
        return []
    S = X[:: max(1, len(X) // max_rows)]
    S = S - S.mean(axis=0)
    kept: list[int] = [0]
    out = []
    for j in range(1, S.shape[1]):
        y = S[:, j]
        total = float(y @ y)
        if total <= 0:
            continue
        A = S[:, kept]
        coef, *_ = np.linalg.lstsq(A, y, rcond=None)
        resid = y - A @ coef
        if 1.0 - float(resid @ resid) / total >= REDUNDANT_R2:
            out.append(j)
        else:
            kept.append(j)
    return out


def assign_all(grouping: cm.Grouping, Z: np.ndarray, fit_idx: np.ndarray) -> np.ndarray:
    """Labels for every row: the fitted ones for the sample, the method's assignment for the rest."""
    labels = np.full(len(Z), -1, dtype=np.int64)
    labels[fit_idx] = grouping.labels
    rest = np.setdiff1d(np.arange(len(Z)), fit_idx)
    for start in range(0, len(rest), ASSIGN_CHUNK):
        chunk = rest[start:start + ASSIGN_CHUNK]
        labels[chunk] = grouping.assign(Z[chunk])
    return labels


def group_figure(session, space: Space, labels: np.ndarray, effects: np.ndarray, method: str,
                 space_kind: str) -> str:
    """The groups in the two most separating features (feature space) or the first two axes."""
    rng = session.rng(11)
    idx = np.arange(len(labels)) if len(labels) <= MAX_PLOT_POINTS else np.sort(
        rng.choice(len(labels), MAX_PLOT_POINTS, replace=False))
    if space_kind == "features" and space.profile_values.shape[1] >= 2:
        j1, j2 = most_separating_features(effects, 2)
        xy = space.profile_values[:, [j1, j2]]
        names = [space.profile_columns[j1], space.profile_columns[j2]]
    elif space.Z.shape[1] >= 2:
        xy, names = space.Z[:, :2], space.axis_names[:2]
    else:
        one_d = space.profile_values[:, 0] if space_kind == "features" else space.Z[:, 0]
        xy, names = None, (space.profile_columns if space_kind == "features" else space.axis_names)[:1]
        fin = one_d[idx][np.isfinite(one_d[idx])]
        bins = np.histogram_bin_edges(fin, bins=min(60, max(10, len(fin) // 5)))
    n_groups = int(labels.max()) + 1
    cmap = plt.get_cmap("tab10" if n_groups <= 10 else "tab20")
    with figure_context():
        fig, ax = plt.subplots(figsize=(6.5, 5))
        for g in [-1] + list(range(n_groups)):
            sel = idx[labels[idx] == g]
            if not len(sel):
                continue
            color = "lightgrey" if g < 0 else cmap(g % cmap.N)
            name = "no group" if g < 0 else f"group {g}"
            label = f"{name} ({int((labels == g).sum())})"
            if xy is None:
                ax.hist(one_d[sel], bins=bins, alpha=0.6, color=color, label=label)
            else:
                ax.scatter(xy[sel, 0], xy[sel, 1], s=float(np.clip(6000 / len(idx), 2, 25)), color=color, alpha=0.7,
                           linewidths=0, label=label, rasterized=True)
        ax.set_xlabel(plain_text(names[0]))
        ax.set_ylabel(plain_text(names[1]) if xy is not None else "rows")
        ax.set_title(plain_text(f"{method}: {n_groups} groups", 80))
        ax.legend(fontsize=7, markerscale=2, loc="best")
        fig.tight_layout()
        return save_figure(session, fig, "cluster")


def gmm_covariance(d: int, n: int) -> str:
    return "full" if d <= GMM_FULL_MAX_DIMS and n >= 10 * d else "diag"


def fit_grouping(session, method: str, auto_reason: str | None, Zf: np.ndarray, ks, k_top: int,
                 sil_idx: np.ndarray, min_cluster_size: int | None,
                 notes: list[str]) -> tuple[cm.Grouping, str, str | None]:
    """Fit ``method`` on the sample ``Zf`` (resolving 'auto'); returns the grouping, the method used and why."""
    seed = int(session.seed)
    if method == "hdbscan":
        mcs = min_cluster_size or max(10, int(round(0.01 * len(Zf))))
        if mcs >= len(Zf):
            raise session.fail(f"The 'min_cluster_size' parameter of cluster must be smaller than the number of "
                               f"rows ({len(Zf)}). Got {mcs} instead.")
        return cm.run_hdbscan(Zf, mcs), method, auto_reason
    if method == "kmeans":
        return cm.select_kmeans(Zf, ks(2), seed, sil_idx), method, auto_reason
    if method == "agglomerative":
        return cm.select_agglomerative(Zf, ks(2), sil_idx), method, auto_reason
    cov = gmm_covariance(Zf.shape[1], len(Zf))
    if cov == "diag":
        notes.append(f"the mixture used diagonal covariances in {Zf.shape[1]} dimensions; space='pca' allows "
                     "full ones")
    grouping = cm.select_gmm(Zf, ks(1), seed, cov)
    if method == "gmm":
        return grouping, method, auto_reason
    if grouping.single_group:
        return grouping, "gmm", "BIC of Gaussian mixtures prefers a single component"
    if grouping.selection.get("at_upper_bound"):
        bic = grouping.selection["scores"]
        grouping = cm.select_kmeans(Zf, ks(2), seed, sil_idx)
        grouping.selection["gmm_bic"] = bic
        return grouping, "kmeans", (f"BIC kept improving up to k={k_top} (non-Gaussian shapes rather than "
                                    "groups), so k-means with the silhouette criterion was used")
    return grouping, "gmm", "BIC of Gaussian mixtures has a minimum inside the k range"


@tool
def cluster(session, columns: list[str] | None = None,
            method: Literal["auto", "kmeans", "gmm", "hdbscan", "agglomerative"] = "auto",
            space: Literal["features", "pca", "umap"] = "features", embedding: str | None = None,
            k: Annotated[int, Field(ge=2, le=50)] | None = None,
            k_min: Annotated[int, Field(ge=1, le=50)] = 1,
            k_max: Annotated[int, Field(ge=2, le=50)] = 10,
            scaling: Literal["standard", "robust"] = "standard",
            missing: Literal["drop", "impute"] = "drop",
            n_pca: Annotated[int, Field(ge=2, le=50)] | None = None,
            min_cluster_size: Annotated[int, Field(ge=2, le=1_000_000)] | None = None,
            max_fit_rows: Annotated[int, Field(ge=1000, le=200_000)] | None = None) -> ToolResult:
    """Find groups of rows, test that they are real and stable, and say what separates them.

    Use it to look for populations (classes of objects, branches, sub-samples). The number of groups is
    chosen automatically (silhouette for kmeans/agglomerative, BIC for gmm, density for hdbscan) unless
    k is given. A grouping is reported as a finding when it beats featureless reference data of the
    same extent and is stable under resampling (mean adjusted Rand of refits on 80% subsamples), or, for
    overlapping populations (which never beat uniform noise), when it is stable and a test against one
    population rejects it: Hartigan's dip test on the discriminant direction between neighbouring groups,
    or a parametric bootstrap of the mixture likelihood ratio (k vs k-1, after a power transform) with
    well-separated component means; such findings are labelled overlapping, with the overlap (expected
    misclassification rate) and the p-value, which enters the run-wide FDR. Each
    group is described by its most distinctive features (Cohen's d vs the rest) and medians. Groups that
    coincide with a categorical column (field, instrument, survey) are flagged as a possible systematic.
    Large tables are fitted on a seeded sample and the other rows assigned to the fitted groups.

    Args:
        columns: Numeric columns to cluster on (default: all numeric); with space='umap' they only
            describe the groups.
        method: 'kmeans', 'gmm' (Gaussian mixture, elliptical groups), 'hdbscan' (density-based, any
            shape, leaves noise unlabelled; run in at most 5 dimensions), 'agglomerative' (Ward) or
            'auto' (hdbscan on a UMAP map; otherwise gmm by BIC, or kmeans when BIC keeps improving up
            to k_max or its components overlap: signs of non-Gaussian shapes rather than groups).
        space: 'features' (scaled columns), 'pca' (the leading principal components) or 'umap' (an
            existing UMAP embedding named by 'embedding').
        embedding: With space='umap': the embedding from the umap tool, e.g. 'R5_umap' (its artifacts
            R5_umap1 and R5_umap2); it is reused, not recomputed.
        k: A fixed number of groups (skips the automatic choice; not for hdbscan).
        k_min: Smallest number of groups tried (1 lets gmm conclude that there are no groups).
        k_max: Largest number of groups tried.
        scaling: 'standard' or 'robust' scaling of the columns (features and pca spaces).
        missing: 'drop' rows with a missing value (they get label -1) or 'impute' the column median.
        n_pca: With space='pca': number of components (default: enough for 90% of the variance).
        min_cluster_size: For hdbscan: the smallest group (default: 1% of the fitted rows, at least 10).
        max_fit_rows: Rows in the seeded sample the groups are fitted on; the rest are assigned. Default:
            sized by the dimensions (10 rows per dimension in a group of 2% of the rows; 10,000-20,000).
    """
    if k_min > k_max:
        raise session.fail(f"The 'k_min' parameter of cluster must not exceed k_max ({k_max}). Got {k_min} instead.")
    if space == "umap" and not embedding:
        raise session.fail("The 'embedding' parameter of cluster is required with space='umap': name an embedding "
                           "made by the umap tool, e.g. 'R5_umap'.")
    if embedding and space != "umap":
        raise session.fail("The 'embedding' parameter of cluster only applies with space='umap'. "
                           "Set space='umap' or leave embedding out.")
    if method == "hdbscan" and k is not None:
        raise session.fail("The 'k' parameter of cluster does not apply to method='hdbscan', which finds its own "
                           "number of groups; set min_cluster_size instead, or use another method.")
    sp = build_space(session, columns, space, embedding, scaling, missing, n_pca)
    Z = sp.Z
    n = len(Z)
    chosen = method
    auto_reason = None
    if method == "auto" and space == "umap":
        chosen, auto_reason = "hdbscan", "a UMAP map is clustered by density (HDBSCAN)"
    if chosen == "hdbscan" and Z.shape[1] > cm.HDBSCAN_MAX_DIMS:
        pc = principal_components(Z)
        Z = pc.scores(Z, cm.HDBSCAN_MAX_DIMS)
        sp.notes.append(f"HDBSCAN is slow in many dimensions: ran on the first {cm.HDBSCAN_MAX_DIMS} principal "
                        f"components of the {sp.description} ({pc.ratio[:cm.HDBSCAN_MAX_DIMS].sum():.0%} of the "
                        "variance)")

    rng = session.rng(17)
    cap = max_fit_rows or cm.model_rows(Z.shape[1])
    if chosen == "agglomerative":
        cap = min(cap, cm.AGGLOMERATIVE_MAX_ROWS)
    fit_idx = np.arange(n) if n <= cap else np.sort(rng.choice(n, cap, replace=False))
    Zf = Z[fit_idx]
    if len(fit_idx) < n:
        sp.notes.append(f"fitted on a seeded sample of {len(fit_idx)} of {n} rows; the other rows were assigned "
                        "to the fitted groups")
    sil_idx = np.arange(len(Zf)) if len(Zf) <= cm.SILHOUETTE_ROWS else np.sort(
        rng.choice(len(Zf), cm.SILHOUETTE_ROWS, replace=False))
    k_top = min(k_max, max(2, len(Zf) // 5), len(Zf) - 1)
    if k is not None and k >= len(Zf):
        raise session.fail(f"The 'k' parameter of cluster must be less than the number of rows ({len(Zf)}). "
                           f"Got {k} instead.")
    if k_top < k_max and k is None:
        sp.notes.append(f"k_max lowered to {k_top} for {len(Zf)} rows")

    def ks(lowest: int) -> list[int]:
        return [k] if k is not None else list(range(min(max(k_min, lowest), k_top), k_top + 1))

    with threadpool_limits(limits=1):
        # Many fits on samples: OpenMP/BLAS threads cost more than they give here (measured 5-10x slower
        # with two threads on a busy 2-core machine).
        grouping, chosen, auto_reason = fit_grouping(session, chosen, auto_reason, Zf, ks, k_top, sil_idx,
                                                     min_cluster_size, sp.notes)
        null_ks = [k] if k is not None else list(range(2, k_top + 1))
        nulls: dict[str, float] = {}  # every grouping here is checked on the same rows with the same seed

        def assess(g: cm.Grouping) -> tuple[float | None, dict | None]:
            if g.n_groups < 2:
                return None, None
            stab = resampling_stability(g.refit, Zf, g.labels, session.rng(23))
            return stab, cm.structure_check(Zf[sil_idx], cm.without_noise(Zf, g.labels)[sil_idx], null_ks,
                                            session.rng(29), nulls)

        stability, check = assess(grouping)
        if method == "auto" and chosen == "gmm" and check is not None and not check["supported"]:
            alternative = cm.select_kmeans(Zf, ks(2), seed=int(session.seed), sil_idx=sil_idx)
            alt_stability, alt_check = assess(alternative)
            if alt_check is not None and alt_check["supported"]:
                alternative.selection["gmm_bic"] = grouping.selection["scores"]
                auto_reason = (f"the {grouping.n_groups} components preferred by BIC overlap too much to be "
                               "distinct groups, so k-means with the silhouette criterion was used")
                grouping, chosen, stability, check = alternative, "kmeans", alt_stability, alt_check
        verdict, reason, separation, bootstrap, overlap = decide_grouping(session, grouping, chosen, Zf, stability,
                                                                          check)
        tried: list[list] = []
        if verdict in ("weak", "no_structure", "unstable") and chosen == "gmm" and k is None \
                and grouping.n_groups > 2 and grouping.model is not None:
            fewer = fewer_components(session, grouping, Zf, assess, tried, lowest=max(2, k_min))
            if fewer is not None:
                bic_k, why = grouping.n_groups, ("unstable under resampling" if verdict == "unstable" else
                                                 "not supported against one population")
                grouping, stability, check, (verdict, reason, separation, bootstrap, overlap) = fewer
                reason = (f"BIC prefers {bic_k} mixture components, but they are {why} (extra components model "
                          f"the tails or curvature of a population); the largest number of components that is "
                          f"supported is {grouping.n_groups}: " + reason)
        n_groups = grouping.n_groups
        observed = check["silhouette"] if check else None
        null = check["null_silhouette"] if check else None

    labels_name = None
    profiles: list[dict] = []
    coincidence: list[dict] = []
    figure = None
    labels = np.full(n, -1, dtype=np.int64)
    if n_groups >= 2:
        labels = relabel_by_size(assign_all(grouping, Z, fit_idx))
        labels_name = session.save_artifact(session.artifact_name("cluster"), labels, rows=sp.rows, fill=-1)
        effects = group_effects(sp.profile_values, labels, n_groups)
        profiles = group_profiles(sp.profile_values, labels, sp.profile_columns, effects)
        candidates = coincidence_candidates(session.table, exclude=set(sp.profile_columns))
        coincidence = categorical_coincidence(session.table, sp.rows, labels, candidates)
        figure = group_figure(session, sp, labels, effects, chosen, space)
    sizes = [int((labels == g).sum()) for g in range(n_groups)] if n_groups >= 2 else [n]
    n_noise = int((labels < 0).sum()) if n_groups >= 2 else 0

    selection = dict(grouping.selection)
    selection["fit_rows"] = len(Zf)
    summary = {
        "verdict": verdict, "reason": reason, "method": chosen, "method_requested": method,
        "auto_choice": auto_reason, "space": sp.description, "n_rows": n, "n_groups": n_groups, "sizes": sizes,
        "unassigned": n_noise, "stability": stability, "min_stability": session.thresholds.min_stability,
        "silhouette": observed, "null_silhouette": null,
        "structure_checks": check["checks"] if check else None, "k_selection": selection,
        "separation_test": separation, "bootstrap_lr": bootstrap, "overlap": overlap,
        "groups": [{**p, "distinctive": p["distinctive"][:3]} for p in profiles[:MAX_GROUPS_SHOWN]],
        "coincidence": [{"column": c["column"], "adjusted_rand": c["adjusted_rand"], "cramers_v": c["cramers_v"],
                         "strong": c["strong"]} for c in coincidence[:MAX_COINCIDENCE_SHOWN]],
        "labels": labels_name, "notes": sp.notes,
    }
    tests = [[f"cluster:coincidence:{c['column']}", c["p_value"]] for c in coincidence] + tried
    if separation is not None:
        tests.append(["cluster:separation", separation["p_value"]])
    findings = []
    figures = [figure] if figure else []
    strong = [c for c in coincidence if c["strong"]]
    if verdict in ("groups", "overlapping"):
        finding = group_finding(chosen, sp, profiles, sizes, stability, observed, null, selection,
                                labels_name, figures, strong, n)
        if verdict == "overlapping":
            overlapping_finding(finding, separation, bootstrap, overlap)
        elif separation is not None:
            finding["stats"]["separation_test"] = {"test": "dip", "p_value": separation["p_value"]}
        findings.append(finding)
    findings += [coincidence_finding(c, n_groups, chosen, labels_name, figures) for c in strong]
    markdown = cluster_markdown(summary, profiles, coincidence, sp)
    return ToolResult(summary=summary, markdown=markdown, figures=figures,
                      artifacts=[labels_name] if labels_name else [], findings=findings, tests=tests)


def decide_grouping(session, grouping: cm.Grouping, chosen: str, Zf: np.ndarray, stability: float | None,
                    check: dict | None) -> tuple[str, str, dict | None, dict | None, float | None]:
    """The verdict on a grouping (see :func:`judge`), upgraded to 'overlapping' when it is stable and the tests
    against one population separate every group from its nearest neighbour; with those tests' results."""
    verdict, reason = judge(grouping, chosen, stability, check, session.thresholds.min_stability)
    separation, bootstrap, overlap = population_tests(session, grouping, Zf, verdict, stability)
    if separation is not None and verdict in ("weak", "no_structure") and separation["separated"] \
            and stability is not None and stability >= session.thresholds.min_stability:
        observed = check["silhouette"] if check else None
        null = check["null_silhouette"] if check else None
        verdict = "overlapping"
        reason = (f"{grouping.n_groups} overlapping populations: they do not separate better than featureless "
                  f"data (silhouette {_fmt(observed)} vs {_fmt(null)}), but each is separated from its nearest "
                  f"neighbour ({separation['decided_by']}, p = {separation['p_value']:.2g}), with overlap "
                  + (f"{overlap:.0%}" if overlap is not None else "unmeasured")
                  + f" and stability {stability:.2f}")
    elif separation is not None and not separation.get("predictive", {}).get("consistent", True):
        pred = separation["predictive"]
        reason += (f"; samples drawn from the {grouping.n_groups} components have deeper valleys between "
                   f"neighbours than the data (valley ratio {pred['valley_ratio']:.2f} observed, "
                   f"{pred['simulated_median']:.2f} predicted; p = {pred['p_value']:.2g}): the components "
                   "describe the shape of one flat-topped population, not separate populations")
    return verdict, reason, separation, bootstrap, overlap


def fewer_components(session, grouping: cm.Grouping, Zf: np.ndarray, assess, tried: list[list], lowest: int = 2):
    """The mixture with the most components, fewer than BIC's choice, that passes the checks.

    BIC keeps adding Gaussian components to model a population's skewness, tails or curvature, so a
    BIC choice that fails the test against one population may hide fewer real populations. Mixtures with
    k−1, k−2, … 2 components are tried in turn (a cheap dip / Ashman's D screen first, then stability and
    the full tests); the first that is supported ('groups' or 'overlapping') is kept. The separation p-value
    of every mixture tested is appended to ``tried`` for the run-wide FDR.

    Returns:
        ``(grouping, stability, check, (verdict, reason, separation, bootstrap, overlap))`` or None.
    """
    cov = grouping.selection.get("covariance_type", "full")
    min_stability = session.thresholds.min_stability
    rng = session.rng(33)
    # The screen fits each k on a sample (the dip test reads at most a few thousand rows anyway); only a
    # k that passes it is refitted on all fitted rows and tested in full.
    sub = Zf if len(Zf) <= STEP_DOWN_ROWS else Zf[np.sort(rng.choice(len(Zf), STEP_DOWN_ROWS, replace=False))]
    for kk in range(grouping.n_groups - 1, lowest - 1, -1):
        trial = cm.select_gmm(sub, [kk], int(session.seed), cov)
        if trial.n_groups < 2:
            continue
        screen = gt.separation_test(sub, trial.labels, session.rng(31), model=trial.model)
        if screen is None:
            continue
        bootable = (screen["min_ashman_d"] >= gt.MIN_ASHMAN_D
                    and kk * Zf.shape[1] <= gt.BOOTSTRAP_MAX_PARAMETERS)
        if not screen["separated"] and not bootable:
            tried.append([f"cluster:separation:k={kk}", screen["p_value"]])
            continue
        candidate = trial if sub is Zf else cm.select_gmm(Zf, [kk], int(session.seed), cov)
        if candidate.n_groups < 2:
            continue
        stability, check = assess(candidate)
        decision = decide_grouping(session, candidate, "gmm", Zf, stability, check)
        if decision[0] in ("groups", "overlapping") and stability is not None and stability >= min_stability:
            candidate.selection.update({k: v for k, v in grouping.selection.items() if k in ("criterion", "scores")})
            candidate.selection.update({"chosen": kk, "bic_choice": grouping.n_groups,
                                        "note": "the largest k below BIC's choice that passes the test against "
                                                "one population"})
            return candidate, stability, check, decision
        if decision[2] is not None and decision[2].get("p_value") is not None:
            tried.append([f"cluster:separation:k={kk}", decision[2]["p_value"]])
    return None


def population_tests(session, grouping: cm.Grouping, Zf: np.ndarray, verdict: str,
                     stability: float | None) -> tuple[dict | None, dict | None, float | None]:
    """The tests of a grouping against one population (see :mod:`serendip.tools.group_tests`).

    The dip test runs on every grouping of two or more groups; the (costlier) bootstrap likelihood ratio
    only for a stable mixture that the featureless-reference check did not support, where it decides
    between 'overlapping populations' and 'weak'.
    """
    if grouping.n_groups < 2:
        return None, None, None
    rng = session.rng(31)
    separation = gt.separation_test(Zf, grouping.labels, rng, model=grouping.model)
    overlap = gt.mixture_overlap(grouping.model, Zf) if grouping.model is not None else None
    bootstrap = None
    if (grouping.model is not None and verdict in ("weak", "no_structure") and separation is not None
            and not separation["separated"] and separation["min_ashman_d"] >= gt.MIN_ASHMAN_D
            and stability is not None and stability >= session.thresholds.min_stability
            and grouping.n_groups * Zf.shape[1] <= gt.BOOTSTRAP_MAX_PARAMETERS):
        # The cheap model check first: a mixture that cannot reproduce its own valleys is not populations
        # whatever the (costly) likelihood ratio says. Its own generator keeps the bootstrap's draws unchanged.
        predictive = gt.predictive_valley_check(Zf, grouping.model, separation, session.rng(37))
        separation = {**separation, "predictive": predictive}
        if predictive["consistent"]:
            bootstrap = gt.bootstrap_lr_test(gt.power_transformed(Zf), grouping.n_groups, rng,
                                             cov=grouping.selection.get("covariance_type", "full"))
            if bootstrap is not None:
                bootstrap["predictive"] = predictive
    if separation is not None:
        separated, p, test = gt.decide(separation, bootstrap)
        separation = {**separation, "separated": separated, "p_value": p, "decided_by": test,
                      "p_dip": separation["p_value"]}
    return separation, bootstrap, overlap


def overlapping_finding(finding: dict, separation: dict, bootstrap: dict | None, overlap: float | None) -> None:
    """Turn a group finding into one of overlapping populations: tests, p-value and overlap in its stats."""
    k = finding["stats"]["n_groups"]
    finding["title"] = finding["title"].replace(f"{k} groups", f"{k} overlapping populations", 1)
    boot = (f"; a parametric bootstrap of the likelihood ratio ({bootstrap['k']} vs {bootstrap['k'] - 1} "
            f"components) gives p = {bootstrap['p_value']:.2g}" if bootstrap else "")
    predictive = (bootstrap or {}).get("predictive") or {}
    if predictive.get("valley_ratio") is not None:
        boot += (f", and samples drawn from the mixture reproduce the valleys between its groups (valley ratio "
                 f"{predictive['valley_ratio']:.2f} observed, {predictive['simulated_median']:.2f} predicted)")
    finding["summary"] = finding["summary"].replace(
        "better separated than featureless data", "overlapping rather than distinct; not better separated than "
        "featureless data", 1) + (f" Tested against one population: {separation['test']}, p = "
                                  f"{separation['p_value']:.2g}{boot}; the components overlap "
                                  + (f"{overlap:.0%}" if overlap is not None else "by an unmeasured amount")
                                  + " (expected misclassification rate).")
    finding["stats"].update({
        "overlapping": True, "overlap": overlap, "p_value": separation["p_value"],
        "test": "dip", "separation_test": {"test": separation["test"], "p_value": separation["p_value"],
                                           "pairs": separation["pairs"][:10]},
        "bootstrap_lr": bootstrap})


def judge(grouping: cm.Grouping, method: str, stability: float | None, check: dict | None,
          min_stability: float) -> tuple[str, str]:
    """The verdict on a grouping ('groups', 'unstable', 'weak' or 'no_structure') and the reason in words."""
    if grouping.single_group or grouping.n_groups < 2:
        return "no_structure", ("BIC prefers a single Gaussian component: the data do not support groups"
                                if method == "gmm" else f"{method} found fewer than two groups")
    observed, null = check["silhouette"], check["null_silhouette"]
    if not check["supported"]:
        shown = (f"silhouette {observed if observed is not None else float('nan'):.2f} vs {null:.2f} in uniform "
                 "reference data")
        if method == "gmm":
            return "weak", (f"BIC prefers {grouping.n_groups} mixture components, but they separate no better "
                            f"than featureless data of the same extent ({shown}): overlapping populations or one "
                            "non-Gaussian population; fewer columns or space='pca' may sharpen them")
        return "no_structure", (f"the groups separate no better than featureless data of the same extent "
                                f"({shown}): a partition, not distinct groups")
    if stability < min_stability:
        return "unstable", (f"stability {stability:.2f} is below {min_stability:.2f}: refits on subsamples "
                            "disagree")
    return "groups", f"silhouette {observed:.2f} vs {null:.2f} in featureless data; stability {stability:.2f}"


def coincidence_finding(c: dict, n_groups: int, method: str, labels_name: str, figures: list[str]) -> dict:
    """The candidate `data_quality` finding of groups that repeat a categorical column."""
    return {
        "kind": "data_quality", "title": f"Groups coincide with {c['column']}",
        "summary": (f"The {n_groups} {method} groups agree with the column {c['column']!r} (adjusted Rand "
                    f"{c['adjusted_rand']:.2f}, Cramér's V {c['cramers_v']:.2f}, n={c['n']}). If it records how "
                    "the data were taken (field, instrument, survey), the groups may be a systematic; if it is a "
                    "known class, the grouping recovers it."),
        "columns": [c["column"]], "labels": labels_name, "figures": figures, "novelty": "candidate",
        "stats": {"adjusted_rand": c["adjusted_rand"], "cramers_v": c["cramers_v"], "n": c["n"],
                  "p_value": c["p_value"], "n_levels": c["n_levels"], "n_groups": n_groups, "method": method},
        "score": float(min(1.0, max(c["adjusted_rand"], c["cramers_v"]))),
    }


def group_finding(method: str, sp: Space, profiles: list[dict], sizes: list[int], stability: float,
                  observed: float, null: float, selection: dict, labels_name: str, figures: list[str],
                  strong: list[dict], n: int) -> dict:
    """The candidate `group` finding of a grouping that passed the structure and stability checks."""
    top_features: list[str] = []
    for p in profiles:
        for f in p["distinctive"][:2]:
            if f["feature"] not in top_features:
                top_features.append(f["feature"])
    described = "; ".join(
        f"group {p['group']} ({p['size']} rows): " + ", ".join(
            f"{f['direction']} {f['feature']} (d={f['d']:+.1f})" for f in p["distinctive"][:3])
        for p in profiles[:6])
    caveat = (f" The groups coincide with {', '.join(repr(c['column']) for c in strong)}."
              if strong else "")
    effects = [abs(p["distinctive"][0]["d"]) for p in profiles if p["distinctive"]]
    separation = float(np.median(effects)) if effects else 0.0
    return {
        "kind": "group",
        "title": f"{len(sizes)} groups ({method}) separated mainly by {', '.join(top_features[:3])}",
        "summary": (f"{len(sizes)} groups found by {method} in {sp.description} (n={n}), stable under resampling "
                    f"(mean ARI {stability:.2f}) and better separated than featureless data (silhouette "
                    f"{observed:.2f} vs {null:.2f}). {described}.{caveat}"),
        "columns": top_features[:10] or sp.profile_columns[:10],
        "stats": {"n_groups": len(sizes), "sizes": sizes, "stability": stability, "method": method,
                  "silhouette": observed, "null_silhouette": null, "n": n,
                  "k_selection": {k: v for k, v in selection.items() if k in ("criterion", "chosen", "scores",
                                                                              "min_cluster_size", "fit_rows")}},
        "labels": labels_name, "figures": figures, "novelty": "candidate",
        "score": float(np.clip(0.6 * stability + 0.4 * min(1.0, separation / 2.0), 0, 1)),
    }


def cluster_markdown(summary: dict, profiles: list[dict], coincidence: list[dict], sp: Space) -> str:
    """The report's account of a cluster call."""
    s = summary
    sel = s["k_selection"]
    auto = f", chosen automatically: {s['auto_choice']}" if s["auto_choice"] else ""
    head = (f"**Clustering** ({s['method']}{auto}"
            + f") of {s['n_rows']} rows in {sp.description}. ")
    if sel.get("criterion") in ("silhouette", "BIC"):
        head += f"Number of groups by {sel['criterion']} over k = {', '.join(sel['scores'])}: {sel['chosen']}. "
    verdicts = {"groups": "**Groups supported**", "overlapping": "**Overlapping populations**", "unstable": "**Unstable grouping** (not reported as a finding)",
                "weak": "**Weak, overlapping groups** (not reported as a finding)",
                "no_structure": "**No group structure**"}
    lines = [head + f"{verdicts[s['verdict']]}: {s['reason']}."]
    if s["stability"] is not None and s["verdict"] in ("no_structure", "weak"):
        lines[0] += f" Stability under resampling: {s['stability']:.2f}."
    if profiles:
        lines += ["", "| group | rows | distinguished by |", "| --- | --- | --- |"]
        for p in profiles[:MAX_GROUPS_SHOWN]:
            feats = "; ".join(
                f"{f['direction']} {code(f['feature'], 40)} (d = {f['d']:+.2f}; median {_fmt(f['median'])} vs "
                f"{_fmt(f['median_rest'])})" for f in p["distinctive"][:3])
            lines.append(f"| {p['group']} | {p['size']} ({p['fraction']:.0%}) | {feats} |")
        if s["unassigned"]:
            lines.append(f"\n{s['unassigned']} rows are in no group (label -1).")
    strong = [c for c in coincidence if c["strong"]]
    if strong:
        lines += ["", "Groups coincide with " + ", ".join(
            f"{code(c['column'])} (ARI {c['adjusted_rand']:.2f}, Cramér's V {c['cramers_v']:.2f})" for c in strong)
            + ": a possible systematic, or a known class the grouping recovers."]
    if sp.notes:
        lines += ["", "Notes: " + "; ".join(sp.notes) + "."]
    return "\n".join(lines)


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4g}"
