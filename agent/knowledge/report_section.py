"""The report's novelty sections: candidate new findings apart from recovered known results and repeats."""

from __future__ import annotations

from serendip.agent.report import escape_md, fmt

NEW = ("candidate",)


def candidate_findings(findings: list[dict]) -> list[dict]:
    """Findings that may be new: neither a known result, nor found by an earlier run, nor a systematic."""
    return [f for f in findings if f.get("novelty", "candidate") in NEW]


def _sign(v) -> str:
    return {1: "positive", -1: "negative"}.get(v, "either sign")


def known_sections(findings: list[dict]) -> list[str]:
    """Markdown: 'Recovered known results' (with citations), 'Seen in earlier runs', and contradictions."""
    out: list[str] = []
    known = [f for f in findings if f.get("novelty") == "known"]
    out += ["## Recovered known results", ""]
    if known:
        out += ["These findings recover well-established results; they show the method works on this table, "
                "and are not new.", ""]
        for f in known:
            k = (f.get("novelty_detail") or {}).get("known") or {}
            cols = ", ".join(f"`{escape_md(c)}` = {escape_md(q).replace('_', ' ')}"
                             for c, q in (k.get("quantities") or {}).items())
            how = [f"expected {_sign(k.get('expected_sign'))}"] if f.get("kind") == "trend" else []
            how += [cols] if cols else []
            out.append(f"- **{f['id']}** ({f['kind']}, score {fmt(f.get('score'))}): {escape_md(f.get('title', ''))} "
                       f"— recovers *{escape_md(k.get('name', ''))}*{' (' + '; '.join(how) + ')' if how else ''}. "
                       f"{escape_md(k.get('citation', ''))}.")
    else:
        out.append("- None of the findings matches a known result of the pack or of your own list.")
    out.append("")
    seen = [f for f in findings if (f.get("novelty_detail") or {}).get("seen")]
    if seen:
        out += ["## Seen in earlier runs", ""]
        for f in seen:
            s = f["novelty_detail"]["seen"][0]
            where = "this table" if s.get("same_table") else f"`{escape_md(s.get('dataset', ''))}`"
            out.append(f"- **{f['id']}** ({f.get('novelty')}): {escape_md(f.get('title', ''))} — first found as "
                       f"{escape_md(s.get('finding', ''))} on {escape_md(s.get('when', ''))} in run "
                       f"`{escape_md(s.get('run', ''))}` ({where}).")
        out.append("")
    against = [f for f in findings if (f.get("novelty_detail") or {}).get("contradicts")]
    if against:
        out += ["## Findings that contradict a known result", ""]
        for f in against:
            k = f["novelty_detail"]["contradicts"]
            out.append(f"- **{f['id']}**: {escape_md(f.get('title', ''))} — *{escape_md(k.get('name', ''))}* expects "
                       f"a {_sign(k.get('expected_sign'))} relation ({escape_md(k.get('citation', ''))}); check the "
                       "columns' definitions and selection before believing it.")
        out.append("")
    return out
