"""Markdown report to one self-contained, escaped HTML file."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from urllib.parse import unquote

from markdown_it import MarkdownIt
from markdown_it.token import Token

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;
line-height:1.5;color:#1d2330}
h1,h2,h3{line-height:1.2} h2{border-bottom:1px solid #dde;padding-bottom:.2em;margin-top:2em}
code{background:#f3f4f8;padding:0 .25em;border-radius:3px;word-break:break-all}
table{border-collapse:collapse;margin:1em 0;font-size:.9em} td,th{border:1px solid #ccd;padding:.25em .5em}
th{background:#f3f4f8} img{max-width:100%;border:1px solid #eee;margin:.5em 0}
blockquote{color:#555;border-left:3px solid #ccd;margin-left:0;padding-left:1em}
nav.toc{background:#f7f8fb;border:1px solid #dde;padding:.5em 1em;margin:1em 0} nav.toc ul{margin:.3em 0}
details{border:1px solid #eee;padding:.3em .6em;margin:.4em 0} summary{cursor:pointer;font-weight:600}
"""

_FIGURE_SRC = re.compile(r"^figures/[A-Za-z0-9_.\-]+\.png$")
CONTENT_SECURITY_POLICY = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
                           "form-action 'none'")
"""The page may load nothing: images only from data: URIs (the embedded figures), no script, no remote
style, font, frame or form target. A second wall behind the renderer's own rules."""


_RELATIVE_LINK = re.compile(r"^(?![A-Za-z][A-Za-z0-9+.\-]*:)(?!/)(?!.*(?:^|/)\.\.(?:/|$))[A-Za-z0-9_./\-#%~+]+$")


def _file_inside(out_dir: Path, href: str) -> bool:
    """True for a relative link (no scheme, no absolute path, no '..') to a file that exists in ``out_dir``."""
    if not _RELATIVE_LINK.match(href):
        return False
    target = (out_dir / unquote(href.split("#", 1)[0])).resolve()
    root = out_dir.resolve()
    return target.is_file() and root in target.parents


def _local_only(out_dir: Path, local_links: bool = False):
    """A markdown-it core rule: embed the run's own figures; turn every other image and every link that
    leaves the document (or, with ``local_links``, the output folder) into plain text."""

    def rule(state) -> None:
        for block in state.tokens:
            if block.type != "inline" or not block.children:
                continue
            children, kept_links = [], []
            for tok in block.children:
                if tok.type == "image":
                    src = str(tok.attrGet("src") or "")
                    path = out_dir / src
                    figure = _FIGURE_SRC.match(src) or (local_links and src.endswith(".png")
                                                        and "/figures/" in src and _file_inside(out_dir, src))
                    if figure and path.is_file():
                        data = base64.b64encode(path.read_bytes()).decode("ascii")
                        tok.attrSet("src", f"data:image/png;base64,{data}")
                        children.append(tok)
                    else:
                        children.append(Token("text", "", 0, content=f"[image: {tok.content or src}]"))
                elif tok.type == "link_open":
                    href = str(tok.attrGet("href") or "")
                    keep = href.startswith("#") or (local_links and _file_inside(out_dir, href))
                    kept_links.append(keep)
                    if keep:
                        children.append(tok)
                elif tok.type == "link_close":
                    if kept_links and kept_links.pop():
                        children.append(tok)
                else:
                    children.append(tok)
            block.children = children

    return rule


APPENDIX_HEADING = "## Appendix: tool results"
"""The report's last section: each tool result in it becomes a collapsed <details> block in the HTML."""
MIN_TOC_SECTIONS = 3


def _heading_text(inline: Token) -> str:
    """The plain text of a heading's inline token (its text and code spans), HTML-escaped."""
    parts = [c.content for c in inline.children or [] if c.type in ("text", "code_inline")]
    return html.escape("".join(parts) or inline.content)


def _number_sections(tokens: list[Token], start: int = 1) -> list[tuple[str, str]]:
    """Give every h2 an id (``s1``, ``s2`` ...); returns (id, escaped text) for the table of contents."""
    entries = []
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.tag == "h2" and i + 1 < len(tokens):
            anchor = f"s{start + len(entries)}"
            tok.attrSet("id", anchor)
            entries.append((anchor, _heading_text(tokens[i + 1])))
    return entries


def _appendix_html(md: MarkdownIt, appendix: str, anchor: str) -> str:
    """The tool-result appendix: its heading, then one collapsed <details> per result (its ### heading as the
    <summary>), each rendered by the same escaping renderer."""
    lines = appendix.split("\n")
    chunks: list[list[str]] = [[]]
    for line in lines[1:]:
        if line.startswith("### "):
            chunks.append([])
        chunks[-1].append(line)
    out = [f'<h2 id="{anchor}">{html.escape(lines[0][3:])}</h2>']
    if any(x.strip() for x in chunks[0]):
        out.append(md.render("\n".join(chunks[0])))
    for chunk in chunks[1:]:
        rendered = md.render("\n".join(chunk))
        m = re.match(r"<h3>(.*?)</h3>\n?", rendered, flags=re.S)
        if m:
            rendered = f"<details><summary>{m.group(1)}</summary>\n{rendered[m.end():]}</details>\n"
        else:
            rendered = f"<details><summary>tool result</summary>\n{rendered}</details>\n"
        out.append(rendered)
    return "\n".join(out)


def markdown_to_html(markdown: str, out_dir: str | Path, title: str, local_links: bool = False) -> str:
    """Render the report's markdown as one self-contained HTML file that loads nothing from anywhere.

    Raw HTML in the markdown (for instance a column named ``<script>``) is shown as text, never
    interpreted; the run's own figures are embedded as data: URIs; any other image, and any link that
    leaves the document, is rendered as plain text; a Content-Security-Policy forbids every remote load
    should anything slip through. A page of several sections opens with a table of contents; the tool-result
    appendix (when the markdown has one) is a list of collapsed <details> blocks.

    Args:
        markdown: The report in markdown.
        out_dir: The run directory the figure paths are relative to.
        title: The page title (escaped).
        local_links: Also keep relative links to files inside ``out_dir`` and embed figures found under
            its subfolders (an overnight digest linking to its runs' reports); nothing outside it.
    """
    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    md.core.ruler.push("local_only", _local_only(Path(out_dir), local_links))
    main, sep, appendix = markdown.partition("\n" + APPENDIX_HEADING + "\n")
    tokens = md.parse(main)
    sections = _number_sections(tokens)
    body = md.renderer.render(tokens, md.options, {})
    if sep:
        anchor = f"s{len(sections) + 1}"
        sections.append((anchor, html.escape(APPENDIX_HEADING[3:])))
        body += _appendix_html(md, APPENDIX_HEADING + "\n" + appendix, anchor)
    toc = ""
    if len(sections) >= MIN_TOC_SECTIONS:
        toc = ('<nav class="toc"><strong>Contents</strong><ul>'
               + "".join(f'<li><a href="#{a}">{t}</a></li>' for a, t in sections) + "</ul></nav>\n")
        first_h2 = body.find("<h2")
        body = body[:first_h2] + toc + body[first_h2:] if first_h2 >= 0 else toc + body
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CONTENT_SECURITY_POLICY}\">"
            f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")
