"""The terminal doors onto a conversation: ``serendip chat`` (a rich REPL with completion and history)
and ``serendip ask`` (one question, one answer, optionally JSON). The conversation itself lives in
:mod:`serendip.agent.conversation`; this module only reads input and renders events."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Callable, Iterable

from rich.console import Console
from rich.text import Text

from serendip.agent.chat_render import ChatRenderer
from serendip.agent.conversation import events as ev
from serendip.agent.conversation.commands import COMMANDS
from serendip.agent.conversation.offline_questions import ASK_HINT
from serendip.agent.conversation.session import ChatSession, QuitSession
from serendip.agent.explore import RunSetupError, check_table_path
from serendip.agent.loop import LoopLimits
from serendip.agent.progress import interactive

EXIT_OK, EXIT_UNANSWERED, EXIT_BAD_INPUT = 0, 1, 2
WORD = re.compile(r"[^\s\"']+")


def history_path() -> Path:
    """Where the chat's input history persists: ``$SERENDIP_HISTORY`` or the XDG data folder."""
    if os.environ.get("SERENDIP_HISTORY"):
        return Path(os.environ["SERENDIP_HISTORY"]).expanduser()
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "serendip" / "chat_history"


def resolve_chat_model(args) -> tuple[str, object | None]:
    """(model name, LangChain chat model) from the flags, environment and config file; ('', None) for none.

    Raises:
        ModelConfigError: The settings are unusable (one-line message).
    """
    from serendip.agent.models import build_chat_model

    settings = chat_settings(args)
    if settings.is_autopilot:
        return "", None
    return settings.model, build_chat_model(settings)


def chat_settings(args):
    """The session's settings: flags over the environment, the config file and the defaults.

    Raises:
        SettingsError: A setting is unusable, or a hosted model has no key (one-line message).
    """
    from serendip.agent.cli import setting_flags
    from serendip.agent.settings import Settings

    if getattr(args, "_settings", None) is None:
        args._settings = Settings.resolve(setting_flags(args)).require_key().for_endpoint()
    return args._settings


def session_options(args, listener, model_name: str, chat_model, base_url: str | None = None) -> dict:
    """ChatSession keyword arguments from the shared run options."""
    settings = chat_settings(args)
    return {"model_name": model_name, "chat_model": chat_model, "listener": listener, "base_url": base_url,
            "limits": LoopLimits.from_settings(settings),
            "analysis_options": {"tool_time_limit": settings.tool_time_limit,
                                 "memory_limit_mb": settings.memory_limit_mb}}


# ---------------------------------------------------------------------- input
def make_completer(columns: Callable[[], list[str]]):
    """Tab completion: command names after '/', paths after /load, column names elsewhere."""
    from prompt_toolkit.completion import Completer, Completion, PathCompleter
    from prompt_toolkit.document import Document

    paths = PathCompleter(expanduser=True)

    class ChatCompleter(Completer):
        def get_completions(self, document, complete_event) -> Iterable[Completion]:
            text = document.text_before_cursor
            if text.startswith("/") and " " not in text:
                for cmd in COMMANDS:
                    if cmd.startswith(text.lower()):
                        yield Completion(cmd, start_position=-len(text))
                return
            if text.startswith("/load "):
                yield from paths.get_completions(Document(text[len("/load "):]), complete_event)
                return
            word = document.get_word_before_cursor(pattern=WORD)
            if not word:
                return
            for name in columns():
                if name.lower().startswith(word.lower()):
                    shown = name if WORD.fullmatch(name) else json.dumps(name)
                    yield Completion(shown, start_position=-len(word), display=name)

    return ChatCompleter()


def line_reader(session: ChatSession, tty: bool) -> Callable[[], str]:
    """A function returning the next input line (EOFError at the end): prompt_toolkit on a terminal, plain
    stdin otherwise."""
    if not tty:
        def read_plain() -> str:
            line = sys.stdin.readline()
            if not line:
                raise EOFError
            return line.rstrip("\n")
        return read_plain
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory

    path = history_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    prompt = PromptSession(history=FileHistory(str(path)),
                           completer=make_completer(lambda: [str(c.get("name")) for c in session.columns]),
                           complete_while_typing=False)
    return lambda: prompt.prompt("serendip> ")


# ---------------------------------------------------------------------- chat
def run_chat(args) -> int:
    """``serendip chat [TABLE] [--resume DIR]``: the terminal conversation."""
    from serendip.agent.cli import fail
    from serendip.agent.models import ModelConfigError

    tty = interactive(sys.stdin) and interactive(sys.stdout)
    console = Console(highlight=False)
    renderer = ChatRenderer(console)
    try:
        model_name, chat_model = resolve_chat_model(args)
    except ModelConfigError as exc:
        return fail(str(exc))
    options = session_options(args, renderer, model_name, chat_model, args.base_url)
    try:
        if args.resume:
            session = ChatSession.resume(args.resume, **options)
        else:
            if args.table:
                check_table_path(args.table)
            session = ChatSession(args.out or None, goal=args.goal, seed=chat_settings(args).seed, **options)
            if args.table and not session.load(args.table):
                return EXIT_BAD_INPUT
    except RunSetupError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return fail("interrupted while opening the table", EXIT_UNANSWERED)
    how = (f"model {model_name} answers questions" if model_name else
           "no model configured: common questions are answered offline; slash commands work")
    console.print(Text(f"Serendip chat · {how} · /help for commands · Ctrl-C stops a call · Ctrl-D leaves",
                       style="dim"), soft_wrap=True)
    read = line_reader(session, tty)
    try:
        while True:
            try:
                line = read()
            except KeyboardInterrupt:
                continue
            except EOFError:
                break
            try:
                session.handle(line)
            except QuitSession:
                break
            except KeyboardInterrupt:
                console.print(Text("stopped", style="yellow"))
    finally:
        session.close()
    if session.out_dir is not None:
        console.print(Text(f"Session saved in {session.out_dir}; continue with: serendip chat --resume "
                           f"{session.out_dir}", style="dim"), soft_wrap=True)
    return EXIT_OK


# ---------------------------------------------------------------------- ask
def run_ask(args) -> int:
    """``serendip ask TABLE "question" [--json]``: one question, one answer; 0 when answered."""
    from serendip.agent.cli import fail
    from serendip.agent.models import ModelConfigError

    errors: list[str] = []
    renderer = None if (args.json or args.quiet) else ChatRenderer(Console(stderr=True, highlight=False),
                                                                   show_progress=False)

    def listen(event: ev.Event) -> None:
        if isinstance(event, ev.Notice) and event.level == "error":
            errors.append(event.text)
        if renderer is not None and isinstance(event, ev.TableLoaded):
            renderer.out_dir = event.out_dir
        if renderer is not None and not isinstance(event, (ev.Answer, ev.TextDelta, ev.TableLoaded)):
            renderer(event)

    if not args.question.strip():
        return fail("the question is empty: serendip ask TABLE \"question\"")
    try:
        model_name, chat_model = resolve_chat_model(args)
    except ModelConfigError as exc:
        return fail(str(exc))
    session = ChatSession(args.out or None, goal=args.goal, seed=chat_settings(args).seed,
                          **session_options(args, listen, model_name, chat_model, args.base_url))
    try:
        if not session.load(args.table):
            return fail(errors[-1] if errors else f"cannot open {args.table}")
        answer = session.ask(args.question)
        findings = session.analysis.findings
        out_dir = session.out_dir
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_UNANSWERED)
    finally:
        session.close()
    figures = [str(out_dir / f) for f in answer.figures]
    if args.json:
        print(json.dumps({"answer": answer.text, "answered": answer.answered, "findings": findings,
                          "evidence": answer.evidence, "figures": figures, "out_dir": str(out_dir)},
                         ensure_ascii=False, default=str))
    elif answer.answered:
        print(answer.text)
        if answer.evidence:
            print(f"evidence: {', '.join(answer.evidence)} (results in {out_dir / '.workspace' / 'results'})")
    if not answer.answered:
        reason = ASK_HINT if answer.source == "hint" else answer.text.splitlines()[0] if answer.text else "no answer"
        return fail(reason, EXIT_UNANSWERED)
    return EXIT_OK
