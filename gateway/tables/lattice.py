"""Tables drawn with ruling lines: cells where horizontal and vertical rules cross.

The rules come from the caller (a PDF page's paths, in page pixels). Snapping, joining, the
crossings, the smallest cells they close and the grouping of cells into tables are
pdfplumber's geometry (`pdfplumber.table`, the Nurminen/Tabula method, MIT), ported here to
plain tuples and numpy: the same cells at a fraction of the time (its edges are dicts copied
at every step, its crossings and cells searched pair by pair), and without importing
pdfplumber and pdfminer (0.2 s in each worker process). Each cell's text is the characters
(or words) whose centre falls in it, in reading order.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from typing import Any

from gateway.tables.grid import Box, FoundTable, cluster, table_from_boxes

Segment = tuple[float, float, float, float]  # x0, y0, x1, y1 in page pixels, axis-aligned
Piece = tuple[str, Box]  # a character or word and its box, in reading order
Point = tuple[float, float]
Edge = tuple[float, float, float]  # position across the rule, start and end along it
Meetings = dict[Point, tuple[set[Box], set[Box]]]  # crossings: the edges down, across there

SNAP = 3.0  # points: rules this close are one (pdfplumber's default), scaled to pixels
MIN_RULE = 3.0  # points: shorter segments are no rules
MIN_SPLIT_LINES = 3  # text lines in two cells of one ruled row that make it several rows


def _edges(segments: Sequence[Segment], shortest: float) -> tuple[list[Edge], list[Edge]]:
    """(horizontal, vertical) edges of the segments at least `shortest` long: a segment no
    taller than wide lies across at its mean y, any other stands at its mean x."""
    across: list[Edge] = []
    down: list[Edge] = []
    for x0, y0, x1, y1 in segments:
        flat = abs(y1 - y0) <= abs(x1 - x0)
        if flat:
            edge = ((y0 + y1) / 2, min(x0, x1), max(x0, x1))
        else:
            edge = ((x0 + x1) / 2, min(y0, y1), max(y0, y1))
        if edge[2] - edge[1] >= shortest:
            (across if flat else down).append(edge)
    return across, down


def _snapped(edges: Sequence[Edge], tolerance: float) -> list[Edge]:
    """pdfplumber's `snap_objects`: positions chained within `tolerance` of the next are one
    cluster, and each edge moves to its cluster's mean position."""
    if not edges:
        return []
    positions = sorted({e[0] for e in edges})
    cluster_of: dict[float, int] = {}
    n = 0
    for before, position in zip([None, *positions], positions, strict=False):
        if before is not None and position > before + tolerance:
            n += 1
        cluster_of[position] = n
    members: list[list[Edge]] = [[] for _ in range(n + 1)]
    for e in edges:
        members[cluster_of[e[0]]].append(e)
    out = []
    for group in members:
        mean = sum(e[0] for e in group) / len(group)
        out += [(e[0] + (mean - e[0]), e[1], e[2]) for e in group]
    return out


def _joined(edges: Sequence[Edge], tolerance: float) -> list[Edge]:
    """pdfplumber's `join_edge_group` on each line: edges at one position overlapping or
    within `tolerance` of each other along it are one."""
    out: list[Edge] = []
    by_line = sorted(edges, key=lambda e: e[0])
    for _, line in itertools.groupby(by_line, key=lambda e: e[0]):
        ordered = sorted(line, key=lambda e: e[1])
        joined = [ordered[0]]
        for e in ordered[1:]:
            last = joined[-1]
            if e[1] <= last[2] + tolerance:
                if e[2] > last[2]:
                    joined[-1] = (last[0], last[1], e[2])
            else:
                joined.append(e)
        out += joined
    return out


def _intersections(across: Sequence[Edge], down: Sequence[Edge], tolerance: float) -> Meetings:
    """pdfplumber's `edges_to_intersections`: where a vertical and a horizontal edge meet
    (within `tolerance`), with the boxes of the edges that meet there; the pairs tested at
    once (numpy) rather than one by one."""
    import numpy as np

    meetings: Meetings = {}
    if not across or not down:
        return meetings
    v = np.asarray(down, dtype=np.float64)
    h = np.asarray(across, dtype=np.float64)
    meet = (
        (v[:, None, 1] <= h[None, :, 0] + tolerance)
        & (v[:, None, 2] >= h[None, :, 0] - tolerance)
        & (v[:, None, 0] >= h[None, :, 1] - tolerance)
        & (v[:, None, 0] <= h[None, :, 2] + tolerance)
    )
    for i, j in zip(*np.nonzero(meet), strict=True):
        (x, top, bottom), (y, left, right) = down[int(i)], across[int(j)]
        meeting = meetings.setdefault((x, y), (set(), set()))
        meeting[0].add((x, top, x, bottom))
        meeting[1].add((left, y, right, y))
    return meetings


def _cells(meetings: Meetings) -> list[Box]:
    """pdfplumber's `intersections_to_cells`: from each crossing (in sorted order) the smallest
    cell whose corners are crossings joined by common edges; the crossings below and right of
    each are looked up by column and row rather than searched for among all."""
    points = sorted(meetings)
    by_x: dict[float, list[Point]] = {}
    by_y: dict[float, list[Point]] = {}
    for point in points:  # sorted by x then y: each list in order
        by_x.setdefault(point[0], []).append(point)
        by_y.setdefault(point[1], []).append(point)

    def joined(p1: Point, p2: Point) -> bool:
        if p1[0] == p2[0] and not meetings[p1][0].isdisjoint(meetings[p2][0]):
            return True
        return p1[1] == p2[1] and not meetings[p1][1].isdisjoint(meetings[p2][1])

    cells: list[Box] = []
    seen_x: dict[float, int] = {}
    seen_y: dict[float, int] = {}
    for pt in points:  # the points below and right of each: those after it in its lists
        nth_x = seen_x[pt[0]] = seen_x.get(pt[0], -1) + 1
        nth_y = seen_y[pt[1]] = seen_y.get(pt[1], -1) + 1
        below, right = by_x[pt[0]][nth_x + 1 :], by_y[pt[1]][nth_y + 1 :]
        cell = next(
            (
                (pt[0], pt[1], r[0], b[1])
                for b in below
                if joined(pt, b)
                for r in right
                if joined(pt, r)
                and (r[0], b[1]) in meetings
                and joined((r[0], b[1]), r)
                and joined((r[0], b[1]), b)
            ),
            None,
        )
        if cell is not None:
            cells.append(cell)
    return cells


def _tables(cells: Sequence[Box]) -> list[list[Box]]:
    """pdfplumber's `cells_to_tables`: cells joined through shared corners are one table (its
    passes over the remaining cells, adding those that touch the group, until none does: the
    connected group, found here through an index of corners), each table's cells in their
    order; tables of two cells or more, top to bottom then left to right."""

    def corners(cell: Box) -> tuple[Point, ...]:
        x0, top, x1, bottom = cell
        return ((x0, top), (x0, bottom), (x1, top), (x1, bottom))

    at: dict[Point, list[int]] = {}
    for i, cell in enumerate(cells):
        for corner in corners(cell):
            at.setdefault(corner, []).append(i)
    group = [-1] * len(cells)
    tables: list[list[Box]] = []
    for seed in range(len(cells)):
        if group[seed] >= 0:
            continue
        group[seed], todo, members = len(tables), [seed], [seed]
        while todo:
            for corner in corners(cells[todo.pop()]):
                for j in at[corner]:
                    if group[j] < 0:
                        group[j] = len(tables)
                        todo.append(j)
                        members.append(j)
        tables.append([cells[i] for i in sorted(members)])
    tables.sort(key=lambda t: min((c[1], c[0]) for c in t))
    return [t for t in tables if len(t) > 1]


def lattice_cells(segments: Sequence[Segment], scale: float) -> list[list[Box]]:
    """Groups of cell boxes, one group per table, from axis-aligned rule segments given in
    pixels of a page rendered at `scale` pixels per point."""
    snap, shortest = SNAP * scale, MIN_RULE * scale
    across, down = _edges(segments, shortest)
    if len(across) + len(down) < 4:
        return []
    across = [e for e in _joined(_snapped(across, snap), snap) if e[2] - e[1] >= shortest]
    down = [e for e in _joined(_snapped(down, snap), snap) if e[2] - e[1] >= shortest]
    if not down:
        return []
    return _tables(_cells(_intersections(across, down, snap)))


def _centres_in_boxes(boxes: Sequence[Box], pieces: Sequence[Piece]) -> tuple[Any, Any, Any]:
    """(boxes, piece boxes) as arrays, and inside[k, i]: piece k's centre lies in box i."""
    import numpy as np

    b = np.asarray(boxes, dtype=np.float64)
    p = np.asarray([box for _, box in pieces], dtype=np.float64)
    cx, cy = (p[:, 0] + p[:, 2]) / 2, (p[:, 1] + p[:, 3]) / 2
    inside = (
        (b[None, :, 0] <= cx[:, None])
        & (cx[:, None] <= b[None, :, 2])
        & (b[None, :, 1] <= cy[:, None])
        & (cy[:, None] <= b[None, :, 3])
    )
    return b, p, inside


def texts_in_boxes(boxes: Sequence[Box], pieces: Sequence[Piece], joiner: str) -> list[str]:
    """Each box's text: the pieces whose centre falls in it, in their order, joined by
    `joiner` ("" for characters, which carry their own spaces and line breaks)."""
    import numpy as np

    texts: list[list[str]] = [[] for _ in boxes]
    if not boxes or not pieces:
        return ["" for _ in boxes]
    _, _, inside = _centres_in_boxes(boxes, pieces)
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
    size = -1
    order: list[int] = []
    tops: list[float] = []
    held: list[list[Piece]] = []
    lines: dict[int, int] = {}
    for top, bottom in itertools.pairwise(rows):
        if len(out) != size:  # (again where cells were cut) the pieces of each cell
            size, order = len(out), sorted(range(len(out)), key=lambda i: out[i][1])
            tops = [out[i][1] for i in order]
            c = np.asarray(out, dtype=np.float64)
            hit = (
                (c[None, :, 0] <= cx[:, None])
                & (cx[:, None] <= c[None, :, 2])
                & (c[None, :, 1] <= cy[:, None])
                & (cy[:, None] <= c[None, :, 3])
            )
            held, lines = [[] for _ in out], {}
            for k, i in zip(*np.nonzero(hit), strict=True):
                held[int(i)].append(pieces[int(k)])
        near_top = order[
            bisect.bisect_left(tops, top - 2 * tolerance) : bisect.bisect_right(
                tops, top + 2 * tolerance
            )
        ]
        band = sorted(
            i
            for i in near_top
            if abs(out[i][1] - top) <= tolerance and abs(out[i][3] - bottom) <= tolerance
        )
        for i in band:
            if i not in lines:
                lines[i] = len(_text_lines(held[i])) if held[i] else 0
        per_cell = [held[i] for i in band]
        counts = [lines[i] for i in band]
        tall = sum(count >= MIN_SPLIT_LINES for count in counts)
        if tall < 2:
            continue
        figures = sum(
            count >= MIN_SPLIT_LINES and _mostly_figures(cell)
            for count, cell in zip(counts, per_cell, strict=True)
        )
        if 2 * tall <= sum(1 for cell in per_cell if cell) or figures < 1:
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
            if text[-1].isspace():  # a word: the token ends with it
                crossed = crossed or len(token) > 1
                token = set()
        filled = [part for part in parts if part]
        if crossed or len(filled) < 2 or not all(any(ch.isdigit() for ch in p) for p in filled):
            out.append(box)
            continue
        out += [(x0, box[1], x1, box[3]) for x0, x1 in itertools.pairwise(edges)]
    return out


def lattice_tables(
    groups: Sequence[Sequence[Box]], pieces: Sequence[Piece], scale: float, joiner: str = ""
) -> list[FoundTable]:
    """Ruled tables (`groups`: each table's cells, from `lattice_cells`) of at least two rows
    and two columns with text in two cells or more. A piece is a character, or a word ending
    in a space."""
    found = []
    for cells in groups:
        left, top = min(b[0] for b in cells), min(b[1] for b in cells)
        right, bottom = max(b[2] for b in cells), max(b[3] for b in cells)
        near = [p for p in pieces if left <= p[1][0] <= right and top <= p[1][1] <= bottom]
        boxes = split_columns(split_rows(cells, near, SNAP * scale), near, SNAP * scale)
        texts = texts_in_boxes(boxes, near, joiner)
        if sum(1 for t in texts if t) < 2:
            continue
        table = table_from_boxes(boxes, texts, SNAP * scale, "lattice")
        if table is not None and table.rows >= 2 and table.columns >= 2:
            found.append(table)
    return found


def overhangs(tables: Sequence[FoundTable], pieces: Sequence[Piece], slack: float) -> bool:
    """Whether a piece (a word) whose centre lies in a cell of the tables reaches more than
    `slack` beyond its left or right edge: text across a rule, whose characters belong to
    cells on both sides."""

    boxes = [c.box for t in tables for c in t.cells]
    if not boxes or not pieces:
        return False
    b, p, inside = _centres_in_boxes(boxes, pieces)
    beyond = (p[:, None, 0] < b[None, :, 0] - slack) | (p[:, None, 2] > b[None, :, 2] + slack)
    return bool((inside & beyond).any())
