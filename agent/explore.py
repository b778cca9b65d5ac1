"""One exploration run: from a table and a goal to the output folder of the contract."""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from serendip.agent.dispatch import Dispatcher
from serendip.agent.knowledge.run_hook import KnowledgeOpenError, apply_novelty, open_knowledge
from serendip.agent.ledger import Ledger
from serendip.agent.outcome import RunOutcome
from serendip.agent.progress import Progress
from serendip.agent.report import keeps_only_recorded, report_findings, write_findings_json, write_rows_csv
from serendip.agent.report_html import markdown_to_html
from serendip.agent.report_md import build_report
from serendip.agent.settings import Settings
from serendip.agent.summary_rewrite import apply_summary_rewrite
from serendip.agent.runlock import LOCK_NAME, FolderBusy, RunLock
from serendip.agent.table_path import RunSetupError, check_table_path  # also imported from here by callers
from serendip.agent.transcript import Transcript
from serendip.tools.engine.errors import TableLoadError
from serendip.tools.engine.thresholds import Thresholds

VERSIONED = ("serendip", "numpy", "pandas", "scipy", "scikit-learn", "umap-learn", "matplotlib", "astropy",
             "openai", "langchain", "langchain-openai")


class ExploreConfig:
    """Everything that defines a run: the table, the goal, the output folder and the run's settings.

    Args:
        table: Path of the input table.
        goal: The user's goal in plain language.
        out: Output folder (a new one named after the table and the time when empty).
        in_process: Run tools in this process instead of the sandbox worker (tests only).
        memory: Folder of the knowledge store (results you added, findings of earlier runs); None = the
            shipped known results only, nothing remembered.
        settings: Model, limits, seed and thresholds (default: :meth:`Settings.defaults`, no environment).
        **overrides: Settings fields to change (``model=``, ``max_steps=``, ...); ``thresholds=`` takes a
            :class:`~serendip.tools.engine.thresholds.Thresholds`.

    The settings' values are readable as attributes (``cfg.model``, ``cfg.seed``, ``cfg.max_steps`` ...).
    """

    def __init__(self, table: str, goal: str = "", out: str = "", in_process: bool = False,
                 settings: Settings | None = None, memory: str | None = None, **overrides) -> None:
        self.table = str(table)
        self.goal = goal or ""
        self.out = str(out or "")
        self.in_process = bool(in_process)
        self.memory = str(memory) if memory else None
        thresholds = overrides.pop("thresholds", None)
        if thresholds is not None:
            overrides.update(q_max=thresholds.q_max, min_effect=thresholds.min_effect,
                             min_stability=thresholds.min_stability)
        base = settings if settings is not None else Settings.defaults()
        self.settings = base.replace(**overrides) if overrides else base

    def __getattr__(self, name: str):
        settings = self.__dict__.get("settings")
        if settings is not None and name in Settings.model_fields and name != "api_key":
            return getattr(settings, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def thresholds(self) -> Thresholds:
        """The reporting thresholds."""
        return self.settings.thresholds

    def with_settings(self, **values) -> "ExploreConfig":
        """A copy of this configuration with some settings changed (``max_steps=``, ``time_limit=`` ...)."""
        return ExploreConfig(self.table, self.goal, self.out, self.in_process,
                             settings=self.settings.replace(**values), memory=self.memory)

    def public(self) -> dict:
        """The configuration as written to run.json (no secrets)."""
        data = {"table": self.table, "goal": self.goal, "out": self.out, "in_process": self.in_process,
                "memory": self.memory, **self.settings.public()}
        data.pop("api_key", None)
        data.pop("api_key_env", None)
        return data


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape results."""
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def default_out_dir(table: str) -> Path:
    """serendip-runs/<table stem>-<UTC time> in the current directory."""
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(table).stem)[:60] or "table"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path("serendip-runs") / f"{stem}-{stamp}"


def make_runner(cfg: ExploreConfig, out: Path, table_path: Path):
    """The tool runner: the sandboxed worker, or in-process for tests."""
    if cfg.in_process:
        from serendip.tools.engine.local_runner import LocalRunner

        return LocalRunner(str(table_path), out, seed=cfg.seed, thresholds=cfg.thresholds)
    from serendip.tools.engine.pool import tool_worker_pool

    return tool_worker_pool(cfg, out, table_path, planned=choose_planner(cfg) in ("autopilot", "hybrid"))


def load_resume(out: Path) -> dict:
    """The run.json of an interrupted run in ``out``."""
    path = out / "run.json"
    if not path.exists():
        raise RunSetupError(f"nothing to resume in {out}: it has no run.json")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise RunSetupError(f"cannot resume {out}: its run.json is unreadable") from None


def explore(cfg: ExploreConfig, progress: Progress | None = None, resume: bool = False,
            chat_model=None, force: bool = False) -> tuple[RunOutcome, Path]:
    """Run one exploration and write every output file, whatever happens.

    Args:
        cfg: The run's configuration.
        progress: Where to report progress (silent when None).
        resume: Continue the interrupted run in ``cfg.out`` (finished tool calls are not recomputed).
        chat_model: A LangChain chat model to use instead of building one from ``cfg`` (tests).
        force: On resume, start the folder over when the input table changed since the run started
            (without it such a resume is refused).

    Returns:
        The outcome and the output folder.

    Raises:
        RunSetupError: The run could not start (bad table, folder in use by a live run, nothing to
            resume, input changed since the resumed run started); nothing useful was written.
    """
    progress = progress or Progress(quiet=True)
    if partitioned(cfg):  # issue 15: a Parquet folder/glob, or a file too big for the budget, goes through Dask
        from serendip.agent.scale.run import explore_partitioned

        return explore_partitioned(cfg, progress=progress, resume=resume, chat_model=chat_model, force=force)
    table_path = check_table_path(cfg.table)
    out = Path(cfg.out) if cfg.out else default_out_dir(cfg.table)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunSetupError(f"cannot create output folder {out}: {exc.strerror}") from None
    lock = RunLock(out)
    try:
        lock.acquire()
    except FolderBusy as exc:
        raise RunSetupError(str(exc)) from None
    except OSError as exc:
        raise RunSetupError(f"cannot lock output folder {out}: {exc.strerror}") from None
    try:
        if resume:
            resume = check_resumable(out, table_path, force)
        elif any(p.name != ".workspace" for p in out.iterdir()):
            raise RunSetupError(f"output folder {out} already holds a run; choose another --out or --resume it")
        return _explore_locked(cfg, out, table_path, progress, resume, chat_model, stale_lock=lock.took_over)
    finally:
        lock.release()


def partitioned(cfg: ExploreConfig) -> bool:
    """Whether the input is a partitioned Parquet dataset to explore through Dask (see :mod:`serendip.agent.scale`)."""
    from serendip.agent.scale.dataset import wants_dask
    from serendip.agent.scale.run import default_budget_mb

    if cfg.__dict__.get("sample_of"):  # the sample of a partitioned run is explored the ordinary way
        return False
    return wants_dask(cfg.table, int(cfg.settings.memory_budget_mb or default_budget_mb()))


def check_resumable(out: Path, table_path: Path, force: bool) -> bool:
    """Whether to resume the run in ``out``: yes when its input is unchanged.

    Returns:
        True to resume; False when the input changed and ``force`` asks to start the folder over (its
        previous outputs are then removed).

    Raises:
        RunSetupError: Nothing to resume, or the input changed since the run started and ``force`` is off.
    """
    previous = load_resume(out)
    recorded = str(previous.get("input_sha256") or "")
    if not recorded:
        return True  # the earlier attempt stopped before it had read the table: nothing of it to trust or lose
    current = file_sha256(table_path)
    if current == recorded:
        return True
    if not force:
        raise RunSetupError(f"cannot resume {out}: the table {table_path.name} changed since that run started "
                            f"(sha256 {recorded[:12]}… then, {current[:12]}… now); rerun with --force to start "
                            "that folder over on the new table")
    clear_run_folder(out)
    return False


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


RUN_OUTPUTS = ("report.md", "report.html", "findings.json", "rows.csv", "transcript.jsonl", "run.json")


def clear_run_folder(out: Path) -> None:
    """Remove a run's own outputs from ``out`` (only the files a run writes; the lock file stays)."""
    for name in RUN_OUTPUTS:
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "figures", ignore_errors=True)
    workspace = out / ".workspace"
    if workspace.is_dir():
        for entry in workspace.iterdir():
            if entry.name in (LOCK_NAME, "input"):  # the lock, and an in-memory table written by the API
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _explore_locked(cfg: ExploreConfig, out: Path, table_path: Path, progress: Progress, resume: bool,
                    chat_model, stale_lock: dict | None = None) -> tuple[RunOutcome, Path]:
    """The run itself, once the folder is locked and checked (``stale_lock``: what a dead run's lock file held)."""
    transcript = Transcript(out)
    stored = transcript.stored_results() if resume else {}
    ledger = Ledger(thresholds=cfg.thresholds)
    started = time.time()
    recorded_sha = str(load_resume(out).get("input_sha256") or "") if resume else ""
    run_info = {"schema": "serendip.run/1", "table": str(table_path), "goal": cfg.goal, "model": cfg.model,
                "base_url": cfg.base_url, "seed": cfg.seed, "config": cfg.public(), "versions": versions(),
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "exit_status": "running",
                "input_sha256": recorded_sha, "steps": 0, "tokens": 0, "wall_time_s": 0.0, "resumed": bool(resume)}
    (out / "run.json").write_text(json.dumps(run_info, indent=2), encoding="utf-8")
    transcript.append({"type": "run_start", "resume": bool(resume), "model": cfg.model, "goal": cfg.goal,
                       **({"stale_lock_taken_over": stale_lock} if stale_lock else {})})

    runner = make_runner(cfg, out, table_path)
    runner.deadline = time.monotonic() + cfg.time_limit  # no tool call may outlive the run's time limit
    outcome = RunOutcome(status="error", reason="the run did not start")
    dispatcher = None
    knowledge = None
    dataset: dict = {"path": str(table_path), "n_rows": 0, "n_columns": 0, "columns": [], "warnings": []}
    # The knowledge store (chromadb) is imported and opened while the worker starts.
    opening = ThreadPoolExecutor(max_workers=1, thread_name_prefix="serendip-knowledge")
    knowledge_future = opening.submit(open_knowledge, cfg.memory)
    opening.shutdown(wait=False)
    try:
        progress.step(f"loading {table_path.name}")
        try:
            runner.start()
            dataset = runner.table_info()
        except TableLoadError as exc:
            raise RunSetupError(str(exc)) from None
        run_info["input_sha256"] = dataset.get("sha256", "")
        progress.done(f"loaded {dataset['n_rows']} rows × {dataset['n_columns']} columns")
        dispatcher = Dispatcher(runner, ledger, transcript, stored)
        try:
            knowledge = dispatcher.knowledge = knowledge_future.result().bind(dataset, cfg.goal)
        except KnowledgeOpenError as exc:
            raise RunSetupError(str(exc)) from None
        try:
            planner = choose_planner(cfg)  # --planner llm|hybrid|autopilot
            if planner == "autopilot":
                from serendip.agent.autopilot import Autopilot

                outcome = Autopilot(dispatcher, dataset, cfg, progress).run()
                if cfg.model != "autopilot":
                    outcome.notes.insert(0, f"Planner autopilot: the model {cfg.model} was not used.")
            elif planner == "hybrid":
                from serendip.agent.hybrid import run_hybrid

                outcome = run_hybrid(cfg, dispatcher, dataset, transcript, progress, resume=resume,
                                     chat_model=chat_model)
            else:
                from serendip.agent.llm_run import run_llm

                outcome = run_llm(cfg, dispatcher, dataset, transcript, progress, resume=resume,
                                  chat_model=chat_model)
        except KeyboardInterrupt:
            outcome = RunOutcome(status="interrupted", reason="interrupted by the user",
                                 steps=dispatcher.last_step)
    except RunSetupError:
        run_info["exit_status"] = "error"
        (out / "run.json").write_text(json.dumps(run_info, indent=2), encoding="utf-8")
        raise
    except Exception as exc:  # a bug or infrastructure failure: keep all finished work, then report it
        outcome = RunOutcome(status="error", reason=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300],
                             steps=dispatcher.last_step if dispatcher is not None else 0)
    finally:
        runner.close()
    write_outputs(out, cfg, dataset, ledger, outcome, run_info, started, transcript, knowledge)
    return outcome, out


def choose_planner(cfg: ExploreConfig) -> str:
    """'autopilot' without a model; else the planner setting (flag, environment, config; default llm)."""
    return "autopilot" if cfg.model == "autopilot" else cfg.settings.planner


def write_outputs(out: Path, cfg: ExploreConfig, dataset: dict, ledger: Ledger, outcome: RunOutcome,
                  run_info: dict, started: float, transcript: Transcript, knowledge=None) -> None:
    """Write findings.json, rows.csv, report.md, report.html and the final run.json."""
    # issue 9: a hybrid run keeps the systematic pass's candidates (less the dismissed ones)
    findings = ledger.final_findings(only_recorded=cfg.model != "autopilot"
                                     and keeps_only_recorded(ledger, outcome.planner, outcome.status))
    findings, novelty_notes = apply_novelty(findings, knowledge, dataset, cfg.goal, out)
    findings = report_findings(findings, ledger)  # issue 17: families, plain names, headline figures
    outcome.notes.extend(novelty_notes)
    if outcome.summary_writer is not None:  # issue 17: the model may rewrite the summary, checked by parsing
        apply_summary_rewrite(outcome, findings, ledger, transcript)
    run_info.update({"exit_status": outcome.status, "reason": outcome.reason, "steps": outcome.steps,
                     "tokens": outcome.tokens, "wall_time_s": round(time.time() - started, 2),
                     "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "n_tool_calls": len(ledger.results), "n_findings": len(findings)})
    if outcome.planner:  # issue 9: the planner, any fallback, and the model side's measurements
        run_info["planner"] = outcome.planner
    if outcome.fallback:
        run_info["fallback"] = outcome.fallback
    if outcome.stats:
        run_info["llm"] = outcome.stats
    if outcome.summary_rewrite:
        run_info["summary_rewrite"] = outcome.summary_rewrite
    ds = {"path": dataset.get("path", cfg.table), "sha256": dataset.get("sha256", ""),
          "n_rows": dataset.get("n_rows", 0), "n_columns": dataset.get("n_columns", 0)}
    write_findings_json(out, findings, ds, {"model": cfg.model, "seed": cfg.seed, "goal": cfg.goal,
                                            "exit_status": outcome.status})
    write_rows_csv(out, findings, int(dataset.get("n_rows", 0) or 0))
    title = Path(dataset.get("path") or cfg.table).name
    md = build_report(title=title, dataset=dataset, goal=cfg.goal, model=cfg.model, outcome=outcome,
                      ledger=ledger, findings=findings, run_info=run_info)
    (out / "report.md").write_text(md, encoding="utf-8")
    (out / "report.html").write_text(markdown_to_html(md, out, f"Serendip report: {title}"), encoding="utf-8")
    (out / "run.json").write_text(json.dumps(run_info, indent=2, default=str), encoding="utf-8")
    transcript.append({"type": "run_end", "status": outcome.status, "reason": outcome.reason,
                       "n_findings": len(findings)})
