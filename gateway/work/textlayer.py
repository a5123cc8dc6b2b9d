"""A PDF page's own text layer, read through PDFium: its lines with boxes, how much of the page
images cover, and (for the assessment) the characters PDFium decoded wrongly or dropped.

Runs only inside worker processes, like the rest of `gateway.work.documents`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from gateway.work.documents import open_pdf, to_pixels
from gateway.work.pdftables import PageDrawing, page_drawing
from providers.types import Point, TextLine, TextWord, quad_from_box


class TextLayer(msgspec.Struct, frozen=True, kw_only=True):
    """A PDF page's own text, as lines in the pixel space of the page rendered at `dpi`."""

    lines: tuple[TextLine, ...]
    text: str
    image_cover: float  # share of the page under its largest image (1.0: a scanned page)
    # With `check_glyphs` (None: not checked): characters PDFium could not map to Unicode, in
    # runs (`unmapped_in_runs`); text runs drawn on the page that give no text at all.
    unmapped_chars: int | None = None
    dropped_runs: int | None = None
    # With `drawing`: the page's rules and shaded areas, for its tables (None: not read)
    drawing: PageDrawing | None = None


def unmapped_in_runs(is_unmapped: Callable[[int], bool], count: int) -> int:
    """How many of a page's `count` characters PDFium could not map to Unicode
    (`is_unmapped(i)`) stand in runs of two or more. PDFium then hands out the glyph's code
    instead, so a run is a word decoded to wrong letters (an Arabic word of `habibi.pdf` reads
    as Greek). A lone one is a symbol lost (a bullet, the circle of a (c)): too little to read
    the whole page with OCR for. Every run of two holds an even index, so only those are asked
    about, and a run found is followed both ways (each question costs a call into PDFium)."""
    total = reached = 0
    for i in range(0, count, 2):
        if i < reached or not is_unmapped(i):
            continue
        first, reached = i, i + 1
        while first > 0 and is_unmapped(first - 1):
            first -= 1
        while reached < count and is_unmapped(reached):
            reached += 1
        if reached - first >= 2:
            total += reached - first
    return total


class _PageObjects:
    """The objects of a PDF page and of the Form XObjects on it (one level down, as drawn),
    walked through PDFium's raw handles: wrapping each in a pypdfium2 object costs more than
    the checks made on it, and a page may draw every glyph as an object of its own."""

    def __init__(self, page: Any, textpage: Any) -> None:  # pypdfium2 ships no stubs
        import pypdfium2.raw as pdfium_c

        self.raw = pdfium_c
        self.page = page
        self.textpage = textpage

    def walk(self) -> Iterator[tuple[Any, int, tuple[Any, ...]]]:
        """(handle, type, the forms around it, outermost first) for each object."""
        c = self.raw
        page = self.page.raw
        for i in range(c.FPDFPage_CountObjects(page)):
            handle = c.FPDFPage_GetObject(page, i)
            kind = c.FPDFPageObj_GetType(handle)
            yield handle, kind, ()
            if kind == c.FPDF_PAGEOBJ_FORM:
                for j in range(c.FPDFFormObj_CountObjects(handle)):
                    inner = c.FPDFFormObj_GetObject(handle, j)
                    yield inner, c.FPDFPageObj_GetType(inner), (handle,)

    def bounds(self, handle: Any, forms: tuple[Any, ...]) -> tuple[float, float, float, float]:
        """In page space: PDFium gives the bounds of a form's content in the form's space."""
        import ctypes

        import pypdfium2 as pdfium

        c = self.raw
        left, bottom, right, top = (ctypes.c_float() for _ in range(4))
        if not c.FPDFPageObj_GetBounds(handle, left, bottom, right, top):
            return 0.0, 0.0, 0.0, 0.0
        box = (left.value, bottom.value, right.value, top.value)
        for form in reversed(forms):
            matrix = c.FS_MATRIX()
            if c.FPDFPageObj_GetMatrix(form, matrix):
                box = pdfium.PdfMatrix.from_raw(matrix).on_rect(*box)
        return box

    def drops_its_text(self, handle: Any, forms: tuple[Any, ...]) -> bool:
        """A visible text run that gives no text while no other text lies over it: glyphs
        PDFium has no Unicode for (the emoji flags of `google-doc-document.pdf`, drawn by a
        Type 3 font). A run drawn a second time over itself (fake bold) gives none either:
        PDFium keeps the text of the first copy, which lies under it."""
        c = self.raw
        if c.FPDFTextObj_GetText(handle, self.textpage.raw, None, 0) > 2:  # UTF-16, NUL ended
            return False
        mode = c.FPDFTextObj_GetTextRenderMode(handle)
        if mode in (c.FPDF_TEXTRENDERMODE_INVISIBLE, c.FPDF_TEXTRENDERMODE_CLIP):
            return False
        left, bottom, right, top = self.bounds(handle, forms)
        if right <= left or top <= bottom:  # nothing drawn: spaces
            return False
        return not self.textpage.get_text_bounded(left, bottom, right, top).strip()


Box = tuple[float, float, float, float]


def _pixel_box(rects: list[Box], convert: Callable[[float, float], Point]) -> Box:
    """(left, top, right, bottom) in pixels of PDF boxes given as (left, bottom, right, top)."""
    x1, y1 = convert(min(r[0] for r in rects), max(r[3] for r in rects))
    x2, y2 = convert(max(r[2] for r in rects), min(r[1] for r in rects))
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def line_words(
    textpage: Any, start: int, raw_line: str, convert: Callable[[float, float], Point], line: Box
) -> tuple[TextWord, ...]:
    """The words of a text-layer line (`raw_line`, its first character at index `start`): the
    text between whitespace, each boxed by the union of its characters' tight boxes (those with
    an area, where any has), kept inside the line's box. U+FFFE (a hyphen PDFium took out of a
    word) is dropped, as from the line's text; PDFium then gives the two rows as one line, and
    the word joined across them is boxed by its first part, where it starts. A word none of
    whose boxes PDFium gives takes the line's."""
    import pypdfium2 as pdfium

    words: list[tuple[str, list[Box]]] = []
    current: list[str] = []
    boxes: list[Box] = []
    broken = False  # the rest of this word is on the next row
    offset = 0  # in UTF-16 code units, as PDFium indexes characters
    for char in [*raw_line, " "]:
        if char.isspace():
            if current:
                words.append(("".join(current), boxes))
            current, boxes, broken = [], [], False
        elif char == "\ufffe":
            broken = bool(boxes)
        else:
            current.append(char)
            if not broken:
                with contextlib.suppress(pdfium.PdfiumError):
                    boxes.append(textpage.get_charbox(start + offset))
        offset += len(char.encode("utf-16-le")) // 2
    left, top, right, bottom = line
    placed = []
    for text, char_boxes in words:
        solid = [b for b in char_boxes if b[2] > b[0] and b[3] > b[1]] or char_boxes
        x1, y1, x2, y2 = _pixel_box(solid, convert) if solid else line
        x1, x2 = (min(max(x, left), right) for x in (x1, x2))
        y1, y2 = (min(max(y, top), bottom) for y in (y1, y2))
        placed.append(TextWord(text=text, confidence=1.0, quad=quad_from_box(x1, y1, x2, y2)))
    return tuple(placed)


def read_text_layer(
    path: Path, index: int, dpi: float, *, check_glyphs: bool = False, drawing: bool = False
) -> TextLayer | None:
    """The text layer of PDF page `index` with line boxes at `dpi`; None when it has none.
    `check_glyphs` counts the characters PDFium decoded wrongly or dropped, for the assessment
    (a call into PDFium for every other character and every text run: 2-6 ms on a full page).
    `drawing` reads the page's rules for its tables while the page is loaded (loading it
    again for them cost as much as a fifth of the text layer's time)."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    pdf = open_pdf(path)
    try:
        page = pdf[index]
        textpage = page.get_textpage()
        if textpage.count_chars() == 0:
            return None
        convert = to_pixels(page, dpi / 72.0)
        text = textpage.get_text_range()
        lines = []
        start = 0  # PDFium indexes characters in UTF-16 code units
        for raw_line in text.split("\r\n"):
            units = len(raw_line.encode("utf-16-le")) // 2
            # PDFium joins a word hyphenated across lines and leaves U+FFFE where the hyphen was
            line_text = " ".join(raw_line.replace("\ufffe", "").split())
            if line_text:
                rects = [textpage.get_rect(i) for i in range(textpage.count_rects(start, units))]
                if rects:
                    box = _pixel_box(rects, convert)
                    lines.append(
                        TextLine(
                            text=line_text,
                            confidence=1.0,
                            quad=quad_from_box(*box),
                            words=line_words(textpage, start, raw_line, convert, box),
                        )
                    )
            start += units + 2  # the "\r\n" PDFium generated between lines
        page_area = max(page.get_width() * page.get_height(), 1.0)
        cover, dropped = 0.0, 0
        objects = _PageObjects(page, textpage)
        for handle, kind, forms in objects.walk():
            if kind == pdfium_c.FPDF_PAGEOBJ_IMAGE:
                x0, y0, x1, y1 = objects.bounds(handle, forms)
                cover = max(cover, (x1 - x0) * (y1 - y0) / page_area)
            elif check_glyphs and kind == pdfium_c.FPDF_PAGEOBJ_TEXT:
                dropped += objects.drops_its_text(handle, forms)
        unmapped = None
        if check_glyphs:
            has_error = pdfium_c.FPDFText_HasUnicodeMapError
            unmapped = unmapped_in_runs(
                lambda i: bool(has_error(textpage.raw, i)), textpage.count_chars()
            )
        return TextLayer(
            lines=tuple(lines),
            text=text.replace("\ufffe", ""),
            image_cover=round(min(cover, 1.0), 3),
            unmapped_chars=unmapped,
            dropped_runs=dropped if check_glyphs else None,
            drawing=page_drawing(page, convert) if drawing else None,
        )
    except pdfium.PdfiumError:
        return None
    finally:
        pdf.close()
