"""A read page's blocks with its tables as cells.

A page answered from its PDF's text layer gets its tables from the PDF's own rules and
characters (`gateway.work.pdftables`); a page read by an engine from its image gets them from
the image (`gateway.work.imagetables`, when the worker hands the image in). The lines inside a
table become the table block's lines; the rest are laid out as before (`build_blocks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gateway.results import ContentBlock
from gateway.tables.blocks import split_lines, table_block, with_tables
from gateway.tables.grid import FoundTable, to_table
from gateway.work.cellreads import Reader
from gateway.work.documents import DocumentKind
from gateway.work.imagetables import image_tables
from gateway.work.layout import build_blocks
from gateway.work.pdftables import PageDrawing, pdf_tables
from providers.types import PageImage, RecognizedPage, TextLine, quad_bounds

MARGIN = 2.0  # pixels around a table's cells in which a line still counts as inside


def find_tables(
    path: Path,
    kind: DocumentKind,
    index: int,
    page: RecognizedPage,
    dpi: float,
    from_text_layer: bool,
    image: PageImage | None = None,
    reader: Reader | None = None,
    drawing: PageDrawing | None = None,
) -> tuple[list[FoundTable], list[TextLine]]:
    """The tables of a read page, in its pixels (none where there is nothing to find them
    in), and the page's lines with those found by reading empty table cells again. A text
    layer's page is cut along its `drawing` (read with the text layer; else read here)."""
    if from_text_layer and kind == DocumentKind.PDF:
        return pdf_tables(path, index, dpi, page.lines, drawing), list(page.lines)
    if image is not None and page.lines:
        return image_tables(image, page.lines, reader)
    return [], list(page.lines)


def blocks_with_tables(
    lines: Sequence[TextLine], tables: Sequence[FoundTable], width: int, height: int
) -> list[ContentBlock]:
    """Blocks in reading order, each table one block holding the lines inside it."""
    if not tables:
        return build_blocks(lines, width, height)
    boxes = [
        (b[0] - MARGIN, b[1] - MARGIN, b[2] + MARGIN, b[3] + MARGIN)
        for b in (t.box for t in tables)
    ]
    outside, inside = split_lines(lines, boxes, [quad_bounds(line.quad) for line in lines])
    blocks = build_blocks(outside, width, height)
    table_blocks = [
        table_block(to_table(found, width, height), build_blocks(lines_in, width, height))
        for found, lines_in in zip(tables, inside, strict=True)
    ]
    return with_tables(blocks, table_blocks)
