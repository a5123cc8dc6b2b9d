"""The one normalized page shape every engine's output becomes (native API `results[]`)."""

from __future__ import annotations

from typing import Literal

import msgspec

from gateway.errors import ErrorDetail
from gateway.page_errors import PageError

# Bumped when a page result gains what earlier results lack (2: words, 3: handwriting flags,
# 4: tables as cells): the result cache answers only from results of the current shape.
RESULT_SHAPE = 4

BlockType = Literal["text", "title", "table", "list", "figure"]
PageStatus = Literal["completed", "failed"]


class Geometry(msgspec.Struct, frozen=True, kw_only=True):
    """A box relative to the page: all values in 0..1, origin top-left."""

    x: float
    y: float
    width: float
    height: float


class Word(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    confidence: float  # 0..1
    geometry: Geometry


class BlockLine(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    text: str
    confidence: float
    geometry: Geometry
    words: list[Word] = []  # in reading order; their texts joined by spaces are the line's text
    # Handwritten or printed (scoring.handwriting_lines), and how sure that verdict is (0..1:
    # the line's handwriting probability, or its complement for a printed line). Set on every
    # line of a page read since result shape 3; None (left out) only in results stored before.
    is_handwritten: bool | None = None
    handwriting_confidence: float | None = None


class TableCell(msgspec.Struct, frozen=True, kw_only=True):
    """One cell of a table (0-based row and column; a spanning cell appears once, at its
    top-left slot)."""

    row: int
    column: int
    row_span: int
    column_span: int
    text: str
    geometry: Geometry
    is_header: bool


class Table(msgspec.Struct, frozen=True, kw_only=True):
    """A table block's structure: its grid size, its cells row by row, and the same as HTML."""

    rows: int
    columns: int
    html: str
    cells: list[TableCell]


class ContentBlock(msgspec.Struct, frozen=True, kw_only=True):
    block_id: int
    type: BlockType
    geometry: Geometry
    text: str
    confidence: float
    lines: list[BlockLine]
    # Handwritten when most of its characters are on handwritten lines; the confidence is the
    # character-weighted mean of its lines' handwriting probability (its complement if printed).
    is_handwritten: bool | None = None
    handwriting_confidence: float | None = None
    table: Table | None = None  # the cells of a "table" block; its lines stay in `lines`


class PageDimensions(msgspec.Struct, frozen=True, kw_only=True):
    width: int
    height: int


class DocumentMetadata(msgspec.Struct, frozen=True, kw_only=True):
    source_model: str
    page_dimensions: PageDimensions  # pixels of the image the geometry refers to
    global_confidence: float
    dpi: float
    rotation_deg: int = 0  # the page was turned this much counter-clockwise; geometry is upright


class PipelineTimings(msgspec.Struct, frozen=True, kw_only=True):
    render_ms: float
    ocr_ms: float
    layout_ms: float
    total_ms: float


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    """One provider's reading of the page, kept or not."""

    provider: str
    confidence: float
    seconds: float
    error: str | None = None


class PipelineMetadata(msgspec.Struct, frozen=True, kw_only=True):
    complexity_score: float
    tier: str  # simple | medium | complex
    credits: int
    provider_used: str
    provider_reason: str  # the deciding features and values
    timings: PipelineTimings
    features: dict[str, float] | None = None
    attempts: list[Attempt] = []  # every provider that read the page, in order
    escalation: str | None = None  # why a next provider read the page
    capped: bool = False  # the request's max_credits or the plan's tiers lowered this page's tier
    cached: bool = False  # answered from an earlier job of the same file and options


class PageResult(msgspec.Struct, frozen=True, kw_only=True):
    page_number: int
    status: PageStatus
    document_metadata: DocumentMetadata | None
    content_blocks: list[ContentBlock]
    raw_markdown: str
    pipeline_metadata: PipelineMetadata | None
    error: ErrorDetail | None = None


def failed_page(page_number: int, error: PageError | ErrorDetail) -> PageResult:
    """The result of a page that could not be read: from its PageError, or from the error
    detail stored for it."""
    if isinstance(error, PageError):
        error = error.detail()
    return PageResult(
        page_number=page_number,
        status="failed",
        document_metadata=None,
        content_blocks=[],
        raw_markdown="",
        pipeline_metadata=None,
        error=error,
    )
