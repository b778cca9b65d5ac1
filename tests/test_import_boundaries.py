"""Import boundaries, checked on the source's syntax trees (every import, at any depth, lazy ones too):

- ``tools`` (the sandboxed analyses and their plumbing) never imports ``agent`` or ``evals``;
- ``evals`` reaches the agent only through the public API (``import serendip``, and the modules it is
  made of: ``serendip.agent.api``, ``serendip.agent.settings``, ``serendip.agent.progress``);
- ``agent`` imports ``evals`` only in the command line, which hands ``serendip eval`` / ``bench`` to them
  and (until the generator moves out of evals/) makes the demo table.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = {"serendip", "serendip.agent.api", "serendip.agent.settings", "serendip.agent.progress"}
CLI_MAY_IMPORT = {"serendip.evals.bench", "serendip.evals.runner"}


def imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports: ``import a.b`` -> a.b; ``from a import b`` -> a.b and a."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pytest.fail(f"{path.relative_to(ROOT)}:{node.lineno}: relative import (use serendip.<package>...)")
            out.append((node.lineno, node.module or ""))
            out += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return out


def sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_source_folders_are_found():
    assert len(sources("tools")) > 20 and len(sources("evals")) > 5 and len(sources("agent")) > 10


def test_tools_never_import_agent_or_evals():
    bad = [f"{p.relative_to(ROOT)}:{line}: {m}" for p in sources("tools") for line, m in imports(p)
           if inside(m, "serendip.agent") or inside(m, "serendip.evals")]
    assert not bad, "tools must not import agent or evals:\n" + "\n".join(bad)


def test_evals_reach_the_agent_only_through_the_public_api():
    bad = []
    for p in sources("evals"):
        found = imports(p)
        names = {m for _, m in found}
        for line, m in found:
            if not inside(m, "serendip.agent"):
                continue
            # ``from serendip.agent.api import explore`` yields both the module and the name: judge the module.
            module = m if m in PUBLIC or m.rsplit(".", 1)[0] not in names else m.rsplit(".", 1)[0]
            if module not in PUBLIC and m not in PUBLIC:
                bad.append(f"{p.relative_to(ROOT)}:{line}: {m}")
    assert not bad, "evals may use only the public API (" + ", ".join(sorted(PUBLIC)) + "):\n" + "\n".join(bad)


def test_agent_imports_evals_only_from_the_command_line():
    bad = []
    for p in sources("agent"):
        for line, m in imports(p):
            if inside(m, "serendip.evals") and not (p.name == "cli.py" and any(inside(m, c) for c in CLI_MAY_IMPORT)):
                bad.append(f"{p.relative_to(ROOT)}:{line}: {m}")
    assert not bad, "agent must not import evals:\n" + "\n".join(bad)


def test_the_checker_catches_a_forbidden_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from serendip.agent.ledger import Ledger\n    import serendip.evals.scorer\n")
    found = [m for _, m in imports(probe)]
    assert "serendip.agent.ledger" in found and "serendip.evals.scorer" in found
