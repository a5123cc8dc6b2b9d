"""A table block's words by cell, for the formats that carry a table's structure (hOCR, ALTO):
`gateway.tables.blocks.words_by_cell` with each line's words as every format reads them (a
line without words split by character counts)."""

from __future__ import annotations

from gateway.outputs.pages import line_words
from gateway.results import ContentBlock, TableCell, Word
from gateway.tables.blocks import words_by_cell as _by_cell


def words_by_cell(block: ContentBlock) -> tuple[list[tuple[TableCell, list[Word]]], list[Word]]:
    """(each cell with its words in reading order, the words in no cell)."""
    return _by_cell(block, line_words)
