"""Strings from the table or the model never become live markup: report.html loads nothing from outside.

A column named like a markdown image, a model interpretation and summary holding links, images, raw HTML
and autolinks go through a whole run (the real openai client against the local stub server) and the
report.html it writes is parsed: every src and href must stay inside the document.
"""

from __future__ import annotations

import html as html_module
import json
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from markdown_it import MarkdownIt

from serendip.agent.explore import ExploreConfig, explore
from serendip.agent.report_html import markdown_to_html
from serendip.tools.engine.mdtext import code, defuse_markdown, escape_md
from stub_openai_server import StubOpenAIServer, text_reply, tool_calls_reply

HOSTILE_COLUMN = "![x](https://attacker.example/leak)"
HOSTILE_TEXT = ("See ![beacon](https://attacker.example/i.png) and [click](https://attacker.example/) "
                "<https://attacker.example/auto> <img src=https://attacker.example/raw> "
                "[ref][r]\n\n[r]: https://attacker.example/ref\n# heading `code ![a](https://attacker.example/c)`")


class Refs(HTMLParser):
    """Every URL-bearing attribute of a page, and its CSP meta tag."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []
        self.csp: str | None = None

    def handle_starttag(self, tag, attrs):
        d = dict(attrs)
        for name in ("src", "href", "srcset", "action", "poster", "background", "data"):
            if d.get(name) is not None:
                self.urls.append((tag, name, d[name]))
        if tag == "meta" and (d.get("http-equiv") or "").lower() == "content-security-policy":
            self.csp = d.get("content")


def outside_refs(page: str) -> tuple[list, str | None]:
    refs = Refs()
    refs.feed(page)
    bad = [u for u in refs.urls if not (u[2].startswith("data:image/png;base64,") or u[2].startswith("#"))]
    return bad, refs.csp


def rendered(md: str) -> str:
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(md)


@pytest.mark.parametrize("text", [HOSTILE_COLUMN, HOSTILE_TEXT, "a_b*c*", "1. not a list", "- no", "# no",
                                  "`unclosed ![i](https://attacker.example/u)", "x | y", "back\\slash [a](b)",
                                  "&lt;img&gt; &amp;", "~~strike~~", "``` fence"])
def test_escaped_text_renders_exactly_as_written_and_links_nothing(text):
    html = rendered(f"Title: {escape_md(text)}")
    assert "<a " not in html and "<img" not in html and "<h" not in html and "<ol" not in html
    assert "attacker.example" not in "".join(u[2] for u in outside_refs(html)[0])
    if "`" not in text:  # code spans are kept as code; everything else reads as written
        plain = html_module.unescape(html.replace("<p>", "").replace("</p>", "")).strip()
        assert plain == "Title: " + " ".join(text.splitlines())


def test_code_spans_survive_escaping():
    assert escape_md(f"groups split by {code('a_b')}") == "groups split by `a_b`"
    assert "<code>![x](https://attacker.example/leak)</code>" in rendered(escape_md(code(HOSTILE_COLUMN)))


def test_defused_tool_markdown_keeps_tables_and_code_but_no_links():
    md = ("| column | note |\n| --- | --- |\n"
          f"| {code(HOSTILE_COLUMN)} | {HOSTILE_COLUMN} |\n| `a | ![b](https://attacker.example/t)` | x |\n\n"
          f"- left out: {HOSTILE_COLUMN} (constant)\n")
    html = rendered(defuse_markdown(md))
    assert "<table>" in html and "<li>" in html and "<code>![x](https://attacker.example/leak)</code>" in html
    assert "<img" not in html and "<a " not in html


def test_renderer_drops_remote_images_and_links_and_sets_a_csp(tmp_path):
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "R1_a.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    md = ("![ok](figures/R1_a.png) ![missing](figures/R9_b.png) ![far](https://attacker.example/x.png) "
          "![up](../secret.png) [out](https://attacker.example/) <https://attacker.example/a> [in](#top)\n")
    page = markdown_to_html(md, tmp_path, "t")
    bad, csp = outside_refs(page)
    assert bad == []
    assert page.count("data:image/png;base64,") == 1 and 'href="#top"' in page
    assert csp and "default-src 'none'" in csp and "img-src data:" in csp and "http" not in csp


def test_a_hostile_column_and_hostile_model_text_stay_inside_the_report(tmp_path):
    r = np.random.default_rng(3)
    x = r.normal(size=300)
    df = pd.DataFrame({HOSTILE_COLUMN: x, "y<img src=https://attacker.example/y>": 2 * x + r.normal(size=300) * 0.3,
                       "[z](https://attacker.example/z)": r.normal(size=300)})
    table = tmp_path / "hostile.csv"
    df.to_csv(table, index=False)
    script = [tool_calls_reply(("correlate", {}), ("outliers", {"method": "isolation_forest"})),
              tool_calls_reply(("record_finding", {"candidate": "C1", "interpretation": HOSTILE_TEXT,
                                                   "title": HOSTILE_TEXT[:150]})),
              tool_calls_reply(("finish", {"summary": HOSTILE_TEXT})),
              text_reply(HOSTILE_TEXT)]  # issue 17: the summary's rewrite (no number in it: it passes the check)
    with StubOpenAIServer(script) as server:
        cfg = ExploreConfig(table=str(table), out=str(tmp_path / "run"), model="stub-model",
                            base_url=server.base_url, in_process=True, max_steps=5, api_key="not-needed")
        outcome, out = explore(cfg)
    assert outcome.status == "completed" and not server.unexpected
    assert outcome.summary_rewrite["status"] == "accepted"
    findings = json.loads((out / "findings.json").read_text())["findings"]
    assert any(f.get("interpretation") == HOSTILE_TEXT for f in findings), "the hostile interpretation must reach the report"
    page = (out / "report.html").read_text()
    bad, csp = outside_refs(page)
    assert bad == [], bad
    assert csp and "img-src data:" in csp
    assert "<img" not in page.replace('<img src="data:image/png;base64,', "")
    # the markdown report has no live link either (as a markdown viewer would render it)
    md_html = rendered((out / "report.md").read_text())
    assert all(u[2].startswith("figures/") and "/" not in u[2][len("figures/"):] for u in outside_refs(md_html)[0])
