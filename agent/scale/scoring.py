"""The sample's groupings and outlier sets, extended to every row of the dataset.

Built on the driver from the sample run's findings (their rows.csv labels and the tool call behind each,
read from the transcript), then applied on the workers with numpy alone:

- **group**: each group of the sample becomes a Gaussian (mean and covariance of its rows in the
  robust-scaled feature space, weighted by its share); a row joins the most likely group (quadratic
  discriminant). When the grouping left rows out (label -1), a row farther than the chi-squared 99.9%
  radius from every group is left out too.
- **outlier** (isolation_forest, mahalanobis): the same method is refitted on the sample with the same
  seed, columns and cut (robust z of the forest score, or the chi-squared tail of the robust distance),
  and every row is scored with it; the agreement with the tool's own flags on the sample rows is
  reported.

Features are the finding's columns as they are, or ``log10_<column>`` of a dataset column (non-positive
values missing). A finding on other derived columns (residuals, map axes), or of another method, is not
extended, and the report says so.
"""

from __future__ import annotations

import math

import numpy as np

MISSING_LABEL = -1
NOISE_TAIL = 0.001
SUPPORTED_OUTLIERS = ("isolation_forest", "mahalanobis")
DEFAULT_THRESHOLD = {"isolation_forest": 4.0, "mahalanobis": 4.0}


class NotExtended(Exception):
    """A finding that cannot be applied to every row; the message says why."""


def feature_spec(column: str, dataset_columns: list[str]) -> tuple[str, str]:
    """(dataset column, transform) behind a finding column."""
    if column in dataset_columns:
        return column, "none"
    if column.startswith("log10_") and column[len("log10_"):] in dataset_columns:
        return column[len("log10_"):], "log10"
    raise NotExtended(f"column {column!r} is derived in the run (only dataset columns and their log10 are rebuilt "
                      "partition by partition)")


def raw_columns(model: dict) -> list[str]:
    """The dataset columns a model reads."""
    return [raw for raw, _ in model["features"]]


def features(model: dict, raw: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The model's scaled feature matrix and which rows have every feature."""
    cols = []
    for name, how in model["features"]:
        x = np.asarray(raw[name], dtype=float)
        if how == "log10":
            with np.errstate(divide="ignore", invalid="ignore"):
                x = np.where(x > 0, np.log10(np.where(x > 0, x, 1.0)), np.nan)
        cols.append(x)
    X = np.column_stack(cols) if cols else np.zeros((0, 0))
    ok = np.isfinite(X).all(axis=1)
    if model.get("impute"):
        X = np.where(np.isfinite(X), X, model["impute"])
        ok = np.ones(len(X), dtype=bool)
    return (X - model["center"]) / model["scale"], ok


def apply_model(model: dict, raw: dict[str, np.ndarray], n_rows: int):
    """Labels (or 0/1 flags), the score (None for groups) and the counts of one partition."""
    X, ok = features(model, raw)
    if model["kind"] == "group":
        labels = np.full(n_rows, MISSING_LABEL, dtype=np.int32)
        if ok.any():
            labels[ok] = assign_groups(model, X[ok])
        values, counts = np.unique(labels, return_counts=True)
        return labels, None, {int(v): int(c) for v, c in zip(values, counts)}
    score = np.full(n_rows, np.nan)
    if ok.any():
        score[ok] = outlier_scores(model, X[ok])
    flags = np.where(np.isfinite(score) & (score > model["cut"]), 1, 0).astype(np.int8)
    return flags, score, {"n_flagged": int(flags.sum()), "n_scored": int(ok.sum())}


def assign_groups(model: dict, X: np.ndarray) -> np.ndarray:
    """The most likely group of each row (quadratic discriminant); -1 beyond every group when noise exists."""
    loglik = np.empty((len(X), len(model["groups"])))
    d2_all = np.empty_like(loglik)
    for j, g in enumerate(model["groups"]):
        proj = (X - g["mean"]) @ g["evecs"]
        d2 = np.einsum("ij,ij->i", proj / g["evals"], proj)
        d2_all[:, j] = d2
        loglik[:, j] = g["log_weight"] - 0.5 * (d2 + g["log_det"])
    best = np.argmax(loglik, axis=1)
    labels = np.array([g["label"] for g in model["groups"]], dtype=np.int32)[best]
    if model.get("noise_radius2") is not None:
        labels[d2_all.min(axis=1) > model["noise_radius2"]] = MISSING_LABEL
    return labels


def outlier_scores(model: dict, X: np.ndarray) -> np.ndarray:
    """The refitted method's score of each row (higher = more unusual)."""
    if model["method"] == "isolation_forest":
        from serendip.agent.scale.forest import forest_scores

        return forest_scores(model["forest"], X)
    proj = (X - model["location"]) @ model["evecs"]
    return np.sqrt(np.einsum("ij,ij->i", proj / model["evals"], proj))


# ---------------------------------------------------------------------- driver side
def _scaling(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and IQR/1.349 per column (the standard deviation when the IQR is 0; 1 for a constant)."""
    center = np.median(X, axis=0)
    q75, q25 = np.percentile(X, [75, 25], axis=0)
    scale = (q75 - q25) / 1.349
    scale = np.where(scale > 0, scale, X.std(axis=0))
    return center, np.where(scale > 0, scale, 1.0)


def _gaussian(X: np.ndarray) -> dict:
    cov = np.atleast_2d(np.cov(X, rowvar=False)) if len(X) > 1 else np.eye(X.shape[1])
    evals, evecs = np.linalg.eigh(cov)
    evals = np.maximum(evals, max(float(evals.max()), 1e-12) * 1e-6)
    return {"mean": X.mean(axis=0), "evecs": evecs, "evals": evals, "log_det": float(np.log(evals).sum())}


def build_model(name: str, finding: dict, call: dict | None, sample, labels: np.ndarray, dataset_columns: list[str],
                seed: int) -> dict:
    """A full-row model for one group or outlier finding of the sample run.

    Args:
        name: The output column (the finding's rows.csv column).
        finding: The finding.
        call: Its tool call's transcript record (arguments), when found.
        sample: The sample as a pandas DataFrame (the table the run explored).
        labels: The finding's per-row labels / flags on the sample.
        dataset_columns: The dataset's numeric columns.
        seed: The run's seed.

    Raises:
        NotExtended: The finding cannot be applied to every row (the message says why).
    """
    from scipy import stats as sps

    stats = finding.get("stats") or {}
    args = dict((call or {}).get("arguments") or {})
    kind = finding.get("kind")
    cols = list(stats.get("columns_used") or args.get("columns") or finding.get("columns") or [])
    if kind == "outlier" and (call or {}).get("summary", {}).get("columns"):
        cols = [c for c in call["summary"]["columns"] if c != "..."]
    space = f"{args.get('space', '')} {(call or {}).get('summary', {}).get('space', '')}".lower()
    if kind == "group" and "umap" in space:
        raise NotExtended("groups found in a UMAP map (the map itself is not extended to new rows)")
    if not cols:
        raise NotExtended("the finding names no columns")
    spec = [feature_spec(c, dataset_columns) for c in cols]
    model = {"name": name, "kind": kind, "finding": finding.get("id"), "features": spec, "columns": cols}
    raw = {c: sample[c].to_numpy(dtype=float, na_value=np.nan) for c, _ in spec}
    model.update({"center": np.zeros(len(spec)), "scale": np.ones(len(spec)), "impute": None})
    Xraw, ok = features(model, raw)
    if args.get("missing") == "impute":
        model["impute"] = np.nanmedian(np.where(np.isfinite(Xraw), Xraw, np.nan), axis=0)
        Xraw, ok = features(model, raw)
    center, scale = _scaling(Xraw[ok])
    model["center"], model["scale"] = center, scale
    X = (Xraw[ok] - center) / scale
    lab = np.asarray(labels)[ok]
    if kind == "group":
        groups = []
        for g in sorted(set(lab.tolist()) - {MISSING_LABEL}):
            rows = X[lab == g]
            if len(rows) < 2:
                continue
            groups.append({"label": int(g), "log_weight": math.log(len(rows) / len(lab)), **_gaussian(rows)})
        if len(groups) < 2:
            raise NotExtended("fewer than two groups with rows in the sample")
        model["groups"] = groups
        model["noise_radius2"] = (float(sps.chi2.isf(NOISE_TAIL, X.shape[1])) if (lab == MISSING_LABEL).any() else None)
        return model
    method = str(args.get("method") or stats.get("method") or "")
    if method not in SUPPORTED_OUTLIERS:
        raise NotExtended(f"outliers by {method or 'an unknown method'} are not extended (only "
                          f"{', '.join(SUPPORTED_OUTLIERS)})")
    model["method"] = method
    threshold = float(args.get("threshold") or DEFAULT_THRESHOLD[method])
    if method == "isolation_forest":
        from sklearn.ensemble import IsolationForest

        from serendip.agent.scale.forest import export_forest, forest_scores

        forest = IsolationForest(n_estimators=200, random_state=seed, n_jobs=1).fit(X)
        model["forest"] = export_forest(forest, X.shape[1])
        scores = forest_scores(model["forest"], X)
        center_s = float(np.median(scores))
        spread = 1.4826 * float(np.median(np.abs(scores - center_s))) or float(np.std(scores)) or 1.0
        cut = center_s + threshold * spread
    else:
        import warnings

        from sklearn.covariance import MinCovDet

        rng = np.random.default_rng(seed)
        fit = X if len(X) <= 5000 else X[np.sort(rng.choice(len(X), 5000, replace=False))]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mcd = MinCovDet(random_state=seed).fit(fit)
        evals, evecs = np.linalg.eigh(mcd.covariance_)
        model.update({"location": mcd.location_, "evecs": evecs,
                      "evals": np.maximum(evals, max(float(evals.max()), 1e-300) * 1e-9)})
        scores = outlier_scores(model, X)
        alpha = 2 * sps.norm.sf(threshold)
        cut = float(np.sqrt(sps.chi2.isf(alpha, X.shape[1])))
    if args.get("contamination"):
        cut = float(np.quantile(scores, 1 - float(args["contamination"])))
    model["cut"] = cut
    model["threshold"] = threshold
    return model


def sample_agreement(model: dict, sample, labels: np.ndarray) -> dict:
    """How the full-row model's answer on the sample rows compares with the tool's own."""
    raw = {c: sample[c].to_numpy(dtype=float, na_value=np.nan) for c, _ in model["features"]}
    mine, _, _ = apply_model(model, raw, len(sample))
    theirs = np.asarray(labels)
    if model["kind"] == "group":
        return {"same_label": round(float(np.mean(mine == theirs)), 4)}
    a, b = mine == 1, theirs == 1
    both = int((a & b).sum())
    return {"flagged_by_tool": int(b.sum()), "flagged_by_model": int(a.sum()), "both": both,
            "jaccard": round(both / max(int((a | b).sum()), 1), 4)}
