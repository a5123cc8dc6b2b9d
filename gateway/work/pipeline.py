"""Per page: render -> route -> recognize (escalating, upright) -> normalize. Runs inside a
worker process.

`PageEngine` owns the loaded providers of one process; `read_page` is the whole pipeline for one
page and is what the server's workers, `ocr-gateway ocr` and the benchmark's `routed` run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from gateway.config import Settings
from gateway.errors import PageError
from gateway.results import (
    Attempt,
    DocumentMetadata,
    PageDimensions,
    PageResult,
    PipelineMetadata,
    PipelineTimings,
)
from gateway.work.assess import route_page
from gateway.work.documents import DocumentKind, read_text_layer, render_page
from gateway.work.layout import build_blocks, global_confidence, to_markdown
from providers.base import Provider, ProviderError
from providers.factory import build_provider, is_local
from providers.orientation import detect_orientation, rotate_upright
from providers.types import PageImage, RecognizedPage
from router.policy import TEXT_LAYER, Mode, PageRoute

TEXT_LAYER_MODEL = "pdf-text-layer"
SUSPICIOUS_CONFIDENCE = 0.6  # a reading this unsure may be of a page turned upside down
VERTICAL_TEXT = 0.6  # features.vertical_text above this: the lines run vertically


class PageTask(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    kind: DocumentKind
    page_number: int  # 1-based
    route: PageRoute | None = None  # decided at submit; assessed on the full page if absent
    mode: Mode = Mode.AUTO


Phase = Callable[[str], None]


def _no_phase(_: str) -> None:
    return None


class _Reading(msgspec.Struct, kw_only=True):
    provider: str
    page: RecognizedPage
    confidence: float
    seconds: float
    rotation: int = 0


def reading_confidence(page: RecognizedPage) -> float:
    """Character-weighted mean confidence of a reading."""
    chars = sum(len(line.text) for line in page.lines)
    if not chars:
        return 0.0
    return sum(line.confidence * len(line.text) for line in page.lines) / chars


class PageEngine:
    """The providers of one worker process, loaded once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.providers: dict[str, Provider] = {
            name: build_provider(name, cfg) for name, cfg in settings.providers.items()
            if is_local(cfg)  # remote kinds run in the server's event loop, not here
        }

    def engines(self) -> list[str]:
        return sorted(self.providers)

    def describe(self) -> dict[str, str]:
        """The device each local engine runs on (RapidOCR: "cuda" or "cpu")."""
        return {name: str(getattr(provider, "device", "cpu"))
                for name, provider in sorted(self.providers.items())}

    def read_page(self, task: PageTask, phase: Phase = _no_phase) -> PageResult:
        """Read one page; raises PageError when it cannot be read."""
        started = time.perf_counter()
        phase("render")
        path = Path(task.path)
        page = render_page(path, task.kind, task.page_number - 1,
                           self.settings.rendering.dpi, self.settings.limits.max_pixels_per_page)
        rendered = time.perf_counter()
        route = task.route or route_page(page, settings=self.settings, path=path,
                                         kind=task.kind, mode=task.mode)
        phase("ocr")
        attempts: list[Attempt] = []
        escalation = None
        if route.providers == [TEXT_LAYER]:
            reading = self._text_layer(path, page)
        else:
            reading, escalation = self._recognize(page, route, attempts)
        read = time.perf_counter()
        blocks = build_blocks(reading.page.lines, reading.page.width, reading.page.height)
        markdown = to_markdown(blocks)
        done = time.perf_counter()
        features = (msgspec.structs.asdict(route.features) if route.features is not None
                    else None)
        return PageResult(
            page_number=task.page_number,
            status="completed",
            document_metadata=DocumentMetadata(
                source_model=reading.page.model,
                page_dimensions=PageDimensions(width=reading.page.width,
                                               height=reading.page.height),
                global_confidence=global_confidence(blocks),
                dpi=round(page.dpi, 1),
                rotation_deg=reading.rotation,
            ),
            content_blocks=blocks,
            raw_markdown=markdown,
            pipeline_metadata=PipelineMetadata(
                complexity_score=route.complexity_score,
                tier=route.tier.value,
                credits=route.credits,
                provider_used=reading.provider,
                provider_reason=route.reason,
                features=features,
                attempts=attempts,
                escalation=escalation,
                capped=route.capped,
                timings=PipelineTimings(
                    render_ms=round((rendered - started) * 1000, 1),
                    ocr_ms=round((read - rendered) * 1000, 1),
                    layout_ms=round((done - read) * 1000, 1),
                    total_ms=round((done - started) * 1000, 1),
                ),
            ),
        )

    def _text_layer(self, path: Path, page: PageImage) -> _Reading:
        started = time.perf_counter()
        layer = read_text_layer(path, page.page_number - 1, page.dpi)
        if layer is None:
            raise PageError("text_layer_missing", "the page's text layer could not be read")
        recognized = RecognizedPage(lines=layer.lines, model=TEXT_LAYER_MODEL,
                                    width=page.width, height=page.height)
        return _Reading(provider=TEXT_LAYER, page=recognized, confidence=1.0,
                        seconds=time.perf_counter() - started)

    def _read_with(self, name: str, page: PageImage, rotation: int,
                   attempts: list[Attempt]) -> _Reading | None:
        provider = self.providers[name]
        started = time.perf_counter()
        try:
            recognized = provider.recognize(page)
        except ProviderError as exc:
            attempts.append(Attempt(provider=name, confidence=0.0,
                                    seconds=round(time.perf_counter() - started, 3),
                                    error=f"{exc.code}: {exc.message}"[:300]))
            return None
        seconds = time.perf_counter() - started
        reading = _Reading(provider=name, page=recognized,
                           confidence=reading_confidence(recognized), seconds=seconds,
                           rotation=rotation)
        attempts.append(Attempt(provider=name, confidence=round(reading.confidence, 4),
                                seconds=round(seconds, 3)))
        return reading

    def _upright(self, page: PageImage, route: PageRoute) -> tuple[PageImage, int]:
        """Turn the page upright when its lines run vertically (90/270 degrees)."""
        features = route.features
        if (not self.settings.pipeline.orientation or features is None
                or features.vertical_text < VERTICAL_TEXT):
            return page, 0
        return self._osd(page)

    def _osd(self, page: PageImage) -> tuple[PageImage, int]:
        rotation, confidence = detect_orientation(page)
        if rotation and confidence >= self.settings.pipeline.osd_min_confidence:
            return rotate_upright(page, rotation), rotation
        return page, 0

    def _recognize(self, page: PageImage, route: PageRoute,
                   attempts: list[Attempt]) -> tuple[_Reading, str | None]:
        page, rotation = self._upright(page, route)
        threshold = self.settings.routing.escalation.min_confidence
        readings: list[_Reading] = []
        escalation = None
        for index, name in enumerate(route.providers):
            reading = self._read_with(name, page, rotation, attempts)
            if reading is not None and reading.confidence < SUSPICIOUS_CONFIDENCE \
                    and rotation == 0 and self.settings.pipeline.orientation:
                turned, turned_by = self._osd(page)
                if turned_by:
                    page, rotation = turned, turned_by
                    again = self._read_with(name, page, rotation, attempts)
                    if again is not None and again.confidence > reading.confidence:
                        reading = again
            if reading is not None:
                readings.append(reading)
            if route.best_of_chain:
                continue
            good = reading is not None and (not route.escalate or reading.confidence >= threshold)
            if good or index == len(route.providers) - 1:
                break
            why = ("failed" if reading is None
                   else f"confidence {reading.confidence:.2f} < {threshold:.2f}")
            escalation = f"{name} {why}; {route.providers[index + 1]} read the page too"
        if not readings:
            errors = "; ".join(a.error or "" for a in attempts)
            raise PageError("ocr_failed", f"no provider could read the page ({errors})"[:500])
        return max(readings, key=lambda r: r.confidence), escalation
