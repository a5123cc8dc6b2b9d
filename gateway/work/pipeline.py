"""One page: render -> route -> read along the route -> normalize.

The route comes from `router.plan.plan_document` (decided at submit and stored with the page;
planned here on the full render when a task has none: `ocr-gateway ocr`, the benchmark).
`read_chain` (gateway.work.chain) reads the rendered page along it; `page_result` builds the
normalized result. `PageEngine` owns the local providers of one worker process and runs a page
whose route is all local in that process; `gateway.work.readers` runs a route with remote
providers from the event loop, with the same executor and the same result builder.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import numpy as np
import numpy.typing as npt

from gateway.config import Settings
from gateway.page_errors import TextLayerMissingError
from gateway.results import (
    DocumentMetadata,
    PageDimensions,
    PageResult,
    PipelineMetadata,
    PipelineTimings,
)
from gateway.work import procpool
from gateway.work.assess import measure_page, plan_page
from gateway.work.cellreads import Reader
from gateway.work.chain import ChainOutcome, ChainSettings, Reading, read_chain
from gateway.work.documents import DocumentKind, pdf_page_frame, render_page
from gateway.work.layout import global_confidence, mark_handwriting, to_markdown
from gateway.work.pagetables import blocks_with_tables, find_tables
from gateway.work.pdftables import PageDrawing
from gateway.work.textlayer import read_text_layer
from providers.base import Provider, UsesIdleCores
from providers.factory import LocalProviderConfig, build_provider, is_local
from providers.orientation import detect_orientation, rotate_upright
from providers.types import PageImage, RecognizedPage
from router.policy import TEXT_LAYER, Mode, PageRoute
from scoring.handwriting_lines import HandwritingSettings

TEXT_LAYER_MODEL = "pdf-text-layer"
NOT_LOADED = "not loaded"  # a local engine's device before its first page


class PageTask(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    kind: DocumentKind
    page_number: int  # 1-based
    route: PageRoute | None = None  # decided at submit; planned on the full page if absent
    mode: Mode = Mode.AUTO


Phase = Callable[[str], None]
T = TypeVar("T")


def _no_phase(_: str) -> None:
    return None


def run_local(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a chain whose readers are all in this process: their awaits never suspend, so the
    coroutine finishes on its first step, without an event loop (and inside one, too)."""
    try:
        coroutine.send(None)
    except StopIteration as finished:
        return finished.value  # type: ignore[no-any-return]
    coroutine.close()
    raise RuntimeError("a chain read in this process waited on something outside it")


def chain_settings(settings: Settings) -> ChainSettings:
    return ChainSettings(
        min_confidence=settings.routing.escalation.min_confidence,
        orientation=settings.pipeline.orientation,
    )


def upright(page: PageImage, settings: Settings) -> tuple[PageImage, int]:
    """Tesseract's orientation detection; the page turned when it is sure enough."""
    rotation, confidence = detect_orientation(page)
    if rotation and confidence >= settings.pipeline.osd_min_confidence:
        return rotate_upright(page, rotation), rotation
    return page, 0


def render(task: PageTask, settings: Settings) -> PageImage:
    return render_page(
        Path(task.path),
        task.kind,
        task.page_number - 1,
        settings.rendering.dpi,
        settings.limits.max_pixels_per_page,
    )


def page_result(
    task: PageTask,
    route: PageRoute,
    dpi: float,
    outcome: ChainOutcome,
    started: float,
    rendered: float,
    image: PageImage | None = None,
    handwriting: HandwritingSettings | None = None,
    reader: Reader | None = None,
    drawing: PageDrawing | None = None,
) -> PageResult:
    """The normalized result of a page read along its route (the one place that builds it).
    `image`: the page as rendered for the chain; an OCR reading's lines are marked handwritten
    or printed on it (`handwriting`, default settings when None), a text layer's are printed;
    its tables are found on it, `reader` (the engine that read it) reading empty cells again.
    `drawing`: a text layer's page's rules, read with it (`text_layer_reading`)."""
    reading = outcome.reading
    read = time.perf_counter()
    tables, lines = find_tables(
        Path(task.path),
        task.kind,
        task.page_number - 1,
        reading.page,
        dpi,
        from_text_layer=reading.provider == TEXT_LAYER,
        image=image,
        reader=reader,
        drawing=drawing,
    )
    blocks = blocks_with_tables(lines, tables, reading.page.width, reading.page.height)
    if reading.provider == TEXT_LAYER or image is not None:  # else unmarked: nothing to look at
        blocks = mark_handwriting(
            blocks,
            None if reading.provider == TEXT_LAYER else _upright_pixels(image, reading.rotation),
            handwriting or HandwritingSettings(),
        )
    markdown = to_markdown(blocks)
    done = time.perf_counter()
    reason = route.reason
    if reading.page.note:
        reason += f"; {reading.page.note}"
    features = msgspec.structs.asdict(route.features) if route.features is not None else None
    return PageResult(
        page_number=task.page_number,
        status="completed",
        document_metadata=DocumentMetadata(
            source_model=reading.page.model,
            page_dimensions=PageDimensions(width=reading.page.width, height=reading.page.height),
            global_confidence=global_confidence(blocks),
            dpi=round(dpi, 1),
            rotation_deg=reading.rotation,
        ),
        content_blocks=blocks,
        raw_markdown=markdown,
        pipeline_metadata=PipelineMetadata(
            complexity_score=route.complexity_score,
            tier=route.tier.value,
            credits=route.credits,
            provider_used=reading.provider,
            provider_reason=reason,
            features=features,
            attempts=outcome.attempts,
            escalation=outcome.escalation,
            capped=route.capped,
            timings=PipelineTimings(
                render_ms=round((rendered - started) * 1000, 1),
                ocr_ms=round((read - rendered) * 1000, 1),
                layout_ms=round((done - read) * 1000, 1),
                total_ms=round((done - started) * 1000, 1),
            ),
        ),
    )


def _upright_pixels(page: PageImage | None, rotation: int) -> npt.NDArray[np.uint8] | None:
    """The pixels the reading's geometry refers to: the page turned as the chain turned it."""
    return None if page is None else rotate_upright(page, rotation).pixels


def text_layer_reading(
    task: PageTask, width: int, height: int, dpi: float
) -> tuple[ChainOutcome, PageDrawing | None]:
    """A page answered from its PDF's own text layer (no engine runs), its geometry in the
    pixels of the page rendered at `dpi`; and the page's rules, read while it was loaded, for
    its tables."""
    layer = read_text_layer(Path(task.path), task.page_number - 1, dpi, drawing=True)
    if layer is None:
        raise TextLayerMissingError("the page's text layer could not be read")
    recognized = RecognizedPage(
        lines=layer.lines, model=TEXT_LAYER_MODEL, width=width, height=height
    )
    outcome = ChainOutcome(
        reading=Reading(provider=TEXT_LAYER, page=recognized, confidence=1.0),
        attempts=[],
        escalation=None,
    )
    return outcome, layer.drawing


class LocalReaders:
    """Providers loaded in this process, called in place."""

    def __init__(self, engine: PageEngine) -> None:
        self.engine = engine

    async def recognize(self, name: str, page: PageImage) -> RecognizedPage:
        return self.engine.provider(name).recognize(page)

    async def upright(self, page: PageImage) -> tuple[PageImage, int]:
        return upright(page, self.engine.settings)


def load_provider(name: str, config: LocalProviderConfig) -> Provider:
    """A local provider for this process; in a worker pool's process, an engine that can is told
    how to find its idle siblings (`procpool.idle_siblings`), to spread a lone page over them."""
    provider = build_provider(name, config)
    siblings = procpool.siblings()
    if isinstance(provider, UsesIdleCores) and siblings:
        provider.use_idle_cores(procpool.idle_siblings, siblings)
    return provider


class PageEngine:
    """The local providers of one worker process, each loaded once.

    Those a route can name without being asked (`Settings.routed_providers`) load at start, so
    a model that fails to load fails the worker at once and no page waits for a load. Any other
    configured local provider (`ppocrv4` by default, kept for chains and the benchmark) loads on
    the first page that names it: a model no route uses costs no memory in every worker.
    """

    def __init__(self, settings: Settings, *, load_providers: bool = True) -> None:
        """`load_providers=False`: an API-only node's process, which renders previews and
        PDFs and reads nothing (no model loaded)."""
        self.settings = settings
        self._configs = {  # remote kinds run in the server's event loop
            name: cfg for name, cfg in settings.providers.items() if is_local(cfg)
        }
        if not load_providers:
            self._configs.clear()
        self._loaded: dict[str, Provider] = {}
        for name in sorted(self._configs.keys() & settings.routed_providers()):
            self.provider(name)
        self._readers = LocalReaders(self)

    def provider(self, name: str) -> Provider:
        """The local provider `name`, loaded on first use; KeyError if none is configured."""
        loaded = self._loaded.get(name)
        if loaded is None:
            loaded = self._loaded[name] = load_provider(name, self._configs[name])
        return loaded

    def engines(self) -> list[str]:
        """The local providers this process can run, loaded or not."""
        return sorted(self._configs)

    def describe(self) -> dict[str, str]:
        """The device each local engine runs on (RapidOCR: "cuda" or "cpu"); "not loaded" for
        one no route names, until a page asks for it."""
        return {
            name: str(getattr(self._loaded[name], "device", "cpu"))
            if name in self._loaded
            else NOT_LOADED
            for name in self.engines()
        }

    def plan(self, task: PageTask, page: PageImage) -> PageRoute:
        """The route of a task that came without one, planned on the full render."""
        evidence = measure_page(page, settings=self.settings, path=Path(task.path), kind=task.kind)
        return plan_page(evidence, self.settings, task.mode)

    def read_page(self, task: PageTask, phase: Phase = _no_phase) -> PageResult:
        """Read one page along its route in this process; raises PageError."""
        started = time.perf_counter()
        phase("render")
        if task.route is not None and task.route.providers == [TEXT_LAYER]:
            return self._read_text_layer(task, task.route, started)  # nothing to render
        page = render(task, self.settings)
        rendered = time.perf_counter()
        route = task.route or self.plan(task, page)
        phase("ocr")
        drawing = None
        if route.providers == [TEXT_LAYER]:
            outcome, drawing = text_layer_reading(task, page.width, page.height, page.dpi)
        else:
            outcome = run_local(
                read_chain(page, route, chain_settings(self.settings), self._readers)
            )
        return page_result(
            task,
            route,
            page.dpi,
            outcome,
            started,
            rendered,
            image=page,
            handwriting=self.settings.pipeline.handwriting,
            reader=self.cell_reader(outcome.reading.provider),
            drawing=drawing,
        )

    def cell_reader(self, name: str) -> Reader | None:
        """The local engine that read a page, to read its tables' empty cells again."""
        return self.provider(name).recognize if name in self._configs else None

    def _read_text_layer(self, task: PageTask, route: PageRoute, started: float) -> PageResult:
        """A page routed to its text layer at submit: its frame is computed, not rendered."""
        rendering, limits = self.settings.rendering, self.settings.limits
        width, height, dpi = pdf_page_frame(
            Path(task.path), task.page_number - 1, rendering.dpi, limits.max_pixels_per_page
        )
        framed = time.perf_counter()
        outcome, drawing = text_layer_reading(task, width, height, dpi)
        return page_result(
            task,
            route,
            dpi,
            outcome,
            started,
            framed,
            handwriting=self.settings.pipeline.handwriting,
            drawing=drawing,
        )

    def recognize(self, name: str, page: PageImage) -> RecognizedPage:
        """One provider on an already rendered page (a route read from the event loop)."""
        return self.provider(name).recognize(page)
