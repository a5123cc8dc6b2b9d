"""What every format reads off a page result: words with pixel boxes, and the failure note.

A line carries its words when the provider gave them; a line without words (older results,
providers that give lines only) is split at its spaces, each word taking the share of the
line's width that its characters take of the line's text, so every format can still place
words.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import msgspec

from gateway.results import BlockLine, ContentBlock, Geometry, PageDimensions, PageResult, Word


class Box(msgspec.Struct, frozen=True):
    """A box in the pixels of the page image the geometry refers to."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    def rounded(self) -> tuple[int, int, int, int]:
        return round(self.left), round(self.top), round(self.right), round(self.bottom)


def pixel_box(geometry: Geometry, size: PageDimensions) -> Box:
    return Box(
        geometry.x * size.width,
        geometry.y * size.height,
        (geometry.x + geometry.width) * size.width,
        (geometry.y + geometry.height) * size.height,
    )


def line_words(line: BlockLine) -> list[Word]:
    """The line's words; without any, the line split at its spaces by character counts."""
    if line.words:
        return list(line.words)
    text = line.text
    if not text.strip():
        return []
    geometry, count = line.geometry, len(text)
    words = []
    start = 0
    for token in text.split():
        start = text.index(token, start)
        words.append(
            Word(
                text=token,
                confidence=line.confidence,
                geometry=Geometry(
                    x=geometry.x + geometry.width * start / count,
                    y=geometry.y,
                    width=geometry.width * len(token) / count,
                    height=geometry.height,
                ),
            )
        )
        start += len(token)
    return words


def page_lines(page: PageResult) -> Iterator[tuple[ContentBlock, BlockLine, list[Word]]]:
    """Every line of the page in reading order, with its block and its words."""
    for block in page.content_blocks:
        for line in block.lines:
            yield block, line, line_words(line)


def failure_note(page: PageResult) -> str:
    """How every format marks a page that was not read."""
    if page.error is None:
        return f"page {page.page_number} was not read"
    return f"page {page.page_number} was not read ({page.error.code}: {page.error.message})"


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """The text without the characters XML 1.0 cannot carry (control codes, lone surrogates)."""
    return _NOT_XML.sub("", text)
