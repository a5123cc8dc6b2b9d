"""A table block's words by cell, for the formats that carry a table's structure (hOCR, ALTO):
each word goes to the cell its centre falls in; words in no cell are kept apart, so every
format still places every word."""

from __future__ import annotations

from gateway.outputs.pages import line_words
from gateway.results import ContentBlock, TableCell, Word


def words_by_cell(block: ContentBlock) -> tuple[list[tuple[TableCell, list[Word]]], list[Word]]:
    """(each cell with its words in reading order, the words in no cell)."""
    table = block.table
    cells = sorted(table.cells, key=lambda c: (c.row, c.column)) if table is not None else []
    held: list[list[Word]] = [[] for _ in cells]
    loose: list[Word] = []
    for line in block.lines:
        for word in line_words(line):
            g = word.geometry
            cx, cy = g.x + g.width / 2, g.y + g.height / 2
            for i, cell in enumerate(cells):
                c = cell.geometry
                if c.x <= cx <= c.x + c.width and c.y <= cy <= c.y + c.height:
                    held[i].append(word)
                    break
            else:
                loose.append(word)
    return list(zip(cells, held, strict=True)), loose
