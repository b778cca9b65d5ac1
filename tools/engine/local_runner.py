"""An in-process runner with the same interface as the sandbox's WorkerRunner (for tests and
for tools that are cheap enough not to need isolation)."""

from __future__ import annotations

from pathlib import Path

from serendip.tools.engine.registry import call_tool, load_builtin_tools
from serendip.tools.engine.result import ToolResult
from serendip.tools.engine.session import Session
from serendip.tools.engine.table import Table
from serendip.tools.engine.thresholds import Thresholds
from serendip.tools.engine.overview import table_overview


class LocalRunner:
    """Runs tools in this process on a session built from ``table`` (or loaded from ``table_path``).

    Args:
        table_path: File to load when ``table`` is not given.
        workdir: The run directory.
        seed: Session seed.
        thresholds: Reporting thresholds.
        table: An already loaded table.
    """

    def __init__(self, table_path: str | None, workdir: str | Path, seed: int = 0,
                 thresholds: Thresholds | None = None, table: Table | None = None, **_: object) -> None:
        self.table_path = table_path
        self.workdir = Path(workdir)
        self.seed = seed
        self.thresholds = thresholds
        self.table = table
        self.session: Session | None = None
        self.deadline: float | None = None  # not enforced in-process (tests); the sandbox worker enforces it

    def start(self) -> "LocalRunner":
        """Load the table and open the session."""
        if self.table is None:
            from serendip.tools.loading import load_table

            self.table = load_table(self.table_path)
        self.session = Session(self.table, self.workdir, seed=self.seed, thresholds=self.thresholds)
        return self

    def call(self, name: str, arguments: dict | str | None, result_id: str) -> ToolResult:
        """Run one tool call."""
        if self.session is None:
            self.start()
        self.session.refresh()  # like a sandbox worker: see what other runners of the run wrote
        return call_tool(self.session, name, arguments, result_id=result_id)

    def tool_schemas(self) -> list[dict]:
        """OpenAI-format specs of every registered tool."""
        return [spec.openai_tool() for spec in load_builtin_tools().values()]

    def table_info(self) -> dict:
        """Overview of the loaded table."""
        if self.session is None:
            self.start()
        return table_overview(self.session.table)

    def close(self) -> None:
        """Nothing to stop in-process."""

    def __enter__(self) -> "LocalRunner":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
