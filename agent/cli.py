"""The ``serendip`` command line: explore, demo, config, schema, bench (and eval).

Every run option is a setting (:class:`~serendip.agent.settings.Settings`): a flag left out falls back to the
environment, the config file, then the default; ``serendip config show`` prints the effective values and
where each came from. ``explore`` and ``demo`` go through the public API (:func:`serendip.agent.api.explore`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_RUN_INCOMPLETE = 1
EXIT_BAD_INPUT = 2
EXIT_NO_PROGRESS = 3  # issue 9: the model ran but no analysis tool succeeded


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that runs an exploration."""
    p.add_argument("--goal", default="", help="what to look for, in plain language")
    p.add_argument("--out", default="", help="output folder (default: serendip-runs/<table>-<time>)")
    p.add_argument("--model", default=None,
                   help="'autopilot' (offline, the default when no model is configured) or a chat model name")
    p.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint (Ollama, vLLM, llama.cpp, ...)")
    _add_setting_options(p)
    p.add_argument("--quiet", action="store_true", help="print only the result line")
    p.add_argument("--memory", default=None, metavar="DIR",
                   help="knowledge store: your known results and earlier runs' findings (default: $SERENDIP_MEMORY "
                        "or the user data directory; 'none' = shipped known results only, nothing remembered)")


def on_off(text: str) -> bool:
    """A switch given on the command line: on/off, true/false, yes/no or 1/0."""
    value = text.strip().lower()
    if value in ("on", "true", "yes", "1"):
        return True
    if value in ("off", "false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")


SETTING_FLAGS = {
    "seed": ("--seed", int, "random seed (default 0)"),
    "max_steps": ("--max-steps", int, "most model turns / planner steps (default 40)"),
    "max_tokens": ("--max-tokens", int, "most tokens a model run may use (default 1,000,000)"),
    "time_limit": ("--time-limit", float, "wall-clock limit of the run in seconds (default 3600)"),
    "tool_time_limit": ("--tool-time-limit", float, "wall-clock limit of one tool call in seconds (default 600)"),
    "memory_limit_mb": ("--memory-limit", int, "memory cap of the tool worker in MB (default 8192)"),
    "request_timeout": ("--request-timeout", float, "seconds to wait for one model response (default 120; 600 on loopback)"),
    "max_output_tokens": ("--max-output-tokens", int, "most tokens in one model reply (default: the server's; 512 on loopback)"),
    "max_retries": ("--max-retries", int, "attempts per model call on provider faults (default 5; 2 on loopback)"),
    "planner": ("--planner", str, "with a model: llm (the model plans), hybrid (the autopilot's pass first, then "
                                  "the model follows up; falls back to the pass) or autopilot (default llm)"),
    "memory_budget_mb": ("--memory-budget", int, "MiB for a partitioned Parquet dataset (folder or glob): sizes the "
                                                 "sample the tools run on and the local Dask workers (default: a "
                                                 "quarter of the machine's memory)"),
    "sample_rows": ("--sample-rows", int, "for a partitioned Parquet dataset: rows of the seeded sample the models "
                                          "are fitted on, e.g. for a quick first look (default: what the memory "
                                          "budget holds)"),
    "cluster": ("--cluster", str, "Dask scheduler address for a partitioned Parquet dataset (default: a "
                                  "LocalCluster sized to the machine)"),
    "tool_choice": ("--tool-choice", str, "tool_choice sent to the server: required, auto or off (default required)"),
    "summary_rewrite": ("--summary-rewrite", on_off, "with a model: on lets it rewrite the report's opening summary "
                                                       "once, every number checked; off keeps the template (default on)"),
    "tool_profile": ("--tool-profile", str, "tool schemas shown to the model: auto, full or compact (default auto: "
                                            "compact on a loopback endpoint)"),
}
"""Settings that have a command-line flag: field -> (flag, type, help). ``--model`` and ``--base-url`` too."""


def _add_setting_options(p: argparse.ArgumentParser) -> None:
    for field, (flag, kind, text) in SETTING_FLAGS.items():
        p.add_argument(flag, dest=field, type=kind, default=None, help=text)


def setting_flags(args: argparse.Namespace) -> dict:
    """The settings given as flags (None when left out)."""
    out = {field: getattr(args, field, None) for field in SETTING_FLAGS}
    out["model"] = getattr(args, "model", None)
    out["base_url"] = getattr(args, "base_url", None)
    return out


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="serendip", description=(
        "Explore a scientific table and report candidate trends, groups and outliers, each backed by evidence."))
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")

    ex = sub.add_parser("explore", help="explore a table (CSV, TSV, Parquet, Excel, FITS, VOTable)")
    ex.add_argument("table", nargs="?", help="the table file")
    ex.add_argument("--resume", default=None, metavar="DIR", help="continue the interrupted run in DIR")
    ex.add_argument("--force", action="store_true",
                    help="with --resume: start DIR over when the table changed since that run started")
    _add_run_options(ex)

    demo = sub.add_parser("demo", help="make the example table and explore it offline")
    demo.add_argument("--rows", type=int, default=3000, help="rows in the example table (default 3000)")
    _add_run_options(demo)

    config = sub.add_parser("config", help="show the effective settings and where each came from")
    config.add_argument("action", choices=["show"], help="show: print every setting, its value and its source")
    config.add_argument("--model", default=None, help="as for explore")
    config.add_argument("--base-url", default=None, help="as for explore")
    _add_setting_options(config)

    sub.add_parser("schema", help="print the JSON Schema of findings.json")

    night = sub.add_parser("overnight", help="run a plan of many explorations unattended and write a ranked digest")
    night.add_argument("plan", help="the plan (TOML); the smallest is one line: tables = [\"a.csv\", \"survey/*.fits\"]")
    night.add_argument("--out", default=None, help="output folder (default: serendip-overnight/<plan name>)")
    night.add_argument("--jobs", type=int, default=None, help="runs at a time (default 1, or the cluster's threads)")
    night.add_argument("--redo", action="store_true", help="redo finished runs instead of skipping them")
    night.add_argument("--cluster", default=None, metavar="ADDRESS", help="send runs to this Dask scheduler")
    night.add_argument("--quiet", action="store_true", help="print only the result line")
    night.add_argument("--memory", default=None, metavar="DIR",
                       help="knowledge store telling known and earlier-seen candidates from new ones (default: the "
                            "plan's 'memory', else the one serendip explore uses; 'none' = nothing remembered)")

    chat = sub.add_parser("chat", help="talk with the agent about a table in the terminal (slash commands: /help)")
    chat.add_argument("table", nargs="?", help="the table file (or /load it in the chat)")
    chat.add_argument("--resume", default=None, metavar="DIR", help="continue the chat session saved in DIR")
    _add_run_options(chat)

    ask = sub.add_parser("ask", help="ask one question about a table and print the answer")
    ask.add_argument("table", help="the table file")
    ask.add_argument("question", help="the question, in plain words")
    ask.add_argument("--json", action="store_true", help="print {answer, findings, evidence, figures} as JSON")
    _add_run_options(ask)

    serve = sub.add_parser("serve", help="a web page to upload tables, ask about them and read the reports")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other needs a token)")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    serve.add_argument("--data-dir", default="serendip-web", help="where uploads, sessions and runs are kept")
    serve.add_argument("--token", default=None, help="token clients must show (generated when binding off-loopback)")
    serve.add_argument("--max-upload-mb", type=float, default=1024.0, help="largest upload in MB (default 1024)")
    serve.add_argument("--max-workers", type=int, default=4, help="most analysis workers at once (default 4)")
    serve.add_argument("--idle-timeout", type=float, default=900.0, help="stop a session's worker after this many idle seconds")
    _add_run_options(serve)

    sub.add_parser("bench", help="time every tool on synthetic tables (serendip bench --help)")
    sub.add_parser("eval", help="score the agent against known results (serendip eval --help)")
    sub.add_parser("known", help="list, add or remove known results (serendip known --help)")
    return parser


def fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    """Print a one-line error and return the exit code."""
    print(f"serendip: error: {message}", file=sys.stderr)
    return code


def run_explore(args: argparse.Namespace, table: str, resume_dir: str | None = None) -> int:
    """Resolve the model, run the exploration, print where the report is."""
    from serendip.agent.table_path import missing_input

    if resume_dir is None and table and missing_input(table):  # before the analysis stack is imported
        return fail(missing_input(table))
    from serendip.tools.engine.sandbox import start_worker_server

    start_worker_server()  # its imports run while this process imports the agent
    from serendip.agent.api import explore
    from serendip.agent.explore import RunSetupError, load_resume
    from serendip.agent.progress import Progress
    from serendip.agent.settings import Settings, SettingsError

    resume = resume_dir is not None
    flags = setting_flags(args)
    goal, out = args.goal, args.out
    if resume:
        try:
            previous = load_resume(Path(resume_dir))
        except RunSetupError as exc:
            return fail(str(exc))
        table = previous.get("table") or table
        goal = previous.get("goal", goal) or ""
        flags["seed"] = int(previous.get("seed", flags["seed"] or 0))
        flags["model"] = flags["model"] or previous.get("model")
        flags["base_url"] = flags["base_url"] or previous.get("base_url")
        out = resume_dir
    if not table:
        return fail("no table given: serendip explore TABLE [--goal TEXT]")
    try:
        settings = Settings.resolve(flags).require_key()
    except SettingsError as exc:
        return fail(str(exc))
    progress = Progress(quiet=args.quiet)
    try:
        with progress:
            run = explore(table, goal=goal, out=out or None, settings=settings, progress=progress, resume=resume,
                          force=getattr(args, "force", False), memory=memory_dir(args.memory))
    except RunSetupError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_RUN_INCOMPLETE)
    outcome, out_dir = run.outcome, run.out_dir
    report = run.report_path
    if outcome.fallback:
        print(f"serendip: warning: fell back to the autopilot: {outcome.fallback}", file=sys.stderr)
    if outcome.status == "no_progress":
        print(f"Report (no analysis was done): {report}", file=sys.stderr)
        return fail(f"run ended with status no_progress: {outcome.reason}", EXIT_NO_PROGRESS)
    if outcome.status == "completed":
        print(f"Report: {report}  (also report.md, findings.json, rows.csv in {out_dir})")
        return EXIT_OK
    print(f"Report (partial): {report}", file=sys.stderr)
    return fail(f"run ended with status {outcome.status}: {outcome.reason}. Resume with "
                f"--resume {out_dir}" if outcome.status in ("interrupted", "time_limit", "step_limit", "token_limit")
                else f"run ended with status {outcome.status}: {outcome.reason}", EXIT_RUN_INCOMPLETE)


def memory_dir(flag: str | None) -> str | None:
    """The knowledge store folder of a run: the flag, else the default; None for 'none'."""
    if flag is not None and flag.strip().lower() in ("none", "off", ""):
        return None
    if flag:
        return flag
    from serendip.agent.knowledge.store import default_memory_dir

    return str(default_memory_dir())


def run_demo(args: argparse.Namespace) -> int:
    """Write the example table next to the run and explore it."""
    from serendip.tools.synthetic import write_example_table

    out = Path(args.out) if args.out else None
    base = out.parent if out else Path("serendip-runs")
    base.mkdir(parents=True, exist_ok=True)
    table = write_example_table(base / "example_galaxy_regions.csv", n_rows=args.rows, seed=args.seed or 0)
    if not args.quiet:
        print(f"Example table: {table}", file=sys.stderr)
    if not args.goal:
        args.goal = "find something new and exciting"
    return run_explore(args, str(table))


def run_config(args: argparse.Namespace) -> int:
    """``serendip config show``: every setting, its effective value and where it came from (key masked)."""
    from serendip.agent.settings import Settings, SettingsError, config_path, show

    try:
        settings = Settings.resolve(setting_flags(args))
    except SettingsError as exc:
        return fail(str(exc))
    print(f"# config file: {config_path()}{'' if config_path().exists() else ' (absent)'}")
    print(show(settings))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``serendip`` command."""
    os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "serendip", "numba"))
    argv = sys.argv[1:] if argv is None else list(argv)
    # bench and eval own their options: hand them everything after the subcommand untouched.
    if argv[:1] == ["bench"]:
        from serendip.evals.bench import main as bench_main

        return bench_main(argv[1:])
    if argv[:1] == ["eval"]:
        from serendip.evals.runner import main as eval_main

        return eval_main(argv[1:])
    if argv[:1] == ["known"]:
        from serendip.agent.knowledge.cli_known import main as known_main

        return known_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from importlib.metadata import version

        print(f"serendip {version('serendip')}")
        return EXIT_OK
    if args.command == "explore":
        return run_explore(args, args.table, resume_dir=args.resume)
    if args.command == "demo":
        return run_demo(args)
    if args.command == "config":
        return run_config(args)
    if args.command == "schema":
        import json

        from serendip.tools.engine.contracts import findings_json_schema

        try:
            print(json.dumps(findings_json_schema(), indent=2))
        except BrokenPipeError:  # piped into head: not an error
            sys.stderr.close()
        return EXIT_OK

    if args.command == "overnight":
        from serendip.agent.overnight.night import run_night

        return run_night(args.plan, out=args.out, jobs=args.jobs, redo=args.redo, cluster=args.cluster,
                         quiet=args.quiet, memory=args.memory)

    if args.command in ("chat", "ask"):
        from serendip.agent.table_path import RunSetupError, check_table_path

        if args.table and not getattr(args, "resume", None):
            try:  # before the analysis stack is imported: a mistyped path is answered at once
                check_table_path(args.table)
            except RunSetupError as exc:
                return fail(str(exc))
        if args.table:
            from serendip.tools.engine.sandbox import start_worker_server

            start_worker_server()  # its imports run while this process imports the conversation
        from serendip.agent.chat_terminal import run_ask, run_chat

        return run_chat(args) if args.command == "chat" else run_ask(args)
    if args.command == "serve":
        from serendip.agent.web.app import run_serve

        return run_serve(args)
    parser.print_help()
    return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
