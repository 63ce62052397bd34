"""Result pages: one structure, rendered as markdown and as a self-contained HTML file.

A `Page` is a title and sections; a section holds blocks in order: paragraphs, tables and
figures (PNG files). The markdown links the figures by relative path; the HTML embeds them
(base64), so it can be mailed or archived as one file.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paragraph:
    text: str  # plain text; `code` spans in backquotes are kept as code in both renderings


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.header):
                raise ValueError(
                    f"table {self.caption!r}: row {row} has {len(row)} cells, "
                    f"the header {len(self.header)}"
                )


@dataclass(frozen=True)
class FigureBlock:
    path: Path  # PNG file
    caption: str


Block = Paragraph | Table | FigureBlock


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Page:
    title: str
    sections: tuple[Section, ...]
    intro: tuple[Paragraph, ...] = ()


@dataclass(frozen=True)
class PageFiles:
    markdown: Path
    html: Path


def write_page(page: Page, directory: str | Path, stem: str = "report") -> PageFiles:
    """Write `<stem>.md` and `<stem>.html` into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    markdown_path = directory / f"{stem}.md"
    html_path = directory / f"{stem}.html"
    markdown_path.write_text(render_markdown(page, directory))
    html_path.write_text(render_html(page))
    return PageFiles(markdown_path, html_path)


def render_markdown(page: Page, directory: Path) -> str:
    """Markdown with figures linked relative to `directory` (where the page is written)."""
    lines = [f"# {page.title}", ""]
    lines += [line for paragraph in page.intro for line in (paragraph.text, "")]
    for section in page.sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            lines += [*_markdown_block(block, directory), ""]
    return "\n".join(lines).rstrip() + "\n"


def _markdown_block(block: Block, directory: Path) -> list[str]:
    if isinstance(block, Paragraph):
        return [block.text]
    if isinstance(block, Table):
        lines = [f"*{block.caption}*", ""] if block.caption else []
        lines.append("| " + " | ".join(_markdown_cell(cell) for cell in block.header) + " |")
        lines.append("|" + "|".join("---" for _ in block.header) + "|")
        lines += [
            "| " + " | ".join(_markdown_cell(cell) for cell in row) + " |" for row in block.rows
        ]
        return lines
    relative = _relative(block.path, directory)
    return [f"![{block.path.stem}]({relative})", "", f"*{block.caption}*"]


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _relative(path: Path, directory: Path) -> str:
    try:
        return path.resolve().relative_to(directory.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70em; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.5em 0 1.2em; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f2f2f2; }
td:first-child, th:first-child, td.text { text-align: left; }
caption { caption-side: top; font-style: italic; text-align: left; padding-bottom: 0.3em; }
figure { margin: 1em 0 1.6em; }
figure img { max-width: 100%; }
figcaption { font-style: italic; color: #444; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def render_html(page: Page) -> str:
    """One HTML document with every figure embedded as a base64 PNG."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(page.title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(page.title)}</h1>",
    ]
    parts += [_html_paragraph(paragraph) for paragraph in page.intro]
    for section in page.sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts += [_html_block(block) for block in section.blocks]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return _html_paragraph(block)
    if isinstance(block, Table):
        return _html_table(block.header, block.rows, block.caption)
    encoded = base64.b64encode(block.path.read_bytes()).decode("ascii")
    caption = _inline_html(block.caption)
    return (
        f'<figure><img src="data:image/png;base64,{encoded}" alt="{html.escape(block.caption)}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _html_paragraph(paragraph: Paragraph) -> str:
    return f"<p>{_inline_html(paragraph.text)}</p>"


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]], caption: str) -> str:
    head = "".join(f"<th>{_inline_html(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(_html_cell(cell) for cell in row) + "</tr>" for row in rows)
    caption_html = f"<caption>{_inline_html(caption)}</caption>" if caption else ""
    return f"<table>{caption_html}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# A number: digits with signs, units and ranges ("1.2e-3", "−4.5 %", "1.16x", "95 ± 2"); or a
# placeholder for a missing one. Without a digit, "x" or "e" alone would count as numbers.
_NUMBER = re.compile(r"^(?=.*\d)[\s\d.,%+\-−±×x()eE]*$|^(n/a|–|—|-)$")


def _html_cell(cell: str) -> str:
    """Numbers align right (so digits line up); words and sentences align left."""
    align = "" if _NUMBER.match(cell.strip()) else ' class="text"'
    return f"<td{align}>{_inline_html(cell)}</td>"


def _inline_html(text: str) -> str:
    """Escape, then turn `code` spans (between backquotes) into <code> elements."""
    pieces = html.escape(text).split("`")
    return "".join(
        f"<code>{piece}</code>" if position % 2 else piece for position, piece in enumerate(pieces)
    )
