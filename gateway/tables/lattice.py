"""Tables drawn with ruling lines: cells where horizontal and vertical rules cross.

The rules come from the caller (a PDF page's paths, in page pixels). Snapping, joining, the
crossings, the smallest cells they close and the grouping of cells into tables are
pdfplumber's geometry (`pdfplumber.table`, the Nurminen/Tabula method), fed our segments
rather than pdfminer's parse of the page, so a page is not parsed a second time. Each cell's
text is the characters (or words) whose centre falls in it, in reading order.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from gateway.tables.grid import Box, FoundTable, cluster, table_from_boxes

Segment = tuple[float, float, float, float]  # x0, y0, x1, y1 in page pixels, axis-aligned
Piece = tuple[str, Box]  # a character or word and its box, in reading order

SNAP = 3.0  # points: rules this close are one (pdfplumber's default), scaled to pixels
MIN_RULE = 3.0  # points: shorter segments are no rules
MIN_SPLIT_LINES = 3  # text lines in two cells of one ruled row that make it several rows


def _edge(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    if abs(y1 - y0) <= abs(x1 - x0):
        y = (y0 + y1) / 2
        left, right = min(x0, x1), max(x0, x1)
        return {
            "x0": left,
            "x1": right,
            "top": y,
            "bottom": y,
            "width": right - left,
            "height": 0.0,
            "orientation": "h",
        }
    x = (x0 + x1) / 2
    top, bottom = min(y0, y1), max(y0, y1)
    return {
        "x0": x,
        "x1": x,
        "top": top,
        "bottom": bottom,
        "width": 0.0,
        "height": bottom - top,
        "orientation": "v",
    }


def lattice_cells(segments: Sequence[Segment], scale: float) -> list[list[Box]]:
    """Groups of cell boxes, one group per table, from axis-aligned rule segments given in
    pixels of a page rendered at `scale` pixels per point."""
    from pdfplumber.table import (
        cells_to_tables,
        edges_to_intersections,
        intersections_to_cells,
        merge_edges,
    )

    snap = SNAP * scale
    edges = [_edge(*s) for s in segments]
    edges = [e for e in edges if max(e["width"], e["height"]) >= MIN_RULE * scale]
    if len(edges) < 4:
        return []
    edges = merge_edges(edges, snap, snap, snap, snap)
    edges = [e for e in edges if max(e["width"], e["height"]) >= MIN_RULE * scale]
    if not any(e["orientation"] == "v" for e in edges):
        return []
    cells = intersections_to_cells(edges_to_intersections(edges, snap, snap))
    return [[tuple(map(float, c)) for c in group] for group in cells_to_tables(cells)]  # type: ignore[misc]


def texts_in_boxes(boxes: Sequence[Box], pieces: Sequence[Piece], joiner: str) -> list[str]:
    """Each box's text: the pieces whose centre falls in it, in their order, joined by
    `joiner` ("" for characters, which carry their own spaces and line breaks)."""
    import numpy as np

    texts: list[list[str]] = [[] for _ in boxes]
    if not boxes or not pieces:
        return ["" for _ in boxes]
    b = np.asarray(boxes, dtype=np.float64)
    p = np.asarray([box for _, box in pieces], dtype=np.float64)
    cx, cy = (p[:, 0] + p[:, 2]) / 2, (p[:, 1] + p[:, 3]) / 2
    inside = (
        (b[None, :, 0] <= cx[:, None])
        & (cx[:, None] <= b[None, :, 2])
        & (b[None, :, 1] <= cy[:, None])
        & (cy[:, None] <= b[None, :, 3])
    )
    hit = inside.any(axis=1)
    owner = inside.argmax(axis=1)
    started = [False for _ in boxes]
    for k in np.flatnonzero(hit):
        i = int(owner[k])
        text = pieces[int(k)][0]
        if started[i]:
            texts[i].append(joiner)
        texts[i].append(text)
        started[i] = True
    return [" ".join("".join(parts).split()) for parts in texts]


def _text_lines(pieces: Sequence[Piece]) -> list[tuple[float, float]]:
    """The (top, bottom) bands of the text lines the pieces stand on: a piece overlapping the
    band of the line above joins it (descenders, decimal points), else starts a new one."""
    boxes = sorted((b[1], b[3]) for text, b in pieces if text.strip())
    lines: list[list[float]] = []
    for top, bottom in boxes:
        if lines and top < lines[-1][1]:
            lines[-1][1] = max(lines[-1][1], bottom)
        else:
            lines.append([top, bottom])
    return [(line[0], line[1]) for line in lines]


def _mostly_figures(pieces: Sequence[Piece]) -> bool:
    """Half the tokens of the text or more hold a digit."""
    tokens = "".join(text for text, _ in pieces).split()
    return bool(tokens) and 2 * sum(any(ch.isdigit() for ch in t) for t in tokens) >= len(tokens)


def split_rows(boxes: Sequence[Box], pieces: Sequence[Piece], tolerance: float) -> list[Box]:
    """Cells one row of rules holds several rows of text in (a body drawn with column rules
    only): where more than half the row's filled cells (two at least, one of them mostly
    figures) hold MIN_SPLIT_LINES lines or more, each cell of the row is cut between the text
    lines."""
    import numpy as np

    rows = cluster([v for b in boxes for v in (b[1], b[3])], tolerance)
    out = list(boxes)
    if not pieces:
        return out
    at = np.asarray([p[1] for p in pieces], dtype=np.float64)
    cx, cy = (at[:, 0] + at[:, 2]) / 2, (at[:, 1] + at[:, 3]) / 2
    for top, bottom in itertools.pairwise(rows):
        band = [
            i
            for i, b in enumerate(out)
            if abs(b[1] - top) <= tolerance and abs(b[3] - bottom) <= tolerance
        ]
        per_cell = []
        for i in band:
            b = out[i]
            hit = (b[0] <= cx) & (cx <= b[2]) & (b[1] <= cy) & (cy <= b[3])
            per_cell.append([pieces[int(k)] for k in np.flatnonzero(hit)])
        counts = [len(_text_lines(cell)) for cell in per_cell if cell]
        tall = sum(count >= MIN_SPLIT_LINES for count in counts)
        figures = sum(
            len(_text_lines(cell)) >= MIN_SPLIT_LINES and _mostly_figures(cell) for cell in per_cell
        )
        if tall < 2 or 2 * tall <= len(counts) or figures < 1:
            continue  # wrapped words (a header) stay one row; rows of figures are cut
        bands = _text_lines([p for cell in per_cell for p in cell])
        cuts = [top] + [(a[1] + b[0]) / 2 for a, b in itertools.pairwise(bands)] + [bottom]
        for i in band:
            b = out[i]
            out[i] = (b[0], cuts[0], b[2], cuts[1])
            out += [(b[0], y0, b[2], y1) for y0, y1 in itertools.pairwise(cuts[1:])]
    return out


def split_columns(boxes: Sequence[Box], pieces: Sequence[Piece], tolerance: float) -> list[Box]:
    """Cells that span columns but hold figures standing apart in each column they span (a
    body drawn without rules between its columns of figures, under a ruled head): each is cut
    along the column edges, when no character or word crosses one and every filled part
    holds a digit. A spanning head's text (words, or one run across an edge) stays whole."""
    xs = cluster([v for b in boxes for v in (b[0], b[2])], tolerance)
    out: list[Box] = []
    for box in boxes:
        inner = [x for x in xs if box[0] + tolerance < x < box[2] - tolerance]
        if not inner:
            out.append(box)
            continue
        mine = [
            (text, b)
            for text, b in pieces
            if box[0] <= (b[0] + b[2]) / 2 <= box[2] and box[1] <= (b[1] + b[3]) / 2 <= box[3]
        ]
        edges = [box[0], *inner, box[2]]
        parts: list[str] = ["" for _ in edges[1:]]
        crossed = False
        token: set[int] = set()  # the column slots of the word being read
        for text, b in [*mine, (" ", box)]:
            if not text.strip():
                crossed = crossed or len(token) > 1
                token = set()
                continue
            crossed = crossed or any(b[0] < x - 1 and b[2] > x + 1 for x in inner)
            slot = sum(1 for x in inner if x <= (b[0] + b[2]) / 2)
            token.add(slot)
            parts[slot] += text
        filled = [part for part in parts if part]
        if crossed or len(filled) < 2 or not all(any(ch.isdigit() for ch in p) for p in filled):
            out.append(box)
            continue
        out += [(x0, box[1], x1, box[3]) for x0, x1 in itertools.pairwise(edges)]
    return out


def lattice_tables(
    segments: Sequence[Segment], pieces: Sequence[Piece], scale: float, joiner: str = ""
) -> list[FoundTable]:
    """Ruled tables of at least two rows and two columns with text in two cells or more."""
    found = []
    for cells in lattice_cells(segments, scale):
        left, top = min(b[0] for b in cells), min(b[1] for b in cells)
        right, bottom = max(b[2] for b in cells), max(b[3] for b in cells)
        near = [p for p in pieces if left <= p[1][0] <= right and top <= p[1][1] <= bottom]
        boxes = split_columns(split_rows(cells, near, SNAP * scale), near, SNAP * scale)
        texts = texts_in_boxes(boxes, pieces, joiner)
        if sum(1 for t in texts if t) < 2:
            continue
        table = table_from_boxes(boxes, texts, SNAP * scale, "lattice")
        if table is not None and table.rows >= 2 and table.columns >= 2:
            found.append(table)
    return found
