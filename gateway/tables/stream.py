"""Tables without rules: rows of words standing in aligned columns.

Words are grouped into rows; a row's words into segments where the gap between two words is
wider than the text is tall. A run of rows most of which have two segments or more, close
together, is a table candidate; its columns are the stretches of the x axis that the segments
cover, cut where whitespace runs down through (nearly) every row. A candidate is kept only
when it looks like a table rather than text set in columns, a list or a key-value form: three
rows or more, short cells (few words each), and cells that fill little of their column.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence

import msgspec

from gateway.tables.grid import Box, FoundCell, FoundTable

SEGMENT_GAP = 0.9  # a gap this many text heights wide separates two cells of a row
ROW_GAP = 2.5  # rows further apart than this many text heights end a table
MAX_SINGLES = 2  # one-cell rows in a row (section headings) a table runs on over
MIN_ROWS = 3  # rows with two cells or more
MIN_MULTI_SHARE = 0.6  # of the candidate's rows have two cells or more
MAX_CELL_WORDS = 6.0  # median words per cell: more is prose
PROSE_WORDS = 8  # a row's segment of this many words is running text, not a cell
MAX_CELL_FILL = 0.75  # median share of its column's width a cell fills, two-column candidates


class Word(msgspec.Struct, frozen=True):
    text: str
    box: Box


class Row(msgspec.Struct, kw_only=True):
    words: list[Word]
    top: float
    bottom: float
    segments: list[list[Word]] = []

    @property
    def height(self) -> float:
        return self.bottom - self.top


def rows_of(words: Sequence[Word]) -> list[Row]:
    """Words grouped into rows (top to bottom), each row's words into cells by the gaps."""
    rows: list[Row] = []
    for word in sorted(words, key=lambda w: (w.box[1] + w.box[3]) / 2):
        top, bottom = word.box[1], word.box[3]
        if rows:
            row = rows[-1]
            overlap = min(row.bottom, bottom) - max(row.top, top)
            if overlap >= 0.5 * min(row.height, bottom - top):
                row.words.append(word)
                row.top, row.bottom = min(row.top, top), max(row.bottom, bottom)
                continue
        rows.append(Row(words=[word], top=top, bottom=bottom))
    for row in rows:
        row.words.sort(key=lambda w: w.box[0])
        height = statistics.median(w.box[3] - w.box[1] for w in row.words)
        segments = [[row.words[0]]]
        for before, word in zip(row.words, row.words[1:], strict=False):
            if word.box[0] - before.box[2] > SEGMENT_GAP * height:
                segments.append([])
            segments[-1].append(word)
        row.segments = segments
    return rows


def _span(segment: list[Word]) -> tuple[float, float]:
    return min(w.box[0] for w in segment), max(w.box[2] for w in segment)


def _candidates(rows: list[Row], line_h: float, rules: Sequence[float] = ()) -> list[list[Row]]:
    """Runs of close rows holding at least MIN_ROWS rows of two segments or more; a run ends
    at a wide gap or at more than MAX_SINGLES single-segment rows in a row, and loses its
    single-segment ends, but for those above the first horizontal rule (`rules`: their y)
    under its last row of cells (a last row whose cell wraps, the rule closing it)."""
    runs: list[list[Row]] = []
    current: list[Row] = []
    singles = 0
    for row in rows:
        multi = len(row.segments) >= 2
        wide = current and row.top - current[-1].bottom > ROW_GAP * line_h
        if current and (wide or (not multi and singles >= MAX_SINGLES)):
            runs.append(current)
            current, singles = [], 0
        if not current and not multi:
            continue
        current.append(row)
        singles = 0 if multi else singles + 1
    runs.append(current)
    out = []
    for run in runs:
        while run and len(run[-1].segments) < 2:
            run.pop()
        n_multi = sum(len(r.segments) >= 2 for r in run)
        if n_multi >= MIN_ROWS and n_multi >= MIN_MULTI_SHARE * len(run):
            out.append(run + _wrapped_end(rows, run[-1], rules))
    return out


def _wrapped_end(rows: list[Row], last: Row, rules: Sequence[float]) -> list[Row]:
    """The single-segment rows right under `last` and above the first rule below it, each
    starting where the last cell of `last` starts (that cell's text wrapping on)."""
    below = [y for y in rules if y >= last.bottom - 1]
    if not below:
        return []
    closing = min(below)
    starts = [_span(last.segments[-1])[0]]
    slack = last.bottom - last.top
    out = []
    for row in rows[rows.index(last) + 1 :]:
        if len(row.segments) != 1 or row.bottom > closing:
            break
        if not any(abs(_span(row.segments[0])[0] - x) <= slack for x in starts):
            break
        out.append(row)
    return out


def _columns(run: list[Row], line_h: float) -> list[tuple[float, float]]:
    """Column stretches: x ranges covered by the segments of the multi-segment rows, cut where
    at most a tenth of those rows (rounded down) cover the whitespace."""
    import numpy as np

    multi = [r for r in run if len(r.segments) >= 2]
    spans = [_span(s) for r in multi for s in r.segments]
    left, right = min(s[0] for s in spans), max(s[1] for s in spans)
    step = max(line_h / 4, 1.0)
    bins = int((right - left) / step) + 1
    counts = np.zeros(bins, dtype=np.int64)
    for r in multi:
        hit = np.zeros(bins, dtype=bool)
        for a, b in (_span(s) for s in r.segments):
            hit[int((a - left) / step) : min(int((b - left) / step) + 1, bins)] = True
        counts += hit
    cover: list[int] = counts.tolist()
    allowed = len(multi) // 10
    columns: list[tuple[float, float]] = []
    start: int | None = None
    for k in range(bins + 1):
        filled = k < bins and cover[k] > allowed
        if filled and start is None:
            start = k
        elif not filled and start is not None:
            columns.append((left + start * step, left + k * step))
            start = None
    merged: list[tuple[float, float]] = []
    for col in columns:  # whitespace narrower than half a line is a word gap, not a column gap
        if merged and col[0] - merged[-1][1] < line_h / 2:
            merged[-1] = (merged[-1][0], col[1])
        else:
            merged.append(col)
    return merged


def _table(run: list[Row], columns: list[tuple[float, float]]) -> FoundTable:
    cells: list[FoundCell] = []
    for r, row in enumerate(run):
        by_column: dict[int, FoundCell] = {}
        for segment in row.segments:
            a, b = _span(segment)
            hits = [i for i, (c0, c1) in enumerate(columns) if a < c1 and b > c0]
            if not hits:
                hits = [min(range(len(columns)), key=lambda i: abs(columns[i][0] - a))]
            first, last = hits[0], hits[-1]
            text = " ".join(w.text for w in segment)
            taken = next((c for k, c in by_column.items() if k <= first < k + c.column_span), None)
            if taken is not None:  # two segments in one column: one cell
                box = (taken.box[0], taken.box[1], max(taken.box[2], b), taken.box[3])
                last = max(last, taken.column + taken.column_span - 1)
                by_column[taken.column] = msgspec.structs.replace(
                    taken,
                    text=f"{taken.text} {text}",
                    box=box,
                    column_span=last - taken.column + 1,
                )
                continue
            by_column[first] = FoundCell(
                row=r,
                column=first,
                column_span=last - first + 1,
                box=(a, row.top, b, row.bottom),
                text=text,
            )
        cells += sorted(by_column.values(), key=lambda c: c.column)
    return FoundTable(rows=len(run), columns=len(columns), cells=cells, method="stream")


def _trim_once(table: FoundTable) -> tuple[FoundTable, int]:
    filled = [
        sum(1 for c in table.cells if c.column <= k < c.column + c.column_span and c.text)
        for k in range(table.columns)
    ]
    keep = [k for k in range(table.columns) if 2 * filled[k] >= table.rows]
    if not keep:
        return FoundTable(rows=0, columns=0, cells=[], method="stream"), 0
    first, last = keep[0], keep[-1]
    cells = []
    for c in table.cells:
        start, end = max(c.column, first), min(c.column + c.column_span - 1, last)
        if start <= end:
            cells.append(
                msgspec.structs.replace(c, column=start - first, column_span=end - start + 1)
            )
    rows = sorted({c.row for c in cells if c.text})
    index = {r: i for i, r in enumerate(rows)}
    cells = [msgspec.structs.replace(c, row=index[c.row]) for c in cells if c.row in index]
    return FoundTable(rows=len(rows), columns=last - first + 1, cells=cells, method="stream"), first


def _trimmed(
    table: FoundTable, columns: list[tuple[float, float]]
) -> tuple[FoundTable, list[tuple[float, float]]]:
    """The table without edge columns that fewer than half its rows fill (a heading or the
    ends of a text column beside the table) and without the rows left empty, until none is."""
    while table.columns:
        trimmed, first = _trim_once(table)
        if (trimmed.rows, trimmed.columns) == (table.rows, table.columns):
            break
        table, columns = trimmed, columns[first : first + trimmed.columns]
    return table, columns


_ENUMERATOR = re.compile(r"^[\[(]?([0-9]{1,3}|[a-zA-Z]|[ivxIVX]{1,4})[.)\]:]?$|^[-*\u2022\u00b7]$")


def _is_list(table: FoundTable) -> bool:
    """Two columns, the first nothing but item numbers or bullets: a list."""
    if table.columns != 2:
        return False
    first = [c.text for c in table.cells if c.column == 0 and c.text]
    return bool(first) and all(_ENUMERATOR.match(text) for text in first)


def _looks_like_table(table: FoundTable, columns: list[tuple[float, float]], words: int) -> bool:
    if table.columns < 2 or len(table.cells) < 2 * MIN_ROWS or _is_list(table):
        return False
    multi = sum(
        1 for r in range(table.rows) if sum(c.row == r and bool(c.text) for c in table.cells) >= 2
    )
    if multi < MIN_MULTI_SHARE * table.rows:
        return False
    for column in range(table.columns):  # a column of nothing but `:=` or `//`: code
        texts = [c.text for c in table.cells if c.column == column and c.text]
        if texts and not any(ch.isalnum() for text in texts for ch in text):
            return False
    if words / max(len(table.cells), 1) > MAX_CELL_WORDS:
        return False
    if table.columns == 2:
        fills = [
            (c.box[2] - c.box[0]) / max(columns[c.column][1] - columns[c.column][0], 1.0)
            for c in table.cells
            if c.column_span == 1
        ]
        if not fills or statistics.median(fills) > MAX_CELL_FILL:
            return False
    return True


def _merge_ruled(table: FoundTable, rules: Sequence[float], strict: bool = True) -> FoundTable:
    """Rows between two horizontal rules of the table (`rules`: their y) where at most one
    has two cells or more are one row of cells whose text wraps (the rules say where rows
    end); not `strict` (the edges of shaded bands, one band a row), any rows between two."""
    box = table.box
    inside = sorted(y for y in rules if box[1] - 2 <= y <= box[3] + 2)
    if len(inside) < 2:
        return table
    by_row: dict[int, list[FoundCell]] = {}
    for cell in table.cells:
        by_row.setdefault(cell.row, []).append(cell)

    def band(row: int) -> int:
        cells = by_row.get(row, [])
        centre = sum((c.box[1] + c.box[3]) / 2 for c in cells) / max(len(cells), 1)
        return sum(1 for y in inside if y < centre)

    groups: list[list[int]] = []
    for row in range(table.rows):
        if groups and band(groups[-1][0]) == band(row):
            groups[-1].append(row)
        else:
            groups.append([row])
    cells: list[FoundCell] = []
    for new_row, rows in enumerate(groups):
        multi = sum(1 for r in rows if sum(bool(c.text) for c in by_row.get(r, [])) >= 2)
        if strict and len(rows) > 1 and multi > 1:
            return table  # rows of cells between two rules: the rules do not bound rows
        merged: dict[int, FoundCell] = {}
        for r in rows:
            for c in by_row.get(r, []):
                if c.column in merged:
                    m = merged[c.column]
                    merged[c.column] = msgspec.structs.replace(
                        m,
                        text=f"{m.text} {c.text}".strip(),
                        box=(min(m.box[0], c.box[0]), m.box[1], max(m.box[2], c.box[2]), c.box[3]),
                    )
                else:
                    merged[c.column] = msgspec.structs.replace(c, row=new_row)
        cells += sorted(merged.values(), key=lambda c: c.column)
    return FoundTable(rows=len(groups), columns=table.columns, cells=cells, method="stream")


def stream_tables(
    words: Sequence[Word],
    exclude: Sequence[Box] = (),
    rules: Sequence[float] = (),
    bands: Sequence[float] = (),
) -> list[FoundTable]:
    """Tables of aligned words, leaving out words whose centre is in an `exclude` box (tables
    found otherwise); rows between horizontal `rules` (their y) may be one row of cells, rows
    between the edges of shaded `bands` (their y) are one."""

    def excluded(w: Word) -> bool:
        cx, cy = (w.box[0] + w.box[2]) / 2, (w.box[1] + w.box[3]) / 2
        return any(b[0] <= cx <= b[2] and b[1] <= cy <= b[3] for b in exclude)

    kept = [w for w in words if w.text.strip() and not (exclude and excluded(w))]
    rows = rows_of(kept)
    prose = {id(w) for r in rows for seg in r.segments if len(seg) >= PROSE_WORDS for w in seg}
    if prose:  # lines of running text are no cells: the rest grouped again
        kept = [w for w in kept if id(w) not in prose]
        rows = rows_of(kept)
    if len(kept) < 2 * MIN_ROWS:
        return []
    line_h = statistics.median(w.box[3] - w.box[1] for w in kept)
    found = []
    for run in _candidates(rows, line_h, rules):
        columns = _columns(run, line_h)
        if len(columns) < 2:
            continue
        table, columns = _trimmed(_table(run, columns), columns)
        table = _merge_ruled(_merge_ruled(table, rules), bands, strict=False)
        n_words = sum(len(c.text.split()) for c in table.cells)
        if table.rows >= MIN_ROWS and _looks_like_table(table, columns, n_words):
            found.append(table)
    return found
