"""The tables of a born-digital PDF page, from its own drawing and text (no OCR, no render).

PDFium gives the page's path objects (their straight, axis-aligned segments are the ruling
lines, in page pixels at the result's DPI) and its characters with boxes; ruled tables are cut
along the rules (`gateway.tables.lattice`), and the words of the text layer outside them are
searched for aligned columns (`gateway.tables.stream`). Runs only inside worker processes.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from gateway.tables.grid import FoundTable
from gateway.tables.lattice import Piece, Segment, lattice_tables
from gateway.tables.stream import Word, stream_tables
from gateway.work.documents import open_pdf, to_pixels
from providers.types import TextLine, quad_bounds

Point = tuple[float, float]
MAX_PATH_OBJECTS = 20_000  # a page drawn as a mesh of paths is no table to cut
WHITE = 240  # a path whose colour channels are all this light draws no rule
SHADE = 4.0  # points: a filled area thicker than this both ways shades, it does not rule
MIN_RULE_WIDTH = 36.0  # points: a horizontal rule this long may bound a table's rows


def _objects(c: Any, page: Any) -> Iterator[tuple[Any, list[Any]]]:
    """(handle, the forms around it, outermost first) of every object, forms walked down."""
    stack: list[tuple[Any, list[Any]]] = []
    for i in range(c.FPDFPage_CountObjects(page)):
        stack.append((c.FPDFPage_GetObject(page, i), []))
    while stack:
        handle, forms = stack.pop()
        if c.FPDFPageObj_GetType(handle) == c.FPDF_PAGEOBJ_FORM:
            for j in range(c.FPDFFormObj_CountObjects(handle)):
                stack.append((c.FPDFFormObj_GetObject(handle, j), [*forms, handle]))
        else:
            yield handle, forms


def _matrix(c: Any, handle: Any) -> Any:
    import pypdfium2 as pdfium

    raw = c.FS_MATRIX()
    if not c.FPDFPageObj_GetMatrix(handle, raw):
        return pdfium.PdfMatrix()
    return pdfium.PdfMatrix.from_raw(raw)


def _visible(c: Any, handle: Any, fill: bool, stroke: bool) -> bool:
    """Whether the path draws something a reader sees: a fill or a stroke that is neither
    transparent nor white (a clipping path draws neither; white boxes hide, not rule)."""
    r, g, b, a = (ctypes.c_uint() for _ in range(4))
    paints = ((fill, c.FPDFPageObj_GetFillColor), (stroke, c.FPDFPageObj_GetStrokeColor))
    for drawn, color in paints:
        if not drawn:
            continue
        if not color(handle, r, g, b, a):
            return True  # a colour PDFium cannot tell (a pattern): drawn
        if a.value > 0 and min(r.value, g.value, b.value) < WHITE:
            return True
    return False


def rules(
    page: Any, convert: Callable[[float, float], Point], shading: list[Segment] | None = None
) -> list[Segment]:
    """The straight horizontal and vertical segments of the page's visible paths, in pixels.
    A filled, unstroked path whose segments span more than SHADE points both ways is a shaded
    area, not rules: its bounds go to `shading` when given (its top and bottom may end rows)."""
    import pypdfium2.raw as c

    segments: list[Segment] = []
    fill, stroke = ctypes.c_int(), ctypes.c_int()
    x, y = ctypes.c_float(), ctypes.c_float()
    count = 0
    for handle, forms in _objects(c, page.raw):
        if c.FPDFPageObj_GetType(handle) != c.FPDF_PAGEOBJ_PATH:
            continue
        count += 1
        if count > MAX_PATH_OBJECTS:
            return []
        if not c.FPDFPath_GetDrawMode(handle, fill, stroke):
            continue
        if not _visible(c, handle, bool(fill.value), bool(stroke.value)):
            continue  # a clipping path, or a white box
        matrix = _matrix(c, handle)
        for form in reversed(forms):
            matrix = matrix.multiply(_matrix(c, form))
        start = previous = None
        first = len(segments)
        for i in range(c.FPDFPath_CountSegments(handle)):
            segment = c.FPDFPath_GetPathSegment(handle, i)
            if not c.FPDFPathSegment_GetPoint(segment, x, y):
                continue
            point = convert(*matrix.on_point(x.value, y.value))
            kind = c.FPDFPathSegment_GetType(segment)
            if kind == c.FPDF_SEGMENT_MOVETO:
                start = previous = point
                continue
            if kind == c.FPDF_SEGMENT_LINETO and previous is not None:
                segments.append((*previous, *point))
            if c.FPDFPathSegment_GetClose(segment) and start is not None:
                segments.append((*point, *start))
            previous = point
        drawn = segments[first:]
        if fill.value and not stroke.value and drawn:
            xs = [v for seg in drawn for v in (seg[0], seg[2])]
            ys = [v for seg in drawn for v in (seg[1], seg[3])]
            shade = SHADE * page_scale(page, convert)
            if max(xs) - min(xs) > shade and max(ys) - min(ys) > shade:
                del segments[first:]
                if shading is not None:
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
            words.append(Word(word.text, quad_bounds(word.quad)))
        if not line.words and line.text.strip():
            words.append(Word(line.text, quad_bounds(line.quad)))
    return words


def _inside(box: Segment, other: Segment, slack: float = 1.0) -> bool:
    """Whether `box` lies within `other` (both left, top, right, bottom)."""
    return (
        other[0] - slack <= box[0]
        and other[1] - slack <= box[1]
        and box[2] <= other[2] + slack
        and box[3] <= other[3] + slack
    )


def pdf_tables(path: Path, index: int, dpi: float, lines: Sequence[TextLine]) -> list[FoundTable]:
    """Ruled tables of PDF page `index` cut along its rules, then tables of aligned words
    among the text layer's `lines` outside them; in pixels of the page at `dpi`."""
    import pypdfium2 as pdfium

    scale = dpi / 72.0
    segments: list[Segment] = []
    shading: list[Segment] = []
    found: list[FoundTable] = []
    pdf = open_pdf(path)
    try:
        page = pdf[index]
        convert = to_pixels(page, scale)
        segments = rules(page, convert, shading)
        if segments:
            textpage = page.get_textpage()
            found = lattice_tables(segments, characters(textpage, convert), scale)
    except pdfium.PdfiumError:
        segments, shading, found = [], [], []
    finally:
        pdf.close()
    across = [(s[1] + s[3]) / 2 for s in segments if abs(s[2] - s[0]) >= MIN_RULE_WIDTH * scale]
    # (segments are axis-aligned: a long one across is a horizontal rule)
    wide = [b for b in shading if b[2] - b[0] >= MIN_RULE_WIDTH * scale]
    outer = [b for b in wide if not any(o != b and _inside(b, o) for o in wide)]
    bands = [y for b in outer for y in (b[1], b[3])]  # a shaded band's edges end rows
    return found + stream_tables(line_words(lines), [t.box for t in found], across, bands)
