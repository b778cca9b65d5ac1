"""The ``serendip`` command line: explore, demo, bench (and eval)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_RUN_INCOMPLETE = 1
EXIT_BAD_INPUT = 2


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that runs an exploration."""
    p.add_argument("--goal", default="", help="what to look for, in plain language")
    p.add_argument("--out", default="", help="output folder (default: serendip-runs/<table>-<time>)")
    p.add_argument("--model", default=None,
                   help="'autopilot' (offline, the default when no model is configured) or a chat model name")
    p.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint (Ollama, vLLM, llama.cpp, ...)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--max-steps", type=int, default=40, help="most model turns / planner steps (default 40)")
    p.add_argument("--time-limit", type=float, default=3600.0, help="wall-clock limit of the run in seconds")
    p.add_argument("--tool-time-limit", type=float, default=600.0, help="wall-clock limit of one tool call in seconds")
    p.add_argument("--memory-limit", type=int, default=8192, help="memory cap of the tool worker in MB")
    p.add_argument("--quiet", action="store_true", help="print only the result line")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="serendip", description=(
        "Explore a scientific table and report candidate trends, groups and outliers, each backed by evidence."))
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")

    ex = sub.add_parser("explore", help="explore a table (CSV, TSV, Parquet, Excel, FITS, VOTable)")
    ex.add_argument("table", nargs="?", help="the table file")
    ex.add_argument("--resume", default=None, metavar="DIR", help="continue the interrupted run in DIR")
    _add_run_options(ex)

    demo = sub.add_parser("demo", help="make the example table and explore it offline")
    demo.add_argument("--rows", type=int, default=3000, help="rows in the example table (default 3000)")
    _add_run_options(demo)

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
    return parser


def fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    """Print a one-line error and return the exit code."""
    print(f"serendip: error: {message}", file=sys.stderr)
    return code


def run_explore(args: argparse.Namespace, table: str, resume_dir: str | None = None) -> int:
    """Resolve the model, run the exploration, print where the report is."""
    from serendip.agent.explore import ExploreConfig, RunSetupError, explore, load_resume
    from serendip.agent.progress import Progress
    from serendip.tools.thresholds import Thresholds

    resume = resume_dir is not None
    goal, out, seed = args.goal, args.out, args.seed
    model_flag, base_url_flag = args.model, args.base_url
    if resume:
        try:
            previous = load_resume(Path(resume_dir))
        except RunSetupError as exc:
            return fail(str(exc))
        table = previous.get("table") or table
        goal = previous.get("goal", goal) or ""
        seed = int(previous.get("seed", seed))
        model_flag = model_flag or previous.get("model")
        base_url_flag = base_url_flag or previous.get("base_url")
        out = resume_dir
    if not table:
        return fail("no table given: serendip explore TABLE [--goal TEXT]")
    try:
        from serendip.agent.models import ModelConfigError, resolve_model_config

        mcfg = resolve_model_config(model=model_flag, base_url=base_url_flag)
    except ModelConfigError as exc:
        return fail(str(exc))
    cfg = ExploreConfig(table=table, goal=goal, out=out, model=mcfg.model, base_url=mcfg.base_url,
                        api_key=mcfg.api_key, seed=seed, max_steps=args.max_steps, time_limit=args.time_limit,
                        tool_time_limit=args.tool_time_limit, memory_limit_mb=args.memory_limit,
                        thresholds=Thresholds())
    progress = Progress(quiet=args.quiet)
    try:
        with progress:
            outcome, out_dir = explore(cfg, progress=progress, resume=resume)
    except RunSetupError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_RUN_INCOMPLETE)
    report = out_dir / "report.html"
    if outcome.status == "completed":
        print(f"Report: {report}  (also report.md, findings.json, rows.csv in {out_dir})")
        return EXIT_OK
    print(f"Report (partial): {report}", file=sys.stderr)
    return fail(f"run ended with status {outcome.status}: {outcome.reason}. Resume with "
                f"--resume {out_dir}" if outcome.status in ("interrupted", "time_limit", "step_limit", "token_limit")
                else f"run ended with status {outcome.status}: {outcome.reason}", EXIT_RUN_INCOMPLETE)


def run_demo(args: argparse.Namespace) -> int:
    """Write the example table next to the run and explore it."""
    from serendip.evals.synthetic import write_example_table

    out = Path(args.out) if args.out else None
    base = out.parent if out else Path("serendip-runs")
    base.mkdir(parents=True, exist_ok=True)
    table = write_example_table(base / "example_galaxy_regions.csv", n_rows=args.rows, seed=args.seed)
    if not args.quiet:
        print(f"Example table: {table}", file=sys.stderr)
    if not args.goal:
        args.goal = "find something new and exciting"
    return run_explore(args, str(table))


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
    if args.command in ("chat", "ask"):
        from serendip.agent.chat_terminal import run_ask, run_chat

        return run_chat(args) if args.command == "chat" else run_ask(args)
    if args.command == "serve":
        from serendip.agent.web.app import run_serve

        return run_serve(args)
    parser.print_help()
    return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
