"""The whole document as one markdown text, pages in order, each block as its type reads.

Each page opens with an HTML comment naming it (`<!-- page 3 -->`, invisible once rendered,
there for programs and language models that cite pages); pages are separated by a rule. A
title is a `##` heading, a list block a bulleted list, a table block its cells as a pipe table
(the table's HTML where cells span; a table block without cells, from results stored before
tables had them, split where the gap between two words is wider than the line is tall), other
blocks their lines. A page that was not read says so where its text would be.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from gateway.outputs.pages import failure_note, line_words
from gateway.results import BlockLine, ContentBlock, PageDimensions, PageResult
from gateway.tables.grid import table_markdown as grid_markdown

PAGE_BREAK = "\n\n---\n\n"
BULLETS = "-*\u2022\u00b7\u2023\u25e6\u25aa\u2013"  # a list line's own bullet: markdown's instead
CELL_GAP = 1.0  # a gap between words this many line heights wide separates table cells


def to_markdown(pages: Sequence[PageResult]) -> str:
    return PAGE_BREAK.join(page_markdown(page) for page in pages) + "\n"


def page_markdown(page: PageResult) -> str:
    head = f"<!-- page {page.page_number} -->"
    if page.status == "failed":
        return f"{head}\n\n> **{failure_note(page)}**"
    size = page.document_metadata.page_dimensions if page.document_metadata else None
    parts = [block_markdown(block, size) for block in page.content_blocks]
    return "\n\n".join([head, *(part for part in parts if part)])


def block_markdown(block: ContentBlock, size: PageDimensions | None) -> str:
    lines = [line.text.strip() for line in block.lines if line.text.strip()]
    if not lines:
        return ""
    if block.type == "title":
        return "## " + " ".join(lines)
    if block.type == "list":
        return "\n".join("- " + line.lstrip(BULLETS).strip() for line in lines)
    if block.table is not None:
        return grid_markdown(block.table)
    if block.type == "table" and size is not None:
        return table_markdown([table_cells(line, size) for line in block.lines if line.text])
    return "\n".join(lines)


def table_cells(line: BlockLine, size: PageDimensions) -> list[str]:
    """A table row's cells: its words, split where a gap is wider than the line is tall."""
    words = line_words(line)
    if not words:
        return []
    cells = [[words[0].text]]
    line_height = line.geometry.height * size.height
    for before, word in itertools.pairwise(words):
        gap = (word.geometry.x - before.geometry.x - before.geometry.width) * size.width
        if gap > CELL_GAP * line_height:
            cells.append([])
        cells[-1].append(word.text)
    return [" ".join(cell) for cell in cells]


def table_markdown(rows: list[list[str]]) -> str:
    rows = [row for row in rows if row]
    if not rows:
        return ""
    columns = max(len(row) for row in rows)

    def pipe_row(cells: list[str]) -> str:
        padded = [cell.replace("|", "\\|") for cell in cells] + [""] * (columns - len(cells))
        return "| " + " | ".join(padded) + " |"

    rule = "| " + " | ".join(["---"] * columns) + " |"
    return "\n".join([pipe_row(rows[0]), rule, *(pipe_row(row) for row in rows[1:])])
