"""Markdown and self-contained HTML rendering of a page."""

import base64
import re
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from omnirouter.report.page import (
    FigureBlock,
    Page,
    Paragraph,
    Section,
    Table,
    render_html,
    write_page,
)


def tiny_png(path: Path) -> Path:
    figure = Figure(figsize=(1, 1))
    figure.add_subplot().plot([0, 1], [1, 0])
    figure.savefig(path, dpi=20)
    return path


def sample_page(tmp_path: Path) -> Page:
    (tmp_path / "figs").mkdir()
    figure = tiny_png(tmp_path / "figs" / "curve.png")
    return Page(
        "Results <&>",
        (
            Section(
                "Numbers",
                (
                    Paragraph("Read `results.json` for <more>."),
                    Table(("model", "WER | %"), (("a", "1.0"), ("b", "2.5")), "Two models."),
                    FigureBlock(figure, "A curve."),
                ),
            ),
        ),
        (Paragraph("Intro."),),
    )


def test_markdown_has_headings_tables_and_relative_figure_links(tmp_path: Path) -> None:
    files = write_page(sample_page(tmp_path), tmp_path, "page")
    markdown = files.markdown.read_text()
    assert markdown.startswith("# Results <&>\n")
    assert "## Numbers" in markdown
    assert "| model | WER \\| % |" in markdown
    assert "|---|---|" in markdown
    assert "| b | 2.5 |" in markdown
    assert "](figs/curve.png)" in markdown


def test_html_escapes_text_and_embeds_the_figure(tmp_path: Path) -> None:
    page = sample_page(tmp_path)
    document = render_html(page)
    assert "<title>Results &lt;&amp;&gt;</title>" in document
    assert "<code>results.json</code> for &lt;more&gt;" in document
    assert "<td>2.5</td>" in document
    assert "figs/curve.png" not in document  # self-contained: no file links
    (encoded,) = re.findall(r'src="data:image/png;base64,([^"]+)"', document)
    assert base64.b64decode(encoded) == (tmp_path / "figs" / "curve.png").read_bytes()


def test_a_table_row_of_the_wrong_width_is_an_error() -> None:
    with pytest.raises(ValueError, match="cells"):
        Table(("a", "b"), (("1",),), "bad")


@pytest.mark.parametrize("cell", ["2.5", "−4.5 %", "1.2e-3", "1.16x", "95 ± 2", "n/a", "–"])
def test_numbers_align_right(cell: str) -> None:
    document = render_html(Page("t", (Section("s", (Table(("h",), ((cell,),), "c"),)),)))
    assert f"<td>{cell}</td>" in document


@pytest.mark.parametrize("cell", ["omni", "x", "e", "exe", "dense (E=2)"])
def test_words_align_left(cell: str) -> None:
    document = render_html(Page("t", (Section("s", (Table(("h",), ((cell,),), "c"),)),)))
    assert '<td class="text">' in document
