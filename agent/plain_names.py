"""Derived column names in words, from their recorded provenance (never parsed from the name).

``resid_resid_metallicity_vs_galaxy_vs_log10_stellar_mass`` reads as "metallicity corrected for per-galaxy
offsets, at fixed stellar_mass": each step of the column's recipe (a :class:`DerivedColumn` the tool recorded
when it made the column) becomes a phrase. Table columns keep their own names. The raw names stay in the
findings' ``columns`` and in the report's statistics lines.
"""

from __future__ import annotations

import re

from serendip.tools.engine.contracts import DerivedColumn

TRANSFORM_WORDS = {"log10": "log {}", "asinh": "asinh {}", "rank": "rank of {}"}
MAX_DEPTH = 8


def _quoted(name: str, ticks: bool) -> str:
    return f"`{name}`" if ticks else name


def split_recipe(name: str, derived: dict[str, DerivedColumn], ticks: bool = False,
                 depth: int = 0) -> tuple[str, list[str]]:
    """The core phrase of a column (its base quantity with transforms and corrections) and the table columns
    it is held fixed at (residuals), in the order they were applied."""
    d = derived.get(name)
    if d is None or depth > MAX_DEPTH or not d.inputs:
        return _quoted(name, ticks), []
    inner, fixed = split_recipe(d.inputs[0], derived, ticks, depth + 1)
    if d.operation in TRANSFORM_WORDS:
        return TRANSFORM_WORDS[d.operation].format(inner), fixed
    if d.operation == "level_offsets":
        by = ", ".join(_quoted(c, ticks) for c in d.controls) or "level"
        return f"{inner} corrected for per-{by} offsets", fixed
    if d.operation == "residual":
        controls = _own_controls(d, derived)
        return inner, fixed + [c for c in controls if c not in fixed]
    return _quoted(name, ticks), []


def _own_controls(d: DerivedColumn, derived: dict[str, DerivedColumn]) -> list[str]:
    """The controls this residual step added (its record carries those of its inputs too)."""
    inherited: set[str] = set()
    for i in d.inputs:
        if i in derived:
            inherited |= set(derived[i].controls)
    own = [c for c in d.controls if c not in inherited]
    return own or list(d.controls)


def _fixed_phrase(fixed: list[str], ticks: bool) -> str:
    names = [_quoted(c, ticks) for c in fixed]
    return "at fixed " + (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1])


def plain_name(name: str, derived: dict[str, DerivedColumn], ticks: bool = False) -> str:
    """One column in words ("`m3` at fixed `luminosity`"); a table column is its own name."""
    core, fixed = split_recipe(name, derived, ticks)
    if not fixed:
        return core
    return f"{core}{',' if ' corrected ' in core else ''} {_fixed_phrase(fixed, ticks)}"


def plain_list(names: list[str], derived: dict[str, DerivedColumn], ticks: bool = False) -> str:
    """Several columns in words, a shared 'at fixed ...' said once ("m4, m2 and m1 at fixed luminosity")."""
    parts = [split_recipe(n, derived, ticks) for n in names]
    cores = [c for c, _ in parts]
    joined = cores[0] if len(cores) == 1 else ", ".join(cores[:-1]) + " and " + cores[-1]
    if len(parts) > 1 and all(f == parts[0][1] for _, f in parts) and parts[0][1]:
        return f"{joined} {_fixed_phrase(parts[0][1], ticks)}"
    if len(parts) == 1:
        return plain_name(names[0], derived, ticks)
    return ", ".join(plain_name(n, derived, ticks) for n in names)


def plain_text(text: str, derived: dict[str, DerivedColumn]) -> str:
    """``text`` with every derived column name in it (bare or in backticks, alone or in a list joined by ', ' or
    ' and ') replaced by its words; text without derived names comes back unchanged."""
    names = sorted((n for n in derived if split_recipe(n, derived)[0] != n or plain_name(n, derived) != n),
                   key=len, reverse=True)
    if not text or not names:
        return text
    one = "|".join(re.escape(n) for n in names)
    item = rf"(?:`(?:{one})`|(?<![A-Za-z0-9_])(?:{one})(?![A-Za-z0-9_]))"
    run = re.compile(rf"{item}(?:(?:, | and |, and ){item})*")
    token = re.compile(rf"`({one})`|(?<![A-Za-z0-9_])({one})(?![A-Za-z0-9_])")

    def render(match: re.Match) -> str:
        found = [(m.group(1) or m.group(2), m.group(1) is not None) for m in token.finditer(match.group(0))]
        ticks = any(t for _, t in found)
        return plain_list([n for n, _ in found], derived, ticks=ticks)

    return run.sub(render, text)


def plain_title(finding: dict, derived: dict[str, DerivedColumn]) -> str:
    """A finding's title in words. A trend between two columns held at the same fixed quantities says so once,
    up front ("At fixed `stellar_mass`, log `sfr` rises with log `gas_mass` ...")."""
    title = str(finding.get("title") or "")
    cols = [str(c) for c in finding.get("columns") or []]
    if finding.get("kind") == "trend" and len(cols) == 2:
        recipes = [split_recipe(c, derived, ticks=True) for c in cols]
        fixed = recipes[0][1]
        if fixed and recipes[1][1] == fixed and all(f"`{c}`" in title for c in cols):
            for c, (core, _) in zip(cols, recipes):
                title = title.replace(f"`{c}`", core)
            title = f"At fixed {_fixed_phrase(fixed, True)[len('at fixed '):]}, {title}"
    return plain_text(title, derived)


def derived_name_leaks(text: str) -> list[str]:
    """Internal derived-name patterns left in ``text`` (``resid_…``, ``log10_…_vs_…``): what a headline must not
    show a reader."""
    return re.findall(r"resid_[A-Za-z0-9_]*|log10_[A-Za-z0-9_]*_vs_[A-Za-z0-9_]*", text or "")


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def family_title(family: dict, members: list[dict], derived: dict[str, DerivedColumn]) -> str:
    """A family's headline in words: what moves together with what, and what persists at fixed quantities.

    Numbers in it are the tools' own (PCA's variance share, the best member's effect in its title).
    """
    info = family.get("family") or {}

    def fixed_of(m: dict) -> list[str]:
        return [c for col in (m.get("columns") or [])[:2] for c in split_recipe(str(col), derived)[1]]

    direct = [m for m in members if not fixed_of(m)]
    held = list(dict.fromkeys(c for m in members for c in fixed_of(m)))
    if info.get("kind") == "shared_driver" and info.get("driver"):
        driver = str(info["driver"])
        cols = list(dict.fromkeys(str(c) for m in direct for c in (m.get("columns") or [])[:2] if c != driver))
        signs = {int(((m.get("stats") or {}).get("sign") or 0)) for m in direct}
        verb = "rise together with" if signs == {1} else "move together with"
        words = [plain_name(c, derived, ticks=True) for c in cols] or ["its columns"]
        share = info.get("variance_ratio")
        pct = f" (one component explains {100 * float(share):.1f}% of their variance)" if share else ""
        explained = info.get("explained")
        if not share and explained:
            lo, hi = (100 * float(v) for v in explained)
            pct = (f" (it alone explains {lo:.1f}% of their variance)" if f"{lo:.1f}" == f"{hi:.1f}" else
                   f" (it alone explains {lo:.1f}% to {hi:.1f}% of each one's variance)")
        later = f"; pairs stay related {_fixed_phrase(held, True)}" if held else ""
        return f"{_join(words)} {verb} {plain_name(driver, derived, ticks=True)}{pct}{later}"
    if info.get("kind") == "near_duplicates" and info.get("driver"):
        driver = str(info["driver"])
        cols = list(dict.fromkeys(str(c) for m in direct for c in (m.get("columns") or [])[:2] if c != driver))
        words = [plain_name(c, derived, ticks=True) for c in cols] or ["its columns"]
        best = float(((members[0].get("stats") or {}).get("effect")) or 0.0)
        later = f"; pairs stay related {_fixed_phrase(held, True)}" if held else ""
        return (f"{_join(words)} are near-duplicates of {plain_name(driver, derived, ticks=True)}, one quantity "
                f"measured {_count_words(len(cols) + 1)} times (strongest pair ρ = {best:+.2f}){later}")
    title = plain_title(members[0], derived)
    if fixed_of(members[0]) and direct:
        return f"{title}; also seen without holding {_join([f'`{c}`' for c in fixed_of(members[0])])} fixed"
    if held:
        return f"{title}; still related {_fixed_phrase(held, True)}"
    return title


def _count_words(n: int) -> str:
    """Small counts in words, so that a title's only numbers are the tools' own."""
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
    return words[n] if 0 <= n < len(words) else "many"
