"""The follow-up round: each top candidate re-tested through the same tools, then labelled.

A trend is re-tested on each random half of the rows, within each level of every categorical column
(field, instrument, survey), after controlling for each strong covariate (partial correlation) and with
a second correlation measure. A grouping is re-fitted with another clustering algorithm, on each half and
within each level of every categorical; groups that are the levels of an observing split (field, plate,
instrument) are an artefact.
A set of outliers is re-flagged with the run's own ``outliers`` call (same columns, method and cut) on each
random half and within each level of every categorical, and with a second method (another detector, or
the other fit of an off-relation search); each check counts how many of the originally flagged rows it
re-tests are flagged again.
Every test is an ordinary tool call (``select``, ``correlate``, ``cluster``) through the dispatcher, so
its numbers come from a tool result and are kept in the follow-up transcript as evidence.

Labels:
- **artefact**: the candidate disappears when a strong covariate is controlled for, or holds in no level
  of a categorical although it holds overall (it is made by offsets between the levels);
- **fragile**: it fails an informative check (a half, some levels, the second method);
- **robust**: every informative check agrees (same sign, p < 0.05).
A check on too few rows to detect the original effect (80% power, Fisher z) counts as uninformative
rather than as a failure, so small levels do not make a real trend look fragile.

An outlier check passes when most of the re-tested rows (a majority: then the set is mostly the same set)
are flagged again and more of them than chance would give (hypergeometric test, p < 0.05, against
flagging as many rows of the subset at random). A check that could not reach p < 0.05 even if every
re-tested row came back (a level holding one or two flagged rows) is uninformative. Outliers are an
**artefact** of a categorical when most of them sit in one level (more than chance) and they are not
outliers within that level (fewer than half come back), or they make up most of the level: the level is
offset from the others, its rows are not unusual among themselves.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np

from serendip.tools.engine.mdtext import code
from serendip.tools.engine.result import ToolResult

ALPHA = 0.05
STRONG_COVARIATE = 0.3
NEAR_COPY = 0.9
MAX_LEVELS = 12
MAX_COVARIATES = 3
HALF_COLUMN = "_serendip_half"
SECOND_METHOD = {"spearman": "kendall", "pearson": "spearman", "kendall": "spearman"}
SECOND_CLUSTERING = {"gmm": "kmeans", "kmeans": "gmm", "agglomerative": "gmm", "hdbscan": "gmm", "auto": "kmeans",
                      "subspace_clump": "hdbscan"}
SECOND_DETECTOR = {"isolation_forest": "mahalanobis", "mahalanobis": "isolation_forest", "lof": "isolation_forest"}
SECOND_FIT = {"linear": "binned_median", "binned_median": "linear"}
OUTLIER_ARGS = ("columns", "method", "contamination", "threshold", "x", "y", "fit", "log_scale", "missing")


def rows_to_detect(effect: float, alpha: float = ALPHA, power: float = 0.8) -> int:
    """Rows needed to detect a correlation of this size (two-sided, Fisher z approximation)."""
    r = min(abs(effect), 0.999)
    if r <= 0:
        return 10**9
    z_a, z_b = 1.959964, 0.841621  # normal quantiles for alpha = 0.05 two-sided and power = 0.8
    return int(math.ceil(((z_a + z_b) / math.atanh(r)) ** 2 + 3))


def quote_name(name: str) -> str:
    """A column name in the filter language (backticks, doubled inside)."""
    return "`" + name.replace("`", "``") + "`"


def quote_value(value: object) -> str:
    """A level value as a filter literal."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)) or (isinstance(value, (float, np.floating)) and np.isfinite(value)):
        return repr(float(value)) if isinstance(value, (float, np.floating)) else str(int(value))
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


class Session:
    """A follow-up session on one run's table: its derived columns restored, a random half column added.

    Args:
        run_dir: The run folder.
        workdir: Where the follow-up writes (its own transcript, figures and workspace).
        seed: Seed of the random halves.
    """

    def __init__(self, run_dir: Path, workdir: Path, seed: int = 0) -> None:
        from serendip.agent.dispatch import Dispatcher
        from serendip.agent.ledger import Ledger
        from serendip.agent.overnight.runs import read_json
        from serendip.agent.transcript import Transcript
        from serendip.tools.loading import load_table
        from serendip.tools.engine.local_runner import LocalRunner
        from serendip.tools.engine.table import ColumnInfo

        info = read_json(run_dir / "run.json")
        table = load_table(info["table"])
        rng = np.random.default_rng(seed + 7919)
        half = np.zeros(table.n_rows)
        half[rng.permutation(table.n_rows)[: table.n_rows // 2]] = 1.0
        table.add_column(HALF_COLUMN, half, ColumnInfo(name=HALF_COLUMN, role="numeric",
                                                        description="random half of the rows (follow-up)"))
        if workdir.exists():
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True)
        source = run_dir / ".workspace"
        if source.is_dir():  # derived columns (logs, residuals) of the run, restored by the session
            shutil.copytree(source, workdir / ".workspace")
        self.table = table
        self.runner = LocalRunner(None, workdir, seed=seed, table=table).start()
        self.d = Dispatcher(self.runner, Ledger(), Transcript(workdir))

    def call(self, tool: str, **arguments) -> ToolResult:
        """One tool call, recorded in the follow-up transcript."""
        return self.d.call(tool, {k: v for k, v in arguments.items() if v is not None}, step=self.d.count + 1)

    def select(self, expression: str) -> ToolResult:
        return self.call("select", expression=expression)

    def categoricals(self, exclude: list[str]) -> list[str]:
        """Categorical and flag columns of the table."""
        return [c for c in self.table.columns_with_role("categorical", "flag") if c not in exclude]

    def levels(self, column: str, min_rows: int) -> list:
        """The levels of ``column`` with at least ``min_rows`` rows, largest first."""
        counts = self.table.df[column].value_counts(dropna=True)
        return [lv for lv, n in counts.items() if n >= min_rows][:MAX_LEVELS]


def pair_stats(result: ToolResult, x: str, y: str) -> dict | None:
    """effect, p and n of the pair (x, y) in a correlate result (significant or not)."""
    if not result.ok:
        return None
    s = result.summary
    for entry in (s.get("top_pairs") or []) + (s.get("strongest_not_significant") or []):
        if {entry.get("x"), entry.get("y")} == {x, y}:
            return {"effect": float(entry["effect"]), "p": float(entry["p"]), "n": int(entry["n"])}
    return None


def check_entry(name: str, result: ToolResult | None, stats: dict | None, sign: int, effect: float) -> dict:
    """One trend check: passed (same sign, p < alpha), failed, or uninformative (too few rows)."""
    entry = {"check": name, "evidence": result.id if result is not None else None}
    if stats is None or not np.isfinite(stats["effect"]) or not np.isfinite(stats["p"]):
        entry.update({"outcome": "uninformative", "why": ("the tool call failed (see the evidence)" if result is not None and not result.ok
                                                         else "the tool returned no value for the pair")})
        return entry
    entry.update({"effect": round(stats["effect"], 4), "p_value": stats["p"], "n": stats["n"]})
    same = np.sign(stats["effect"]) == sign
    if same and stats["p"] < ALPHA:
        entry["outcome"] = "passed"
    elif stats["n"] < rows_to_detect(effect):
        entry["outcome"] = "uninformative"
        entry["why"] = f"{stats['n']} rows, about {rows_to_detect(effect)} needed to see the original effect"
    else:
        entry["outcome"] = "failed"
    return entry


def follow_up_trend(sess: Session, finding: dict, min_level_rows: int) -> dict:
    """Re-test one trend finding; returns its label, the checks and an explanation."""
    stats = finding.get("stats") or {}
    x, y = finding["columns"][:2]
    method = str(stats.get("method", "spearman")).replace("_partial", "")
    if method not in SECOND_METHOD:
        return {"label": "untested", "checks": [], "why": f"no follow-up for {method} trends"}
    sign, effect = int(stats.get("sign") or np.sign(stats.get("effect", 1)) or 1), float(stats.get("effect", 0.0))
    controls = list(stats.get("controls") or [])
    control_ok = controls if method in ("spearman", "pearson") else None
    checks: list[dict] = []

    def corr(name: str, m: str = method, control: list[str] | None = None) -> None:
        res = sess.call("correlate", columns=[x, y], method=m, control=control or None)
        checks.append(check_entry(name, res, pair_stats(res, x, y), sign, effect))

    for h in (0, 1):
        sess.select(f"{quote_name(HALF_COLUMN)} == {h}")
        corr(f"random half {h + 1} of the rows", control=control_ok)
    level_checks: dict[str, list[dict]] = {}
    for cat in sess.categoricals([x, y]):
        levels = sess.levels(cat, min_level_rows)
        if len(levels) < 2:
            continue
        for lv in levels:
            sel = sess.select(f"{quote_name(cat)} == {quote_value(lv)}")
            if not sel.ok:
                continue
            corr(f"within {code(cat)} = {code(lv)}", control=control_ok)
            level_checks.setdefault(cat, []).append(checks[-1])
    sess.select("all")
    covariates = strong_covariates(sess, x, y, exclude=controls)
    for cov in covariates:
        corr(f"controlling for {code(cov)}", m="pearson" if method == "pearson" else "spearman", control=controls + [cov])
        checks[-1]["covariate"] = cov
    second = SECOND_METHOD[method]
    corr(f"second measure ({second})", m=second, control=controls if second in ("spearman", "pearson") else None)
    return label_trend(checks, level_checks)


def strong_covariates(sess: Session, x: str, y: str, exclude: list[str]) -> list[str]:
    """Numeric columns related (|effect| >= 0.3, q <= 0.05) to both x and y, not near copies of either."""
    numeric = [c for c in sess.table.numeric_columns if c not in (x, y, HALF_COLUMN) and c not in exclude]
    if not numeric:
        return []
    related: dict[str, list[float]] = {}
    for target in (x, y):
        res = sess.call("correlate", columns=numeric + [target], target=target)
        if not res.ok:
            return []
        for e in res.summary.get("top_pairs") or []:
            other = e["y"] if e["x"] == target else e["x"]
            if e.get("q", 1.0) <= ALPHA:
                related.setdefault(other, []).append(abs(float(e["effect"])))
    both = {c: v for c, v in related.items() if len(v) == 2 and min(v) >= STRONG_COVARIATE and max(v) < NEAR_COPY}
    return sorted(both, key=lambda c: -min(both[c]))[:MAX_COVARIATES]


def label_trend(checks: list[dict], level_checks: dict[str, list[dict]]) -> dict:
    """robust / fragile / artefact from the checks, with the reason in one sentence."""
    informative = [c for c in checks if c["outcome"] != "uninformative"]
    failed = [c for c in informative if c["outcome"] == "failed"]
    covariate_fail = [c for c in failed if "covariate" in c]
    offset_made = [cat for cat, cs in level_checks.items()
                   if [c for c in cs if c["outcome"] != "uninformative"]
                   and all(c["outcome"] == "failed" for c in cs if c["outcome"] != "uninformative")]
    if covariate_fail:
        why = f"it disappears when {', '.join(code(c['covariate']) for c in covariate_fail)} is controlled for"
        return {"label": "artefact", "checks": checks, "why": why}
    if offset_made:
        why = f"it holds in no level of {', '.join(code(c) for c in offset_made)}: offsets between the levels make it"
        return {"label": "artefact", "checks": checks, "why": why}
    if not informative:
        return {"label": "untested", "checks": checks, "why": "no check had enough rows to be informative"}
    if failed:
        why = "it fails " + "; ".join(c["check"] for c in failed[:5]) + (" …" if len(failed) > 5 else "")
        passed = [c["check"] for c in informative if c["outcome"] == "passed"]
        if passed:
            why += f" (holds {len(passed)} of {len(informative)} informative checks)"
        return {"label": "fragile", "checks": checks, "why": why}
    return {"label": "robust", "checks": checks,
            "why": f"same sign and p < {ALPHA} in all {len(informative)} informative checks"}


def follow_up_group(sess: Session, finding: dict, run_dir: Path, min_level_rows: int) -> dict:
    """Re-fit a grouping with another algorithm, on each half and within each level of every categorical.

    Robust when every informative refit finds groups. Groups that are the levels of a categorical (the run's
    call found them to coincide with it, and no level holds groups of its own) are an artefact when that
    column splits the table by how it was observed (field, plate, instrument), and the classes of the
    objects otherwise (species, morphology): then the levels' refits are expected to find nothing.
    """
    stats = finding.get("stats") or {}
    method = str(stats.get("method") or "gmm")
    columns = [c for c in finding.get("columns") or [] if c in sess.table.columns]
    if len(columns) < 2 or stats.get("space") == "umap":
        return {"label": "untested", "checks": [], "why": "groups found in a map or on fewer than two columns"}
    other = SECOND_CLUSTERING.get(method, "kmeans")
    k = stats.get("n_groups")
    fixed_k = int(k) if isinstance(k, int) and k >= 2 else None
    checks = []
    for name, expr, m in ((f"second algorithm ({other})", "all", other),
                          ("random half 1 of the rows", f"{quote_name(HALF_COLUMN)} == 0", method),
                          ("random half 2 of the rows", f"{quote_name(HALF_COLUMN)} == 1", method)):
        sess.select(expr)
        checks.append(refit_check(sess, name, columns, m, fixed_k))
    level_checks = group_level_checks(sess, finding, columns, method, run_dir, min_level_rows)
    sess.select("all")
    return label_groups(checks, level_checks, coinciding_columns(run_dir, finding))


def refit_check(sess: Session, name: str, columns: list[str], method: str, k: int | None) -> dict:
    """One refit of a grouping: passed when the cluster tool reports groups, failed when it reports none."""
    if method == "subspace_clump":  # a clump in a pair of columns: the same search on that pair
        res = sess.call("subspace", columns=columns[:2], max_pairs=1)
    else:
        method = "gmm" if method == "auto" else method
        res = sess.call("cluster", columns=columns, method=method, k=k if method != "hdbscan" else None)
    found = [f for f in res.findings if f.get("kind") == "group"] if res.ok else []
    entry = {"check": name, "evidence": res.id, "outcome": "passed" if found else "failed"}
    if found:
        entry["stability"] = (found[0].get("stats") or {}).get("stability")
    elif not res.ok:
        entry.update({"outcome": "uninformative", "why": "the tool call failed (see the evidence)"})
    return entry


def group_level_checks(sess: Session, finding: dict, columns: list[str], method: str, run_dir: Path,
                       min_level_rows: int) -> dict[str, list[dict]]:
    """Refit the grouping within each level of every categorical (the number of groups chosen afresh).

    A level is informative only when it holds at least two of the run's groups with 10 rows per column
    each: a level holding one group (Dream island has no Gentoo penguins) cannot show the grouping.
    """
    per_group = 10 * len(columns)
    labels = original_labels(run_dir, str(finding.get("labels") or ""), sess.table.n_rows)
    if labels is not None and (finding.get("stats") or {}).get("method") != "subspace_clump":
        labels = np.where(labels < 0, np.nan, labels)  # noise and rows left out belong to no group
    out: dict[str, list[dict]] = {}
    for cat in sess.categoricals(columns):
        levels = sess.levels(cat, min_level_rows)
        if len(levels) < 2:
            continue
        values = sess.table.df[cat]
        for lv in levels:
            name = f"within {code(cat)} = {code(lv)}"
            in_level = (values == lv).to_numpy()
            if labels is not None:
                members = labels[in_level]
                _, counts = np.unique(members[np.isfinite(members)], return_counts=True)
                if int((counts >= per_group).sum()) < 2:
                    why = f"it holds {per_group} or more rows of fewer than two of the groups"
                    out.setdefault(cat, []).append({"check": name, "evidence": None, "outcome": "uninformative",
                                                    "why": why})
                    continue
            if not sess.select(f"{quote_name(cat)} == {quote_value(lv)}").ok:
                continue
            out.setdefault(cat, []).append(refit_check(sess, name, columns, method, None))
    return out


def coinciding_columns(run_dir: Path, finding: dict) -> list[str]:
    """Categorical columns the run's own cluster call found the groups to coincide with."""
    call = original_call(run_dir, finding, tool="cluster")
    summary = (call or {}).get("summary") or {}
    return [c["column"] for c in summary.get("coincidence") or [] if c.get("strong")]


def observing_split(column: str) -> bool:
    """Whether a categorical splits the table by how it was observed rather than by what the objects are."""
    from serendip.tools.compare import OBJECT_SPLIT, OBSERVATIONAL_SPLIT

    return bool(OBSERVATIONAL_SPLIT.search(column)) and not OBJECT_SPLIT.search(column)


def label_groups(checks: list[dict], level_checks: dict[str, list[dict]], coinciding: list[str]) -> dict:
    """robust / fragile / artefact for a grouping, with the reason in one sentence."""
    # categoricals whose levels the groups are: they coincide, and no level holds groups of its own
    are_levels = [cat for cat, entries in level_checks.items()
                  if cat in coinciding and not any(c["outcome"] == "passed" for c in entries)]
    observed = [cat for cat in are_levels if observing_split(cat)]
    if observed:
        why = (f"the groups are the levels of {', '.join(code(c) for c in observed)}, which split the table by how "
               "it was observed: no level holds groups of its own")
        return {"label": "artefact", "checks": checks + [c for cat in observed for c in level_checks[cat]], "why": why}
    counted = [c for cat, entries in level_checks.items() if cat not in are_levels for c in entries]
    classes = [c for cat in are_levels for c in level_checks[cat]]
    for c in classes:  # expected: within one class of the objects there are no groups left
        c["outcome"], c["why"] = "uninformative", "the groups are the levels of this column"
    all_checks = checks + counted + classes
    informative = [c for c in checks + counted if c["outcome"] != "uninformative"]
    # Finding groups afresh in one level needs far more rows than testing a correlation there, and there is no
    # power formula for it: a grouping is fragile in a categorical when it is missing from most of the levels
    # that could show it (present in one field only), not when one level of several misses it.
    missing_in = {cat for cat, entries in level_checks.items() if cat not in are_levels
                  and sum(c["outcome"] == "failed" for c in entries) > sum(c["outcome"] == "passed" for c in entries)}
    failed = [c for c in checks if c["outcome"] == "failed"] + \
        [c for cat in missing_in for c in level_checks[cat] if c["outcome"] == "failed"]
    note = (f" (the groups are the levels of {', '.join(code(c) for c in are_levels)}, a property of the objects)"
            if are_levels else "")
    if not informative:
        return {"label": "untested", "checks": all_checks, "why": "no refit could be made" + note}
    if failed:
        why = "no stable groups in " + "; ".join(c["check"] for c in failed[:5]) + (" …" if len(failed) > 5 else "")
        return {"label": "fragile", "checks": all_checks, "why": why + note}
    passed = [c for c in informative if c["outcome"] == "passed"]
    return {"label": "robust", "checks": all_checks,
            "why": f"stable groups in {len(passed)} of {len(informative)} refits" + note}


# ---------------------------------------------------------------------- outliers
def original_call(run_dir: Path, finding: dict, tool: str = "outliers") -> dict | None:
    """The run's ``tool`` call behind a finding (its transcript record), if any."""
    from serendip.agent.transcript import Transcript

    evidence = set(finding.get("evidence") or [])
    for rec in Transcript(run_dir).records():
        if rec.get("type") == "tool_result" and rec.get("tool") == tool and rec.get("ok") \
                and rec.get("id") in evidence:
            return rec
    return None


def original_flags(run_dir: Path, label: str, n_rows: int) -> np.ndarray | None:
    """The finding's per-row flags (1 = flagged) as the run saved them, or None."""
    values = original_labels(run_dir, label, n_rows)
    return None if values is None else values == 1


def original_labels(run_dir: Path, label: str, n_rows: int) -> np.ndarray | None:
    """A finding's per-row values (group labels, flags) as the run saved them, or None."""
    if not label:
        return None
    path = run_dir / ".workspace" / "artifacts" / f"{label}.npy"
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        try:
            import pandas as pd

            values = pd.read_csv(run_dir / "rows.csv", usecols=[label])[label].to_numpy()
        except (OSError, ValueError, KeyError):
            return None
    return np.asarray(values, dtype=float) if len(values) == n_rows else None


def flag_check(name: str, res: ToolResult, sess: Session, original: np.ndarray, subset: np.ndarray) -> dict | None:
    """How many originally flagged rows of ``subset`` the re-run flags again; None when it re-tests none."""
    from scipy.stats import hypergeom

    tested = original & subset
    n_test = int(tested.sum())
    if n_test == 0:
        return None
    entry = {"check": name, "evidence": res.id, "n": n_test}
    if not res.ok or not res.summary.get("flag_artifact"):
        entry.update({"outcome": "uninformative", "why": "the tool call failed (see the evidence)" if not res.ok
                      else "the tool flagged nothing it could save"})
        return entry
    again = np.asarray(sess.runner.session.load_artifact(res.summary["flag_artifact"])) == 1
    n_subset, n_again = int(subset.sum()), int((again & subset).sum())
    k = int((again & tested).sum())
    p = float(hypergeom.sf(k - 1, n_subset, n_test, n_again)) if k else 1.0
    best_p = float(hypergeom.sf(n_test - 1, n_subset, n_test, max(n_again, n_test)))
    entry.update({"recovered": k, "recovery": round(k / n_test, 4), "p_value": p, "n_flagged_again": n_again})
    if k / n_test > 0.5 and p < ALPHA:
        entry["outcome"] = "passed"
    elif best_p >= ALPHA:
        entry["outcome"] = "uninformative"
        entry["why"] = f"{n_test} flagged row(s) here: even all of them flagged again would not beat chance"
    else:
        entry["outcome"] = "failed"
    return entry


def follow_up_outlier(sess: Session, finding: dict, run_dir: Path, min_level_rows: int) -> dict:
    """Re-flag a set of outliers on each half, within each level and with a second method; label it."""
    call = original_call(run_dir, finding)
    n = sess.table.n_rows
    flags = original_flags(run_dir, str(finding.get("labels") or ""), n)
    if call is None or flags is None or not flags.any():
        return {"label": "untested", "checks": [], "why": "the run's outliers call or its flags could not be found"}
    if (call.get("summary") or {}).get("selection", "all rows") != "all rows":
        return {"label": "untested", "checks": [], "why": "the outliers were flagged within a selection of rows"}
    args = {k: v for k, v in (call.get("arguments") or {}).items() if k in OUTLIER_ARGS and v is not None}
    stats = finding.get("stats") or {}
    method = str(args.get("method") or stats.get("method") or "isolation_forest")
    if method == "off_relation":
        x, y = (stats.get("relation_columns") or finding.get("columns") or [None, None])[:2]
        args.update({"x": x, "y": y, "fit": stats.get("fit", args.get("fit", "auto"))})
        args.pop("columns", None)
        second = {**args, "fit": SECOND_FIT.get(str(args["fit"]), "linear")}
        second_name = f"second fit ({second['fit'].replace('_', ' ')})"
    else:
        other = SECOND_DETECTOR.get(method, "isolation_forest")
        second = {**{k: v for k, v in args.items() if k != "threshold"}, "method": other}
        second_name = f"second method ({other.replace('_', ' ')})"
    everything = np.ones(n, dtype=bool)
    checks: list[dict] = []
    half = sess.table.df[HALF_COLUMN].to_numpy()
    for h in (0, 1):
        sess.select(f"{quote_name(HALF_COLUMN)} == {h}")
        entry = flag_check(f"random half {h + 1} of the rows", sess.call("outliers", **args), sess, flags, half == h)
        checks += [entry] if entry else []
    level_checks: dict[str, list[tuple[object, dict, bool]]] = {}  # level, its check, whether it is an offset
    for cat in sess.categoricals(list(finding.get("columns") or [])):
        levels = sess.levels(cat, min_level_rows)
        if len(levels) < 2:
            continue
        values = sess.table.df[cat]
        for lv in levels:
            sel = sess.select(f"{quote_name(cat)} == {quote_value(lv)}")
            if not sel.ok:
                continue
            in_level = (values == lv).to_numpy()
            entry = flag_check(f"within {code(cat)} = {code(lv)}", sess.call("outliers", **args), sess, flags, in_level)
            if entry:
                checks.append(entry)
                level_checks.setdefault(cat, []).append((lv, entry, offset_level(flags, in_level, entry)))
    sess.select("all")
    entry = flag_check(second_name, sess.call("outliers", **second), sess, flags, everything)
    checks += [entry] if entry else []
    return label_outliers(checks, level_checks)


def offset_level(flags: np.ndarray, in_level: np.ndarray, check: dict) -> bool:
    """Whether the flagged rows are this level rather than outliers.

    True when most flagged rows sit in the level, more than its share of the rows explains
    (hypergeometric p < 0.05), and either they make up most of the level or fewer than half of them are
    flagged again when the level is tested on its own.
    """
    from scipy.stats import hypergeom

    k, n_flag, n_level = int((flags & in_level).sum()), int(flags.sum()), int(in_level.sum())
    concentrated = k > n_flag / 2 and float(hypergeom.sf(k - 1, len(flags), n_level, n_flag)) < ALPHA
    not_again = "recovery" in check and check["recovery"] <= 0.5
    return concentrated and (k > n_level / 2 or not_again)


def label_outliers(checks: list[dict], level_checks: dict[str, list[tuple[object, dict, bool]]]) -> dict:
    """robust / fragile / artefact for a set of outliers, with the reason in one sentence."""
    offsets = [(cat, lv) for cat, entries in level_checks.items() for lv, _, offset in entries if offset]
    if offsets:
        why = "; ".join(f"most flagged rows are in {code(cat)} = {code(lv)} and are not unusual within it"
                        for cat, lv in offsets) + ": that level is offset from the others"
        return {"label": "artefact", "checks": checks, "why": why}
    informative = [c for c in checks if c["outcome"] != "uninformative"]
    failed = [c for c in informative if c["outcome"] == "failed"]
    if not informative:
        return {"label": "untested", "checks": checks, "why": "no check re-tested enough flagged rows to be informative"}
    if failed:
        why = "most flagged rows are not flagged again in " + "; ".join(c["check"] for c in failed[:5]) \
            + (" …" if len(failed) > 5 else "")
        return {"label": "fragile", "checks": checks, "why": why}
    return {"label": "robust", "checks": checks,
            "why": f"most flagged rows are flagged again, beyond chance, in all {len(informative)} informative checks"}


def follow_up(run_dir: Path, findings: list[dict], workdir: Path, seed: int = 0, min_level_rows: int = 20,
              on_result=None) -> dict[str, dict]:
    """Re-test ``findings`` of one run; returns {finding id: {label, checks, why}}.

    Args:
        run_dir: The run folder the findings come from.
        findings: The findings to re-test (as in its findings.json).
        workdir: Where the follow-up writes its transcript and workspace (emptied first).
        seed: Seed of the random halves.
        min_level_rows: Levels of a categorical with fewer rows are not re-tested.
        on_result: Called with (finding, its result) as each finding is done (progress).
    """
    if not findings:
        return {}
    sess = Session(run_dir, workdir, seed=seed)
    out: dict[str, dict] = {}
    try:
        for f in findings:
            if f.get("kind") == "trend":
                out[f["id"]] = follow_up_trend(sess, f, min_level_rows)
            elif f.get("kind") == "group":
                out[f["id"]] = follow_up_group(sess, f, run_dir, min_level_rows)
            elif f.get("kind") == "outlier":
                out[f["id"]] = follow_up_outlier(sess, f, run_dir, min_level_rows)
            else:
                out[f["id"]] = {"label": "untested", "checks": [], "why": f"no follow-up for {f.get('kind')} findings"}
            if on_result is not None:
                on_result(f, out[f["id"]])
    finally:
        sess.runner.close()
    return out
