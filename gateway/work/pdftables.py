"""The tables of a born-digital PDF page, from its own drawing and text (no OCR, no render).

PDFium gives the page's path objects (their straight, axis-aligned segments are the ruling
lines, in page pixels at the result's DPI: `page_drawing`, read by the text layer while it holds
the page); ruled tables are cut along the rules (`gateway.tables.lattice`), their cells' text
the text layer's words (the page's characters where a word lies across a rule), and the words
outside them are searched for aligned columns (`gateway.tables.stream`). Runs only inside
worker processes.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from gateway.tables.grid import FoundTable
from gateway.tables.lattice import (
    MIN_RULE,
    Piece,
    Segment,
    lattice_cells,
    lattice_tables,
    overhangs,
)
from gateway.tables.stream import Word, stream_tables
from gateway.work.documents import open_pdf, to_pixels
from providers.types import TextLine, quad_bounds

Point = tuple[float, float]
T = TypeVar("T")
MAX_PATH_OBJECTS = 20_000  # a page drawn as a mesh of paths is no table to cut
MAX_PATH_SEGMENTS = 500  # a path of more draws a figure (a plot, a map, glyph outlines)
WHITE = 240  # a path whose colour channels are all this light draws no rule
SHADE = 4.0  # points: a filled area thicker than this both ways shades, it does not rule
MIN_RULE_WIDTH = 36.0  # points: a horizontal rule this long may bound a table's rows
OVERHANG = 1.0  # points: a word reaching this far past its cell's edge lies across a rule
RECTANGLE_SEGMENTS = 5  # a rectangle's outline: a move and three or four lines


def _objects(
    c: Any, handles: Sequence[Any], forms: tuple[Any, ...] = ()
) -> Iterator[tuple[Any, int, tuple[Any, ...]]]:
    """(handle, type, the forms around it, outermost first) of every object but forms, the
    last first, forms walked down."""
    for handle in reversed(handles):
        kind = c.FPDFPageObj_GetType(handle)
        if kind == c.FPDF_PAGEOBJ_FORM:
            inner = [
                c.FPDFFormObj_GetObject(handle, j)
                for j in range(c.FPDFFormObj_CountObjects(handle))
            ]
            yield from _objects(c, inner, (*forms, handle))
        else:
            yield handle, kind, forms


def _page_objects(c: Any, page: Any) -> list[Any]:
    return [c.FPDFPage_GetObject(page, i) for i in range(c.FPDFPage_CountObjects(page))]


def _matrix(c: Any, handle: Any) -> Any:
    import pypdfium2 as pdfium

    raw = c.FS_MATRIX()
    if not c.FPDFPageObj_GetMatrix(handle, raw):
        return pdfium.PdfMatrix()
    return pdfium.PdfMatrix.from_raw(raw)


class _Path:
    """Questions about one path object at a time, through PDFium's raw calls (buffers made
    once: a ruled page draws hundreds of paths)."""

    def __init__(self, c: Any) -> None:
        self.c = c
        self.fill, self.stroke = ctypes.c_int(), ctypes.c_int()
        self.rgba = tuple(ctypes.c_uint() for _ in range(4))
        self.box = tuple(ctypes.c_float() for _ in range(4))

    def draws(self, handle: Any) -> bool:
        """Whether the path draws something a reader sees: a fill or a stroke that is neither
        transparent nor white (a clipping path draws neither; white boxes hide, not rule);
        its draw mode is left in `fill` and `stroke`."""
        c = self.c
        if not c.FPDFPath_GetDrawMode(handle, self.fill, self.stroke):
            return False
        r, g, b, a = self.rgba
        paints = (
            (self.fill.value, c.FPDFPageObj_GetFillColor),
            (self.stroke.value, c.FPDFPageObj_GetStrokeColor),
        )
        for drawn, color in paints:
            if not drawn:
                continue
            if not color(handle, r, g, b, a):
                return True  # a colour PDFium cannot tell (a pattern): drawn
            if a.value > 0 and min(r.value, g.value, b.value) < WHITE:
                return True
        return False

    def bounds(self, handle: Any, forms: Sequence[Any]) -> tuple[float, float, float, float] | None:
        """The object's bounds in page space (PDFium gives them in the space of its form),
        a stroke's width included."""
        left, bottom, right, top = self.box
        if not self.c.FPDFPageObj_GetBounds(handle, left, bottom, right, top):
            return None
        box = (left.value, bottom.value, right.value, top.value)
        for form in reversed(forms):
            box = _matrix(self.c, form).on_rect(*box)
        return box


def _pixel_box(
    box: tuple[float, float, float, float], convert: Callable[[float, float], Point]
) -> Segment:
    """(left, top, right, bottom) in pixels of a box in points (left, bottom, right, top)."""
    (x1, y1), (x2, y2) = convert(box[0], box[3]), convert(box[2], box[1])
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def _thin_edges(box: Segment, thin: float) -> list[Segment] | None:
    """The two long edges of a filled box (in pixels) thinner than `thin` across (a rule drawn
    as a thin rectangle: walking its outline gives the same two, and two short ones no rule
    keeps); None for a box thicker both ways."""
    left, top, right, bottom = box
    if bottom - top < thin:
        return [(left, top, right, top), (left, bottom, right, bottom)]
    if right - left < thin:
        return [(left, top, left, bottom), (right, top, right, bottom)]
    return None


def rules(
    page: Any, convert: Callable[[float, float], Point], shading: list[Segment] | None = None
) -> list[Segment]:
    """The straight horizontal and vertical segments of the page's visible paths, in pixels.
    A filled, unstroked path whose segments span more than SHADE points both ways is a shaded
    area, not rules: its bounds go to `shading` when given (its top and bottom may end rows).
    Cheap questions first, from the path's bounds: one shorter than a rule both ways is passed
    over (no rule, no shade), so is one of more than MAX_PATH_SEGMENTS segments (but for the
    shade it may give), and a filled, unstroked one of a rectangle's few segments thinner
    than a rule is long gives the rectangle's long edges without a walk of its outline (most
    ruled tables draw every rule so, hundreds a page)."""
    import pypdfium2.raw as c

    segments: list[Segment] = []
    shading = shading if shading is not None else []
    x, y = ctypes.c_float(), ctypes.c_float()
    path = _Path(c)
    count = 0
    scale = page_scale(page, convert)
    thin, shade = MIN_RULE * scale, SHADE * scale
    for handle, kind, forms in _objects(c, _page_objects(c, page.raw)):
        if kind != c.FPDF_PAGEOBJ_PATH:
            continue
        count += 1
        if count > MAX_PATH_OBJECTS:
            return []
        box = path.bounds(handle, forms)
        if box is not None and max(box[2] - box[0], box[3] - box[1]) < MIN_RULE:
            continue  # a dot, a tick, a glyph drawn as a path: no rule
        if not path.draws(handle):
            continue  # a clipping path, or a white box
        fill, stroke = path.fill.value, path.stroke.value
        n_segments = c.FPDFPath_CountSegments(handle)
        if n_segments > MAX_PATH_SEGMENTS:  # not walked: rules are a few segments each
            area = _pixel_box(box, convert) if box is not None else None
            if fill and not stroke and area and min(area[2] - area[0], area[3] - area[1]) > shade:
                shading.append(area)  # a shaded area still
            continue
        if fill and not stroke and n_segments <= RECTANGLE_SEGMENTS and box is not None:
            edges = _thin_edges(_pixel_box(box, convert), thin)
            if edges is not None:
                segments += edges
                continue
        matrix = _matrix(c, handle)
        for form in reversed(forms):
            matrix = matrix.multiply(_matrix(c, form))
        start = previous = None
        first = len(segments)
        for i in range(n_segments):
            segment = c.FPDFPath_GetPathSegment(handle, i)
            if not c.FPDFPathSegment_GetPoint(segment, x, y):
                continue
            point = convert(*matrix.on_point(x.value, y.value))
            step = c.FPDFPathSegment_GetType(segment)
            if step == c.FPDF_SEGMENT_MOVETO:
                start = previous = point
                continue
            if step == c.FPDF_SEGMENT_LINETO and previous is not None:
                segments.append((*previous, *point))
            if c.FPDFPathSegment_GetClose(segment) and start is not None:
                segments.append((*point, *start))
            previous = point
        drawn = segments[first:]
        if fill and not stroke and drawn:
            xs = [v for seg in drawn for v in (seg[0], seg[2])]
            ys = [v for seg in drawn for v in (seg[1], seg[3])]
            if max(xs) - min(xs) > shade and max(ys) - min(ys) > shade:
                del segments[first:]
                shading.append((min(xs), min(ys), max(xs), max(ys)))
    return [
        s for s in segments if min(abs(s[2] - s[0]), abs(s[3] - s[1])) <= 1.0
    ]  # axis-aligned only


def page_scale(page: Any, convert: Callable[[float, float], Point]) -> float:
    """Pixels per point of `convert`."""
    (x0, y0), (x1, y1) = convert(0.0, 0.0), convert(1.0, 0.0)
    return float(abs(x1 - x0) + abs(y1 - y0))


def characters(textpage: Any, convert: Callable[[float, float], Point]) -> list[Piece]:
    """Every character with its box in pixels, in the text layer's order; a character PDFium
    generated (a space, a line break) takes the box of the one before it."""
    import pypdfium2.raw as c

    left, right, bottom, top = (ctypes.c_double() for _ in range(4))
    pieces: list[Piece] = []
    previous = (0.0, 0.0, 0.0, 0.0)
    raw = textpage.raw
    for i in range(c.FPDFText_CountChars(raw)):
        code = c.FPDFText_GetUnicode(raw, i)
        char = chr(code) if 0 < code < 0x110000 and not 0xD800 <= code < 0xE000 else ""
        if char in ("\r", "\n", "\ufffe", "\x02"):
            char = " " if char in ("\r", "\n") else ""
        box = previous
        if (
            not c.FPDFText_IsGenerated(raw, i)
            and c.FPDFText_GetCharBox(raw, i, left, right, bottom, top)
            and right.value > left.value
        ):
            x1, y1 = convert(left.value, top.value)
            x2, y2 = convert(right.value, bottom.value)
            box = (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
        if char:
            pieces.append((char, box))
        previous = box
    return pieces


def line_words(lines: Sequence[TextLine]) -> list[Word]:
    """The words of the lines (a line without words as one), with their pixel boxes."""
    words = []
    for line in lines:
        for word in line.words or ():
            (x0, y0), (x1, y1), (x2, y2), (x3, y3) = word.quad  # quad_bounds, inlined: hot
            words.append(
                Word(
                    word.text,
                    (
                        min(x0, x1, x2, x3),
                        min(y0, y1, y2, y3),
                        max(x0, x1, x2, x3),
                        max(y0, y1, y2, y3),
                    ),
                )
            )
        if not line.words and line.text.strip():
            words.append(Word(line.text, quad_bounds(line.quad)))
    return words


def _outermost(boxes: Sequence[Segment], slack: float = 1.0) -> list[Segment]:
    """The boxes (left, top, right, bottom) that lie within no other box (a box equal to
    another does not count as within it)."""
    import numpy as np

    if not boxes:
        return []
    b = np.asarray(boxes, dtype=np.float64)
    within = (
        (b[None, :, 0] - slack <= b[:, None, 0])
        & (b[None, :, 1] - slack <= b[:, None, 1])
        & (b[:, None, 2] <= b[None, :, 2] + slack)
        & (b[:, None, 3] <= b[None, :, 3] + slack)
        & (b[:, None, :] != b[None, :, :]).any(axis=2)
    )
    return [box for box, inner in zip(boxes, within.any(axis=1).tolist(), strict=True) if not inner]


class PageDrawing(msgspec.Struct, frozen=True, kw_only=True):
    """What a page draws that tables are cut along, in pixels: its rules (`rules`) and the
    shaded areas among its paths."""

    segments: list[Segment]
    shading: list[Segment]


def page_drawing(page: Any, convert: Callable[[float, float], Point]) -> PageDrawing:
    """The drawing of a loaded PDF page (a pypdfium2 page): the text layer reads it while it
    holds the page, so that the tables need not load the page again."""
    import pypdfium2 as pdfium

    shading: list[Segment] = []
    try:
        segments = rules(page, convert, shading)
    except pdfium.PdfiumError:  # no rules to cut along: the words' columns may still show
        segments, shading = [], []
    return PageDrawing(segments=segments, shading=shading)


def _from_page(path: Path, index: int, dpi: float, read: Callable[[Any, Any], T]) -> T | None:
    """`read(page, convert)` on PDF page `index` loaded at `dpi`; None when PDFium fails."""
    import pypdfium2 as pdfium

    pdf = open_pdf(path)
    try:
        page = pdf[index]
        return read(page, to_pixels(page, dpi / 72.0))
    except pdfium.PdfiumError:
        return None
    finally:
        pdf.close()


def pdf_tables(
    path: Path,
    index: int,
    dpi: float,
    lines: Sequence[TextLine],
    drawing: PageDrawing | None = None,
) -> list[FoundTable]:
    """Ruled tables of PDF page `index` cut along its rules, then tables of aligned words
    among the text layer's `lines` outside them; in pixels of the page at `dpi`. The page is
    loaded only when the text layer did not hand its `drawing` over, and where a word of a
    ruled cell reaches across the cell's edge (its characters then go each to its own cell;
    else the cells' text is the text layer's words)."""
    scale = dpi / 72.0
    words = line_words(lines)
    if drawing is None:
        drawing = _from_page(path, index, dpi, page_drawing)
    if drawing is None:
        return []
    segments, shading = drawing.segments, drawing.shading
    found: list[FoundTable] = []
    groups = lattice_cells(segments, scale) if segments else []
    if groups:
        pieces = [(f"{w.text} ", w.box) for w in words]
        found = lattice_tables(groups, pieces, scale)
        if overhangs(found, pieces, OVERHANG * scale):
            chars = _from_page(path, index, dpi, lambda p, to: characters(p.get_textpage(), to))
            found = lattice_tables(groups, chars, scale) if chars is not None else found
    across = [(s[1] + s[3]) / 2 for s in segments if abs(s[2] - s[0]) >= MIN_RULE_WIDTH * scale]
    # (segments are axis-aligned: a long one across is a horizontal rule)
    wide = [b for b in shading if b[2] - b[0] >= MIN_RULE_WIDTH * scale]
    outer = _outermost(wide)
    bands = [y for b in outer for y in (b[1], b[3])]  # a shaded band's edges end rows
    return found + stream_tables(words, [t.box for t in found], across, bands)
