"""A page's blocks with its tables as blocks: each table one `"table"` block in reading order,
holding the words that lie in it as the lines of its cells (row by row; the words in no cell
after them), its text the cells row by row.

The caller splits the page's lines with `split_lines`, lays out the lines outside the tables
and those inside each table (`gateway.work.layout.build_blocks`), and hands both here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import msgspec

from gateway.results import BlockLine, ContentBlock, Geometry, Table, TableCell, Word
from gateway.tables.grid import Box, table_text

T = TypeVar("T")


def split_lines(
    lines: Sequence[T], boxes: Sequence[Box], bounds: Sequence[Box]
) -> tuple[list[T], list[list[T]]]:
    """The lines (with their pixel `bounds`) outside every table box, and those inside each
    (by the line's centre)."""
    outside: list[T] = []
    inside: list[list[T]] = [[] for _ in boxes]
    for line, (left, top, right, bottom) in zip(lines, bounds, strict=True):
        cx, cy = (left + right) / 2, (top + bottom) / 2
        for i, box in enumerate(boxes):
            if box[0] <= cx <= box[2] and box[1] <= cy <= box[3]:
                inside[i].append(line)
                break
        else:
            outside.append(line)
    return outside, inside


def _words(line: BlockLine) -> list[Word]:
    return list(line.words)


def words_by_cell(
    block: ContentBlock, words_of: Callable[[BlockLine], list[Word]] = _words
) -> tuple[list[tuple[TableCell, list[Word]]], list[Word]]:
    """(each cell of the block's table, row by row, with its words in reading order; the
    words in no cell): each word goes to the first cell its centre falls in."""
    import numpy as np

    table = block.table
    cells = sorted(table.cells, key=lambda c: (c.row, c.column)) if table is not None else []
    held: list[list[Word]] = [[] for _ in cells]
    loose: list[Word] = []
    words = [word for line in block.lines for word in words_of(line)]
    if not cells or not words:
        return list(zip(cells, held, strict=True)), words
    c = np.asarray(
        [(g.x, g.y, g.x + g.width, g.y + g.height) for g in (cell.geometry for cell in cells)],
        dtype=np.float64,
    )
    w = np.asarray(
        [(g.x + g.width / 2, g.y + g.height / 2) for g in (word.geometry for word in words)],
        dtype=np.float64,
    )
    inside = (
        (c[None, :, 0] <= w[:, None, 0])
        & (w[:, None, 0] <= c[None, :, 2])
        & (c[None, :, 1] <= w[:, None, 1])
        & (w[:, None, 1] <= c[None, :, 3])
    )
    found: list[bool] = np.asarray(inside.any(axis=1)).tolist()
    first: list[int] = np.asarray(inside.argmax(axis=1)).tolist()
    for word, hit, i in zip(words, found, first, strict=True):
        if hit:
            held[i].append(word)
        else:
            loose.append(word)
    return list(zip(cells, held, strict=True)), loose


def _extent(geometries: Sequence[Geometry]) -> Geometry:
    """The union of the boxes (one pass: a table's lines and cells are many)."""
    first = geometries[0]
    x, y, x2, y2 = first.x, first.y, first.x + first.width, first.y + first.height
    for g in geometries[1:]:
        x, y = min(x, g.x), min(y, g.y)
        x2, y2 = max(x2, g.x + g.width), max(y2, g.y + g.height)
    return Geometry(x=x, y=y, width=round(x2 - x, 5), height=round(y2 - y, 5))


def _line(words: list[Word]) -> BlockLine:
    chars = sum(len(w.text) for w in words) or 1
    return BlockLine(
        text=" ".join(w.text for w in words),
        confidence=round(sum(w.confidence * len(w.text) for w in words) / chars, 4),
        geometry=_extent([w.geometry for w in words]),
        words=words,
    )


def _rows(words: list[Word]) -> list[list[Word]]:
    """Words in rows (centres more than half a word's height apart), each left to right."""
    rows: list[list[Word]] = []
    for word in sorted(words, key=lambda w: w.geometry.y + w.geometry.height / 2):
        if rows:
            last = rows[-1][-1].geometry
            centre = word.geometry.y + word.geometry.height / 2
            if centre - (last.y + last.height / 2) <= last.height / 2:
                rows[-1].append(word)
                continue
        rows.append([word])
    return [sorted(row, key=lambda w: w.geometry.x) for row in rows]


def table_block(table: Table, inside: Sequence[ContentBlock]) -> ContentBlock:
    """One table block: the cells' extent, its lines those of its cells row by row (a cell's
    words on one row of text are one line), then lines of the words in no cell."""
    lines = [line for block in inside for line in block.lines]
    geometry = _extent([cell.geometry for cell in table.cells] + [line.geometry for line in lines])
    draft = ContentBlock(
        block_id=0,
        type="table",
        geometry=geometry,
        text="",
        confidence=1.0,
        lines=lines,
        table=table,
    )
    by_cell, loose = words_by_cell(draft)
    lines = [_line(row) for _, words in by_cell for row in _rows(words)]
    lines += [_line(row) for row in _rows(loose)]
    chars = sum(len(line.text) for line in lines)
    confidence = sum(line.confidence * len(line.text) for line in lines) / chars if chars else 1.0
    return msgspec.structs.replace(
        draft, text=table_text(table), confidence=round(confidence, 4), lines=lines
    )


def _overlaps(a: Geometry, b: Geometry) -> bool:
    return a.x < b.x + b.width and b.x < a.x + a.width


def with_tables(
    blocks: Sequence[ContentBlock], tables: Sequence[ContentBlock]
) -> list[ContentBlock]:
    """The blocks with each table block placed before the first block (in reading order) that
    starts below the table's top in the same columns, or last; block ids renumbered."""
    ordered = list(blocks)
    for table in sorted(tables, key=lambda b: (b.geometry.y, b.geometry.x)):
        at = next(
            (
                i
                for i, block in enumerate(ordered)
                if block.geometry.y >= table.geometry.y
                and _overlaps(block.geometry, table.geometry)
            ),
            len(ordered),
        )
        ordered.insert(at, table)
    return [msgspec.structs.replace(b, block_id=i) for i, b in enumerate(ordered, 1)]
