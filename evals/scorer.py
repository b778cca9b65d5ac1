"""Score an output folder against a case's truth, reading only ``findings.json`` and ``rows.csv``.

Because it reads nothing else, the scorer can score any model, any version, or another tool's output
written in the contract's format (DESIGN.md §1).

How each check is computed:

- **Derived columns map back to their base columns.** A finding that carries its provenance
  (``base_columns`` aligned with ``columns``, and ``controls``, recorded by the session when the columns
  were made) is read from it. Otherwise, for output written by other tools or older versions, known prefixes ``log10_``, ``asinh_`` and
  ``rank_`` (and the ``_derived`` suffix ``transform`` adds on a name clash) are stripped, repeatedly;
  ``resid_<y>_vs_<x>`` is ``y`` controlling for ``x`` (several controls are joined by ``_``; each part is
  matched to the table's columns, longest name first). A name that is a column of the table is never
  rewritten. A finding's controls are those from residual names plus any column listed in its stats
  under ``controls``, ``control``, ``within``, ``group_by`` or ``by``.
- **Trend recall**: an expected pair counts as found when a trend finding on the same two base columns
  (either order) with matching controls has the expected sign (``stats.sign``, else the sign of
  ``stats.effect``) and ``stats.q_value`` ≤ ``q_max``. A finding without a q-value is not significant.
  A significant matching finding with the opposite sign is a *wrong sign*. A non-monotonic dependence
  (``stats.monotonic`` false, or method ``chatterjee_xi``) has no sign: it is neither found nor wrong.
- **False discoveries**: significant trend findings that touch a negative-control column; on a null
  table, every significant trend and every stable group finding (``stats.stability`` ≥ ``min_stability``,
  or no stability stated).
- **Group agreement**: for each group finding, its ``labels`` column in rows.csv against the truth labels.
  Rows whose truth label is -1 are left out. Rows the finding left unassigned (-1, blank, or absent
  from rows.csv) keep -1 as **their own 'unassigned' label** — a grouping cannot score well by
  abstaining. ``ari``: adjusted Rand index; ``target_f1``: the best F1 of any one reported group
  against the target class. The best finding counts.
- **Outliers**: precision, recall and F1 of the rows flagged 1 in a finding's labels column against the
  truth rows; the finding with the best F1 counts.
- **Data quality**: the fraction of expected columns named (as base columns) by some data_quality finding.
- **Known results**: every finding that recovers a trend the case marks ``known`` (a literature result) must
  carry ``novelty = "known"``; checked when at least one such trend was found.
- **Families**: a finding with ``family.members`` stands for those member findings, which findings.json
  also lists (each with ``member_of``); the members are scored, the family itself is not counted again.
- The run must have ended ``completed`` when findings.json states its exit status.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from serendip.evals.truth import Truth
from serendip.tools.engine.contracts import ContractError, parse_findings_document

TRANSFORM_PREFIXES = ("log10_", "asinh_", "rank_")
DERIVED_SUFFIX = "_derived"
CONTROL_KEYS = ("controls", "control", "within", "group_by", "by")
SCHEMA_PREFIX = "serendip.findings/1"
NON_MONOTONIC_METHODS = ("chatterjee_xi",)


class OutputError(ValueError):
    """The output folder cannot be scored (missing or malformed findings.json / rows.csv)."""


# ---------------------------------------------------------------------- derived columns
def base_column(name: str, known: list[str] | set[str]) -> tuple[str, frozenset[str]]:
    """The base column behind a (possibly derived) column name, and the columns it controls for.

    Args:
        name: A column name from a finding.
        known: The table's own column names.

    Returns:
        ``(base, controls)``; e.g. ``resid_log10_sfr_vs_log10_mass`` -> ``("sfr", {"mass"})``.
    """
    known = set(known)
    controls: set[str] = set()
    current = str(name)
    for _ in range(10):
        if current in known:
            break
        stripped = _strip_transform(current, known)
        if stripped is not None:
            current = stripped
            continue
        resid = _split_residual(current, known)
        if resid is not None:
            current, ctrl = resid
            controls |= {base_column(c, known)[0] for c in ctrl}
            continue
        break
    return current, frozenset(controls)


def _strip_transform(name: str, known: set[str]) -> str | None:
    if name.endswith(DERIVED_SUFFIX) and name[: -len(DERIVED_SUFFIX)] not in known:
        inner = name[: -len(DERIVED_SUFFIX)]
        if inner.startswith(TRANSFORM_PREFIXES):
            return inner
    for prefix in TRANSFORM_PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix):]
    return None


def _split_residual(name: str, known: set[str]) -> tuple[str, list[str]] | None:
    """``resid_<y>_vs_<x1>_<x2>`` -> (y, [x1, x2]), resolving names against ``known`` where possible."""
    if not name.startswith("resid_") or "_vs_" not in name:
        return None
    body = name[len("resid_"):]
    candidates = [m.start() for m in re.finditer("_vs_", body)]
    # Prefer the split whose y resolves to a known column (through transforms); else the first '_vs_'.
    split = candidates[0]
    for pos in candidates:
        y = body[:pos]
        if y in known or base_column(y, known)[0] in known:
            split = pos
            break
    y, rest = body[:split], body[split + len("_vs_"):]
    return y, _split_controls(rest, known)


def _split_controls(rest: str, known: set[str]) -> list[str]:
    """Split ``x1_x2`` into known (possibly transformed) column names, longest first; else keep it whole."""
    names = sorted(known | {p + k for k in known for p in TRANSFORM_PREFIXES}, key=len, reverse=True)
    out, i = [], 0
    while i < len(rest):
        for n in names:
            if rest.startswith(n, i) and (i + len(n) == len(rest) or rest[i + len(n)] == "_"):
                out.append(n)
                i += len(n) + 1
                break
        else:
            return out + [rest[i:]] if rest[i:] else out
    return out


def finding_bases(finding: dict, known: list[str] | set[str], first: int | None = None
                  ) -> tuple[list[str], frozenset[str]]:
    """The base column of each of a finding's first ``first`` columns (all when None) and the columns it
    controls for: from its recorded provenance when it has one, else from the column names."""
    columns = [str(c) for c in finding.get("columns") or []]
    bases = finding.get("base_columns")
    if isinstance(bases, list) and len(bases) == len(columns):
        return [str(b) for b in bases][:first], frozenset(str(c) for c in finding.get("controls") or [])
    parsed = [base_column(c, known) for c in columns[:first]]
    return [b for b, _ in parsed], frozenset().union(*(c for _, c in parsed)) if parsed else frozenset()


# ---------------------------------------------------------------------- reading an output folder
@dataclass
class Output:
    """What the scorer reads from an output folder."""

    findings: list[dict]
    rows: pd.DataFrame | None
    run: dict = field(default_factory=dict)
    dataset: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def read_output(out_dir: str | Path) -> Output:
    """Read findings.json and rows.csv of an output folder.

    Raises:
        OutputError: findings.json is missing, unreadable or not a findings document.
    """
    out_dir = Path(out_dir)
    path = out_dir / "findings.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OutputError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OutputError(f"{path} is unreadable: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("findings"), list):
        raise OutputError(f"{path} has no 'findings' list")
    try:
        parse_findings_document(doc)
    except ContractError as exc:
        raise OutputError(f"{path} does not follow the findings contract: {exc}") from None
    warnings = []
    schema = str(doc.get("schema", ""))
    if not schema.startswith(SCHEMA_PREFIX):
        warnings.append(f"findings.json schema is {schema!r}, expected {SCHEMA_PREFIX!r}")
    findings = [f for f in doc["findings"] if isinstance(f, dict)]
    rows = None
    rows_path = out_dir / "rows.csv"
    if rows_path.exists():
        try:
            rows = pd.read_csv(rows_path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            warnings.append(f"rows.csv is unreadable: {str(exc).splitlines()[0]}")
        else:
            if "row" not in rows.columns:
                warnings.append("rows.csv has no 'row' column")
                rows = None
    return Output(findings=findings, rows=rows, run=doc.get("run") or {}, dataset=doc.get("dataset") or {},
                  warnings=warnings)


def row_values(rows: pd.DataFrame | None, column: str | None, n_rows: int) -> np.ndarray | None:
    """Per-row integer values of a rows.csv column (-1 where blank or absent); None if there is no such column."""
    if rows is None or not column or column not in rows.columns:
        return None
    pos = pd.to_numeric(rows["row"], errors="coerce").to_numpy(dtype=float)
    vals = pd.to_numeric(rows[column], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(pos) & (pos >= 0) & (pos < n_rows) & (pos == np.round(pos))
    out = np.full(n_rows, -1, dtype=np.int64)
    v = vals[ok]
    out[pos[ok].astype(np.int64)] = np.where(np.isfinite(v), np.round(np.nan_to_num(v, nan=-1)), -1).astype(np.int64)
    return out


# ---------------------------------------------------------------------- trend claims
@dataclass(frozen=True)
class TrendClaim:
    """A trend finding read back onto the table's base columns."""

    id: str
    pair: frozenset[str]
    controls: frozenset[str]
    sign: int
    q_value: float | None
    significant: bool


def trend_claims(findings: list[dict], columns: list[str], q_max: float) -> list[TrendClaim]:
    """Every trend finding with two or more columns, mapped to base columns (the first two columns count)."""
    out = []
    for f in findings:
        if f.get("kind") != "trend" or len(f.get("columns") or []) < 2 or is_family(f):
            continue
        s = f.get("stats") or {}
        bases, carried = finding_bases(f, columns, first=2)
        a, b = bases[:2]
        controls = set(carried)
        for key in CONTROL_KEYS:
            v = s.get(key)
            for c in ([v] if isinstance(v, str) else list(v) if isinstance(v, (list, tuple)) else []):
                controls.add(base_column(str(c), columns)[0])
        sign = _sign(s)
        q = _number(s.get("q_value"))
        out.append(TrendClaim(id=str(f.get("id", "?")), pair=frozenset((a, b)), controls=frozenset(controls),
                              sign=sign, q_value=q, significant=q is not None and q <= q_max))
    return out


def is_family(f: dict) -> bool:
    """A family finding stands for its member findings (listed after it, each with ``member_of``): the members
    are scored, the family is not counted again."""
    family = f.get("family")
    return isinstance(family, dict) and bool(family.get("members"))


def _number(v) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None


def _sign(stats: dict) -> int:
    if stats.get("monotonic") is False or stats.get("method") in NON_MONOTONIC_METHODS:
        return 0
    s = _number(stats.get("sign"))
    if s is not None and s != 0:
        return int(np.sign(s))
    e = _number(stats.get("effect"))
    return int(np.sign(e)) if e is not None else 0


def _controls_match(expected, claim: TrendClaim, columns: list[str]) -> bool:
    if expected == "any":
        return True
    return frozenset(base_column(c, columns)[0] for c in expected) == claim.controls


# ---------------------------------------------------------------------- metrics
def outlier_scores(flagged: np.ndarray, truth_rows: np.ndarray) -> dict:
    """Precision, recall and F1 of a flagged set against the true outlier rows."""
    flagged_set = set(np.flatnonzero(flagged == 1).tolist())
    true_set = set(np.asarray(truth_rows, dtype=int).tolist())
    tp = len(flagged_set & true_set)
    precision = tp / len(flagged_set) if flagged_set else 0.0
    recall = tp / len(true_set) if true_set else 0.0
    f1 = 2 * tp / (len(flagged_set) + len(true_set)) if (flagged_set or true_set) else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "n_flagged": len(flagged_set), "n_true": len(true_set)}


def group_score(pred: np.ndarray, truth_labels: np.ndarray, metric: str, target: int | None = None) -> float:
    """Agreement of predicted labels (-1 = unassigned, its own label) with the truth on scored rows (truth != -1)."""
    truth_labels = np.asarray(truth_labels)
    mask = truth_labels != -1
    t, p = truth_labels[mask], np.asarray(pred)[mask]
    if len(t) == 0:
        return float("nan")
    if metric == "ari":
        return float(adjusted_rand_score(t, p))
    is_target = t == target
    best = 0.0
    for label in np.unique(p[p != -1]):
        chosen = p == label
        denom = chosen.sum() + is_target.sum()
        if denom:
            best = max(best, float(2 * (chosen & is_target).sum() / denom))
    return best


def _check(name: str, kind: str, value, threshold, op: str, required: bool, detail: str = "") -> dict:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        passed = False
    elif op == ">=":
        passed = value >= threshold - 1e-12
    elif op == "<=":
        passed = value <= threshold + 1e-12
    else:
        passed = value == threshold
    return {"name": name, "kind": kind, "value": value, "threshold": threshold, "op": op, "passed": bool(passed),
            "required": required, "detail": detail}


# ---------------------------------------------------------------------- scoring
def score_output(output: Output, truth: Truth) -> dict:
    """Score one read output against the truth; returns the per-case score dict (see :func:`score`)."""
    th = truth.thresholds
    cols = truth.columns
    warnings = list(output.warnings)
    checks: list[dict] = []
    metrics: dict = {}
    findings = output.findings
    by_kind = {k: [f for f in findings if f.get("kind") == k] for k in ("trend", "group", "outlier", "data_quality")}

    n_out = output.dataset.get("n_rows")
    if isinstance(n_out, int) and n_out and n_out != truth.n_rows:
        warnings.append(f"findings.json says the table has {n_out} rows; the case table has {truth.n_rows}")
    if output.rows is not None and len(output.rows) != truth.n_rows:
        warnings.append(f"rows.csv has {len(output.rows)} rows; the case table has {truth.n_rows}")
    if (by_kind["group"] or by_kind["outlier"]) and output.rows is None:
        warnings.append("group/outlier findings but no usable rows.csv")

    status = output.run.get("exit_status")
    checks.append(_check("run completed", "run", status or "not stated", "completed" if status else "not stated",
                         "==", True, "" if status else "findings.json does not state the run's exit status"))

    claims = trend_claims(findings, cols, th.q_max)
    trend_rows, wrong_sign_required = [], 0
    for t in truth.trends:
        want = frozenset(t.columns)
        matching = [c for c in claims if c.pair == want and c.significant and _controls_match(t.controls, c, cols)]
        right = [c.id for c in matching if c.sign == t.sign]
        wrong = [c.id for c in matching if c.sign == -t.sign]
        trend_rows.append({"trend": t.label(), "found": bool(right), "findings": right, "wrong_sign": wrong,
                           "required": t.required})
        if t.required:
            wrong_sign_required += bool(wrong)
        else:
            checks.append(_check(f"trend {t.label()}", "trend", int(bool(right)), 1, ">=", False,
                                 ", ".join(right) or ("wrong sign in " + ", ".join(wrong) if wrong else "not found")))
    required_trends = [r for r in trend_rows if r["required"]]
    metrics["trends"] = trend_rows
    if required_trends:
        recall = sum(r["found"] for r in required_trends) / len(required_trends)
        metrics["trend_recall"] = recall
        missing = [r["trend"] for r in required_trends if not r["found"]]
        checks.append(_check("trend recall", "trend", recall, th.min_trend_recall, ">=", True,
                             "missing: " + "; ".join(missing) if missing else "all found"))
        metrics["wrong_sign"] = wrong_sign_required
        checks.append(_check("wrong-sign trends", "trend", wrong_sign_required, th.max_wrong_sign, "<=", True,
                             "; ".join(f"{r['trend']}: {', '.join(r['wrong_sign'])}" for r in required_trends
                                       if r["wrong_sign"])))

    known_check = known_labels_check(findings, truth, trend_rows)
    if known_check is not None:
        checks.append(known_check)

    if truth.null_table or truth.negative_controls:
        fd = false_discoveries(findings, claims, truth)
        metrics["false_discoveries"] = len(fd)
        metrics["false_discovery_findings"] = fd
        checks.append(_check("false discoveries", "negative_control", len(fd), th.max_false_discoveries, "<=", True,
                             ", ".join(fd)))

    metrics["groups"] = {}
    for g in truth.groups:
        best, best_id, scored = float("nan"), None, []
        for f in by_kind["group"]:
            pred = row_values(output.rows, f.get("labels"), truth.n_rows)
            if pred is None:
                warnings.append(f"group finding {f.get('id')} names labels {f.get('labels')!r}, not a rows.csv column")
                continue
            s = group_score(pred, g.labels, g.metric, g.target)
            scored.append({"finding": f.get("id"), "score": s})
            if np.isfinite(s) and (best_id is None or s > best):
                best, best_id = s, f.get("id")
        metrics["groups"][g.name] = {"metric": g.metric, "best": best if best_id else None, "finding": best_id,
                                     "per_finding": scored}
        checks.append(_check(f"group {g.name} ({g.metric})", "group", best if best_id else None, g.threshold, ">=",
                             g.required, f"best: {best_id}" if best_id else "no group finding with labels"))

    metrics["outliers"] = {}
    for o in truth.outliers:
        best, best_id = None, None
        for f in by_kind["outlier"]:
            flags = row_values(output.rows, f.get("labels"), truth.n_rows)
            if flags is None:
                warnings.append(f"outlier finding {f.get('id')} names labels {f.get('labels')!r}, not a rows.csv column")
                continue
            s = outlier_scores(flags, o.rows)
            if best is None or (s["f1"], s["recall"]) > (best["f1"], best["recall"]):
                best, best_id = s, f.get("id")
        metrics["outliers"][o.name] = {**(best or {"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                                   "n_flagged": 0, "n_true": len(o.rows)}), "finding": best_id}
        f1 = best["f1"] if best else 0.0
        recall = best["recall"] if best else 0.0
        detail = (f"{best_id}: precision {best['precision']:.2f}, recall {recall:.2f}" if best
                  else "no outlier finding with flags")
        checks.append(_check(f"outliers {o.name} (F1)", "outlier", f1, o.min_f1, ">=", o.required, detail))
        if o.min_recall > 0:
            checks.append(_check(f"outliers {o.name} (recall)", "outlier", recall, o.min_recall, ">=", o.required,
                                 detail))

    if truth.data_quality:
        named = set()
        for f in by_kind["data_quality"]:
            named |= set(finding_bases(f, cols)[0])
        hit = [c for c in truth.data_quality if c in named]
        recall = len(hit) / len(truth.data_quality)
        metrics["dq_recall"] = recall
        missing = [c for c in truth.data_quality if c not in named]
        checks.append(_check("data-quality columns named", "data_quality", recall, truth.dq_min_recall, ">=",
                             truth.dq_required, "missing: " + ", ".join(missing) if missing else "all named"))

    passed = all(c["passed"] for c in checks if c["required"])
    return {"case": truth.case, "variant": truth.variant, "status": "pass" if passed else "fail", "passed": passed,
            "exit_status": status, "n_findings": {k: len(v) for k, v in by_kind.items()},
            "metrics": metrics, "checks": checks, "warnings": warnings}


def known_labels_check(findings: list[dict], truth: Truth, trend_rows: list[dict]) -> dict | None:
    """Literature trends that were found must be labelled ``known`` by every finding that recovers them.

    None when the truth marks no trend as known, or none of them was found (recall checks that).
    """
    rows = [r for t, r in zip(truth.trends, trend_rows) if t.known and r["found"]]
    if not rows:
        return None
    novelty = {str(f.get("id")): f.get("novelty") for f in findings}
    wrong = [f"{r['trend']}: {i} is {novelty.get(i)!r}" for r in rows for i in r["findings"]
             if novelty.get(i) != "known"]
    labelled = sum(all(novelty.get(i) == "known" for i in r["findings"]) for r in rows)
    return _check("known results labelled known", "novelty", labelled / len(rows), 1.0, ">=", True,
                  "; ".join(wrong) if wrong else f"{labelled} found literature trend(s), all labelled known")


def false_discoveries(findings: list[dict], claims: list[TrendClaim], truth: Truth) -> list[str]:
    """Ids of significant trends touching negative controls; on a null table also every stable group."""
    controls = set(truth.negative_controls)
    ids = []
    for c in claims:
        if c.significant and (truth.null_table or c.pair & controls):
            ids.append(c.id)
    if truth.null_table:
        for f in findings:
            if f.get("kind") != "group":
                continue
            stability = _number((f.get("stats") or {}).get("stability"))
            if stability is None or stability >= truth.thresholds.min_stability:
                ids.append(str(f.get("id", "?")))
    return ids


def score(out_dir: str | Path, truth: Truth) -> dict:
    """Score an output folder against a truth.

    Returns:
        ``{"case", "variant", "status" ('pass' | 'fail' | 'error'), "passed", "exit_status", "n_findings",
        "metrics", "checks": [{"name", "kind", "value", "threshold", "op", "passed", "required", "detail"}],
        "warnings"}``; status 'error' (with ``error``) when the folder cannot be read.
    """
    try:
        output = read_output(out_dir)
    except OutputError as exc:
        return {"case": truth.case, "variant": truth.variant, "status": "error", "passed": False, "error": str(exc),
                "exit_status": None, "n_findings": {}, "metrics": {}, "checks": [], "warnings": []}
    return score_output(output, truth)


def main(argv: list[str] | None = None) -> int:
    """``python -m serendip.evals.scorer TRUTH_JSON OUTPUT_DIR``: score any output folder; prints the score JSON."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m serendip.evals.scorer",
                                     description="Score an output folder (findings.json + rows.csv) against a truth.json.")
    parser.add_argument("truth", help="truth.json written by `serendip eval` next to each case's table")
    parser.add_argument("output", help="the output folder to score")
    args = parser.parse_args(argv)
    result = score(args.output, Truth.load(args.truth))
    print(json.dumps(result, indent=2, default=float))
    return 0 if result["passed"] else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
