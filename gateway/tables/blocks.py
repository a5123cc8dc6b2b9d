"""A page's blocks with its tables as blocks: each table one `"table"` block in reading order,
holding the lines (with their words) that lie in it, its text the cells row by row.

The caller splits the page's lines with `split_lines`, lays out the lines outside the tables
and those inside each table (`gateway.work.layout.build_blocks`), and hands both here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import msgspec

from gateway.results import ContentBlock, Geometry, Table
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


def _union(a: Geometry, b: Geometry) -> Geometry:
    x, y = min(a.x, b.x), min(a.y, b.y)
    x2, y2 = max(a.x + a.width, b.x + b.width), max(a.y + a.height, b.y + b.height)
    return Geometry(x=x, y=y, width=round(x2 - x, 5), height=round(y2 - y, 5))


def table_block(table: Table, inside: Sequence[ContentBlock]) -> ContentBlock:
    """One table block: the cells' extent (and its lines'), the lines laid out inside it."""
    geometry = table.cells[0].geometry
    for cell in table.cells[1:]:
        geometry = _union(geometry, cell.geometry)
    lines = [line for block in inside for line in block.lines]
    chars = sum(len(line.text) for line in lines)
    confidence = sum(line.confidence * len(line.text) for line in lines) / chars if chars else 1.0
    return ContentBlock(
        block_id=0,
        type="table",
        geometry=geometry,
        text=table_text(table),
        confidence=round(confidence, 4),
        lines=lines,
        table=table,
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
