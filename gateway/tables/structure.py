"""A table-structure model's answer (SLANet's HTML tokens and one box per cell) as a grid, and
the OCR words of the table put in its cells.

SLANet reads a table image as HTML structure tokens (`<thead>`, `<tr>`, `<td>`, `<td`,
` colspan="2"`, `>`, `</td>`, ...) and a box for each cell, in token order. Rows and columns
come from the tokens (a spanning cell takes its slots; the next cell the next free slot); the
cell's text is the words whose centre falls in its box, or, for a word in no box, the nearest
cell of the row the word stands in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from gateway.tables.grid import Box, FoundCell, FoundTable
from gateway.tables.stream import Word

_SPAN = re.compile(r'(row|col)span="?(\d+)"?')


class _Slot:
    __slots__ = ("box", "column", "column_span", "row", "row_span", "words")

    def __init__(self, row: int, column: int, row_span: int, column_span: int, box: Box) -> None:
        self.row, self.column = row, column
        self.row_span, self.column_span = row_span, column_span
        self.box = box
        self.words: list[Word] = []


def decode(tokens: Sequence[str], boxes: Sequence[Box]) -> tuple[list[_Slot], int, int, int]:
    """(cells, rows, columns, header rows) of SLANet's tokens and cell boxes."""
    cells: list[_Slot] = []
    taken: set[tuple[int, int]] = set()
    row = -1
    header_rows = 0
    in_head = False
    pending: dict[str, int] | None = None
    for token in tokens:  # S105: ruff takes a token compared to a literal for a password
        if token == "<thead>":  # noqa: S105
            in_head = True
        elif token == "</thead>":  # noqa: S105
            in_head = False
        elif token == "<tr>":  # noqa: S105
            row += 1
            header_rows += in_head
        elif token in ("<td>", "<td", "<td></td>"):
            pending = {"row": 1, "col": 1}
        elif pending is not None and (match := _SPAN.search(token)):
            pending[match[1]] = max(1, int(match[2]))
        if pending is not None and token in ("<td>", "<td></td>", ">"):
            row = max(row, 0)
            column = 0
            while (row, column) in taken:
                column += 1
            rows, cols = pending["row"], pending["col"]
            taken.update((row + r, column + c) for r in range(rows) for c in range(cols))
            box = boxes[len(cells)] if len(cells) < len(boxes) else (0.0, 0.0, 0.0, 0.0)
            cells.append(_Slot(row, column, rows, cols, box))
            pending = None
    n_rows = max((c.row + c.row_span for c in cells), default=0)
    n_cols = max((c.column + c.column_span for c in cells), default=0)
    return cells, n_rows, n_cols, header_rows


def _distance(box: Box, x: float, y: float) -> float:
    dx = max(box[0] - x, 0.0, x - box[2])
    dy = max(box[1] - y, 0.0, y - box[3])
    return dx * dx + 4 * dy * dy  # a row away counts more than a column away


def fill(cells: list[_Slot], words: Sequence[Word]) -> None:
    """Each word into the cell holding its centre, else the nearest cell."""
    usable = [c for c in cells if c.box[2] > c.box[0] and c.box[3] > c.box[1]]
    if not usable:
        return
    for word in words:
        x, y = (word.box[0] + word.box[2]) / 2, (word.box[1] + word.box[3]) / 2
        best = min(usable, key=lambda c: _distance(c.box, x, y))
        best.words.append(word)


def _text(words: list[Word]) -> str:
    """Words in reading order: rows by their centres (half a word's height apart), then x."""
    if not words:
        return ""
    ordered = sorted(words, key=lambda w: (w.box[1] + w.box[3]) / 2)
    rows: list[list[Word]] = [[ordered[0]]]
    for word in ordered[1:]:
        last = rows[-1][-1]
        height = max(last.box[3] - last.box[1], 1.0)
        if (word.box[1] + word.box[3]) / 2 - (last.box[1] + last.box[3]) / 2 > height / 2:
            rows.append([])
        rows[-1].append(word)
    return " ".join(w.text for row in rows for w in sorted(row, key=lambda w: w.box[0]))


def model_table(
    tokens: Sequence[str], boxes: Sequence[Box], words: Sequence[Word]
) -> FoundTable | None:
    """The grid of SLANet's answer with the words in its cells (boxes and words in page
    pixels); None when it is no table of at least two rows and two columns."""
    cells, rows, columns, header_rows = decode(tokens, boxes)
    if rows < 2 or columns < 2:
        return None
    fill(cells, words)
    found = []
    for cell in cells:
        box = cell.box
        if cell.words:  # the cell reaches at least over its words
            box = (
                min(box[0], *(w.box[0] for w in cell.words)),
                min(box[1], *(w.box[1] for w in cell.words)),
                max(box[2], *(w.box[2] for w in cell.words)),
                max(box[3], *(w.box[3] for w in cell.words)),
            )
        found.append(
            FoundCell(
                row=cell.row,
                column=cell.column,
                row_span=cell.row_span,
                column_span=cell.column_span,
                box=box,
                text=_text(cell.words),
            )
        )
    return FoundTable(
        rows=rows,
        columns=columns,
        cells=found,
        header_rows=header_rows if 0 < header_rows < rows else None,
        method="model",
    )
