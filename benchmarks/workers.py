"""What runs inside the benchmark's worker processes (one per provider, one for rendering).

Each engine gets its own process, so a decoder crash costs one page, never the run, and its peak
memory can be told apart: `peak_rss_mb` is the high-water mark of the worker process or of its
largest child (the tesseract binary), whichever is larger. Workers ignore SIGINT so that Ctrl-C
reaches only the parent, which then reports what has finished.

Times are taken here, around the work alone, with `time.perf_counter`, so pickling pages across
the pipe is never counted.

A provider's reading is the engine's alone (its lines laid out in blocks, no table stage), so
its text scores, time and memory are the engine's. Where a page has table ground truth, the
product's table stage is applied to that reading in a second worker of the same provider
(`tables_task`: tables found on the image, cell text from the reading's words, empty cells read
again by the engine), whose time and memory count nowhere; only its markdown is scored, for
table F1.
"""

from __future__ import annotations

import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from gateway.config import Settings
from gateway.errors import UnsupportedMediaTypeError
from gateway.results import ContentBlock
from gateway.work.documents import (
    DocumentInfo,
    DocumentKind,
    detect_kind,
    inspect_document,
    render_page,
)
from gateway.work.layout import build_blocks, to_markdown
from gateway.work.pagetables import blocks_with_tables, find_tables
from gateway.work.pipeline import PageEngine, PageTask, load_provider
from providers.base import Provider
from providers.factory import is_local
from providers.types import PageImage, RecognizedPage

HEAD_BYTES = 2048  # enough for detect_kind, which looks for %PDF- in the first 1024 bytes


class ReadLine(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    x: float  # centre, relative to the page width (0..1)
    y: float  # centre, relative to the page height (0..1)


class Reading(msgspec.Struct, frozen=True, kw_only=True):
    """One engine's reading of one page, as the gateway would return it."""

    lines: tuple[ReadLine, ...]  # the rows of the content blocks, in reading order
    markdown: str
    page_size_pt: tuple[float, float]  # width, height in PDF points (pixels * 72 / dpi)
    seconds: float
    model: str
    provider_used: str
    tier: str | None = None
    credits: float | None = None
    peak_rss_mb: float | None = None
    page: RecognizedPage | None = None  # the engine's own lines, kept for the table stage
    table_markdown: str | None = None  # the markdown with the table stage's tables, if it ran


class Rendered(msgspec.Struct, frozen=True, kw_only=True):
    image: PageImage
    seconds: float


def ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def peak_rss_mb() -> float:
    """High-water resident memory of this process or its largest finished child, in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return round(max(own, children) / scale, 1)


def _lines(blocks: list[ContentBlock]) -> tuple[ReadLine, ...]:
    return tuple(
        ReadLine(
            text=line.text,
            x=line.geometry.x + line.geometry.width / 2,
            y=line.geometry.y + line.geometry.height / 2,
        )
        for block in blocks
        for line in block.lines
    )


# --- rendering -------------------------------------------------------------------------------


def init_renderer() -> None:
    ignore_sigint()


def inspect_task(_: None, path: str, max_pixels: int, *, phase: Any) -> DocumentInfo:
    with Path(path).open("rb") as f:
        head = f.read(HEAD_BYTES)
    kind = detect_kind(head)
    if kind is None:
        raise UnsupportedMediaTypeError("not a PDF or a supported image type")
    return inspect_document(Path(path), kind, max_pixels)


def render_task(
    _: None,
    path: str,
    kind: DocumentKind,
    page_number: int,
    dpi: int,
    max_pixels: int,
    *,
    phase: Any,
) -> Rendered:
    started = time.perf_counter()
    image = render_page(Path(path), kind, page_number - 1, dpi, max_pixels)
    return Rendered(image=image, seconds=time.perf_counter() - started)


# --- one provider ----------------------------------------------------------------------------


def init_provider(name: str, settings: Settings) -> Provider:
    ignore_sigint()
    config = settings.providers[name]
    if not is_local(config):
        raise ValueError(f"provider {name!r} is remote: benchmark it through the routed pipeline")
    return load_provider(name, config)  # as the gateway's workers load it


def recognize_task(provider: Provider, image: PageImage, keep_page: bool, *, phase: Any) -> Reading:
    """Recognize, then lay the lines out in blocks and markdown as the pipeline does, without
    its table stage; `keep_page`: the engine's lines come back with the reading, for
    `tables_task`."""
    started = time.perf_counter()
    recognized = provider.recognize(image)
    blocks = build_blocks(recognized.lines, recognized.width, recognized.height)
    markdown = to_markdown(blocks)
    seconds = time.perf_counter() - started
    return Reading(
        lines=_lines(blocks),
        markdown=markdown,
        page_size_pt=(image.width * 72 / image.dpi, image.height * 72 / image.dpi),
        seconds=seconds,
        model=recognized.model,
        provider_used=provider.name,
        peak_rss_mb=peak_rss_mb(),
        page=recognized if keep_page else None,
    )


def tables_task(
    provider: Provider,
    path: str,
    kind: DocumentKind,
    page_number: int,
    image: PageImage,
    page: RecognizedPage,
    *,
    phase: Any,
) -> str:
    """The markdown of page `page_number` read by `provider` (`page`, its reading of the
    rendered `image`) with the tables the pipeline finds in an engine's reading
    (`find_tables`: the image's tables, `provider` reading their empty cells again)."""
    tables, lines = find_tables(
        Path(path),
        kind,
        page_number - 1,
        page,
        image.dpi,
        from_text_layer=False,  # an engine read the page: a text layer's tables are not its
        image=image,
        reader=provider.recognize,
    )
    return to_markdown(blocks_with_tables(lines, tables, page.width, page.height))


# --- the routed pipeline ---------------------------------------------------------------------


def init_routed(settings: Settings) -> PageEngine:
    ignore_sigint()
    return PageEngine(settings)


def routed_task(
    engine: PageEngine, path: str, kind: DocumentKind, page_number: int, *, phase: Any
) -> Reading:
    """`PageEngine.read_page`, the server's own pipeline, rendering included.

    Tier and credits are read from `pipeline_metadata` when the pipeline reports them; until it
    does, credits are the configured flat `credits.credits_per_page` and the tier is None.
    """
    started = time.perf_counter()
    result = engine.read_page(PageTask(path=path, kind=kind, page_number=page_number), phase)
    seconds = time.perf_counter() - started
    meta, doc = result.pipeline_metadata, result.document_metadata
    if meta is None or doc is None:  # read_page raises on failure; a result has both
        raise RuntimeError("read_page returned a page without metadata")
    credits = getattr(meta, "credits", None)
    tier = getattr(meta, "tier", None)
    width, height = doc.page_dimensions.width, doc.page_dimensions.height
    return Reading(
        lines=_lines(result.content_blocks),
        markdown=result.raw_markdown,
        page_size_pt=(width * 72 / doc.dpi, height * 72 / doc.dpi),
        seconds=seconds,
        model=doc.source_model,
        provider_used=meta.provider_used,
        tier=None if tier is None else str(tier),
        credits=float(credits if credits is not None else engine.settings.credits.credits_per_page),
        peak_rss_mb=peak_rss_mb(),
    )
