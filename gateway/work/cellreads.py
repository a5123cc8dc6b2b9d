"""Cells of an image table that the page's OCR left empty although ink is in them, read again.

Text detectors miss short, isolated marks on small images (a lone digit in a cell of a table
image). The empty cells with ink are cropped, enlarged and stacked on one white sheet, which
the engine that read the page reads once; each line it finds goes back to the cell it stands
in, as new words in the page's pixels. Runs only inside worker processes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import numpy as np

from gateway.tables.grid import Box, FoundTable
from providers.types import (
    PageImage,
    Quad,
    RecognizedPage,
    TextLine,
    TextWord,
    quad_bounds,
    quad_from_box,
)

Reader = Callable[[PageImage], RecognizedPage]

GAP = 24  # white pixels between two crops on the sheet
MIN_INK = 0.01  # share of a cell's pixels that are dark for it to hold something
TARGET_HEIGHT = 48.0  # crops are enlarged to about this height (at most 3x)
MAX_CELLS = 80  # a table with more empty cells is left as it is (too costly to re-read)


class _Place(msgspec.Struct, frozen=True):
    cell: int  # index in the table's cells
    box: Box  # the crop, in page pixels
    top: float  # on the sheet
    height: float  # on the sheet
    scale: float

    def back(self, quad: Quad) -> Quad:
        """A quad on the sheet in page pixels."""
        x0, y0, x1, y1 = quad_bounds(quad)
        b, s = self.box, self.scale
        return quad_from_box(
            b[0] + (x0 - GAP) / s,
            b[1] + (y0 - self.top) / s,
            b[0] + (x1 - GAP) / s,
            b[1] + (y1 - self.top) / s,
        )


def _crop(pixels: Any, box: Box) -> Any:
    x0, y0, x1, y1 = (max(round(v), 0) for v in box)
    return pixels[y0:y1, x0:x1]


def _ink(pixels: Any, box: Box) -> bool:
    crop = _crop(pixels, box)
    if crop.size == 0:
        return False
    gray = crop.mean(axis=2) if crop.ndim == 3 else crop
    return bool((gray < 128).mean() >= MIN_INK)


def _inner(box: Box) -> Box:
    """The cell without its border (rules drawn on it are no text)."""
    pad_x = min(2.0, (box[2] - box[0]) / 4)
    pad_y = min(2.0, (box[3] - box[1]) / 4)
    return box[0] + pad_x, box[1] + pad_y, box[2] - pad_x, box[3] - pad_y


def _ink_box(pixels: Any, box: Box) -> Box:
    """The dark pixels around a cell (the model's boxes are loose: the cell widened by a
    quarter of its height), boxed with a margin of 3 pixels."""
    grow = (box[3] - box[1]) / 4
    wide = (box[0] - grow, box[1] - grow, box[2] + grow, box[3] + grow)
    crop = _crop(pixels, wide)
    gray = crop.mean(axis=2) if crop.ndim == 3 else crop
    ys, xs = np.nonzero(gray < 160)
    if not len(xs):
        return box
    x0, y0 = max(round(wide[0]), 0), max(round(wide[1]), 0)
    return (
        x0 + float(xs.min()) - 3,
        y0 + float(ys.min()) - 3,
        x0 + float(xs.max()) + 4,
        y0 + float(ys.max()) + 4,
    )


def _blanked(pixels: Any, words: Sequence[Box]) -> Any:
    """A copy of the page with the words the OCR read painted white: ink left is unread."""
    out = pixels.copy()
    for x0, y0, x1, y1 in words:
        out[max(round(y0), 0) : max(round(y1), 0), max(round(x0), 0) : max(round(x1), 0)] = 255
    return out


def reread_empty_cells(
    page: PageImage, table: FoundTable, reader: Reader, words: Sequence[Box] = ()
) -> tuple[FoundTable, list[TextLine]]:
    """The table with its empty cells that hold ink no word of the page's reading (`words`,
    their boxes) explains read again, and the lines found there (in the page's pixels) for the
    page's words."""
    import cv2

    pixels = _blanked(page.pixels, words)
    empty = [
        (i, _ink_box(pixels, _inner(c.box)))
        for i, c in enumerate(table.cells)
        if not c.text and _ink(pixels, _inner(c.box))
    ]
    if not empty or len(empty) > MAX_CELLS:
        return table, []
    crops: list[tuple[Any, int]] = []
    places: list[_Place] = []
    y, width = GAP, 0
    for i, box in empty:
        cut = _crop(pixels, box)
        scale = min(3.0, max(1.0, TARGET_HEIGHT / max(cut.shape[0], 1)))
        crop = cv2.resize(cut, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        crops.append((crop, y))
        places.append(_Place(i, box, float(y), float(crop.shape[0]), scale))
        y += int(crop.shape[0]) + GAP
        width = max(width, int(crop.shape[1]))
    sheet = np.full((y, width + 2 * GAP, 3), 255, dtype=np.uint8)
    for crop, at in crops:
        sheet[at : at + crop.shape[0], GAP : GAP + crop.shape[1]] = crop
    read = reader(msgspec.structs.replace(page, pixels=sheet))
    texts: dict[int, list[str]] = {}
    lines: list[TextLine] = []
    for line in read.lines:
        _, top, _, bottom = quad_bounds(line.quad)
        centre = (top + bottom) / 2
        place = next((p for p in places if p.top <= centre <= p.top + p.height), None)
        if place is None or not line.text.strip():
            continue
        placed = tuple(
            TextWord(text=w.text, confidence=w.confidence, quad=place.back(w.quad))
            for w in line.words
        ) or (TextWord(text=line.text, confidence=line.confidence, quad=place.back(line.quad)),)
        text = " ".join(w.text for w in placed)
        texts.setdefault(place.cell, []).append(text)
        quad = place.back(line.quad)
        lines.append(TextLine(text=text, confidence=line.confidence, quad=quad, words=placed))
    cells = [
        msgspec.structs.replace(c, text=" ".join(texts[i])) if i in texts else c
        for i, c in enumerate(table.cells)
    ]
    return msgspec.structs.replace(table, cells=cells), lines
