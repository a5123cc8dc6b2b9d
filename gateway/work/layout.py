"""From an engine's text lines to blocks in reading order, relative geometry and markdown.

Pure functions. Reading order comes from a recursive XY-cut: a vertical gap splits columns
(read left to right, each to its end) when both sides look like columns of text (several lines
filling their width, which tables and key-value forms do not); otherwise the widest horizontal
gap splits paragraphs. Each leaf region is one block; fragments on the same row inside it are
joined into one line. Each line carries its words, in reading order, from its engine's words (or
its box split by characters, where the engine gave none). `mark_handwriting` then says of each
line and block whether it is handwritten (scoring.handwriting_lines, on the page's pixels).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import msgspec
import numpy as np
import numpy.typing as npt

from gateway.results import BlockLine, ContentBlock, Geometry, PageResult, Word
from gateway.tables.grid import table_markdown
from providers.types import TextLine, TextWord, quad_bounds, words_by_share
from scoring.handwriting_lines import HandwritingSettings, LineInput, WordInput, classify_lines

PARAGRAPH_GAP = 0.8  # vertical gap, in median line heights, that starts a new block
COLUMN_GAP = 1.0  # horizontal gap, in median line heights, that may separate columns
MIN_COLUMN_ROWS = 3  # a column has at least this many lines
MIN_COLUMN_SHARE = 0.25  # and spans at least this share of the region's width
MIN_COLUMN_FILL = 0.6  # and its median line fills this share of the column's own width
TITLE_HEIGHT = 1.5  # a short block whose lines are this much taller than the page median


class _Item(msgspec.Struct, kw_only=True):
    text: str
    confidence: float
    left: float
    top: float
    right: float
    bottom: float
    words: list[TextWord]

    @property
    def height(self) -> float:
        return self.bottom - self.top


def _gaps(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Empty stretches between merged intervals, as (start, end)."""
    intervals = sorted(intervals)
    gaps = []
    reach = intervals[0][1]
    for start, end in intervals[1:]:
        if start > reach:
            gaps.append((reach, start))
        reach = max(reach, end)
    return gaps


def _is_column(items: list[_Item], region_width: float) -> bool:
    """Text columns: several rows, a real share of the region, lines filling their own width."""
    if len(items) < MIN_COLUMN_ROWS:
        return False
    width = max(it.right for it in items) - min(it.left for it in items)
    fill = statistics.median(it.right - it.left for it in items) / max(width, 1.0)
    return width >= MIN_COLUMN_SHARE * region_width and fill >= MIN_COLUMN_FILL


def _xy_cut(items: list[_Item], line_h: float) -> list[list[_Item]]:
    """Columns first where the page has them, else split at the widest paragraph gap."""
    if len(items) <= 1:
        return [items]
    region_width = max(it.right for it in items) - min(it.left for it in items)
    x_gaps = [
        g
        for g in _gaps([(it.left, it.right) for it in items])
        if g[1] - g[0] >= COLUMN_GAP * line_h
    ]
    for gap in sorted(x_gaps, key=lambda g: g[0] - g[1]):
        cut = (gap[0] + gap[1]) / 2
        first = [it for it in items if it.right <= cut]
        second = [it for it in items if it.left >= cut]
        if _is_column(first, region_width) and _is_column(second, region_width):
            return _xy_cut(first, line_h) + _xy_cut(second, line_h)
    y_gaps = [
        g
        for g in _gaps([(it.top, it.bottom) for it in items])
        if g[1] - g[0] >= PARAGRAPH_GAP * line_h
    ]
    if y_gaps:
        widest = max(y_gaps, key=lambda g: g[1] - g[0])
        cut = (widest[0] + widest[1]) / 2
        above = [it for it in items if (it.top + it.bottom) / 2 < cut]
        below = [it for it in items if (it.top + it.bottom) / 2 >= cut]
        if above and below:
            return _xy_cut(above, line_h) + _xy_cut(below, line_h)
    return [items]


def _rows(items: list[_Item]) -> list[_Item]:
    """Join fragments that share a row into one line, left to right."""
    rows: list[list[_Item]] = []
    for it in sorted(items, key=lambda i: (i.top + i.bottom) / 2):
        row = rows[-1] if rows else None
        if row is not None:
            top = min(r.top for r in row)
            bottom = max(r.bottom for r in row)
            overlap = min(bottom, it.bottom) - max(top, it.top)
            if overlap >= 0.5 * min(bottom - top, it.height):
                row.append(it)
                continue
        rows.append([it])
    merged = []
    for row in rows:
        row.sort(key=lambda i: i.left)
        chars = sum(len(r.text) for r in row) or 1
        merged.append(
            _Item(
                text=" ".join(r.text for r in row),
                confidence=sum(r.confidence * len(r.text) for r in row) / chars,
                left=min(r.left for r in row),
                top=min(r.top for r in row),
                right=max(r.right for r in row),
                bottom=max(r.bottom for r in row),
                words=[word for r in row for word in r.words],
            )
        )
    return merged


def _clamp(v: float) -> float:
    return round(min(1.0, max(0.0, v)), 5)


def _geometry(
    left: float, top: float, right: float, bottom: float, width: int, height: int
) -> Geometry:
    x, y = _clamp(left / width), _clamp(top / height)
    x2, y2 = _clamp(right / width), _clamp(bottom / height)
    return Geometry(x=x, y=y, width=round(max(x2 - x, 0.0), 5), height=round(max(y2 - y, 0.0), 5))


def _word(word: TextWord, width: int, height: int) -> Word:
    return Word(
        text=word.text,
        confidence=round(word.confidence, 4),
        geometry=_geometry(*quad_bounds(word.quad), width, height),
    )


def build_blocks(lines: Sequence[TextLine], width: int, height: int) -> list[ContentBlock]:
    """Blocks in reading order, geometry relative to a `width` x `height` page."""
    items = []
    for line in lines:
        text = line.text.strip()
        if not text:
            continue
        left, top, right, bottom = quad_bounds(line.quad)
        items.append(
            _Item(
                text=text,
                confidence=line.confidence,
                left=left,
                top=top,
                right=right,
                bottom=max(bottom, top + 1),
                words=list(line.words or words_by_share(text, line.confidence, line.quad)),
            )
        )
    if not items:
        return []
    line_h = statistics.median(it.height for it in items)
    blocks: list[ContentBlock] = []
    for region in _xy_cut(items, line_h):
        rows = _rows(region)
        chars = sum(len(r.text) for r in rows) or 1
        row_h = statistics.median(r.height for r in rows)
        is_title = len(rows) <= 2 and row_h >= TITLE_HEIGHT * line_h
        blocks.append(
            ContentBlock(
                block_id=len(blocks) + 1,
                type="title" if is_title else "text",
                geometry=_geometry(
                    min(r.left for r in rows),
                    min(r.top for r in rows),
                    max(r.right for r in rows),
                    max(r.bottom for r in rows),
                    width,
                    height,
                ),
                text="\n".join(r.text for r in rows),
                confidence=round(sum(r.confidence * len(r.text) for r in rows) / chars, 4),
                lines=[
                    BlockLine(
                        text=r.text,
                        confidence=round(r.confidence, 4),
                        geometry=_geometry(r.left, r.top, r.right, r.bottom, width, height),
                        words=[_word(word, width, height) for word in r.words],
                    )
                    for r in rows
                ],
            )
        )
    return blocks


def mark_handwriting(
    blocks: list[ContentBlock],
    pixels: npt.NDArray[np.uint8] | None,
    settings: HandwritingSettings,
) -> list[ContentBlock]:
    """Each line marked handwritten or printed, from its crop of `pixels` (the upright page the
    geometry refers to); no pixels (a PDF's own text layer): every line printed, for certain.
    A block is handwritten when most of its characters are on handwritten lines."""
    if not settings.enabled:
        return blocks
    lines = [line for block in blocks for line in block.lines]
    if pixels is None:
        verdicts = [(False, 0.0)] * len(lines)  # (handwritten, its probability)
    else:
        height, width = pixels.shape[:2]

        def box(g: Geometry) -> tuple[float, float, float, float]:
            return g.x * width, g.y * height, (g.x + g.width) * width, (g.y + g.height) * height

        boxes = [
            LineInput(
                box=box(line.geometry),
                text=line.text,
                confidence=line.confidence,
                words=tuple(
                    WordInput(box=box(w.geometry), text=w.text, confidence=w.confidence)
                    for w in line.words
                ),
            )
            for line in lines
        ]
        verdicts = [
            (v.is_handwritten, v.probability) for v in classify_lines(pixels, boxes, settings)
        ]
    replace = msgspec.structs.replace
    marked, start = [], 0
    for block in blocks:
        own = verdicts[start : start + len(block.lines)]
        start += len(block.lines)
        chars = [max(1, len(line.text)) for line in block.lines]
        total = sum(chars) or 1
        handwritten = sum(c for c, (hw, _) in zip(chars, own, strict=True) if hw) > total / 2
        probability = sum(c * p for c, (_, p) in zip(chars, own, strict=True)) / total
        marked.append(
            replace(
                block,
                lines=[
                    replace(
                        line,
                        is_handwritten=hw,
                        handwriting_confidence=round(p if hw else 1.0 - p, 4),
                    )
                    for line, (hw, p) in zip(block.lines, own, strict=True)
                ],
                is_handwritten=handwritten,
                handwriting_confidence=round(probability if handwritten else 1.0 - probability, 4),
            )
        )
    return marked


def without_words(page: PageResult) -> PageResult:
    """The page with every line's words left out (`GET /v1/jobs/{id}?words=false`)."""
    replace = msgspec.structs.replace
    return replace(
        page,
        content_blocks=[
            replace(block, lines=[replace(line, words=[]) for line in block.lines])
            for block in page.content_blocks
        ],
    )


def to_markdown(blocks: Sequence[ContentBlock]) -> str:
    parts = []
    for block in blocks:
        if block.type == "title":
            parts.append("## " + " ".join(block.text.split("\n")))
        elif block.table is not None:
            parts.append(table_markdown(block.table))
        else:
            parts.append(block.text)
    return "\n\n".join(parts)


def global_confidence(blocks: Sequence[ContentBlock]) -> float:
    chars = sum(len(b.text) for b in blocks)
    if not chars:
        return 0.0
    return round(sum(b.confidence * len(b.text) for b in blocks) / chars, 4)
