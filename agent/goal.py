"""Reading the user's plain-language goal: which columns it names and what it asks for."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_IGNORE = re.compile(r"\b(ignore|ignoring|exclude|excluding|without|skip|skipping|drop|dropping|not interested in|leave out)\b", re.I)
_CONTROL = re.compile(r"\b(control(?:ling)? for|controlled for|account(?:ing)? for|remove the effect of|"
                      r"correct(?:ing)? for|residuali[sz]e|regress out|at fixed|beyond)\b", re.I)
_FOCUS = re.compile(r"\b(focus(?:ing)? on|especially|in particular|about|around|involving|related to)\b", re.I)
_SPATIAL = re.compile(r"\b(on the sky|sky positions?|positions?|spatial\w*|coordinates?|footprint|"
                      r"where on the sky|angular|clustering on the sky)\b", re.I)
_INTERESTS = {
    "groups": re.compile(r"\b(group|groups|cluster|clusters|clustering|populations?|classes|class|types?|"
                         r"subpopulations?|branches|families|categories)\b", re.I),
    "outliers": re.compile(r"\b(outliers?|anomal\w*|unusual|odd|rare|weird|strange|peculiar)\b", re.I),
    "trends": re.compile(r"\b(trends?|correlat\w*|relations?|relationships?|depend\w*|scaling|sequence|connected)\b",
                         re.I),
}


@dataclass
class GoalIntent:
    """What the goal asks for.

    Attributes:
        focus: Columns the goal names as of interest.
        ignore: Columns to leave out.
        control: Columns whose effect should be removed before looking again.
        interests: Subset of {'trends', 'groups', 'outliers'} the goal asks about (empty = everything).
        spatial: The goal asks about positions on the sky (sky coordinates are then analysed too).
    """

    focus: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    control: list[str] = field(default_factory=list)
    interests: set[str] = field(default_factory=set)
    spatial: bool = False

    def describe(self) -> str:
        """What was understood, in one sentence for the report."""
        parts = []
        if self.focus:
            parts.append("focus on " + ", ".join(self.focus))
        if self.control:
            parts.append("control for " + ", ".join(self.control))
        if self.ignore:
            parts.append("ignore " + ", ".join(self.ignore))
        parts.append("interest in " + (", ".join(sorted(self.interests)) if self.interests
                                        else "trends, groups and outliers alike"))
        return "; ".join(parts)


def _mentions(text: str, columns: list[str]) -> list[tuple[int, str]]:
    """(position, column) for each column named in ``text``, longest names first, no overlaps."""
    found: list[tuple[int, int, str]] = []
    lowered = text.lower()
    for col in sorted(columns, key=len, reverse=True):
        variants = {col.lower(), col.lower().replace("_", " "), col.lower().replace(".", " ")}
        for v in variants:
            if len(v) < 2:
                continue
            for m in re.finditer(r"(?<![\w.])" + re.escape(v) + r"(?![\w])", lowered):
                span = (m.start(), m.end())
                if any(not (span[1] <= a or span[0] >= b) for a, b, _ in found):
                    continue
                found.append((span[0], span[1], col))
    return sorted((a, c) for a, _, c in found)


def parse_goal(goal: str, columns: list[str]) -> GoalIntent:
    """Find named columns and intents in the goal.

    Args:
        goal: The user's goal.
        columns: The table's column names.
    """
    intent = GoalIntent()
    if not goal:
        return intent
    for name, pattern in _INTERESTS.items():
        if pattern.search(goal):
            intent.interests.add(name)
    intent.spatial = bool(_SPATIAL.search(goal))
    for clause in re.split(r"[.;!?\n]|,\s*(?:and|but)?\s*|\bbut\b|\bthen\b", goal):
        if not clause or not clause.strip():
            continue
        mentions = _mentions(clause, columns)
        if not mentions:
            continue
        cues = []
        for kind, pattern in (("ignore", _IGNORE), ("control", _CONTROL), ("focus", _FOCUS)):
            for m in pattern.finditer(clause):
                cues.append((m.start(), kind))
        cues.sort()
        for pos, col in mentions:
            before = [k for p, k in cues if p < pos]
            kind = before[-1] if before else "focus"
            target = getattr(intent, kind)
            if col not in target:
                target.append(col)
    intent.focus = [c for c in intent.focus if c not in intent.ignore and c not in intent.control]
    return intent
