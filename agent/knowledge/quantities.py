"""Which physical quantity a column measures: from its name (synonyms of the pack) and its unit.

Names are split into words on punctuation, camelCase and letter/digit boundaries
(``log.AGN.NII.AGN.H_alpha..10.`` -> agn nii agn h alpha 10); adjacent words may join (``h alpha`` ->
``halpha`` -> ``ha``). A synonym matches when its words occur in order; the match's *coverage* is the
share of the column's meaningful words it used, and a column takes the quantities of its best-covered
synonyms (so ``hoststar_mass`` is a star's mass, not a planet's). A unit the table gives rules out every
quantity whose units are not equivalent (astropy), and identifies the quantity on its own when exactly
one quantity has that unit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from serendip.agent.knowledge.pack import Pack, load_pack

TRANSFORM_PREFIXES = ("log10_", "asinh_", "rank_", "log_")
ERROR_WORDS = {"unc", "err", "error", "sigerr", "uncertainty", "ivar", "e"}
ALIASES = {"halpha": "ha", "hbeta": "hb", "colour": "color", "n2": "nii", "o3": "oiii", "s2": "sii", "o1": "oi",
           "feii": "feii", "civ": "civ"}
MIN_COVERAGE = 0.5
MAX_JOIN = 3


@dataclass(frozen=True)
class QuantityMatch:
    """A quantity a column measures.

    Attributes:
        quantity: The pack's quantity id.
        sense: +1, or -1 when the column runs backwards (a magnitude for a luminosity).
        coverage: Share of the column name's words the synonym explained (0.5 for a unit-only match).
        via: 'name', 'unit' or 'proxy'.
    """

    quantity: str
    sense: int
    coverage: float
    via: str


def words(name: str) -> list[str]:
    """The lower-case words of a column name."""
    s = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(name))
    s = re.sub(r"([A-Za-z])(\d)|(\d)([A-Za-z])", lambda m: f"{m.group(1) or m.group(3)} {m.group(2) or m.group(4)}"
               if (m.group(1) or "").lower() not in ("h", "l", "s", "o", "n") else m.group(0), s)
    return [w for w in re.split(r"[^a-z0-9]+", s.lower()) if w]


def _norm(word: str) -> str:
    return ALIASES.get(word, word)


def _match(syn: list[str], toks: list[str]) -> int | None:
    """How many column words an ordered (gapped) match of ``syn`` consumes at best; None if no match."""
    @lru_cache(maxsize=None)
    def go(k: int, i: int) -> int | None:
        if k == len(syn):
            return 0
        best = None
        for start in range(i, len(toks)):
            for m in range(1, MAX_JOIN + 1):
                if start + m > len(toks):
                    break
                if _norm("".join(toks[start:start + m])) == syn[k]:
                    rest = go(k + 1, start + m)
                    if rest is not None and (best is None or m + rest > best):
                        best = m + rest
        return best
    return go(0, 0)


def _parse_unit(text: str | None):
    if not text or not str(text).strip():
        return None
    try:
        from astropy import units as u

        unit = u.Unit(str(text).strip(), parse_strict="silent")
    except Exception:  # noqa: BLE001 - astropy raises many types for odd strings; an odd unit is no evidence
        return None
    if getattr(unit, "physical_type", None) in (None, "dimensionless") or isinstance(unit, u.UnrecognizedUnit):
        return None
    return unit


def _unit_compatible(col_unit, units: tuple[str, ...]) -> bool | None:
    """True/False when the column unit is (in)compatible with any of ``units``; None when unknowable."""
    if col_unit is None or not units:
        return None
    for text in units:
        qu = _parse_unit(text)
        try:
            if qu is not None and col_unit.is_equivalent(qu):
                return True
        except Exception:  # noqa: BLE001
            continue
    return False


_CACHE: dict[tuple, tuple[QuantityMatch, ...]] = {}


def column_quantities(name: str, unit: str | None = None, pack: Pack | None = None) -> tuple[QuantityMatch, ...]:
    """The quantities a column measures (best name matches, proxies included), possibly none.

    Args:
        name: The column name as in the table (transform prefixes such as ``log10_`` are stripped).
        unit: The column's unit when the table gives one.
        pack: The known-results pack (the shipped one by default).
    """
    pack = pack or load_pack()
    key = (str(name), unit, id(pack))
    if key not in _CACHE:
        if len(_CACHE) > 20_000:
            _CACHE.clear()
        _CACHE[key] = _column_quantities(str(name), unit, pack)
    return _CACHE[key]


def _column_quantities(name: str, unit: str | None, pack: Pack) -> tuple[QuantityMatch, ...]:
    base = name
    for prefix in TRANSFORM_PREFIXES:
        if base.lower().startswith(prefix) and len(base) > len(prefix):
            base = base[len(prefix):]
    ignore = set(pack.ignore_tokens)
    toks = [w for w in words(base) if w not in ignore]
    if not toks or ERROR_WORDS & set(toks):
        return ()
    meaningful = max(1, sum(not w.isdigit() for w in toks))
    col_unit = _parse_unit(unit)
    scored: dict[str, float] = {}
    for qid, q in pack.quantities.items():
        if _unit_compatible(col_unit, q.units) is False:
            continue
        for syn in q.synonyms:
            syn_words = [_norm(w) for w in words(syn) if w not in ignore] or [_norm(w) for w in words(syn)]
            used = _match(syn_words, toks)
            if used is None:
                continue
            cov = min(1.0, used / meaningful)
            if len("".join(syn_words)) <= 1 and cov < 1.0:
                continue  # a one-letter synonym (z, p, r) only when it is the whole name
            scored[qid] = max(scored.get(qid, 0.0), cov)
    out: list[QuantityMatch] = []
    if scored:
        top = max(scored.values())
        if top >= MIN_COVERAGE:
            out = [QuantityMatch(q, 1, round(c, 3), "name") for q, c in scored.items() if c >= top - 1e-9]
    elif col_unit is not None:
        fits = [qid for qid, q in pack.quantities.items() if _unit_compatible(col_unit, q.units)]
        if len(fits) == 1:
            out = [QuantityMatch(fits[0], 1, MIN_COVERAGE, "unit")]
    for m in list(out):
        for proxy, sense in pack.quantities[m.quantity].proxy_for.items():
            if all(o.quantity != proxy for o in out):
                out.append(QuantityMatch(proxy, m.sense * sense, m.coverage, "proxy"))
    return tuple(out)


def split_derived(name: str, table_columns: list[str] | tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """The table column behind a derived column name and the columns it controls for.

    ``log10_props_sfr`` -> (``props_sfr``, ()); ``resid_log10_props_sfr_vs_log10_props_mstar`` ->
    (``props_sfr``, (``props_mstar``,)). A name that is a table column is returned unchanged.
    """
    known = set(table_columns)
    current, controls = str(name), []
    for _ in range(8):
        if current in known:
            break
        for prefix in TRANSFORM_PREFIXES[:3]:
            if current.startswith(prefix) and len(current) > len(prefix):
                current = current[len(prefix):]
                break
        else:
            if current.endswith("_derived"):
                current = current[: -len("_derived")]
                continue
            if current.startswith("resid_") and "_vs_" in current:
                body = current[len("resid_"):]
                cuts = [m.start() for m in re.finditer("_vs_", body)]
                cut = next((c for c in cuts if split_derived(body[:c], table_columns)[0] in known), cuts[0])
                rest = body[cut + 4:]
                controls += [split_derived(rest, table_columns)[0]] if rest else []
                current = body[:cut]
                continue
            break
    return current, tuple(dict.fromkeys(controls))
