"""The prompts of an LLM run, rendered from the jinja2 templates shipped in ``serendip.prompts``.

Strings from the table (column names, units, load notes, candidate titles) are rendered as JSON with
``<``, ``>``, ``&`` and ``'`` escaped, inside tags, so that no column name can close a section or pass
for an instruction; the system prompt tells the model they are data.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jinja2

from serendip.tools.engine.thresholds import Thresholds

MAX_PROMPT_COLUMNS = 80
MAX_PROMPT_WARNINGS = 20
MAX_OPEN_CANDIDATES = 25
AGENT_TOOL_NAMES = ("record_finding", "dismiss_finding", "finish")


def _load_template(name: str) -> str:
    return resources.files("serendip.prompts").joinpath(name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The template environment: plain text, strict about undefined names, JSON kept readable."""
    env = jinja2.Environment(loader=jinja2.FunctionLoader(_load_template), autoescape=False,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=False)
    env.policies["json.dumps_kwargs"] = {"sort_keys": False, "ensure_ascii": False}
    return env


def render(name: str, **variables) -> str:
    """Render the template ``name`` (e.g. ``system.md.j2``)."""
    return environment().get_template(name).render(**variables).strip() + "\n"


def system_prompt(analysis_tools: list[str], thresholds: Thresholds | None = None, max_steps: int = 40,
                  compact: bool = False) -> str:
    """The method and its rules; ``compact`` gives the short version sent with the compact tool profile (a small
    model given the full method's numbered steps narrates them as text instead of calling tools)."""
    names = [n for n in analysis_tools if n not in AGENT_TOOL_NAMES]
    return render("system_compact.md.j2" if compact else "system.md.j2", analysis_tools=names,
                  thresholds=thresholds or Thresholds(), max_steps=max_steps)


def task_prompt(dataset: dict, goal: str = "", max_columns: int = MAX_PROMPT_COLUMNS) -> str:
    """The goal and an overview of the table (size, columns with roles and units, load notes)."""
    columns = list(dataset.get("columns") or [])
    shown = []
    for c in columns[:max_columns]:
        entry = {"name": str(c.get("name", ""))[:200], "role": c.get("role", "")}
        if c.get("unit"):
            entry["unit"] = str(c["unit"])[:60]
        shown.append(entry)
    roles = Counter(c.get("role", "?") for c in columns)
    warnings = [str(w)[:300] for w in (dataset.get("warnings") or [])]
    return render("task.md.j2", goal=(goal or "").strip(),
                  file_name=Path(str(dataset.get("path") or "table")).name,
                  n_rows=dataset.get("n_rows", 0), n_columns=dataset.get("n_columns", len(columns)),
                  role_counts=sorted(roles.items(), key=lambda kv: -kv[1]), columns=shown,
                  columns_hidden=len(columns) > len(shown), warnings=warnings[:MAX_PROMPT_WARNINGS],
                  warnings_hidden=max(0, len(warnings) - MAX_PROMPT_WARNINGS))


def wrap_up_prompt(reason: str, ledger) -> str:
    """The closing instructions, sent once when the budget is nearly spent."""
    open_c = [c for c in ledger.candidates.values() if c.status == "open"]
    brief = [{"id": c.cid, "kind": c.finding.get("kind"), "title": str(c.finding.get("title", ""))[:160]}
             for c in open_c[-MAX_OPEN_CANDIDATES:]]
    recorded = [c.cid for c in ledger.candidates.values() if c.status == "recorded"]
    return render("report.md.j2", reason=reason, open_candidates=brief,
                  open_hidden=max(0, len(open_c) - MAX_OPEN_CANDIDATES), recorded=recorded)


def reminder_prompt() -> str:
    """Sent after a turn without a tool call."""
    return render("reminder.md.j2")
