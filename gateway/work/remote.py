"""Reading a page whose chain starts with remote providers (a VLM server, another gateway).

Remote providers run in the gateway's event loop (they own HTTP clients, retries and breakers);
the page is rendered in a worker process first, together with a fast local engine's lines,
which give a VLM's answer its geometry. Any provider error (including an open breaker) moves
the page to the next provider of its chain; the local rest of the chain is read in the worker
pool as usual, and the attempts and the reason for the fallback are kept in the result.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgspec
import structlog

from gateway.config import Settings
from gateway.results import (
    Attempt,
    DocumentMetadata,
    PageDimensions,
    PageResult,
    PipelineMetadata,
    PipelineTimings,
)
from gateway.work.documents import render_page
from gateway.work.layout import build_blocks, global_confidence, to_markdown
from gateway.work.pipeline import PageEngine, PageTask, Phase
from providers.base import ProviderError, RemoteProvider
from providers.remote_openai import OpenAIVisionProvider, VisionPage
from providers.types import PageImage, RecognizedPage, TextLine
from router.policy import PageRoute

log = structlog.get_logger(__name__)
GEOMETRY_ENGINE = "tesseract"  # the fast local engine whose lines locate a VLM's text


class RenderedForRemote(msgspec.Struct, frozen=True, kw_only=True):
    page: PageImage
    lines: tuple[TextLine, ...] | None  # a local engine's lines, for a VLM's geometry


def render_for_remote(engine: PageEngine, task: PageTask, with_lines: bool, *,
                      phase: Phase) -> RenderedForRemote:
    """Worker-process task: the rendered page, and local lines when a VLM will read it."""
    phase("render")
    page = render_page(Path(task.path), task.kind, task.page_number - 1,
                       engine.settings.rendering.dpi,
                       engine.settings.limits.max_pixels_per_page)
    lines = None
    if with_lines:
        phase("ocr")
        detector = engine.providers.get(GEOMETRY_ENGINE) or next(iter(engine.providers.values()),
                                                                 None)
        if detector is not None:
            try:
                lines = detector.recognize(page).lines
            except ProviderError:
                lines = None
    return RenderedForRemote(page=page, lines=lines)


async def read_remote(provider: RemoteProvider, rendered: RenderedForRemote
                      ) -> RecognizedPage:
    if isinstance(provider, OpenAIVisionProvider):
        return await provider.recognize(rendered.page, line_boxes=rendered.lines)
    return await provider.recognize(rendered.page)


def remote_result(task: PageTask, route: PageRoute, name: str, recognized: RecognizedPage,
                  rendered: RenderedForRemote, attempts: list[Attempt], started: float,
                  escalation: str | None) -> PageResult:
    blocks = build_blocks(recognized.lines, recognized.width, recognized.height)
    reason = route.reason
    if isinstance(recognized, VisionPage):
        reason += f"; geometry from {recognized.geometry} lines"
    total_ms = round((time.perf_counter() - started) * 1000, 1)
    features = msgspec.structs.asdict(route.features) if route.features is not None else None
    return PageResult(
        page_number=task.page_number, status="completed",
        document_metadata=DocumentMetadata(
            source_model=recognized.model,
            page_dimensions=PageDimensions(width=recognized.width, height=recognized.height),
            global_confidence=global_confidence(blocks), dpi=round(rendered.page.dpi, 1)),
        content_blocks=blocks, raw_markdown=to_markdown(blocks),
        pipeline_metadata=PipelineMetadata(
            complexity_score=route.complexity_score, tier=route.tier.value,
            credits=route.credits, provider_used=name, provider_reason=reason,
            features=features, attempts=attempts, escalation=escalation, capped=route.capped,
            timings=PipelineTimings(render_ms=0.0, ocr_ms=total_ms, layout_ms=0.0,
                                    total_ms=total_ms)))


def merge_fallback(result: PageResult, attempts: list[Attempt], why: str) -> PageResult:
    """A result read locally after remote providers failed: their attempts come first."""
    meta = result.pipeline_metadata
    if meta is None:
        return result
    merged = msgspec.structs.replace(
        meta, attempts=[*attempts, *meta.attempts],
        escalation=f"{why}; {meta.escalation}" if meta.escalation else why)
    return msgspec.structs.replace(result, pipeline_metadata=merged)


def split_chain(route: PageRoute, remote: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(remote providers that come first in the chain, the local rest)."""
    chain = route.providers
    head = 0
    while head < len(chain) and chain[head] in remote:
        head += 1
    return chain[:head], [p for p in chain[head:] if p not in remote]


def local_route(route: PageRoute, providers: list[str]) -> PageRoute:
    return msgspec.structs.replace(route, providers=providers)


def settings_remote(settings: Settings) -> set[str]:
    from providers.factory import is_remote

    return {name for name, cfg in settings.providers.items() if is_remote(cfg)}
