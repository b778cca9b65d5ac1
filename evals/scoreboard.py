"""The eval scoreboard: per-case results and overall numbers, as JSON and as markdown."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _mean(values: list[float]) -> float | None:
    vals = [float(v) for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def overall(results: list[dict]) -> dict:
    """Totals over the cases that ran (skipped cases are counted apart)."""
    ran = [r for r in results if r.get("status") != "skipped"]
    group_scores = [g.get("best") for r in ran for g in (r.get("metrics", {}).get("groups") or {}).values()]
    outlier_f1 = [o.get("f1") for r in ran for o in (r.get("metrics", {}).get("outliers") or {}).values()]
    judge = [(r.get("judge") or {}).get("score") for r in ran if r.get("judge")]
    return {
        "n_cases": len(results), "n_run": len(ran),
        "n_passed": sum(r.get("status") == "pass" for r in ran),
        "n_failed": sum(r.get("status") == "fail" for r in ran),
        "n_errors": sum(r.get("status") == "error" for r in ran),
        "n_skipped": len(results) - len(ran),
        "pass_rate": (sum(r.get("status") == "pass" for r in ran) / len(ran)) if ran else None,
        "mean_trend_recall": _mean([r.get("metrics", {}).get("trend_recall") for r in ran]),
        "total_false_discoveries": sum(int(r.get("metrics", {}).get("false_discoveries") or 0) for r in ran),
        "mean_group_score": _mean([g if g is not None else 0.0 for g in group_scores]),
        "mean_outlier_f1": _mean(outlier_f1),
        "mean_judge_score": _mean(judge),
        "wall_time_s": round(sum(float(r.get("wall_time_s") or 0) for r in results), 1),
    }


def build(results: list[dict], meta: dict) -> dict:
    """The scoreboard document: meta (model, judge, versions, options), overall totals and the cases."""
    ordered = sorted(results, key=lambda r: (r.get("case", ""), r.get("variant", "")))
    return {"schema": "serendip.scoreboard/1", "meta": meta, "overall": overall(ordered), "cases": ordered}


def _fmt(v, digits: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.{digits}f}" if np.isfinite(v) else "–"
    return str(v)


def _cell(text: str) -> str:
    """A markdown table cell: pipes and line breaks cannot break the table."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def case_row(r: dict) -> str:
    """One scoreboard line."""
    m = r.get("metrics") or {}
    groups = ", ".join(f"{_fmt(g.get('best'))}" for g in (m.get("groups") or {}).values()) or "–"
    outl = ", ".join(f"{_fmt(o.get('f1'))}" for o in (m.get("outliers") or {}).values()) or "–"
    judge = (r.get("judge") or {}).get("score")
    status = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "skipped": "skipped"}.get(r.get("status"), r.get("status"))
    return "| " + " | ".join(_cell(x) for x in [
        r.get("case", ""), r.get("variant", ""), status, _fmt(m.get("trend_recall")),
        _fmt(m.get("wrong_sign")), _fmt(m.get("false_discoveries")), groups, outl, _fmt(m.get("dq_recall")),
        _fmt(judge), r.get("exit_status") or "–", _fmt(r.get("wall_time_s"), 0)]) + " |"


def markdown(board: dict) -> str:
    """The scoreboard as markdown: a summary, one line per case, then the failed checks."""
    meta, tot = board["meta"], board["overall"]
    lines = ["# Serendip eval results", ""]
    lines.append(f"Model `{meta.get('model')}`" + (f" at `{meta['base_url']}`" if meta.get("base_url") else "")
                 + f" · seed {meta.get('seed')} · {meta.get('date', '')} · serendip {meta.get('version', '?')}"
                 + (f" · judge `{meta['judge']}`" if meta.get("judge") else " · no judge")
                 + (f" · variants: {meta['variants']}" if meta.get("variants") else ""))
    lines += ["", f"**{tot['n_passed']} of {tot['n_run']} cases passed**"
              + (f" ({tot['n_skipped']} skipped)" if tot["n_skipped"] else "")
              + (f", {tot['n_errors']} errors" if tot["n_errors"] else "")
              + f". Mean trend recall {_fmt(tot['mean_trend_recall'])}; false discoveries "
              f"{tot['total_false_discoveries']}; mean group score {_fmt(tot['mean_group_score'])}; mean outlier "
              f"F1 {_fmt(tot['mean_outlier_f1'])}" + (f"; mean judge score {_fmt(tot['mean_judge_score'])}"
                                                        if tot.get("mean_judge_score") is not None else "")
              + f". Total time {_fmt(tot['wall_time_s'], 0)} s.", ""]
    lines += ["| case | variant | status | trend recall | wrong sign | false disc. | groups (ARI/F1) | outliers F1 "
              "| DQ recall | judge | run | time (s) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [case_row(r) for r in board["cases"]]
    problems = []
    for r in board["cases"]:
        name = f"{r.get('case')} ({r.get('variant')})"
        if r.get("status") in ("error", "skipped"):
            problems.append(f"- **{_cell(name)}**: {_cell(r.get('error') or r.get('message') or r.get('status'))}")
            continue
        for c in r.get("checks", []):
            if not c["passed"]:
                tag = "" if c["required"] else " (not required)"
                problems.append(f"- **{_cell(name)}** {_cell(c['name'])}{tag}: {_fmt(c['value'])} "
                                f"(needs {c['op']} {_fmt(c['threshold'])}){': ' + _cell(c['detail']) if c['detail'] else ''}")
    if problems:
        lines += ["", "## Failed checks and skipped cases", ""] + problems
    lines += ["", "Scoring rules: `serendip.evals.scorer` (module docstring). Cases: `evals/cases/*.toml`.", ""]
    return "\n".join(lines)


def write(board: dict, out: str | Path) -> tuple[Path, Path]:
    """Write scoreboard.json and scoreboard.md into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    js, md = out / "scoreboard.json", out / "scoreboard.md"
    js.write_text(json.dumps(board, indent=2, default=_json_default), encoding="utf-8")
    md.write_text(markdown(board), encoding="utf-8")
    return js, md


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
