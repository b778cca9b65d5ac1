"""The ``describe`` tool: a ranked, paged profile of the table's columns and its data-quality problems."""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import Field

from serendip.tools.dependence import pairwise_corr, rank_columns
from serendip.tools.engine.jsonsafe import dumps, to_jsonable
from serendip.tools.engine.mdtext import code
from serendip.tools.engine.registry import tool
from serendip.tools.engine.result import ToolResult
from serendip.tools.engine.table import ROLES

QUANTILES = (1, 5, 25, 50, 75, 95, 99)
MOSTLY_MISSING = 0.5
NEAR_DUPLICATE = 0.99
"""|Spearman rho| above which two numeric columns carry the same information."""
NEAR_DUPLICATE_SAMPLE = 2000
HEAVY_SKEW = 2.0
HEAVY_TAIL_RATIO = 6.0
"""(q99 - q1) / IQR above which a column is heavy-tailed (3.4 for a Gaussian, 8.5 for Student t with 2 dof)."""
WIDE_RANGE = 1e3
"""max/min of a positive column above which log10 is suggested whatever its skew."""
TOP_LEVELS = 5
MAX_FINDING_COLUMNS = 20
SUMMARY_BUDGET = 5600
DETAILS_BUDGET = 400_000
"""Characters of the all-columns details (ToolResult caps details at 500k by cutting lists)."""
NAME_CHARS = 80
LEVEL_CHARS = 40

# How much each warning pushes a column up the ranking.
SEVERITY = {"all values missing": 5, "constant": 5, "ID-like": 4, "copy": 3, "mostly missing": 3, "near-duplicate": 2,
            "duplicated IDs": 2, "sentinels masked": 1, "censored": 1}


def numeric_profile(x: np.ndarray) -> dict:
    """Location, scale, quantiles, skew and a suggested transform of one numeric column (NaN = missing)."""
    v = x[~np.isnan(x)]
    prof: dict = {"n": int(len(v)), "missing": 1 - len(v) / len(x) if len(x) else 0.0}
    if len(v) == 0:
        prof["warnings"] = ["all values missing"]
        return prof
    q = np.percentile(v, QUANTILES)
    med = q[3]
    mean = float(v.mean())
    dev = v - mean
    sq = dev * dev
    m2 = float(sq.mean())
    prof.update({"median": med, "mean": mean, "std": float(np.sqrt(m2 * len(v) / max(len(v) - 1, 1))),
                 "iqr": q[4] - q[2], "mad": float(np.median(np.abs(v - med))), "q": q})
    warnings: list[str] = []
    if v.min() == v.max():
        warnings.append("constant")
        prof["warnings"] = warnings
        return prof
    sq *= dev
    skew = float(sq.mean() / m2 ** 1.5) if m2 > 0 else 0.0
    del dev, sq
    prof["skew"] = skew
    transform = suggest_transform(v, q, skew)
    if transform:
        prof["transform"] = transform
    head = v[:1000]
    if np.array_equal(head, np.round(head)) and np.array_equal(v, np.round(v)):
        n_unique = len(np.unique(v))
        prof["n_unique"] = n_unique
        if looks_like_id(v, n_unique):
            warnings.append("ID-like")
    if warnings:
        prof["warnings"] = warnings
    return prof


def suggest_transform(v: np.ndarray, q: np.ndarray, skew: float) -> str | None:
    """'log10' for positive heavy-tailed or wide-range columns, 'asinh' for other heavy tails, else None."""
    iqr = q[4] - q[2]
    tail_ratio = (q[6] - q[0]) / iqr if iqr > 0 else math.inf
    heavy = abs(skew) > HEAVY_SKEW or tail_ratio > HEAVY_TAIL_RATIO
    lo = v.min()
    if lo > 0:
        wide = v.max() / lo > WIDE_RANGE
        if wide:
            return "log10"
        if heavy and skew > 0:
            # A strided sample of <= 200k values settles whether log10 reduces the skew.
            logv = np.log10(v[:: max(1, len(v) // 200_000)])
            d = logv - logv.mean()
            m2 = float(np.mean(d * d))
            log_skew = float(np.mean(d * d * d) / m2 ** 1.5) if m2 > 0 else 0.0
            if abs(log_skew) < abs(skew):
                return "log10"
        return None
    return "asinh" if heavy else None


def looks_like_id(v: np.ndarray, n_unique: int) -> bool:
    """Unique integers that run in row order or fill a dense range (row numbers, running ids).

    Size alone is no sign: measured values stored as float32 (HI masses of 1.6e9 Msun) are unique
    integers too; columns named like ids are already given the identifier role when loading.
    """
    if n_unique != len(v) or len(v) < 20:
        return False
    steps = np.diff(v)
    ordered = bool(np.all(steps > 0) or np.all(steps < 0))
    dense = (v.max() - v.min() + 1) <= 2 * len(v)
    return ordered or dense


def categorical_profile(s: pd.Series, role: str) -> dict:
    """Levels, the most frequent ones and warnings of a non-numeric column."""
    n = len(s)
    present = s.dropna()
    prof: dict = {"n": int(len(present)), "missing": 1 - len(present) / n if n else 0.0}
    if len(present) == 0:
        prof["warnings"] = ["all values missing"]
        return prof
    if role == "datetime":
        prof["min"] = str(present.min())
        prof["max"] = str(present.max())
        return prof
    counts = present.astype(str).value_counts()
    prof["levels"] = int(len(counts))
    if counts.iloc[0] > 1:  # all-unique levels (ids, free text) have no informative "top"
        prof["top"] = [[str(k)[:LEVEL_CHARS], int(c)] for k, c in counts.iloc[:TOP_LEVELS].items()]
    warnings = []
    if len(counts) == 1:
        warnings.append("constant")
    if role == "identifier" and len(counts) < len(present):
        warnings.append("duplicated IDs")
    if warnings:
        prof["warnings"] = warnings
    return prof


def duplicated_rows(frame: pd.DataFrame) -> int:
    """Number of rows that repeat an earlier row exactly (hashing, so 1M rows take a fraction of a second)."""
    if frame.shape[1] == 0 or len(frame) < 2:
        return 0
    hashes = pd.util.hash_pandas_object(frame, index=False)
    return int(hashes.duplicated().sum())


def near_duplicate_pairs(X: np.ndarray, names: list[str], rng: np.random.Generator) -> list[tuple[str, str, float]]:
    """Pairs of numeric columns with |Spearman rho| > NEAR_DUPLICATE on a seeded row sample."""
    if X.shape[1] < 2:
        return []
    # Fewer rows for very wide tables keeps the p x p products cheap; |rho| near 1 needs few rows.
    n_sample = int(min(len(X), NEAR_DUPLICATE_SAMPLE, max(500, 2e9 // max(X.shape[1] ** 2, 1))))
    S = X[np.sort(rng.choice(len(X), size=n_sample, replace=False))] if len(X) > n_sample else X
    r, n = pairwise_corr(rank_columns(S))
    ia, ib = np.triu_indices(X.shape[1], 1)
    close = np.flatnonzero((np.abs(np.nan_to_num(r[ia, ib])) > NEAR_DUPLICATE) & (n[ia, ib] >= 10))
    close = close[np.argsort(-np.abs(r[ia[close], ib[close]]), kind="stable")]
    return [(names[ia[k]], names[ib[k]], float(r[ia[k], ib[k]])) for k in close]


def column_entry(name: str, role: str, prof: dict, level: int) -> dict:
    """The summary entry of one column at a detail level (0 = everything, 2 = the essentials)."""
    e = {"name": name[:NAME_CHARS], "role": role, "n": prof["n"], "missing": prof["missing"]}
    for k in ("sentinel", "censored"):
        if prof.get(k):
            e[k] = prof[k]
    keys = {0: ("median", "mean", "std", "iqr", "mad", "q", "skew", "n_unique", "levels", "top", "min", "max"),
            1: ("median", "iqr", "skew", "levels", "top", "min", "max"),
            2: ("median", "iqr", "levels")}[level]
    for k in keys:
        if k in prof:
            e[k] = prof[k] if k != "top" or level == 0 else prof[k][:3]
    if prof.get("transform"):
        e["transform"] = prof["transform"]
    if prof.get("warnings"):
        e["warnings"] = prof["warnings"]
    if prof.get("near_duplicate_of"):
        e["near_duplicate_of"] = [c[:NAME_CHARS] for c in prof["near_duplicate_of"][:3]]
    if prof.get("copy_of"):
        e["copy_of"] = prof["copy_of"][:NAME_CHARS]
    return e


def warning_kind(warning: str) -> str:
    """The kind of a warning text ('mostly missing (73%)' -> 'mostly missing')."""
    return warning.split(" (")[0]


def severity(prof: dict) -> float:
    """Ranking weight: warnings first, then columns with a suggested transform."""
    score = sum(SEVERITY.get(warning_kind(w), 1) for w in prof.get("warnings", []))
    return score + (0.1 if prof.get("transform") else 0.0)


def fmt_num(v) -> str:
    """A number for a markdown cell."""
    if v is None or not np.isfinite(v):
        return ""
    return f"{v:.4g}"


def markdown_row(name: str, role: str, prof: dict) -> str:
    """One row of the report's column table."""
    if "levels" in prof:
        top = ", ".join(f"{code(k, 20)} ({c})" for k, c in prof.get("top", [])[:3])
        center = f"{prof['levels']} levels" + (f": {top}" if top else " (all distinct)")
        spread = ""
    elif "min" in prof:
        center, spread = f"{code(prof['min'], 30)} to {code(prof['max'], 30)}", ""
    else:
        center, spread = fmt_num(prof.get("median")), fmt_num(prof.get("iqr"))
    skew = fmt_num(prof.get("skew"))
    warnings = [w if w != "near-duplicate" else
                "near-duplicate of " + ", ".join(code(c, 30) for c in prof.get("near_duplicate_of", [])[:3])
                for w in prof.get("warnings", [])]
    return (f"| {code(name, 40)} | {role} | {prof['n']} | {prof['missing']:.1%} | {center} | {spread} | {skew} | "
            f"{prof.get('transform', '')} | {'; '.join(warnings)} |")


def profile_columns(session, names: list[str], frame: pd.DataFrame, rows: np.ndarray) -> dict[str, dict]:
    """Per-column profiles with warnings, including what loading recorded (sentinels, limits)."""
    table = session.table
    profiles: dict[str, dict] = {}
    for name in names:
        info = table.info[name]
        if info.role == "numeric":
            prof = numeric_profile(frame[name].to_numpy(dtype=float, na_value=np.nan))
        else:
            prof = categorical_profile(frame[name], info.role)
        warnings = prof.setdefault("warnings", [])
        if prof["missing"] > MOSTLY_MISSING and prof["n"] > 0:
            warnings.append(f"mostly missing ({prof['missing']:.0%})")
        if info.n_sentinel:
            prof["sentinel"] = info.n_sentinel / table.n_rows
            shown = ", ".join(f"{v:g}" for v in info.sentinel_values[:3])
            warnings.append(f"sentinels masked ({shown}: {info.n_sentinel} cells)")
        flags = table.censored.get(name)
        if flags is not None and np.count_nonzero(flags[rows]):
            k = int(np.count_nonzero(flags[rows]))
            prof["censored"] = k / len(rows)
            warnings.append(f"censored ({k} limits)")
        profiles[name] = prof
    return profiles


def mark_near_duplicates(profiles: dict[str, dict], near: list[tuple[str, str, float]]) -> None:
    """Add the near-duplicate warning and partner names to both columns of each pair."""
    for a, b, _ in near:
        for one, other in ((a, b), (b, a)):
            partners = profiles[one].setdefault("near_duplicate_of", [])
            if not partners:
                profiles[one]["warnings"].append("near-duplicate")
            partners.append(other)


def mark_copies(profiles: dict[str, dict], near: list[tuple[str, str, float]], frame: pd.DataFrame,
                order: list[str]) -> None:
    """Mark the later column of each near-duplicate pair that is an exact copy of the earlier one.

    A copy is the same values in the same rows up to a monotonic transform (the same quantity in other
    units, or its logarithm): its ranks equal the other column's, or their reverse, on every row, with the
    same rows missing. It carries no information of its own, so its correlation with the original (ρ = ±1)
    is not a finding. Checked on all rows, since the near-duplicate search looks at a sample.
    """
    from scipy.stats import rankdata

    position = {c: i for i, c in enumerate(order)}
    ranked: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # each column ranked once, however many pairs it is in

    def ranks(name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in ranked:
            v = frame[name].to_numpy(dtype=float, na_value=np.nan)
            finite = np.isfinite(v)
            ranked[name] = (finite, rankdata(v[finite]) if len(np.unique(v[finite])) >= 10 else np.empty(0))
        return ranked[name]

    for a, b, _ in near:
        first, later = sorted((a, b), key=position.get)
        if profiles[later].get("copy_of") or profiles[first].get("copy_of"):
            continue
        (fx, rx), (fy, ry) = ranks(first), ranks(later)
        if not np.array_equal(fx, fy) or len(rx) < 10 or len(ry) != len(rx):
            continue
        if np.array_equal(rx, ry) or np.array_equal(rx, len(rx) + 1 - ry):
            profiles[later]["copy_of"] = first
            profiles[later]["warnings"].append(f"copy (of {first[:NAME_CHARS]})")


def table_warnings(profiles: dict[str, dict], order: list[str], n_dup: int,
                   n_dup_no_ids: int) -> tuple[list[str], list[str]]:
    """Table-level problems, most serious first: plain text for the summary and markdown for the report."""
    by_kind: dict[str, list[str]] = {}
    for c in order:
        for w in profiles[c].get("warnings", []):
            by_kind.setdefault(warning_kind(w), []).append(c)
    plain, md = [], []
    if n_dup or n_dup_no_ids:
        text = (f"{n_dup} duplicated rows" if n_dup else
                f"{n_dup_no_ids} rows repeat another row in every column except the identifier columns")
        plain.append(text)
        md.append(text)
    for kind in sorted(by_kind, key=lambda w: -SEVERITY.get(w, 1))[:9]:
        cols = by_kind[kind]
        more = f" and {len(cols) - 5} more" if len(cols) > 5 else ""
        plain.append(f"{kind}: {len(cols)} column(s) ({', '.join(repr(c[:40]) for c in cols[:5])}{more})")
        md.append(f"{kind}: {len(cols)} column(s) ({', '.join(code(c, 40) for c in cols[:5])}{more})")
    return plain, md


@tool
def describe(session, columns: list[str] | None = None, page: Annotated[int, Field(ge=1)] = 1,
             page_size: Annotated[int, Field(ge=1, le=50)] = 20) -> ToolResult:
    """Profile the table: per-column statistics, missing values, suggested transforms and data problems.

    Use it first, to learn the columns' roles, scales and skew (log10 suggested for positive heavy-tailed
    columns), and to catch problems before they masquerade as findings: masked sentinels, upper/lower
    limits, ID-like numeric columns, duplicated rows, near-duplicate columns, mostly-missing columns.
    Columns with warnings come first; wide tables are paged (the summary says how many pages).

    Args:
        columns: Columns to describe (default: all columns of the table).
        page: Page of the ranked columns to show (1 = the columns with the most warnings).
        page_size: Columns per page.
    """
    rows = session.active_rows
    table = session.table
    if len(rows) == 0:
        raise session.fail("describe got no rows: the table (or the current selection) is empty.")
    if len(rows) < 2:
        raise session.fail("describe needs at least 2 rows; the current selection has 1. Widen the selection.")
    names = session.resolve_columns(columns, param="columns", roles=None)
    whole = session.selection is None and len(rows) == table.n_rows
    all_frame = table.df if whole else table.df.iloc[rows]
    frame = all_frame[names]

    profiles = profile_columns(session, names, frame, rows)
    usable = [c for c in names if table.role(c) == "numeric" and profiles[c]["n"] >= 10
              and "constant" not in profiles[c]["warnings"]]
    near = near_duplicate_pairs(frame[usable].to_numpy(dtype=float, na_value=np.nan), usable,
                                session.rng(31)) if len(usable) >= 2 else []
    mark_near_duplicates(profiles, near)
    mark_copies(profiles, near, frame, names)
    for prof in profiles.values():
        if not prof["warnings"]:
            del prof["warnings"]
    n_dup = duplicated_rows(all_frame)
    id_cols = table.columns_with_role("identifier")
    n_dup_no_ids = duplicated_rows(all_frame.drop(columns=id_cols)) if id_cols else n_dup

    order = sorted(names, key=lambda c: -severity(profiles[c]))  # stable: table order within a severity
    n_pages = max(1, math.ceil(len(order) / page_size))
    if page > n_pages:
        raise session.fail(f"The 'page' parameter of describe must be in [1, {n_pages}] for {len(order)} columns at "
                           f"{page_size} per page. Got {page} instead.")
    shown = order[(page - 1) * page_size: page * page_size]
    plain_warnings, md_warnings = table_warnings(profiles, order, n_dup, n_dup_no_ids)

    roles = {r: len(table.columns_with_role(r)) for r in ROLES if table.columns_with_role(r)}
    base = {"n_rows": len(rows), "n_columns": len(table.columns),
            "roles": roles, "selection": session.selection_label, "duplicated_rows": n_dup}
    if id_cols:
        base["duplicated_rows_ignoring_ids"] = n_dup_no_ids
    if table.warnings:
        base["load_warnings"] = [w[:200] for w in table.warnings[:8]] + (
            [f"... and {len(table.warnings) - 8} more"] if len(table.warnings) > 8 else [])
    base["warnings"] = plain_warnings
    if near:
        base["near_duplicate_pairs"] = [[a[:NAME_CHARS], b[:NAME_CHARS], r] for a, b, r in near[:10]]
        base["n_near_duplicate_pairs"] = len(near)
    base.update({"described_columns": len(order), "page": page, "n_pages": n_pages,
                 "order": "columns with warnings first, then by table order"})
    for level in (0, 1, 2):
        summary = dict(base, columns=[column_entry(c, table.role(c), profiles[c], level) for c in shown])
        if level:
            summary["detail"] = "reduced to fit; the report holds every statistic"
        if len(dumps(to_jsonable(summary))) <= SUMMARY_BUDGET:
            break

    md = [f"**Table profile**: {len(rows)} rows ({session.selection_label}), {len(table.columns)} columns "
          f"({', '.join(f'{k} {v}' for k, v in roles.items())}); {n_dup} duplicated rows."]
    if md_warnings:
        md += [""] + [f"- {w}" for w in md_warnings]
    md += ["", "| column | role | n | missing | median / levels | IQR | skew | transform | warnings |",
           "|---|---|---|---|---|---|---|---|---|"]
    md += [markdown_row(c, table.role(c), profiles[c]) for c in shown]
    if n_pages > 1:
        md.append(f"\nPage {page} of {n_pages} ({len(order)} columns).")

    findings = quality_findings(session, profiles, names, near, n_dup, n_dup_no_ids, len(rows)) if page == 1 else []
    return ToolResult(summary=summary, markdown="\n".join(md), findings=findings,
                      details=all_columns_details(table, profiles, order, near))


def all_columns_details(table, profiles: dict[str, dict], order: list[str], near) -> dict:
    """Every described column's entry (all pages) for planners and reports, as detailed as fits."""
    for level in (0, 1, 2):
        details = {"columns": [column_entry(c, table.role(c), profiles[c], level) for c in order],
                   "near_duplicate_pairs": [[a, b, r] for a, b, r in near[:500]]}
        if len(dumps(to_jsonable(details))) <= DETAILS_BUDGET:
            break
    return details


def quality_findings(session, profiles: dict[str, dict], names: list[str], near, n_dup: int, n_dup_no_ids: int,
                     n_rows: int) -> list[dict]:
    """Candidate data_quality findings for real problems."""
    table = session.table
    findings = []

    def finding(title: str, summary: str, columns: list[str], stats: dict, score: float) -> None:
        if len(columns) > MAX_FINDING_COLUMNS:  # the model sees `columns`; the full list stays in stats
            stats = dict(stats, all_columns=columns[:500], n_columns=len(columns))
            columns = columns[:MAX_FINDING_COLUMNS]
        findings.append({"kind": "data_quality", "title": title, "summary": summary, "columns": columns,
                         "stats": stats, "labels": None, "figures": [], "novelty": "systematic", "score": score})

    def listed(cols: list[str]) -> str:
        return ", ".join(code(c, 40) for c in cols[:6]) + (f" and {len(cols) - 6} more" if len(cols) > 6 else "")

    sentinel_cols = [c for c in names if table.info[c].n_sentinel]
    if sentinel_cols:
        finding(f"Sentinel values masked as missing in {len(sentinel_cols)} column(s)",
                f"Cells equal to catalogue codes such as -99 were treated as missing in {listed(sentinel_cols)}; "
                "analyses use the remaining values.", sentinel_cols,
                {"cells": {c: table.info[c].n_sentinel for c in sentinel_cols[:20]},
                 "values": {c: table.info[c].sentinel_values for c in sentinel_cols[:20]}}, 0.4)
    id_like = [c for c in names if "ID-like" in profiles[c].get("warnings", [])]
    if id_like:
        finding(f"{len(id_like)} numeric column(s) look like identifiers",
                f"{listed(id_like)} hold unique integers (running in row order, filling a dense range or very large); "
                "a trend or grouping along them is likely an artefact of row order or catalogue construction.",
                id_like, {"n_unique": {c: profiles[c].get("n_unique") for c in id_like[:20]}}, 0.3)
    if n_dup or n_dup_no_ids:
        n = n_dup or n_dup_no_ids
        what = "duplicated rows" if n_dup else "rows duplicated apart from their identifiers"
        finding(f"{n} {what}", f"{n} of {n_rows} rows repeat an earlier row; duplicates inflate significance and "
                "can form spurious tight groups.", [], {"n_duplicated": n, "fraction": n / n_rows,
                                                       "ignoring_identifiers": not n_dup}, 0.5)
    if near:
        cols = list(dict.fromkeys([c for a, b, _ in near for c in (a, b)]))
        finding(f"{len(near)} pair(s) of near-duplicate columns",
                "Columns that carry the same information (|Spearman ρ| > 0.99): " + "; ".join(
                    f"{code(a, 40)} ~ {code(b, 40)} (ρ = {r:+.3f})" for a, b, r in near[:5])
                + ". Their mutual correlation is not a finding; keep one of each pair in PCA and clustering.",
                cols, {"pairs": [[a, b, r] for a, b, r in near[:20]], "method": "spearman on a row sample"}, 0.4)
    missing = [c for c in names if profiles[c]["missing"] > MOSTLY_MISSING]
    if missing:
        finding(f"{len(missing)} column(s) are mostly missing",
                f"{listed(missing)} are missing in more than {MOSTLY_MISSING:.0%} of rows; results using them rest on "
                "a subset that may not be representative.", missing,
                {"missing_fraction": {c: profiles[c]["missing"] for c in missing[:20]}}, 0.4)
    return findings
