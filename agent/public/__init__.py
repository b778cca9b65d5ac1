"""Serendip: an agent that explores a scientific table and reports candidate trends, groups and outliers,
each backed by evidence.

The public API (see the README)::

    import serendip

    with serendip.open(df) as analysis:            # a live, sandboxed session on a table
        r = analysis.call("correlate", columns=["mass", "sfr"])
        analysis.findings                           # typed Finding models
        analysis.report("out/")

    run = serendip.explore("galaxies.fits", goal="what drives star formation?")
    run.status, run.findings, run.report_path

This file is the ``serendip`` package's ``__init__`` (installed from ``agent/public/`` by the package-dir
mapping in pyproject.toml); names are imported on first use so that ``import serendip`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "open": "serendip.agent.api",
    "explore": "serendip.agent.api",
    "Analysis": "serendip.agent.api",
    "Run": "serendip.agent.api",
    "RunSetupError": "serendip.agent.api",
    "chat_model": "serendip.agent.api",
    "Settings": "serendip.agent.settings",
    "SettingsError": "serendip.agent.settings",
    "Finding": "serendip.tools.engine.contracts",
    "ToolResult": "serendip.tools.engine.result",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from serendip.agent.api import Analysis, Run, RunSetupError, chat_model, explore, open  # noqa: F401
    from serendip.agent.settings import Settings, SettingsError  # noqa: F401
    from serendip.tools.engine.contracts import Finding  # noqa: F401
    from serendip.tools.engine.result import ToolResult  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'serendip' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
