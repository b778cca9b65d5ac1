"""The autopilot's step for known results: control for strong known relations, explore the residuals.

A known relation found among the first correlations (e.g. the star-forming main sequence) is true but
not new; what it does not explain may be. For up to :data:`MAX_CONTROLLED` of the strongest, the
dependent column is residualized on the relation's driver and the residual is correlated with the
other columns. "Strong" is Cohen's large effect, |rho| >= 0.5 (a quarter of the rank variance).
"""

from __future__ import annotations

STRONG_EFFECT = 0.5
MAX_CONTROLLED = 2


def control_known_relations(pilot, correlations, columns: list[str]) -> list[str]:
    """Residualize strong known relations found by ``correlations`` and correlate the residuals.

    Args:
        pilot: The running :class:`~serendip.agent.autopilot.Autopilot` (its ``call``, ``note``,
            ``control_for`` and dispatcher's ``knowledge`` are used).
        correlations: The ``correlate`` result over ``columns``.
        columns: The analysed columns.

    Returns:
        The residual columns made.
    """
    knowledge = getattr(pilot.d, "knowledge", None)
    ctx = getattr(knowledge, "ctx", None)
    if knowledge is None or ctx is None or not correlations.ok:
        return []
    q_max = pilot.cfg.thresholds.q_max
    strong = []
    for f in correlations.findings:
        s = f.get("stats") or {}
        effect, q = s.get("effect"), s.get("q_value")
        if f.get("kind") != "trend" or effect is None or q is None or q > q_max or abs(effect) < STRONG_EFFECT:
            continue
        if s.get("controls"):
            continue
        agree = [m for m in knowledge.matches(f, ctx) if not m.contradicts and m.result.x]
        if agree:
            strong.append((abs(effect), f, agree[0]))
    made, done = [], set()
    for _, f, match in sorted(strong, key=lambda t: -t[0]):
        if len(done) >= MAX_CONTROLLED:
            break
        cols = list(f.get("columns") or [])[:2]
        x_col = next((c for c in cols if match.columns.get(_base(c, ctx)) == match.result.x), None)
        y_col = next((c for c in cols if c != x_col), None)
        if not x_col or not y_col or y_col in done or y_col not in columns:
            continue
        done.add(y_col)
        r = match.result
        resid = pilot.control_for([x_col], [y_col], reason=f"{y_col} follows a known relation, the {r.name} "
                                  f"({r.citation}); its residuals show what that relation does not explain "
                                  f"(evidence {correlations.id})")
        if resid == [y_col]:
            continue
        others = [c for c in columns if c not in (x_col, y_col)]
        if others:
            res = pilot.call("correlate", columns=resid + others, target=resid[0])
            pilot.note(f"Controlled for the known {r.name} between {x_col} and {y_col}: the residuals of {y_col} "
                       f"were correlated with the other columns (evidence {res.id}).")
        made += resid
    return made


def _base(column: str, ctx) -> str:
    from serendip.agent.knowledge.quantities import split_derived

    return split_derived(column, ctx.columns)[0]
