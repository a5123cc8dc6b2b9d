"""Tables drawn with ruling lines: cells where horizontal and vertical rules cross.

The rules come from the caller (a PDF page's paths, in page pixels). Snapping, joining, the
crossings, the smallest cells they close and the grouping of cells into tables are
pdfplumber's geometry (`pdfplumber.table`, the Nurminen/Tabula method), fed our segments
rather than pdfminer's parse of the page, so a page is not parsed a second time. Each cell's
text is the characters (or words) whose centre falls in it, in reading order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.tables.grid import Box, FoundTable, table_from_boxes

Segment = tuple[float, float, float, float]  # x0, y0, x1, y1 in page pixels, axis-aligned
Piece = tuple[str, Box]  # a character or word and its box, in reading order

SNAP = 3.0  # points: rules this close are one (pdfplumber's default), scaled to pixels
MIN_RULE = 3.0  # points: shorter segments are no rules


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


def lattice_tables(
    segments: Sequence[Segment], pieces: Sequence[Piece], scale: float, joiner: str = ""
) -> list[FoundTable]:
    """Ruled tables of at least two rows and two columns with text in two cells or more."""
    found = []
    for boxes in lattice_cells(segments, scale):
        texts = texts_in_boxes(boxes, pieces, joiner)
        if sum(1 for t in texts if t) < 2:
            continue
        table = table_from_boxes(boxes, texts, SNAP * scale, "lattice")
        if table is not None and table.rows >= 2 and table.columns >= 2:
            found.append(table)
    return found
