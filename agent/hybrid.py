"""Hybrid planning: the autopilot's systematic pass first, then the model reads the ledger, makes follow-up
calls, records or dismisses candidates and writes the closing narrative.

The model starts from the ledger instead of an empty page, so a small model has only judgement left to
do. When it makes no progress (no follow-up call that succeeded, no candidate recorded or dismissed, no
closing summary), or its provider fails, the run falls back to the autopilot's findings and says so; the
report never ends empty because the model did.
"""

from __future__ import annotations

import time

from serendip.agent.headline_figures import draw_after_model
from serendip.agent.loop import candidates_brief
from serendip.agent.outcome import RunOutcome
from serendip.agent.prompts import render, task_prompt

AUTOPILOT_MIN_STEPS = 40  # the systematic pass keeps its own budget; --max-steps bounds the model's turns
MAX_HYBRID_CANDIDATES = 12
MAX_HYBRID_RESULTS = 40
MAX_HYBRID_NOTES = 12


def hybrid_task_prompt(dataset: dict, goal: str, ledger, notes: list[str]) -> str:
    """The table overview and the goal, then what the systematic pass found (bounded)."""
    ranked = [f["candidate"] for f in ledger.final_findings()]
    results = [{"id": r.id, "tool": r.tool, "ok": r.ok} for r in list(ledger.results.values())[-MAX_HYBRID_RESULTS:]]
    ctx = render("hybrid.md.j2", notes=[str(n)[:300] for n in notes[:MAX_HYBRID_NOTES]], results=results,
                 candidates=candidates_brief(ledger, ranked[:MAX_HYBRID_CANDIDATES]),
                 candidates_hidden=max(0, len(ranked) - MAX_HYBRID_CANDIDATES))
    overview = task_prompt(dataset, goal).rsplit("Start by profiling", 1)[0].rstrip()
    return overview + "\n\n" + ctx


def model_progress(ledger, results_before: int, outcome: RunOutcome) -> list[str]:
    """What the model added to the pass: successful follow-ups, decisions, a summary (empty = nothing)."""
    new = list(ledger.results.values())[results_before:]
    done = []
    ok = sum(r.ok for r in new)
    if ok:
        done.append(f"{ok} follow-up tool call{'s' if ok != 1 else ''}")
    decided = [c for c in ledger.candidates.values() if c.status in ("recorded", "dismissed")]
    if decided:
        done.append(f"{len(decided)} candidate{'s' if len(decided) != 1 else ''} recorded or dismissed")
    if outcome.summary:
        done.append("a closing summary")
    return done


def run_hybrid(cfg, dispatcher, dataset: dict, transcript, progress, resume: bool = False,
               chat_model=None) -> RunOutcome:
    """The autopilot's pass, then the model; falls back to the pass when the model makes no progress.

    Args:
        cfg: The run's :class:`~serendip.agent.explore.ExploreConfig`.
        dispatcher: Runs tool calls and keeps the ledger.
        dataset: The table overview.
        transcript: The run's transcript.
        progress: Progress display.
        resume: Continue an interrupted run (the pass is replayed from stored results).
        chat_model: A LangChain chat model to use instead of building one from ``cfg``.
    """
    from serendip.agent.autopilot import Autopilot
    from serendip.agent.llm_run import run_llm

    started = time.monotonic()
    pass_cfg = cfg.with_settings(max_steps=max(cfg.max_steps, AUTOPILOT_MIN_STEPS))
    transcript.append({"type": "phase", "phase": "autopilot_pass"})
    base = Autopilot(dispatcher, dataset, pass_cfg, progress).run()
    base.planner = "hybrid"
    if base.status != "completed":
        base.notes.append("The systematic pass did not complete, so the model was not asked to follow up.")
        return base
    results_before = len(dispatcher.ledger.results)
    left = cfg.time_limit - (time.monotonic() - started)
    model_cfg = cfg.with_settings(time_limit=max(1.0, left))
    transcript.append({"type": "phase", "phase": "model", "results_before": results_before})
    progress.step("the model reads the ledger")
    task = hybrid_task_prompt(dataset, cfg.goal, dispatcher.ledger, base.notes)
    model = run_llm(model_cfg, dispatcher, dataset, transcript, progress, resume=resume, chat_model=chat_model,
                    task=task, draw_figures=False)
    done = model_progress(dispatcher.ledger, results_before, model)
    outcome = RunOutcome(status="completed", steps=base.steps + model.steps, tokens=model.tokens,
                         notes=base.notes + model.notes, controlled=base.controlled + model.controlled,
                         planner="hybrid", stats=model.stats, last_model_text=model.last_model_text,
                         summary_writer=model.summary_writer if model.status != "provider_error" else None)
    if model.status == "interrupted":
        outcome.status, outcome.reason = model.status, model.reason
        return outcome
    # issue 17: after the follow-ups were counted, so that the report's own plot calls are not taken for the model's
    figures = draw_after_model(dispatcher, progress, model.status, model.steps,
                               lambda: cfg.time_limit - (time.monotonic() - started))
    if not done:
        why = model.reason or "it made no follow-up call, decision or summary"
        outcome.fallback = f"the model ({model.status}: {why}) added nothing to the systematic pass."
        outcome.notes.append(f"Fell back to the autopilot: {outcome.fallback}")
    else:
        outcome.summary = model.summary
        if model.status != "completed":
            outcome.status, outcome.reason = model.status, model.reason
        outcome.notes.append(f"The model added {', '.join(done)} to the systematic pass.")
    outcome.notes += figures
    return outcome
