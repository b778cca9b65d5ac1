"""An exploration driven by a chat model: build the model and the prompts, run the loop, and say in the
report what the model did."""

from __future__ import annotations

from langchain_core.messages import HumanMessage, SystemMessage

from serendip.agent.loop import AgentLoop, LoopLimits
from serendip.agent.models import build_chat_model
from serendip.agent.outcome import RunOutcome
from serendip.agent.prompts import system_prompt, task_prompt
from serendip.agent.settings import SettingsError
from serendip.tools.mdtext import code


def run_llm(cfg, dispatcher, dataset: dict, transcript, progress, resume: bool = False, chat_model=None,
            limits: LoopLimits | None = None) -> RunOutcome:
    """Let a chat model drive the tools until it finishes or a limit is reached.

    Args:
        cfg: The run's :class:`~serendip.agent.explore.ExploreConfig` (goal and settings).
        dispatcher: Runs tool calls and keeps the ledger.
        dataset: The table overview (n_rows, n_columns, columns with roles and units, warnings).
        transcript: The run's transcript.
        progress: Progress display.
        resume: Rebuild the conversation from the transcript of an interrupted attempt and go on.
        chat_model: A LangChain chat model to use instead of building one from ``cfg``.
        limits: Loop limits and retry policy (default: from ``cfg``).

    Returns:
        The outcome, with notes for the report.
    """
    name = cfg.model
    if chat_model is None:
        try:
            chat_model = build_chat_model(cfg.settings)
        except SettingsError as exc:
            return RunOutcome(status="error", reason=str(exc))
    limits = limits or LoopLimits.from_settings(cfg.settings)
    loop = AgentLoop(chat_model, dispatcher, transcript, limits, progress)
    records = transcript.records() if resume else []
    if any(r.get("type") == "message" for r in records):
        outcome = loop.resume(records)
    else:
        thresholds = getattr(cfg, "thresholds", None) or getattr(dispatcher.ledger, "thresholds", None)
        outcome = loop.run([SystemMessage(system_prompt(sorted(loop.sandbox_tools), thresholds, limits.max_steps)),
                            HumanMessage(task_prompt(dataset, cfg.goal))])
    outcome.notes = run_notes(name, outcome, dispatcher, resumed=resume)
    outcome.controlled = controls(dispatcher.ledger)
    return outcome


def run_notes(model: str, outcome: RunOutcome, dispatcher, resumed: bool = False) -> list[str]:
    """What the model did, for the report."""
    ledger = dispatcher.ledger
    errors = sum(not r.ok for r in ledger.results.values())
    notes = [f"LLM {model} drove the tools for {outcome.steps} step{'s' if outcome.steps != 1 else ''} "
             f"({len(ledger.results)} tool calls, {errors} refused with a fix-it message; {outcome.tokens} tokens)."]
    if resumed and dispatcher.replayed:
        notes.append(f"Resumed an interrupted run: {dispatcher.replayed} finished tool calls were replayed "
                     "from their stored results.")
    statuses = [c.status for c in ledger.candidates.values()]
    plural = "s" if len(statuses) != 1 else ""
    notes.append(f"Tools proposed {len(statuses)} candidate{plural}; the model recorded {statuses.count('recorded')} "
                 f"and dismissed {statuses.count('dismissed')}.")
    for c in ledger.candidates.values():
        if c.status == "dismissed":
            notes.append(f"Dismissed {c.cid} ({str(c.finding.get('title', ''))[:120]}): {c.reason[:300]}")
    return notes


def controls(ledger) -> list[str]:
    """What was controlled for: the residualizations and controlled correlations the model ran."""
    out = []
    for rid, r in ledger.results.items():
        if not r.ok:
            continue
        args = r.arguments or {}
        if r.tool == "residualize":
            ys, xs = (args.get(k) or [] for k in ("y", "x"))
            ys, xs = ([v] if isinstance(v, str) else list(v) for v in (ys, xs))
            out.append(f"{rid}: {', '.join(code(y) for y in ys)} residualized on {', '.join(code(x) for x in xs)} "
                       f"({args.get('method', 'robust_linear')}).")
        else:
            ctrl = args.get("control") or args.get("controls")
            if ctrl:
                ctrl = [ctrl] if isinstance(ctrl, str) else list(ctrl)
                out.append(f"{rid}: {r.tool} controlled for {', '.join(code(c) for c in ctrl)}.")
    return out
