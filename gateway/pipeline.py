"""Per page: render -> recognize -> normalize. Runs inside a worker process.

`PageEngine` owns the loaded providers of one process; `read_page` is the whole pipeline for one
page and is what both the server's workers and `ocr-gateway ocr` run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from gateway.config import Settings
from gateway.documents import DocumentKind, render_page
from gateway.errors import PageError
from gateway.layout import build_blocks, global_confidence, to_markdown
from gateway.results import (
    DocumentMetadata,
    PageDimensions,
    PageResult,
    PipelineMetadata,
    PipelineTimings,
)
from providers.base import Provider, ProviderError
from providers.factory import build_provider
from router.policy import choose_provider


class PageTask(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    kind: DocumentKind
    page_number: int  # 1-based


Phase = Callable[[str], None]


def _no_phase(_: str) -> None:
    return None


class PageEngine:
    """The providers of one worker process, loaded once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.providers: dict[str, Provider] = {
            name: build_provider(name, cfg) for name, cfg in settings.providers.items()
        }

    def engines(self) -> list[str]:
        return sorted(self.providers)

    def read_page(self, task: PageTask, phase: Phase = _no_phase) -> PageResult:
        """Read one page; raises PageError when it cannot be read."""
        started = time.perf_counter()
        phase("render")
        page = render_page(Path(task.path), task.kind, task.page_number - 1,
                           self.settings.rendering.dpi, self.settings.limits.max_pixels_per_page)
        rendered = time.perf_counter()
        decision = choose_provider(self.settings.pipeline)
        provider = self.providers[decision.provider]
        phase("ocr")
        try:
            recognized = provider.recognize(page)
        except ProviderError as exc:
            raise PageError(exc.code, f"{provider.name}: {exc.message}") from exc
        read = time.perf_counter()
        blocks = build_blocks(recognized.lines, recognized.width, recognized.height)
        markdown = to_markdown(blocks)
        done = time.perf_counter()
        return PageResult(
            page_number=task.page_number,
            status="completed",
            document_metadata=DocumentMetadata(
                source_model=recognized.model,
                page_dimensions=PageDimensions(width=recognized.width, height=recognized.height),
                global_confidence=global_confidence(blocks),
                dpi=round(page.dpi, 1),
            ),
            content_blocks=blocks,
            raw_markdown=markdown,
            pipeline_metadata=PipelineMetadata(
                complexity_score=None,
                provider_used=provider.name,
                provider_reason=decision.reason,
                timings=PipelineTimings(
                    render_ms=round((rendered - started) * 1000, 1),
                    ocr_ms=round((read - rendered) * 1000, 1),
                    layout_ms=round((done - read) * 1000, 1),
                    total_ms=round((done - started) * 1000, 1),
                ),
            ),
        )
