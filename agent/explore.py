"""One exploration run: from a table and a goal to the output folder of the contract."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from serendip.agent.dispatch import Dispatcher
from serendip.agent.ledger import Ledger
from serendip.agent.outcome import RunOutcome
from serendip.agent.progress import Progress
from serendip.agent.report import write_findings_json, write_rows_csv
from serendip.agent.report_html import markdown_to_html
from serendip.agent.report_md import build_report
from serendip.agent.transcript import Transcript
from serendip.tools.errors import TableLoadError
from serendip.tools.thresholds import Thresholds

VERSIONED = ("serendip", "numpy", "pandas", "scipy", "scikit-learn", "umap-learn", "matplotlib", "astropy",
             "openai", "langchain", "langchain-openai")


class RunSetupError(Exception):
    """The run cannot start (bad table, bad output folder, nothing to resume); the message is one line."""


@dataclass
class ExploreConfig:
    """Everything that defines a run.

    Attributes:
        table: Path of the input table.
        goal: The user's goal in plain language.
        out: Output folder (a new one named after the table and the time when empty).
        model: 'autopilot' or a chat model name.
        base_url: OpenAI-compatible endpoint for the model.
        api_key: Key for the endpoint (never written to disk).
        seed: Seed for every random choice.
        max_steps: Most model turns (LLM) or planner steps (autopilot).
        max_tokens: Most tokens a model run may use.
        time_limit: Wall-clock limit of the whole run in seconds.
        tool_time_limit: Wall-clock limit of one tool call in seconds.
        memory_limit_mb: Memory cap of the tool worker.
        in_process: Run tools in this process instead of the sandbox worker (tests only).
        thresholds: Reporting thresholds.
        planner: 'llm', 'hybrid' or 'autopilot' when a model is set (None = from the environment / config,
            default llm). Issue 9 settings, to port into the settings object: planner, timeout,
            max_output_tokens, retries, tool_choice, tool_profile (None = resolved by
            :func:`~serendip.agent.models.resolve_model_config`).
        timeout: Seconds to wait for one model response.
        max_output_tokens: Most tokens of one model reply.
        retries: Retries of a model call that failed transiently.
        tool_choice: 'required', 'auto' or 'off'.
        tool_profile: 'auto', 'full' or 'compact'.
    """

    table: str
    goal: str = ""
    out: str = ""
    model: str = "autopilot"
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    seed: int = 0
    max_steps: int = 40
    max_tokens: int = 1_000_000
    time_limit: float = 3600.0
    tool_time_limit: float = 600.0
    memory_limit_mb: int = 8192
    in_process: bool = False
    thresholds: Thresholds = field(default_factory=Thresholds)
    planner: str | None = None  # issue 9 (this field and the five below)
    timeout: float | None = None
    max_output_tokens: int | None = None
    retries: int | None = None
    tool_choice: str | None = None
    tool_profile: str | None = None

    def public(self) -> dict:
        """The configuration as written to run.json (no secrets)."""
        d = asdict(self)
        d.pop("api_key", None)
        return d


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


def check_table_path(path: str) -> Path:
    """Fail early, in one line, on a table path that cannot be a table."""
    p = Path(path)
    if not p.exists():
        raise RunSetupError(f"table not found: {path}")
    if p.is_dir():
        raise RunSetupError(f"{path} is a directory, not a table file")
    if p.stat().st_size == 0:
        raise RunSetupError(f"{path} is empty")
    return p.resolve()


def make_runner(cfg: ExploreConfig, out: Path, table_path: Path):
    """The tool runner: the sandboxed worker, or in-process for tests."""
    if cfg.in_process:
        from serendip.tools.local_runner import LocalRunner

        return LocalRunner(str(table_path), out, seed=cfg.seed, thresholds=cfg.thresholds)
    from serendip.tools.sandbox import SandboxLimits, WorkerRunner

    limits = SandboxLimits(time_limit_s=cfg.tool_time_limit, memory_limit_mb=cfg.memory_limit_mb)
    return WorkerRunner(str(table_path), out, seed=cfg.seed, limits=limits, thresholds=cfg.thresholds)


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
            chat_model=None) -> tuple[RunOutcome, Path]:
    """Run one exploration and write every output file, whatever happens.

    Args:
        cfg: The run's configuration.
        progress: Where to report progress (silent when None).
        resume: Continue the interrupted run in ``cfg.out`` (finished tool calls are not recomputed).
        chat_model: A LangChain chat model to use instead of building one from ``cfg`` (tests).

    Returns:
        The outcome and the output folder.

    Raises:
        RunSetupError: The run could not start; nothing useful was written.
    """
    progress = progress or Progress(quiet=True)
    table_path = check_table_path(cfg.table)
    out = Path(cfg.out) if cfg.out else default_out_dir(cfg.table)
    if not resume and out.exists() and any(p.name != ".workspace" for p in out.iterdir()):
        raise RunSetupError(f"output folder {out} already holds a run; choose another --out or --resume it")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunSetupError(f"cannot create output folder {out}: {exc.strerror}") from None
    transcript = Transcript(out)
    stored = transcript.stored_results() if resume else {}
    ledger = Ledger(thresholds=cfg.thresholds)
    started = time.time()
    run_info = {"schema": "serendip.run/1", "table": str(table_path), "goal": cfg.goal, "model": cfg.model,
                "base_url": cfg.base_url, "seed": cfg.seed, "config": cfg.public(), "versions": versions(),
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "exit_status": "running",
                "input_sha256": "", "steps": 0, "tokens": 0, "wall_time_s": 0.0, "resumed": bool(resume)}
    (out / "run.json").write_text(json.dumps(run_info, indent=2), encoding="utf-8")
    transcript.append({"type": "run_start", "resume": bool(resume), "model": cfg.model, "goal": cfg.goal})

    runner = make_runner(cfg, out, table_path)
    outcome = RunOutcome(status="error", reason="the run did not start")
    dataset: dict = {"path": str(table_path), "n_rows": 0, "n_columns": 0, "columns": [], "warnings": []}
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
            planner = choose_planner(cfg)  # issue 9: --planner llm|hybrid|autopilot
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
                                 steps=dispatcher.count)
    except RunSetupError:
        run_info["exit_status"] = "error"
        (out / "run.json").write_text(json.dumps(run_info, indent=2), encoding="utf-8")
        raise
    except Exception as exc:  # a bug or infrastructure failure: keep all finished work, then report it
        outcome = RunOutcome(status="error", reason=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300],
                             steps=len(ledger.results))
    finally:
        runner.close()
    write_outputs(out, cfg, dataset, ledger, outcome, run_info, started, transcript)
    return outcome, out


def choose_planner(cfg: ExploreConfig) -> str:
    """'autopilot' without a model; else the planner setting (flag, environment, config; default llm)."""
    if cfg.model == "autopilot":
        return "autopilot"
    if cfg.planner:
        return cfg.planner
    from serendip.agent.models import ModelConfigError, resolve_model_config

    try:
        return resolve_model_config(cfg.model, cfg.base_url, cfg.api_key, require_key=False).planner
    except ModelConfigError:
        return "llm"  # run_llm reports the bad setting as the run's error


def write_outputs(out: Path, cfg: ExploreConfig, dataset: dict, ledger: Ledger, outcome: RunOutcome,
                  run_info: dict, started: float, transcript: Transcript) -> None:
    """Write findings.json, rows.csv, report.md, report.html and the final run.json."""
    # issue 9: a hybrid run keeps the systematic pass's candidates (less the dismissed ones)
    findings = ledger.final_findings(only_recorded=cfg.model != "autopilot" and outcome.planner == "llm"
                                     and outcome.status != "error"
                                     and any(c.status == "recorded" for c in ledger.candidates.values()))
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
