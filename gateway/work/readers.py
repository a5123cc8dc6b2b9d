"""Reading a route that has remote providers, from the gateway's event loop.

Remote providers (a VLM server, another gateway) run in the event loop: they own HTTP clients,
retries and circuit breakers. The page is rendered once in a worker process, with a local
engine's line boxes when a provider of the route takes them as hints; then `read_chain` walks
the route here, the same executor a worker process runs: remote providers are awaited, local
ones read the rendered page in a worker process. Any provider error (an open breaker included)
moves the page to the next provider of its route, and the attempts say so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import msgspec

from gateway.config import Settings
from gateway.results import PageResult
from gateway.work.chain import read_chain
from gateway.work.pipeline import (
    PageEngine,
    PageTask,
    Phase,
    chain_settings,
    page_result,
    render,
    upright,
)
from gateway.work.procpool import WorkerPool
from providers.base import RemoteProvider
from providers.errors import ProviderError
from providers.types import PageHints, PageImage, RecognizedPage, TextLine

GEOMETRY_ENGINE = "tesseract"  # the fast local engine whose lines locate a VLM's text


class RenderedPage(msgspec.Struct, frozen=True, kw_only=True):
    page: PageImage
    line_boxes: tuple[TextLine, ...] | None  # a local engine's lines, as hints


def render_task(
    engine: PageEngine, task: PageTask, with_lines: bool, *, phase: Phase
) -> RenderedPage:
    """Worker-process task: the rendered page, and local line boxes when asked."""
    phase("render")
    page = render(task, engine.settings)
    lines = None
    if with_lines:
        phase("ocr")
        local = engine.engines()
        routed = sorted(set(local) & engine.settings.routed_providers())
        preferred = [GEOMETRY_ENGINE] if GEOMETRY_ENGINE in local else []
        name = next(iter([*preferred, *routed, *local]), None)  # one loaded at start, if any
        if name is not None:
            try:
                lines = engine.provider(name).recognize(page).lines
            except ProviderError:  # a model that fails to load, or to read: raises ProviderError
                lines = None  # the hint is optional: the provider reads without it
    return RenderedPage(page=page, line_boxes=lines)


def recognize_task(
    engine: PageEngine, name: str, page: PageImage, *, phase: Phase
) -> RecognizedPage:
    """Worker-process task: one local provider on a page rendered earlier."""
    phase("ocr")
    return engine.recognize(name, page)


def upright_task(engine: PageEngine, page: PageImage, *, phase: Phase) -> tuple[PageImage, int]:
    phase("ocr")
    return upright(page, engine.settings)


class PoolReaders:
    """Remote providers in this event loop, local ones in the worker pool."""

    def __init__(
        self,
        pool: WorkerPool,
        remote: Mapping[str, RemoteProvider],
        rendered: RenderedPage,
        timeout_s: float,
    ) -> None:
        self.pool = pool
        self.remote = remote
        self.rendered = rendered
        self.timeout_s = timeout_s

    async def recognize(self, name: str, page: PageImage) -> RecognizedPage:
        provider = self.remote.get(name)
        if provider is None:
            result: RecognizedPage = await self.pool.run(
                recognize_task, name, page, deadlines={}, total_s=self.timeout_s
            )
            return result
        hints = None
        if provider.wants_line_boxes and page is self.rendered.page:  # boxes of these pixels
            hints = PageHints(line_boxes=self.rendered.line_boxes)
        return await provider.recognize(page, hints)

    async def upright(self, page: PageImage) -> tuple[PageImage, int]:
        turned: tuple[PageImage, int] = await self.pool.run(
            upright_task, page, deadlines={}, total_s=self.timeout_s
        )
        return turned


async def read_with_remote(
    task: PageTask, pool: WorkerPool, remote: Mapping[str, RemoteProvider], settings: Settings
) -> PageResult:
    """Read a page whose route names remote providers (`task.route` is set)."""
    route = task.route
    assert route is not None, "a page is read from the event loop only along its stored route"
    limits = settings.limits
    started = time.perf_counter()
    wants_lines = any(remote[n].wants_line_boxes for n in route.providers if n in remote)
    rendered: RenderedPage = await pool.run(
        render_task,
        task,
        wants_lines,
        deadlines={"render": limits.render_timeout_s},
        total_s=limits.page_timeout_s,
    )
    rendered_at = time.perf_counter()
    readers = PoolReaders(pool, remote, rendered, limits.page_timeout_s)
    outcome = await read_chain(rendered.page, route, chain_settings(settings), readers)
    # marking handwriting measures every line's pixels: off the event loop
    return await asyncio.to_thread(
        page_result,
        task,
        route,
        rendered.page.dpi,
        outcome,
        started,
        rendered_at,
        rendered.page,
        settings.pipeline.handwriting,
    )


def has_remote(task: PageTask, remote: Mapping[str, Any]) -> bool:
    return task.route is not None and any(n in remote for n in task.route.providers)
