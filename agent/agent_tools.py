"""The tools the model uses to shape the report: record or dismiss a candidate, and finish.

They run in the agent (they touch only the findings ledger), but are declared like the sandbox tools: a
typed function with a Google-style docstring, validated by the same registry code, so that a bad call
gets the same kind of fix-it message. A finding can only be recorded by citing a candidate a tool
result proposed: its numbers come from that result, never from the model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from serendip.tools.engine.errors import ToolInputError
from serendip.tools.engine.jsonsafe import dumps, to_jsonable
from serendip.tools.engine.argsize import check_argument_size
from serendip.tools.engine.registry import ToolSpec, build_spec, validate_arguments

_RESULT_ID = re.compile(r"^R\d+$")
_CITED_RESULT = re.compile(r"\bR\d+\b")


@dataclass
class AgentReply:
    """What an agent tool call returns to the loop.

    Attributes:
        content: The text the model sees (JSON).
        ok: False when the call was refused (the model can fix it).
        finished: True when the model asked to end the run.
        summary: The closing summary given to finish.
    """

    content: str
    ok: bool = True
    finished: bool = False
    summary: str = ""


def _candidate(dispatcher, candidate: str):
    cid = candidate.strip().upper()
    ledger = dispatcher.ledger
    if cid in ledger.candidates:
        return ledger.candidates[cid]
    if _RESULT_ID.match(cid):
        proposed = dispatcher.candidate_ids.get(cid)
        if proposed:
            raise ToolInputError(f"{cid} is a tool result id; cite one of the candidate ids it proposed: "
                                 f"{', '.join(proposed)}.")
        raise ToolInputError(f"{cid} is a tool result id and proposed no candidate. Record only candidates "
                             "(ids C1, C2, ...) listed under 'candidates' in a tool result.")
    open_ids = [c.cid for c in ledger.candidates.values() if c.status == "open"][-20:]
    known = ", ".join(open_ids) if open_ids else "none yet (run a tool that proposes candidates first)"
    raise ToolInputError(f"There is no candidate {candidate[:40]!r}. Open candidates: {known}.")


def record_finding(session, candidate: str, interpretation: Annotated[str, Field(min_length=1)],
                   title: str | None = None) -> AgentReply:
    """Record a candidate a tool proposed as a finding of the report, with your reading of it.

    The statistics come from the tool result that proposed the candidate; cite its id (C1, C2, ...),
    never type numbers yourself. Record only what survives the controls you ran, and say which caveats
    remain (selection effects, shared drivers, data quality).

    Args:
        candidate: The candidate id (C1, C2, ...) from the 'candidates' list of a tool result.
        interpretation: What the finding means and its caveats, in a few sentences; cite result ids (R3)
            for the evidence you rely on.
        title: A clearer one-line title (optional; default: the tool's title).
    """
    cand = _candidate(session, candidate)
    cand = session.ledger.record(cand.cid, title=title, note=interpretation)
    f = cand.finding
    passes = session.ledger.passes(f)
    t = session.ledger.thresholds
    reply = {"ok": True, "recorded": cand.cid, "kind": f.get("kind"), "title": f.get("title"),
             "columns": f.get("columns"), "stats": f.get("stats"), "evidence": f.get("evidence")}
    if not passes:
        reply["note"] = (f"This candidate is below the reporting thresholds (q <= {t.q_max}, |effect| >= "
                         f"{t.min_effect}, stability >= {t.min_stability}) and will not appear in the report.")
    return AgentReply(content=dumps(to_jsonable(reply)))


def dismiss_finding(session, candidate: str, reason: Annotated[str, Field(min_length=1)]) -> AgentReply:
    """Set a candidate aside: a systematic (survey, instrument, selection), a known trend, or an artefact.

    A dismissal needs evidence, like a finding: cite the result (R id) of a tool call that shows the
    candidate is not real, other than the result that proposed it (for example compare by the suspected
    field, residualize on the known driver, or cluster with the artefact's column left out).

    Args:
        candidate: The candidate id (C1, C2, ...).
        reason: Why it is not a finding, citing the result ids (R5) that show it.
    """
    cand = _candidate(session, candidate)
    own = {str(e) for e in cand.finding.get("evidence") or []}
    cited = [r for r in dict.fromkeys(_CITED_RESULT.findall(reason.upper())) if r in session.ledger.results]
    if not [r for r in cited if r not in own]:
        # A small model dismissed real outliers as "not unusual" without a look; an unsupported opinion
        # must not remove a candidate that a test supports.
        raise ToolInputError(
            f"{cand.cid} stays open: a dismissal needs evidence. Cite, in 'reason', the result id (R...) of a "
            f"tool call that shows {cand.cid} is a systematic, a known trend or an artefact, other than the "
            f"result that proposed it ({', '.join(sorted(own)) or 'none'}). Run that check first (compare by the "
            "suspected field, residualize on the known driver, ...), or record the candidate.")
    session.ledger.dismiss(cand.cid, reason)
    return AgentReply(content=dumps({"ok": True, "dismissed": cand.cid, "evidence": cited}))


def finish(session, summary: Annotated[str, Field(min_length=1)]) -> AgentReply:
    """End the exploration with a closing summary for the report.

    Call it when the method is done or the budget is nearly spent, after recording the findings you
    stand behind.

    Args:
        summary: What was found and what was controlled for, in a short paragraph, citing finding
            candidates (C ids) and result ids (R ids); no numbers that no tool result holds.
    """
    open_n = sum(c.status == "open" for c in session.ledger.candidates.values())
    return AgentReply(content=dumps({"ok": True, "finished": True, "open_candidates_left": open_n}),
                      finished=True, summary=summary.strip())


def lookup_known(session, columns: Annotated[list[str], Field(min_length=1, max_length=20)]) -> AgentReply:
    """Look up well-established results (with citations) that involve these columns.

    Use it before calling a relation or grouping new: a finding that recovers a known result (the
    star-forming main sequence, the BPT branches, the exoplanet mass-radius relation ...) is labelled
    known in the report. When a known relation is strong, control for it (residualize on its
    'control_for' column) and explore the residuals.

    Args:
        columns: Column names of the table (derived names such as log10_x or resid_y_vs_x are understood).
    """
    from serendip.agent.knowledge.lookup import known_for_columns
    from serendip.agent.knowledge.novelty import Knowledge, TableContext

    knowledge = getattr(session, "knowledge", None) or Knowledge()
    ctx = knowledge.ctx or TableContext(columns=list(columns))
    return AgentReply(content=dumps(to_jsonable(known_for_columns(knowledge, ctx, list(columns)))))


AGENT_TOOLS: dict[str, ToolSpec] = {name: build_spec(func, name) for name, func in
                                    (("record_finding", record_finding), ("dismiss_finding", dismiss_finding),
                                     ("lookup_known", lookup_known), ("finish", finish))}


def agent_tool_schemas() -> list[dict]:
    """OpenAI-format specs of the agent tools."""
    return [spec.openai_tool() for spec in AGENT_TOOLS.values()]


def _known_arguments(spec: ToolSpec, arguments: dict | str | None) -> tuple[dict | str | None, list[str]]:
    """The arguments without parameters the tool does not have, and the names left out.

    Small models add keys of their own to the report tools ('citations', 'evidence'); refusing the whole
    call for them cost a 1.5B model its whole budget. These tools take no number from the model, so an
    extra key can change nothing and is left out with a note. Analysis tools still refuse unknown keys.
    """
    check_argument_size(spec.name, arguments)
    parsed = arguments
    if isinstance(arguments, str) and arguments.strip():
        try:
            parsed = json.loads(arguments)
        except (json.JSONDecodeError, RecursionError):
            return arguments, []  # validation says what is wrong
    if not isinstance(parsed, dict):
        return arguments, []
    fields = spec.arguments.model_fields
    ignored = [str(k) for k in parsed if k not in fields]
    return ({k: v for k, v in parsed.items() if k in fields} if ignored else parsed), ignored


def call_agent_tool(dispatcher, name: str, arguments: dict | str | None) -> AgentReply:
    """Validate and run one agent tool call; a problem the model can fix comes back as an error reply."""
    spec = AGENT_TOOLS[name]
    try:
        known, ignored = _known_arguments(spec, arguments)
        args = validate_arguments(spec, known)
        reply = spec.func(dispatcher, **args)
    except ToolInputError as exc:
        return AgentReply(content=dumps({"tool": name, "ok": False, "error": str(exc)}), ok=False)
    if ignored:
        body = json.loads(reply.content)
        body["ignored_parameters"] = ignored[:10]
        body["note"] = (f"{name} has no parameter {', '.join(repr(k[:40]) for k in ignored[:10])}; it was left out. "
                        f"Parameters: {', '.join(spec.arguments.model_fields)}.")
        reply.content = dumps(body)
    return reply
