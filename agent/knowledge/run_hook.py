"""The knowledge store's part in a run: open it at the start, label and remember findings at the end.

Kept apart from :mod:`serendip.agent.explore` so that the run module only makes two calls.
"""

from __future__ import annotations

from pathlib import Path

from serendip.agent.knowledge.novelty import Knowledge, TableContext, label_findings


class KnowledgeOpenError(RuntimeError):
    """The store folder cannot be used; the message is one line."""


def open_knowledge(memory: str | Path | None) -> Knowledge:
    """The run's knowledge: the shipped pack alone (``memory`` None) or the store in ``memory``.

    Raises:
        KnowledgeOpenError: The folder cannot hold a store (not a folder, unwritable, corrupt).
    """
    from serendip.agent.knowledge.store import StoreError

    if memory and Path(memory).expanduser().exists() and not Path(memory).expanduser().is_dir():
        raise KnowledgeOpenError(f"--memory {memory} is a file, not a folder")
    try:
        return Knowledge.open(memory)
    except StoreError as exc:
        raise KnowledgeOpenError(str(exc)) from None


def apply_novelty(findings: list[dict], knowledge: Knowledge | None, dataset: dict, goal: str,
                  out: Path) -> tuple[list[dict], list[str]]:
    """Label the findings known / seen / candidate, remember them, and say what happened.

    Args:
        findings: The run's final findings.
        knowledge: The run's knowledge (None: the shipped pack, nothing remembered).
        dataset: The table overview.
        goal: The user's goal (context for matching).
        out: The run's output folder (its id in the store).

    Returns:
        The labelled, re-ranked findings and notes for the report.
    """
    knowledge = knowledge or Knowledge()
    ctx = TableContext.from_dataset(dataset, goal)
    run = str(Path(out).resolve())
    labelled = label_findings(findings, knowledge, ctx, run)
    notes = []
    counts = {k: sum(f["novelty"] == k for f in labelled) for k in ("known", "seen", "candidate")}
    notes.append(f"Novelty: {counts['known']} finding(s) recover known results, {counts['seen']} were found by "
                 f"earlier runs, {counts['candidate']} are candidate new findings "
                 f"({len(knowledge.results)} known results checked"
                 + (f"; memory in {knowledge.store.path}" if knowledge.store is not None else
                    "; no memory of earlier runs was used") + ").")
    try:
        knowledge.remember(labelled, ctx, dataset, run)
    except Exception as exc:  # noqa: BLE001 - a store failure must not lose the run's report
        notes.append(f"The findings could not be remembered: {type(exc).__name__}: {str(exc)[:200]}")
    return labelled, notes
