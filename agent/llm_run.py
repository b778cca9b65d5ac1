"""An exploration driven by a chat model: build the model and the prompts, run the loop, and say in the
report what the model did."""

from __future__ import annotations

from langchain_core.messages import HumanMessage, SystemMessage

from serendip.agent.headline_figures import draw_after_model
from serendip.agent.loop import AgentLoop, LoopLimits
from serendip.agent.models import build_chat_model
from serendip.agent.outcome import RunOutcome
from serendip.agent.prompts import system_prompt, task_prompt
from serendip.agent.report import keeps_only_recorded
from serendip.agent.run_status import judge_progress
from serendip.agent.tool_profiles import profile_schemas, resolve_profile, schema_size
from serendip.agent.settings import SettingsError
from serendip.agent.summary_rewrite import SummaryWriter
from serendip.tools.engine.jsonsafe import SUMMARY_LIMIT
from serendip.tools.engine.mdtext import code

COMPACT_RESULT_CHARS = 1500
"""Characters of a tool result's summary that a small local model sees (about 400 tokens): measured with
Qwen2.5-Coder-1.5B in an 8,192-token context, ten results of the full 6,000 characters overflowed it (12,168
tokens) by the third turn. The full results are in the report either way."""


def run_llm(cfg, dispatcher, dataset: dict, transcript, progress, resume: bool = False, chat_model=None,
            limits: LoopLimits | None = None, task: str | None = None, draw_figures: bool = True) -> RunOutcome:
    """Let a chat model drive the tools until it finishes or a limit is reached, then draw the headline figures
    the model did not (the report's own plot calls) and leave the outcome a writer for the summary's rewrite.

    Args:
        cfg: The run's :class:`~serendip.agent.explore.ExploreConfig` (goal and settings).
        dispatcher: Runs tool calls and keeps the ledger.
        dataset: The table overview (n_rows, n_columns, columns with roles and units, warnings).
        transcript: The run's transcript.
        progress: Progress display.
        resume: Rebuild the conversation from the transcript of an interrupted attempt and go on.
        chat_model: A LangChain chat model to use instead of building one from ``cfg``.
        limits: Loop limits and retry policy (default: from ``cfg``).
        task: The first user message (default: the goal and the table overview).
        draw_figures: Draw the missing headline figures after the loop (a hybrid run draws them itself, once
            it has counted the model's own calls).

    Returns:
        The outcome, with notes for the report.
    """
    name = cfg.model
    settings = cfg.settings.for_endpoint()
    if chat_model is None:
        try:
            chat_model = build_chat_model(settings)
        except SettingsError as exc:
            return RunOutcome(status="error", reason=str(exc))
    limits = limits or LoopLimits.from_settings(settings)
    # the tool profile (compact for small local models) and tool_choice
    profile = resolve_profile(settings.tool_profile, settings.base_url)
    from serendip.agent.agent_tools import agent_tool_schemas

    full_sandbox, full_agent = list(dispatcher.runner.tool_schemas()), agent_tool_schemas()
    tool_choice = None if settings.tool_choice == "off" else settings.tool_choice
    small = profile == "compact"  # a small local model: short prompt, bounded results, padding cut
    loop = AgentLoop(chat_model, dispatcher, transcript, limits, progress, tool_choice=tool_choice,
                     schemas=profile_schemas(profile, full_sandbox), agent_schemas=profile_schemas(profile, full_agent),
                     cut_padding=small, result_chars=COMPACT_RESULT_CHARS if small else SUMMARY_LIMIT)
    records = transcript.records() if resume else []
    first_result = len(dispatcher.ledger.results)  # a hybrid run's systematic pass came before
    if any(r.get("type") == "message" for r in records):
        outcome = loop.resume(records)
    else:
        thresholds = getattr(cfg, "thresholds", None) or getattr(dispatcher.ledger, "thresholds", None)
        outcome = loop.run([SystemMessage(system_prompt(sorted(loop.sandbox_tools), thresholds, limits.max_steps,
                                                          compact=small)),
                            HumanMessage(task if task is not None else task_prompt(dataset, cfg.goal))])
    outcome.planner = "llm"
    outcome = judge_progress(outcome, dispatcher.ledger, loop.last_model_text)
    outcome.stats = llm_stats(loop, profile, full_sandbox + full_agent, settings)
    outcome.notes = run_notes(name, outcome, dispatcher, resumed=resume, first_result=first_result)
    if outcome.stats["text_calls_recovered"]:
        outcome.notes.append(f"The model wrote {outcome.stats['text_calls_recovered']} tool calls as text in its "
                             "messages; they were read from the text, validated like native calls and run, and the "
                             "model was told to use the native format.")
    if loop.replies_cut:
        outcome.notes.append(f"{loop.replies_cut} of the model's replies were cut once they held a complete call "
                             "followed only by blank padding (the server was told to stop generating).")
    outcome.controlled = controls(dispatcher.ledger, first_result)
    if draw_figures:  # issue 17: a figure for every headline, whoever planned the run
        only_recorded = keeps_only_recorded(dispatcher.ledger, "llm", outcome.status)
        outcome.notes += draw_after_model(dispatcher, progress, outcome.status, loop.steps,
                                          lambda: loop.budget.time_left, only_recorded)
    if settings.summary_rewrite:
        outcome.summary_writer = summary_writer(loop, limits, transcript)
    return outcome


def summary_writer(loop: AgentLoop, limits: LoopLimits, transcript) -> SummaryWriter:
    """Asks the loop's chat model (unbound: no tools) for the summary's rewrite, with the loop's retry policy
    and what is left of its time budget."""
    return SummaryWriter(loop.chat_model, limits.retry_policy(), log=transcript.append,
                         time_left=lambda: loop.budget.time_left, step=loop.steps,
                         client_timeout=loop.adapter.client_timeout)


def llm_stats(loop: AgentLoop, profile: str, full_schemas: list[dict], settings) -> dict:
    """What run.json keeps about the model's side of the run: settings, schema sizes, latencies."""
    recovered = sum(len(r.get("recovered_from_text") or []) for r in loop.transcript.records()
                    if r.get("role") == "assistant")
    return {"tool_profile": profile, "tool_choice": loop.tool_choice or "off",
            "schema_size": schema_size(loop.schemas), "full_schema_size": schema_size(full_schemas),
            "timeout_s": settings.request_timeout, "max_output_tokens": settings.max_output_tokens,
            "max_retries": settings.max_retries,
            "latencies_s": [round(x, 3) for x in loop.latencies], "text_calls_recovered": recovered,
            "replies_cut": loop.replies_cut}


def run_notes(model: str, outcome: RunOutcome, dispatcher, resumed: bool = False, first_result: int = 0) -> list[str]:
    """What the model did, for the report (its own tool calls: those from ``first_result`` on)."""
    ledger = dispatcher.ledger
    own = list(ledger.results.values())[first_result:]
    errors = sum(not r.ok for r in own)
    notes = [f"LLM {model} drove the tools for {outcome.steps} step{'s' if outcome.steps != 1 else ''} "
             f"({len(own)} tool calls, {errors} refused with a fix-it message; {outcome.tokens} tokens)."]
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


def controls(ledger, first_result: int = 0) -> list[str]:
    """What was controlled for: the residualizations and controlled correlations the model ran."""
    out = []
    for rid, r in list(ledger.results.items())[first_result:]:
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
