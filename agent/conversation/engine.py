"""A live sandboxed session on one table, with the interface of the public API's ``serendip.open``.

Stand-in until the public API (issue 7) lands: ``Analysis`` has exactly the interface that API gives
(``call(tool, **args) -> ToolResult``, ``tools()``, ``findings``, ``report(dir)``, a context manager that
stops its worker), built over the existing pieces: the sandbox worker runner, the Dispatcher (result ids,
transcript, ledger), the findings ledger and the report writers of ``explore``. Swapping it for the real
API means replacing :func:`open_analysis` and this module.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from serendip.agent.dispatch import Dispatcher
from serendip.agent.explore import ExploreConfig, RunSetupError, check_table_path, versions, write_outputs
from serendip.agent.ledger import Ledger
from serendip.agent.outcome import RunOutcome
from serendip.agent.transcript import Transcript
from serendip.tools.engine.errors import TableLoadError
from serendip.tools.engine.result import ToolResult
from serendip.tools.engine.thresholds import Thresholds


class _GuardedRunner:
    """The runner, with a flag saying whether a call is in flight (to recover from Ctrl-C)."""

    def __init__(self, runner) -> None:
        self.runner = runner
        self.busy = False

    def call(self, name, arguments, result_id):
        self.busy = True
        result = self.runner.call(name, arguments, result_id)
        self.busy = False
        return result

    def __getattr__(self, name):
        return getattr(self.runner, name)


class Analysis:
    """A live session on one table: tools run in the sandbox worker, results go to the ledger.

    Args:
        table: Path of the table file.
        workdir: Folder of the session (figures, workspace, transcript, reports).
        seed: Seed for every random choice.
        thresholds: Reporting thresholds.
        tool_time_limit: Wall-clock limit of one tool call in seconds.
        memory_limit_mb: Memory cap of the worker.
        in_process: Run tools in this process (tests only).
        resume: Reload the results of an earlier session in ``workdir`` (ids, candidates, workspace).
        runner_options: Extra keyword arguments of the worker runner (tests: extra tool modules).
    """

    def __init__(self, table: str, workdir: str | Path, *, seed: int = 0, thresholds: Thresholds | None = None,
                 tool_time_limit: float = 600.0, memory_limit_mb: int = 8192, in_process: bool = False,
                 resume: bool = False, runner_options: dict | None = None) -> None:
        self.table_path = check_table_path(table)
        self.workdir = Path(workdir)
        self.cfg = ExploreConfig(table=str(self.table_path), out=str(self.workdir), seed=seed,
                                 tool_time_limit=tool_time_limit, memory_limit_mb=memory_limit_mb,
                                 in_process=in_process, thresholds=thresholds or Thresholds())
        self.resume = resume
        self.runner_options = runner_options or {}
        self.started = time.time()
        self.step = 0
        self.dataset: dict = {}
        self.runner = None
        self.dispatcher: Dispatcher | None = None
        self.ledger = Ledger(thresholds=self.cfg.thresholds)
        self.transcript: Transcript | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "Analysis":
        """Start the worker and load the table.

        Raises:
            RunSetupError: The table cannot be read or the folder cannot be written (one-line message).
        """
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunSetupError(f"cannot create the session folder {self.workdir}: {exc.strerror}") from None
        self.transcript = Transcript(self.workdir)
        self.runner = _GuardedRunner(self._make_runner())
        try:
            self.runner.start()
            self.dataset = self.runner.table_info()
        except TableLoadError as exc:
            self.close()
            raise RunSetupError(str(exc)) from None
        self.dispatcher = Dispatcher(self.runner, self.ledger, self.transcript)
        if self.resume:
            self._reload_results()
        return self

    def _make_runner(self):
        if self.cfg.in_process:
            from serendip.tools.engine.local_runner import LocalRunner

            return LocalRunner(str(self.table_path), self.workdir, seed=self.cfg.seed, thresholds=self.cfg.thresholds)
        from serendip.tools.engine.sandbox import SandboxLimits, WorkerRunner

        limits = SandboxLimits(time_limit_s=self.cfg.tool_time_limit, memory_limit_mb=self.cfg.memory_limit_mb)
        return WorkerRunner(str(self.table_path), self.workdir, seed=self.cfg.seed, limits=limits,
                            thresholds=self.cfg.thresholds, **self.runner_options)

    def _reload_results(self) -> None:
        """Put the stored results of the earlier session back in the ledger, in id order."""
        stored = self.transcript.stored_results()
        for rid in sorted(stored, key=lambda r: int(r[1:]) if r[1:].isdigit() else 0):
            self.dispatcher.candidate_ids[rid] = self.ledger.add_result(stored[rid])
        self.dispatcher.count = len(stored)

    def close(self) -> None:
        """Stop the worker (safe to call twice)."""
        if self.runner is not None:
            self.runner.close()

    def __enter__(self) -> "Analysis":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def recover_from_interrupt(self) -> bool:
        """After Ctrl-C: if a tool call was in flight, restart the worker (the session state is restored
        from the workspace) so that the next call does not read the stopped call's reply. True if restarted."""
        if self.runner is None or not self.runner.busy:
            return False
        self.runner.busy = False
        if hasattr(self.runner.runner, "restart"):
            self.runner.runner.restart()
        return True

    # ------------------------------------------------------------------ the API
    def call(self, tool: str, **arguments) -> ToolResult:
        """Run one tool with validated arguments; a call the caller can fix comes back as an error result.

        Raises:
            ToolCrash: The tool failed unexpectedly (a bug) or the worker cannot run.
        """
        self.step += 1
        return self.dispatcher.call(tool, arguments, self.step)

    def tools(self) -> list[dict]:
        """OpenAI-format schemas of the analysis tools."""
        return list(self.runner.tool_schemas())

    def candidates_of(self, result_id: str) -> list[str]:
        """Ledger ids of the candidate findings a result proposed."""
        return list(self.dispatcher.candidate_ids.get(result_id, []))

    @property
    def findings(self) -> list[dict]:
        """The findings so far: run-wide q-values, thresholds applied, duplicates merged, ranked (recorded
        ones only once some candidate was recorded by a model)."""
        recorded = any(c.status == "recorded" for c in self.ledger.candidates.values())
        return self.ledger.final_findings(only_recorded=recorded)

    def report(self, out_dir: str | Path | None = None, *, goal: str = "", model: str = "none",
               outcome: RunOutcome | None = None) -> Path:
        """Write the report of the session so far (the files of ``serendip explore``) and return its folder.

        Args:
            out_dir: Where to write (default: the session folder). Figures, the per-row artifacts the
                findings refer to and the transcript are copied there.
            goal: The user's goal, for the report.
            model: The model that drove the session ('none' for slash commands and offline answers).
            outcome: How the session stands (default: completed, with a note on the calls made).
        """
        out = Path(out_dir) if out_dir else self.workdir
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunSetupError(f"cannot create the report folder {out}: {exc.strerror}") from None
        if out.resolve() != self.workdir.resolve():
            self._copy_outputs(out)
        cfg = ExploreConfig(**{**self.cfg.__dict__, "out": str(out), "goal": goal, "model": model})
        outcome = outcome or RunOutcome(status="completed", steps=self.step, notes=[
            f"Interactive session: {len(self.ledger.results)} tool calls; "
            f"{len(self.ledger.candidates)} candidates proposed by the tools."])
        run_info = {"schema": "serendip.run/1", "table": str(self.table_path), "goal": goal, "model": model,
                    "base_url": None, "seed": self.cfg.seed, "config": cfg.public(), "versions": versions(),
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(self.started)),
                    "exit_status": "running", "input_sha256": self.dataset.get("sha256", ""), "steps": 0,
                    "tokens": 0, "wall_time_s": 0.0, "resumed": self.resume, "session": "chat"}
        write_outputs(out, cfg, self.dataset, self.ledger, outcome, run_info, self.started, Transcript(out))
        return out

    def _copy_outputs(self, out: Path) -> None:
        src = self.workdir
        if (src / "figures").is_dir():
            shutil.copytree(src / "figures", out / "figures", dirs_exist_ok=True)
        if (src / ".workspace" / "artifacts").is_dir():
            shutil.copytree(src / ".workspace" / "artifacts", out / ".workspace" / "artifacts", dirs_exist_ok=True)
        if (src / "transcript.jsonl").exists():
            shutil.copyfile(src / "transcript.jsonl", out / "transcript.jsonl")


def open_analysis(table: str, workdir: str | Path, **options) -> Analysis:
    """Open a started :class:`Analysis` (the stand-in for ``serendip.open``)."""
    return Analysis(table, workdir, **options).start()


def session_file(workdir: str | Path) -> Path:
    """The saved conversation state of a session folder."""
    return Path(workdir) / "chat.json"


def read_json(path: Path) -> dict:
    """A JSON file as a dict; RunSetupError with one line when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunSetupError(f"nothing to resume in {path.parent}: it has no {path.name}") from None
    except (OSError, json.JSONDecodeError):
        raise RunSetupError(f"cannot resume {path.parent}: its {path.name} is unreadable") from None
    if not isinstance(data, dict):
        raise RunSetupError(f"cannot resume {path.parent}: its {path.name} is not a session")
    return data
