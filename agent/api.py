"""The public Python API, re-exported as ``serendip.open`` and ``serendip.explore``. Every front-end (the
``serendip explore`` command, notebooks, and the coming chat, ask, web and overnight runners) goes
through it.

- :func:`open` starts a live, sandboxed session on a table (a file path, a pandas DataFrame or an astropy
  Table): call tools one by one, read the findings they propose, write a report. Use it as a context
  manager so that its worker process is stopped.
- :func:`explore` runs a whole exploration (the autopilot, or a chat model driving the tools) exactly as
  the command line does and returns a :class:`Run` pointing at the report.

An in-memory table is written once to a file inside the run folder (Parquet for a DataFrame, FITS for an
astropy Table, keeping units), so that a run is the same whatever door it came through and can be resumed.
"""

from __future__ import annotations

import html
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from serendip.agent.dispatch import Dispatcher
from serendip.agent.explore import ExploreConfig, RunSetupError, default_out_dir, write_outputs
from serendip.agent.explore import explore as _explore
from serendip.agent.ledger import Ledger
from serendip.agent.outcome import RunOutcome
from serendip.agent.settings import Settings
from serendip.agent.transcript import Transcript
from serendip.tools.engine.contracts import Finding, parse_findings_document
from serendip.tools.engine.errors import TableLoadError
from serendip.tools.engine.result import ToolResult

__all__ = ["Analysis", "Run", "RunSetupError", "chat_model", "explore", "open", "table_file"]

INPUT_DIR = ".workspace/input"
API_MODEL = "python-api"
"""The 'model' named in the reports of an interactive session (the caller chose every tool call)."""


def table_file(table: Any, folder: str | Path, name: str = "table") -> Path:
    """A file holding ``table``: the path itself for a path, else the table written into ``folder``.

    Args:
        table: A path (str or Path), a pandas DataFrame or an astropy Table.
        folder: Where to write an in-memory table.
        name: File stem for an in-memory table.

    Raises:
        TypeError: ``table`` is none of these.
    """
    if isinstance(table, (str, Path)):
        return Path(table)
    folder = Path(folder)
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(name))[:60] or "table"
    try:
        import pandas as pd

        if isinstance(table, pd.DataFrame):
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{stem}.parquet"
            frame = table.copy()
            frame.columns = [str(c) for c in frame.columns]
            for column in frame.columns[frame.dtypes == object]:
                # Mixed cells (numbers beside limits such as '<2.0' or codes) cannot be one Parquet type: keep
                # them as text, which the loader reads exactly as it reads a CSV cell.
                values = frame[column]
                if values.map(type).nunique(dropna=True) > 1:
                    frame[column] = values.map(lambda v: v if v is None or (isinstance(v, float) and v != v)
                                               else str(v))
            frame.to_parquet(path, index=False)
            return path
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    from astropy.table import Table as AstropyTable

    if isinstance(table, AstropyTable):
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{stem}.fits"
        table.write(path, format="fits", overwrite=True)
        return path
    raise TypeError(f"serendip takes a file path, a pandas DataFrame or an astropy Table; got {type(table).__name__}")


def chat_model(settings: Settings):
    """The LangChain chat model that ``settings`` describe (for judges and other front-ends that talk to a
    model directly); it does no retries of its own.

    Raises:
        SettingsError: The settings name the autopilot, or a hosted model has no key.
    """
    from serendip.agent.models import build_chat_model

    return build_chat_model(settings.require_key())


# ---------------------------------------------------------------------- a live session
class Analysis:
    """A live, sandboxed session on one table: tools run in a worker process that holds the table.

    Use :func:`open` to make one. Every call is recorded in a transcript and a findings ledger in
    ``workdir``, exactly as in a run, so :meth:`report` writes the same report files.

    Args:
        table: A file path, a pandas DataFrame or an astropy Table.
        workdir: The session's folder (a new temporary folder when None).
        settings: Seed, tool time and memory limits, thresholds (default: resolved from the environment
            and the config file).
        sandbox: Run tools in a separate worker process (True) or in this process (False: no time or
            memory limit; for quick experiments).
        name: File stem used when an in-memory table is written to ``workdir``.
    """

    def __init__(self, table: Any, workdir: str | Path | None = None, settings: Settings | None = None,
                 sandbox: bool = True, name: str = "table") -> None:
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="serendip-"))
        self.settings = settings if settings is not None else Settings.resolve()
        self.sandbox = sandbox
        self.path = table_file(table, self.workdir / INPUT_DIR, name).resolve()
        self.ledger = Ledger(thresholds=self.settings.thresholds)
        self.transcript: Transcript | None = None
        self.dispatcher: Dispatcher | None = None
        self.runner = None
        self.dataset: dict = {}
        self.started = time.time()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "Analysis":
        """Start the worker and load the table.

        Raises:
            RunSetupError: The table cannot be read (one line saying why).
        """
        if self.runner is not None:
            return self
        if not self.path.is_file():
            raise RunSetupError(f"table not found: {self.path}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        s = self.settings
        if self.sandbox:
            from serendip.tools.engine.sandbox import SandboxLimits, WorkerRunner

            runner = WorkerRunner(str(self.path), self.workdir, seed=s.seed, thresholds=s.thresholds,
                                  limits=SandboxLimits(time_limit_s=s.tool_time_limit, memory_limit_mb=s.memory_limit_mb))
        else:
            from serendip.tools.engine.local_runner import LocalRunner

            runner = LocalRunner(str(self.path), self.workdir, seed=s.seed, thresholds=s.thresholds)
        try:
            runner.start()
            self.dataset = runner.table_info()
        except TableLoadError as exc:
            runner.close()
            raise RunSetupError(str(exc)) from None
        self.runner = runner
        self.transcript = Transcript(self.workdir)
        self.transcript.append({"type": "run_start", "resume": False, "model": API_MODEL, "goal": ""})
        self.dispatcher = Dispatcher(runner, self.ledger, self.transcript)
        return self

    def close(self) -> None:
        """Stop the worker (safe to call twice)."""
        runner, self.runner = self.runner, None
        if runner is not None:
            runner.close()

    def __enter__(self) -> "Analysis":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """Process id of the worker (None when stopped or not sandboxed)."""
        return getattr(self.runner, "pid", None)

    # ------------------------------------------------------------------ tools
    def tools(self) -> list[dict]:
        """The tools with their JSON schemas (OpenAI function format)."""
        return list(self.start().runner.tool_schemas())

    def call(self, tool: str, **arguments: Any) -> ToolResult:
        """Run one tool; a call the tool refuses comes back with ``error`` set (``result.ok`` is False).

        Args:
            tool: The tool's name (see :meth:`tools`).
            **arguments: Its arguments.
        """
        self.start()
        return self.dispatcher.call(tool, arguments, step=self.dispatcher.count + 1)

    @property
    def findings(self) -> list[Finding]:
        """The findings so far: candidates of every call, run-wide q-values, thresholds applied, ranked."""
        return self.ledger.typed_findings()

    def report(self, out: str | Path | None = None) -> Path:
        """Write report.md/html, findings.json, rows.csv and run.json; returns the report.html path.

        Args:
            out: The folder (default: the session's folder). Figures and per-row artifacts are copied there.
        """
        self.start()
        out = Path(out) if out is not None else self.workdir
        out.mkdir(parents=True, exist_ok=True)
        if out.resolve() != self.workdir.resolve():
            import shutil

            for sub in ("figures", ".workspace/artifacts"):
                if (self.workdir / sub).is_dir():
                    shutil.copytree(self.workdir / sub, out / sub, dirs_exist_ok=True)
        cfg = ExploreConfig(table=str(self.path), settings=self.settings.replace(model=API_MODEL))
        outcome = RunOutcome(status="completed", steps=self.dispatcher.count,
                             notes=[f"Interactive session: {self.dispatcher.count} tool calls through the Python API."])
        run_info = {"schema": "serendip.run/1", "table": str(self.path), "goal": "", "model": API_MODEL,
                    "seed": self.settings.seed, "config": cfg.public(), "input_sha256": self.dataset.get("sha256", "")}
        write_outputs(out, cfg, self.dataset, self.ledger, outcome, run_info, self.started,
                      Transcript(out) if out.resolve() != self.workdir.resolve() else self.transcript)
        return out / "report.html"

    def __repr__(self) -> str:
        state = "live" if self.runner is not None else "stopped"
        return f"<serendip.Analysis {self.path.name} ({state}, {len(self.ledger.results)} calls)>"


def open(table: Any, *, workdir: str | Path | None = None, settings: Settings | None = None, sandbox: bool = True,
         name: str = "table", **settings_values: Any) -> Analysis:  # noqa: A001 - the public name
    """Open a live, sandboxed session on ``table`` (the worker starts now; close it, or use ``with``).

    Args:
        table: A file path (CSV, TSV, Parquet, Excel, FITS, VOTable), a pandas DataFrame or an astropy Table.
        workdir: The session's folder (a new temporary folder when None).
        settings: The settings to use (default: resolved from the environment and the config file).
        sandbox: Run tools in a worker process (True) or in this process (False).
        name: File stem used when an in-memory table is written to ``workdir``.
        **settings_values: Settings to override (``seed=``, ``tool_time_limit=``, ``memory_limit_mb=``, ...).

    Raises:
        RunSetupError: The table cannot be read.
        SettingsError: A setting is invalid.
    """
    base = settings if settings is not None else Settings.resolve(settings_values)
    if settings is not None and settings_values:
        base = base.replace(**settings_values)
    return Analysis(table, workdir=workdir, settings=base, sandbox=sandbox, name=name).start()


# ---------------------------------------------------------------------- a whole run
class Run:
    """The result of :func:`explore`: the run folder and how the run ended.

    Attributes:
        out_dir: The run folder (report.md/html, findings.json, rows.csv, figures/, transcript.jsonl, run.json).
        outcome: Status, reason, steps, tokens and the planner's notes.
    """

    def __init__(self, out_dir: Path, outcome: RunOutcome) -> None:
        self.out_dir = Path(out_dir)
        self.outcome = outcome

    @property
    def status(self) -> str:
        """completed, step_limit, token_limit, time_limit, interrupted, provider_error or error."""
        return self.outcome.status

    @property
    def reason(self) -> str:
        """Why the run stopped (one line; empty when it completed)."""
        return self.outcome.reason

    @property
    def report_path(self) -> Path:
        """The self-contained HTML report."""
        return self.out_dir / "report.html"

    @property
    def findings(self) -> list[Finding]:
        """The findings of findings.json, validated against the contract."""
        doc = json.loads((self.out_dir / "findings.json").read_text(encoding="utf-8"))
        return parse_findings_document(doc).findings

    def __repr__(self) -> str:
        return f"<serendip.Run {self.status} {self.out_dir}>"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(f.id)}</td><td>{html.escape(f.kind)}</td><td>{html.escape(f.title)}</td>"
            f"<td>{'' if f.score is None else f'{f.score:.2f}'}</td></tr>" for f in self.findings[:20])
        reason = f" &mdash; {html.escape(self.reason)}" if self.reason else ""
        link = html.escape(self.report_path.as_uri() if self.report_path.is_absolute() else str(self.report_path))
        return (f"<div><p><b>serendip run</b>: {html.escape(self.status)}{reason}. "
                f"<a href=\"{link}\">report.html</a></p>"
                f"<table><tr><th>id</th><th>kind</th><th>title</th><th>score</th></tr>{rows}</table></div>")


def explore(table: Any, goal: str = "", *, out: str | Path | None = None, model: str | None = None,
            settings: Settings | None = None, progress=None, resume: bool = False, chat_model=None,
            in_process: bool = False, name: str | None = None, force: bool = False, memory: str | None = None,
            **settings_values: Any) -> Run:
    """Explore ``table`` and write the report: the same run as ``serendip explore``.

    Args:
        table: A file path, a pandas DataFrame or an astropy Table.
        goal: What to look for, in plain language.
        out: The run folder (default: serendip-runs/<table>-<time>).
        model: 'autopilot' (offline) or a chat model name (default: from the environment / config file).
        settings: The settings to use (default: resolved from the environment and the config file).
        progress: A :class:`~serendip.agent.progress.Progress` display (silent when None).
        resume: Continue the interrupted run in ``out``.
        chat_model: A LangChain chat model to drive the tools instead of one built from the settings.
        in_process: Run tools in this process instead of the sandbox worker.
        name: File stem used when an in-memory table is written into the run folder.
        force: On resume, start the folder over when the input table changed since the run started.
        memory: Folder of the knowledge store (your known results, earlier runs' findings); None = the
            shipped known results only, nothing remembered.
        **settings_values: Limits and other settings (``max_steps=``, ``time_limit=``, ``seed=``,
            ``base_url=`` ...).

    Raises:
        RunSetupError: The run could not start (bad table, bad output folder, nothing to resume).
        SettingsError: A setting is invalid, or a hosted model has no key.
    """
    if settings is None:
        settings = Settings.resolve({"model": model, **settings_values})
    elif model is not None or settings_values:
        settings = settings.replace(model=model, **settings_values)
    if chat_model is None:
        settings.require_key()
    label = name or (Path(table).stem if isinstance(table, (str, Path)) else "table")
    out_dir = Path(out) if out else default_out_dir(label)
    path = table_file(table, out_dir / INPUT_DIR, label)
    cfg = ExploreConfig(table=str(path), goal=goal, out=str(out_dir), in_process=in_process, settings=settings,
                        memory=memory)
    outcome, out_dir = _explore(cfg, progress=progress, resume=resume, chat_model=chat_model, force=force)
    return Run(out_dir, outcome)
