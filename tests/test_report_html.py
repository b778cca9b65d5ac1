"""The HTML report is self-contained and escapes every string that came from the table."""

from serendip.agent.report_html import markdown_to_html
from serendip.tools.engine.mdtext import code


def test_hostile_strings_stay_text(tmp_path):
    md = (f"# Report\n\nColumn {code('<script>alert(1)</script>')} and raw <script>alert(2)</script> "
          f"and <img src=x onerror=alert(3)> and [x](javascript:alert(4))\n")
    html = markdown_to_html(md, tmp_path, "<title>")
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="javascript' not in html
    assert "<title>&lt;title&gt;</title>" in html


def test_figures_are_embedded(tmp_path):
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "R1_a.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    html = markdown_to_html("![f](figures/R1_a.png)\n", tmp_path, "t")
    assert 'src="data:image/png;base64,' in html and "figures/R1_a.png" not in html


def test_code_fences_grow_past_backticks():
    assert code("a`b") == "``a`b``"
    assert code("x" * 200).endswith("…`") and len(code("x" * 200)) == 82
