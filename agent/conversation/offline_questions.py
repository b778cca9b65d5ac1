"""Questions answered without a model: the common forms, matched by column names and a few words.

The forms: a relation between named columns ("does sfr depend on mass?", optionally "controlling for
distance"), what a column depends on, groups, outliers, a column's distribution, and a comparison across a
categorical column. Each is answered by the matching tool; every number in an answer is copied from that
tool's result summary and the result id is cited. Anything else is not guessed at: the caller gets None
and answers with :data:`CONFIGURE_HINT`. Matching is by regular expressions over the lower-cased question
(no evaluation of the text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from serendip.agent.conversation.column_match import find_columns, normalise
from serendip.agent.report import fmt
from serendip.tools.engine.result import ToolResult

OUTLIER_WORDS = re.compile(r" (outliers?|anomal\w*|unusual|odd(est)?|weird\w*|strange|extreme\w*|atypical|peculiar"
                           r"|stands? out|oddballs?|abnormal) ")
GROUP_WORDS = re.compile(r" (groups?|group(ing|ed)|clusters?|cluster(ing|ed)|populations?|subpopulations?|sub "
                         r"populations?|classes|families|clumps?|subgroups?|subsamples?|kinds of|types of) ")
COMPARE_WORDS = re.compile(r" (compar\w*|differ\w*|difference\w*|across|between|among|per|by|vary|varies|varying"
                           r"|versus|vs|each|split) ")
RELATION_WORDS = re.compile(r" (depend\w*|correlat\w*|relat\w*|trends?|vs|versus|against|affect\w*|influenc\w*"
                            r"|scal(e|es|ing) with|associat\w*|connect\w*|link\w*|predict\w*|ris(e|es|ing) with"
                            r"|increas\w* with|decreas\w* with|grow\w* with|fall\w* with|drives?|driven|function of"
                            r"|go(es)? with|track\w*|tied|between) ")
DISTRIBUTION_WORDS = re.compile(r" (distribut\w*|histogram|range|typical|median|mean|average|spread|skew\w*|values?"
                                r"|bimodal|multimodal|describe|summar\w*|statistics|stats|look like|how (big|large"
                                r"|small|many|high|low)|profile|missing) ")
CONTROL_WORDS = re.compile(r" (controlling for|control for|controlled for|accounting for|account for|at fixed"
                           r"|removing|correcting for|corrected for|given) ")
RELATION_OUTLIER_WORDS = re.compile(r" (relation|relationship|trend|off|from the|sequence|law) ")

CONFIGURE_HINT = (
    "Without a model I answer only questions about a relation between named columns, what a column depends "
    "on, groups, outliers, a column's distribution, or a comparison across a categorical column. For anything "
    "else configure a model: set OPENAI_API_KEY and pass --model NAME, or run a local OpenAI-compatible server "
    "and pass --model NAME --base-url URL (Ollama: http://localhost:11434/v1; vLLM: http://localhost:8000/v1). "
    "Slash commands work without a model: /describe, /correlate, /pca, /cluster, /outliers, /plot, /findings "
    "(see /help).")
ASK_HINT = ("this question needs a model: set OPENAI_API_KEY and --model NAME, or --base-url URL for a local "
            "Ollama/vLLM server; without one, ask about a relation between named columns, groups, outliers, a "
            "column's distribution or a comparison across a categorical column")


@dataclass
class PlannedCall:
    """One tool call of an offline answer."""

    tool: str
    arguments: dict = field(default_factory=dict)


@dataclass
class QuestionPlan:
    """How a question will be answered.

    Attributes:
        form: 'relation', 'depends_on', 'groups', 'outliers', 'distribution' or 'comparison'.
        columns: The columns the question names, in order.
        controls: Columns to control for (relation form).
        calls: The tool calls to run; the first one's result carries the answer.
    """

    form: str
    columns: list[str]
    calls: list[PlannedCall]
    controls: list[str] = field(default_factory=list)


def match_question(question: str, columns: list[dict]) -> QuestionPlan | None:
    """The plan for a question of one of the offline forms, or None.

    Args:
        question: The user's text.
        columns: The table's columns as ``{"name", "role"}`` dicts.
    """
    text = normalise(question)
    mentions = find_columns(question, columns)
    control_at = CONTROL_WORDS.search(text)
    controls = [m for m in mentions if control_at and m.start >= control_at.start() and m.role == "numeric"]
    named = [m for m in mentions if m not in controls]
    numeric = [m.column for m in named if m.role == "numeric"]
    categorical = [m.column for m in named if m.role in ("categorical", "flag")]
    names = [m.column for m in named]

    if OUTLIER_WORDS.search(text):
        if len(numeric) == 2 and RELATION_OUTLIER_WORDS.search(text):
            y, x = numeric  # "outliers from the y-x relation" / "y vs x": the first named is y
            return QuestionPlan("outliers", names, [PlannedCall("outliers", {"method": "off_relation", "x": x, "y": y})])
        args = {"columns": numeric} if len(numeric) >= 2 else {}
        return QuestionPlan("outliers", names, [PlannedCall("outliers", args)])
    if GROUP_WORDS.search(text) and not (categorical and COMPARE_WORDS.search(text) and not numeric):
        args = {"columns": numeric} if len(numeric) >= 2 else {}
        return QuestionPlan("groups", names, [PlannedCall("cluster", args)])
    if categorical and (numeric or COMPARE_WORDS.search(text) or RELATION_WORDS.search(text)) \
            and (COMPARE_WORDS.search(text) or RELATION_WORDS.search(text) or DISTRIBUTION_WORDS.search(text)):
        args = {"by": categorical[0]}
        if numeric:
            args["columns"] = numeric
        return QuestionPlan("comparison", names, [PlannedCall("compare", args)])
    if len(numeric) >= 2 and (RELATION_WORDS.search(text) or COMPARE_WORDS.search(text)):
        pair = numeric[:2]
        args: dict = {"columns": pair}
        if controls:
            args["control"] = [m.column for m in controls]
        return QuestionPlan("relation", names, [PlannedCall("correlate", args),
                                                PlannedCall("plot", {"kind": "scatter", "x": pair[1], "y": pair[0]})],
                            controls=[m.column for m in controls])
    if len(numeric) == 1 and RELATION_WORDS.search(text):
        return QuestionPlan("depends_on", names, [PlannedCall("correlate", {"target": numeric[0]})])
    if len(named) == 1 and (DISTRIBUTION_WORDS.search(text) or len(text.split()) <= 3):
        col = named[0]
        calls = [PlannedCall("describe", {"columns": [col.column]})]
        if col.role == "numeric":
            calls.append(PlannedCall("plot", {"kind": "histogram", "x": col.column}))
        return QuestionPlan("distribution", names, calls)
    return None


# ---------------------------------------------------------------------- answers
def _q(value) -> str:
    return fmt(value) if isinstance(value, (int, float)) else "n/a"


def _cite(result: ToolResult) -> str:
    return f"[{result.id}]"


def answer_relation(plan: QuestionPlan, result: ToolResult) -> str:
    """Whether the two named columns move together, from a correlate result."""
    s = result.summary
    a, b = plan.calls[0].arguments["columns"][:2]
    pool = list(s.get("top_pairs") or []) + list(s.get("strongest_not_significant") or [])
    pair = next((p for p in pool if {p.get("x"), p.get("y")} == {a, b}), None)
    th = s.get("thresholds") or {}
    method = str(s.get("method", "spearman")).capitalize()
    if pair is None:
        dropped = s.get("dropped_columns") or {}
        why = "; ".join(f"{k}: {v}" for k, v in dropped.items()) or "the pair was not among the results shown"
        return f"The correlation of {a} and {b} could not be measured ({why}) {_cite(result)}."
    eff, q, n = pair.get("effect"), pair.get("q"), pair.get("n")
    significant = isinstance(q, (int, float)) and q <= th.get("q_max", 0.05)
    strong = isinstance(eff, (int, float)) and abs(eff) >= th.get("min_effect", 0.1)
    direction = "rises" if isinstance(eff, (int, float)) and eff > 0 else "falls"
    stats = f"{method} coefficient {_q(eff)}, n = {_q(n)}, p = {_q(pair.get('p'))}, q = {_q(q)}"
    if significant and strong:
        text = f"Yes: {a} {direction} with {b} ({stats}) {_cite(result)}."
    elif significant:
        text = f"Only weakly: {a} and {b} are related but the effect is small ({stats}) {_cite(result)}."
    else:
        text = f"No clear monotonic relation between {a} and {b} ({stats}) {_cite(result)}."
    if plan.controls and "raw_effect" in pair:
        text += (f" That is controlling for {', '.join(plan.controls)}; without the control the coefficient is "
                 f"{_q(pair.get('raw_effect'))}.")
    for nm in s.get("non_monotonic") or []:
        if {nm.get("x"), nm.get("y")} == {a, b}:
            text += (f" The dependence is not monotonic: Chatterjee's xi = {_q(nm.get('xi'))} "
                     f"(q = {_q(nm.get('q'))}) {_cite(result)}.")
    return text


def answer_depends_on(plan: QuestionPlan, result: ToolResult) -> str:
    """The columns most related to one column, from a correlate result with a target."""
    s = result.summary
    target = plan.calls[0].arguments["target"]
    pairs = [p for p in s.get("top_pairs") or [] if target in (p.get("x"), p.get("y"))][:3]
    if not pairs:
        return (f"No column is significantly related to {target} ({_q(s.get('pairs_tested'))} pairs tested) "
                f"{_cite(result)}.")
    parts = [f"{p['y'] if p.get('x') == target else p['x']} ({_q(p.get('effect'))}, q = {_q(p.get('q'))})"
             for p in pairs]
    return (f"{target} is most strongly related to {'; '.join(parts)} ({s.get('method', 'spearman')} coefficients, "
            f"{_q(s.get('significant_pairs'))} of {_q(s.get('pairs_tested'))} pairs significant) {_cite(result)}.")


def answer_groups(plan: QuestionPlan, result: ToolResult) -> str:
    """Whether the rows form groups, from a cluster result."""
    s = result.summary
    sizes = s.get("sizes") or []
    head = (f"The {s.get('method', '')} clustering finds {_q(s.get('n_groups'))} groups "
            f"(sizes {', '.join(_q(x) for x in sizes[:8])}; stability {_q(s.get('stability'))}, needed "
            f"{_q(s.get('min_stability'))}) {_cite(result)}.")
    verdict = s.get("verdict")
    if verdict:
        head += f" Verdict: {verdict}" + (f" ({s['reason']})." if s.get("reason") else ".")
    parts = []
    for g in (s.get("groups") or [])[:4]:
        dist = [d for d in (g.get("distinctive") or []) if isinstance(d, dict)][:2]
        feats = ", ".join(f"{d.get('feature', d.get('column'))} {d.get('direction', '')} (median "
                          f"{_q(d.get('median'))} vs {_q(d.get('median_rest'))}; d = {_q(d.get('d'))})"
                          for d in dist)
        if feats:
            parts.append(f"group {g.get('group', '?')} ({_q(g.get('size'))} rows): {feats}")
    if parts:
        head += " " + "; ".join(parts) + "."
    for c in s.get("coincidence") or []:
        if isinstance(c, dict) and c.get("strong"):
            head += (f" The groups coincide with {c.get('column')} (Cramer's V {_q(c.get('cramers_v'))}, adjusted "
                     f"Rand {_q(c.get('adjusted_rand'))}): a known class or a systematic, not a new population.")
    return head


def answer_outliers(plan: QuestionPlan, result: ToolResult) -> str:
    """Which rows are unusual, from an outliers result."""
    s = result.summary
    text = (f"{_q(s.get('n_flagged'))} of {_q(s.get('n_scored'))} rows are flagged as outliers "
            f"({_q(s.get('fraction'))} of rows; method {s.get('method')}"
            + (f", rule: {s['rule']}" if s.get("rule") else "") + f") {_cite(result)}.")
    examples = []
    for ex in (s.get("top_examples") or [])[:3]:
        dev = ex.get("deviant") or []
        detail = ", ".join(f"{d.get('column')} = {_q(d.get('value'))} (z {_q(d.get('robust_z'))})"
                           for d in dev[:2] if isinstance(d, dict))
        if not detail and "residual_sigma" in ex:
            detail = f"{_q(ex.get('residual_sigma'))} sigma off the relation"
        examples.append(f"row {ex.get('row')}" + (f": {detail}" if detail else ""))
    if examples:
        text += " Most unusual: " + "; ".join(examples) + "."
    if s.get("note"):
        text += f" Note: {s['note']}"
    return text


def answer_distribution(plan: QuestionPlan, result: ToolResult) -> str:
    """A column's distribution, from a describe result."""
    entries = result.summary.get("columns") or []
    col = plan.calls[0].arguments["columns"][0]
    e = next((c for c in entries if c.get("name") == col), entries[0] if entries else None)
    if e is None:
        return f"describe returned no profile for {col} {_cite(result)}."
    text = f"{col}: {_q(e.get('n'))} values (missing fraction {_q(e.get('missing'))})"
    if "median" in e:
        text += f"; median {_q(e['median'])}, interquartile range {_q(e.get('iqr'))}"
        q = e.get("q")
        q = list(q) if q is not None and not isinstance(q, (str, dict)) and hasattr(q, "__len__") else []
        if len(q) == 7:  # the 1, 5, 25, 50, 75, 95 and 99th percentiles
            text += f"; 1st-99th percentile {_q(q[0])} to {_q(q[6])}"
        if "skew" in e:
            text += f"; skewness {_q(e['skew'])}"
        if e.get("transform"):
            text += f"; suggested transform {e['transform']}"
    if "levels" in e:
        text += f"; {_q(e['levels'])} levels"
    top = e.get("top")
    if isinstance(top, list) and top:
        text += "; most frequent " + ", ".join(
            f"{t[0]} ({_q(t[1])})" if isinstance(t, (list, tuple)) and len(t) >= 2 else str(t) for t in top[:3])
    if e.get("warnings"):
        text += f"; warnings: {', '.join(map(str, e['warnings']))}"
    return text + f" {_cite(result)}."


def answer_comparison(plan: QuestionPlan, result: ToolResult) -> str:
    """How numeric columns differ across the levels of a categorical, from a compare result."""
    s = result.summary
    shown = s.get("columns") or []
    head = (f"Across the {_q(s.get('n_levels'))} levels of {s.get('by')}, {_q(s.get('n_significant'))} of "
            f"{_q(s.get('n_columns_tested'))} columns differ significantly (Kruskal-Wallis, BH q-values) "
            f"{_cite(result)}.")
    parts = [f"{c['column']}: epsilon squared {_q(c.get('epsilon2'))}, q = {_q(c.get('q_value'))}, most shifted "
             f"level {c.get('most_shifted_level')} ({_q(c.get('shift_sigma'))} sigma)" for c in shown[:3]]
    if parts:
        head += " " + "; ".join(parts) + "."
    for o in (s.get("single_level_offsets") or [])[:2]:
        head += (f" {s.get('by')} = {o.get('level')} alone is offset in {o.get('column')} "
                 f"({_q(o.get('shift_sigma'))} sigma).")
    return head


ANSWERS = {"relation": answer_relation, "depends_on": answer_depends_on, "groups": answer_groups,
           "outliers": answer_outliers, "distribution": answer_distribution, "comparison": answer_comparison}


def compose_answer(plan: QuestionPlan, results: list[ToolResult]) -> str:
    """The answer to a planned question from its tool results (the first carries the answer)."""
    first = results[0]
    if not first.ok:
        return f"The {first.tool} tool could not answer: {first.error} {_cite(first)}"
    text = ANSWERS[plan.form](plan, first)
    figures = [f for r in results if r.ok for f in r.figures]
    if figures:
        text += " Figure" + ("s" if len(figures) > 1 else "") + ": " + ", ".join(figures[:4]) + "."
    return text
