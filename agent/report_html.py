"""Markdown report to one self-contained, escaped HTML file."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from markdown_it import MarkdownIt

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;
line-height:1.5;color:#1d2330}
h1,h2,h3{line-height:1.2} h2{border-bottom:1px solid #dde;padding-bottom:.2em;margin-top:2em}
code{background:#f3f4f8;padding:0 .25em;border-radius:3px;word-break:break-all}
table{border-collapse:collapse;margin:1em 0;font-size:.9em} td,th{border:1px solid #ccd;padding:.25em .5em}
th{background:#f3f4f8} img{max-width:100%;border:1px solid #eee;margin:.5em 0}
blockquote{color:#555;border-left:3px solid #ccd;margin-left:0;padding-left:1em}
"""

_IMG_SRC = re.compile(r'src="(figures/[A-Za-z0-9_.\-]+\.png)"')


def markdown_to_html(markdown: str, out_dir: str | Path, title: str) -> str:
    """Render the report's markdown as HTML with raw HTML disabled and figures embedded.

    Raw HTML in the markdown (for instance a column named ``<script>``) is shown as text, never
    interpreted; links with unsafe schemes are not made into links.

    Args:
        markdown: The report in markdown.
        out_dir: The run directory the figure paths are relative to.
        title: The page title (escaped).
    """
    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    body = md.render(markdown)
    out_dir = Path(out_dir)

    def embed(match: re.Match) -> str:
        path = out_dir / match.group(1)
        if not path.is_file():
            return match.group(0)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'src="data:image/png;base64,{data}"'

    body = _IMG_SRC.sub(embed, body)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")
