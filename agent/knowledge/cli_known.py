"""``serendip known add|list|remove``: the user's own known results, next to the shipped pack."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def build_parser() -> argparse.ArgumentParser:
    """Options of ``serendip known``."""
    p = argparse.ArgumentParser(prog="serendip known", description=(
        "List the known results Serendip checks findings against (a shipped pack of well-established "
        "relations and groupings, plus your own), add your own, or remove them."))
    p.add_argument("--memory", default=None, metavar="DIR",
                   help="knowledge store folder (default: $SERENDIP_MEMORY or the user data directory)")
    sub = p.add_subparsers(dest="action", required=True)
    ls = sub.add_parser("list", help="list known results")
    ls.add_argument("--source", choices=("pack", "user"), default=None, help="only the shipped or only your own")
    ls.add_argument("--quantities", action="store_true", help="list the quantities (and their synonyms) instead")
    add = sub.add_parser("add", help="add (or replace) one of your own known results")
    add.add_argument("id", help="short id: lower-case letters, digits, '_', '-', '.'")
    add.add_argument("--name", required=True, help="the result's usual name")
    add.add_argument("--quantities", required=True,
                     help="comma-separated quantity ids (see `serendip known list --quantities`)")
    add.add_argument("--citation", required=True, help="where it was established")
    add.add_argument("--kinds", default="trend", help="comma-separated: trend, group, outlier (default trend)")
    add.add_argument("--sign", type=int, choices=(-1, 0, 1), default=0,
                     help="sign of the trend between the first two quantities (0 = either)")
    add.add_argument("--x", default=None, help="the driver quantity to control for")
    add.add_argument("--shape", default="", help="the expected shape, in words")
    add.add_argument("--context", default="", help="words describing the tables it shows up in")
    rm = sub.add_parser("remove", help="remove one of your own known results")
    rm.add_argument("id")
    return p


def _fail(message: str) -> int:
    print(f"serendip known: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``serendip known``."""
    args = build_parser().parse_args(argv)
    from pydantic import ValidationError

    from serendip.agent.knowledge.pack import KnownResult, load_pack
    from serendip.agent.knowledge.run_hook import KnowledgeOpenError
    from serendip.agent.knowledge.store import KnowledgeStore, StoreError, default_memory_dir

    if args.action == "list" and args.quantities:
        for qid, q in load_pack().quantities.items():
            print(f"{qid}: {q.description} — {', '.join(q.synonyms[:8])}"
                  + (f" [{', '.join(q.units)}]" if q.units else ""))
        return EXIT_OK
    memory = Path(args.memory).expanduser() if args.memory else default_memory_dir()
    if memory.exists() and not memory.is_dir():
        return _fail(f"--memory {memory} is a file, not a folder")
    try:
        store = KnowledgeStore(memory)
        if args.action == "list":
            for r in store.list_known(args.source):
                sign = {1: "+", -1: "-", 0: "±"}[r.sign]
                print(f"{r.id} [{r.source}] {r.name} ({', '.join(r.kinds)}; {' ~ '.join(r.quantities)} {sign}) "
                      f"— {r.citation}")
            return EXIT_OK
        if args.action == "add":
            try:
                result = KnownResult(id=args.id, name=args.name, citation=args.citation, sign=args.sign, x=args.x,
                                     kinds=tuple(k.strip() for k in args.kinds.split(",") if k.strip()),
                                     quantities=tuple(q.strip() for q in args.quantities.split(",") if q.strip()),
                                     shape=args.shape, context=args.context, source="user")
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(x) for x in err.get("loc", ()))
                return _fail(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
            store.add_known(result)
            print(f"added {result.id} to {memory}")
            return EXIT_OK
        store.remove_known(args.id)
        print(f"removed {args.id} from {memory}")
        return EXIT_OK
    except (StoreError, KnowledgeOpenError) as exc:
        return _fail(str(exc))
