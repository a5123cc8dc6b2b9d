"""A found table's cells, and the result's `Table` (relative geometry, HTML) built from them.

Cells are found in the pixels of the page image the result's geometry refers to. A spanning
cell appears once, at its top-left slot. Header rows are the first rows when the finder knows
them (a model's `<thead>`), else the first row and the rows a cell of it spans down into.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from html import escape

import msgspec

from gateway.results import Geometry, Table, TableCell

Box = tuple[float, float, float, float]  # left, top, right, bottom in page pixels


class FoundCell(msgspec.Struct, frozen=True, kw_only=True):
    row: int
    column: int
    row_span: int = 1
    column_span: int = 1
    box: Box
    text: str = ""


class FoundTable(msgspec.Struct, frozen=True, kw_only=True):
    rows: int
    columns: int
    cells: list[FoundCell]
    header_rows: int | None = None  # None: guessed from the first row's spans
    method: str = ""  # lattice | stream | model: how it was found, for logs and the benchmark

    @property
    def box(self) -> Box:
        return (
            min(c.box[0] for c in self.cells),
            min(c.box[1] for c in self.cells),
            max(c.box[2] for c in self.cells),
            max(c.box[3] for c in self.cells),
        )

    def grid(self) -> list[list[str]]:
        """Rows of texts, a spanning cell's text in its top-left slot, other slots empty."""
        rows = [[""] * self.columns for _ in range(self.rows)]
        for cell in self.cells:
            rows[cell.row][cell.column] = cell.text
        return rows


def cluster(values: Sequence[float], tolerance: float) -> list[float]:
    """Sorted values with those within `tolerance` of the previous one merged (their mean)."""
    groups: list[list[float]] = []
    for value in sorted(values):
        if groups and value - groups[-1][-1] <= tolerance:
            groups[-1].append(value)
        else:
            groups.append([value])
    return [sum(g) / len(g) for g in groups]


def _nearest(edges: list[float], value: float) -> int:
    """The index of the edge nearest `value` (edges sorted)."""
    i = bisect.bisect_left(edges, value)
    if i == 0:
        return 0
    if i == len(edges):
        return i - 1
    return i if edges[i] - value < value - edges[i - 1] else i - 1


def table_from_boxes(
    boxes: Sequence[Box], texts: Sequence[str], tolerance: float, method: str
) -> FoundTable | None:
    """The grid of cells given as boxes (a lattice): rows and columns from their edges,
    spans from the edges each box reaches. None when fewer than two rows or columns result."""
    xs = cluster([v for b in boxes for v in (b[0], b[2])], tolerance)
    ys = cluster([v for b in boxes for v in (b[1], b[3])], tolerance)
    if len(xs) < 3 or len(ys) < 3:
        return None
    cells = []
    taken: set[tuple[int, int]] = set()
    for box, text in sorted(zip(boxes, texts, strict=True), key=lambda bt: (bt[0][1], bt[0][0])):
        c0, c1 = _nearest(xs, box[0]), _nearest(xs, box[2])
        r0, r1 = _nearest(ys, box[1]), _nearest(ys, box[3])
        if c1 <= c0 or r1 <= r0 or (r0, c0) in taken:
            continue
        taken.update((r, c) for r in range(r0, r1) for c in range(c0, c1))
        cells.append(
            FoundCell(row=r0, column=c0, row_span=r1 - r0, column_span=c1 - c0, box=box, text=text)
        )
    return FoundTable(rows=len(ys) - 1, columns=len(xs) - 1, cells=cells, method=method)


def header_rows(table: FoundTable) -> int:
    if table.header_rows is not None:
        return table.header_rows
    first = [c for c in table.cells if c.row == 0]
    rows = max((c.row_span for c in first), default=1)
    if any(c.column_span > 1 for c in first) and table.rows > rows + 1:
        rows += 1  # a spanning group header: the row below names its columns
    return min(rows, table.rows - 1) if table.rows > 1 else rows


def _clamp(v: float) -> float:
    return round(1.0 if v > 1.0 else 0.0 if v < 0.0 else v, 5)


def _geometry(box: Box, width: int, height: int) -> Geometry:
    x, y = _clamp(box[0] / width), _clamp(box[1] / height)
    x2, y2 = _clamp(box[2] / width), _clamp(box[3] / height)
    return Geometry(x=x, y=y, width=round(max(x2 - x, 0.0), 5), height=round(max(y2 - y, 0.0), 5))


def to_table(found: FoundTable, width: int, height: int) -> Table:
    """The result's table: cells in row order, geometry relative to a `width` x `height` page."""
    heads = header_rows(found)
    cells = [
        TableCell(
            row=c.row,
            column=c.column,
            row_span=c.row_span,
            column_span=c.column_span,
            text=" ".join(c.text.split()),
            geometry=_geometry(c.box, width, height),
            is_header=c.row < heads,
        )
        for c in sorted(found.cells, key=lambda c: (c.row, c.column))
    ]
    return Table(
        rows=found.rows, columns=found.columns, html=table_html(found.rows, cells), cells=cells
    )


def table_html(rows: int, cells: Sequence[TableCell]) -> str:
    """`<table>` with a `<thead>` of the header rows (`<th>` cells) and a `<tbody>`."""
    by_row: list[list[TableCell]] = [[] for _ in range(rows)]
    for cell in cells:
        by_row[cell.row].append(cell)
    head = [r for r in range(rows) if by_row[r] and all(c.is_header for c in by_row[r])]
    n_head = next((i for i, r in enumerate(head) if r != i), len(head))
    parts = ["<table>"]
    for section, indices in (("thead", range(n_head)), ("tbody", range(n_head, rows))):
        if not indices:
            continue
        parts.append(f"<{section}>")
        for r in indices:
            parts.append("<tr>")
            for cell in sorted(by_row[r], key=lambda c: c.column):
                tag = "th" if section == "thead" else "td"
                spans = (f' rowspan="{cell.row_span}"' if cell.row_span > 1 else "") + (
                    f' colspan="{cell.column_span}"' if cell.column_span > 1 else ""
                )
                parts.append(f"<{tag}{spans}>{escape(cell.text, quote=False)}</{tag}>")
            parts.append("</tr>")
        parts.append(f"</{section}>")
    parts.append("</table>")
    return "".join(parts)


def table_rows(table: Table) -> list[list[str]]:
    """The grid of texts: a spanning cell's text in its top-left slot, other slots empty."""
    rows = [[""] * table.columns for _ in range(table.rows)]
    for cell in table.cells:
        if cell.row < table.rows and cell.column < table.columns:
            rows[cell.row][cell.column] = cell.text
    return rows


def table_text(table: Table) -> str:
    """Cells row by row: one line per row, its non-empty cells separated by ' | '."""
    lines = (" | ".join(cell for cell in row if cell) for row in table_rows(table))
    return "\n".join(line for line in lines if line)


def table_markdown(table: Table) -> str:
    """A pipe table (the first row as its head), or the table's HTML where cells span."""
    if any(c.row_span > 1 or c.column_span > 1 for c in table.cells):
        return table.html
    rows = table_rows(table)
    if not rows:
        return ""

    def pipe_row(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    rule = "| " + " | ".join(["---"] * table.columns) + " |"
    return "\n".join([pipe_row(rows[0]), rule, *(pipe_row(row) for row in rows[1:])])
