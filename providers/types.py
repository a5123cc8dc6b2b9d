"""Value types shared by every provider."""

from __future__ import annotations

import re

import msgspec
import numpy as np
import numpy.typing as npt

Point = tuple[float, float]
Quad = tuple[Point, Point, Point, Point]
"""Four corners in page pixels, clockwise from top-left."""


class PageImage(msgspec.Struct, frozen=True, kw_only=True):
    """One page, rendered: RGB pixels plus where they came from."""

    pixels: npt.NDArray[np.uint8]  # (height, width, 3) RGB
    dpi: float  # effective resolution of `pixels`
    page_number: int  # 1-based, in the source document
    language: str | None = None  # read in this language (a Tesseract code); None: default

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


class TextWord(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    confidence: float  # 0..1
    quad: Quad


class TextLine(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    confidence: float  # 0..1
    quad: Quad
    words: tuple[TextWord, ...] = ()


class RecognizedPage(msgspec.Struct, frozen=True, kw_only=True):
    """What an engine read on one page, in the pixel space of the image it was given."""

    lines: tuple[TextLine, ...]
    model: str  # engine and model version, for `document_metadata.source_model`
    width: int
    height: int
    note: str | None = None  # how the provider read it, added to the page's reason
    # the provider found the page upside down and read it turned; the geometry is still on the
    # image as given (`turned_180` moves it onto the upright page)
    upside_down: bool = False


class PageHints(msgspec.Struct, frozen=True, kw_only=True):
    """What the gateway already knows of a page, for providers that take it (see
    `RemoteProvider.wants_line_boxes`)."""

    line_boxes: tuple[TextLine, ...] | None = None  # a local engine's lines on the same pixels


def quad_from_box(left: float, top: float, right: float, bottom: float) -> Quad:
    return ((left, top), (right, top), (right, bottom), (left, bottom))


def quad_bounds(quad: Quad) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of a quad."""
    xs = [p[0] for p in quad]
    ys = [p[1] for p in quad]
    return min(xs), min(ys), max(xs), max(ys)


def quad_span(quad: Quad, start: float, end: float) -> Quad:
    """The part of a line's quad between shares `start` and `end` (0..1) of its length, along
    its top and bottom edges (from the quad's first corner to its second, and fourth to third)."""
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = quad

    def top(t: float) -> Point:
        return x0 + t * (x1 - x0), y0 + t * (y1 - y0)

    def bottom(t: float) -> Point:
        return x3 + t * (x2 - x3), y3 + t * (y2 - y3)

    return top(start), top(end), bottom(end), bottom(start)


def words_by_share(text: str, confidence: float, quad: Quad) -> tuple[TextWord, ...]:
    """The words of a line whose engine gave none (a VLM, an upstream without words): its quad
    split in proportion to character counts, spaces included. Approximate: a word of wide
    letters gets too little room, one of narrow letters too much."""
    length = len(text)
    return tuple(
        TextWord(
            text=match.group(),
            confidence=confidence,
            quad=quad_span(quad, match.start() / length, match.end() / length),
        )
        for match in re.finditer(r"\S+", text)
    )


def turned_180(page: RecognizedPage) -> RecognizedPage:
    """An upside-down reading on the page turned by 180 degrees: every point mirrored through
    the centre, each quad's corners starting again at its (new) top-left, lines in reading
    order from the top."""
    width, height = page.width, page.height

    def turn(quad: Quad) -> Quad:
        a, b, c, d = ((width - x, height - y) for x, y in (quad[2], quad[3], quad[0], quad[1]))
        return (a, b, c, d)

    lines = tuple(
        msgspec.structs.replace(
            line,
            quad=turn(line.quad),
            words=tuple(msgspec.structs.replace(w, quad=turn(w.quad)) for w in line.words),
        )
        for line in reversed(page.lines)
    )
    note = "; ".join(filter(None, (page.note, "read upside down, turned 180 degrees")))
    return msgspec.structs.replace(page, lines=lines, upside_down=False, note=note)
