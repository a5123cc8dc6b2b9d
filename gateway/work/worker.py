"""The worker: claims pages from the store and reads them in the process pool.

One claiming loop per worker process. Every outcome of a page is written back: its result, a
clear page error, or (when its process died and attempts remain) a return to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import msgspec
import structlog

from gateway.config import Settings
from gateway.errors import ErrorDetail, PageError
from gateway.results import Attempt, PageResult
from gateway.store.models import ClaimedPage
from gateway.store.queue import JobStore
from gateway.work.documents import DocumentKind
from gateway.work.pipeline import PageEngine, PageTask, Phase, reading_confidence
from gateway.work.procpool import RemoteError, TaskTimeoutError, WorkerCrashedError, WorkerPool
from gateway.work.remote import (
    local_route,
    merge_fallback,
    read_remote,
    remote_result,
    render_for_remote,
    split_chain,
)
from providers.base import ProviderError, RemoteProvider
from providers.remote_openai import OpenAIVisionProvider

log = structlog.get_logger(__name__)


def start_engine(settings: Settings) -> PageEngine:
    """Worker-process initializer: load every configured provider once."""
    import warnings

    warnings.simplefilter("ignore", UserWarning)  # decoders' notes on damaged files
    return PageEngine(settings)


def read_page(engine: PageEngine, task: PageTask, *, phase: Phase) -> PageResult:
    return engine.read_page(task, phase)


class Worker:
    def __init__(self, store: JobStore, pool: WorkerPool, settings: Settings,
                 remote: dict[str, RemoteProvider] | None = None) -> None:
        self.store = store
        self.pool = pool
        self.settings = settings
        self.remote = remote if remote is not None else {}  # filled when services start
        self._wakeup = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._in_flight: dict[asyncio.Task[Any], ClaimedPage] = {}

    async def start(self) -> None:
        swept = await self.store.sweep(self.settings.worker.max_page_attempts)
        if swept:
            log.info("pages_requeued", count=swept)
        self._loops = [asyncio.create_task(self._run(), name=f"worker-{i}")
                       for i in range(self.pool.size)]

    def wake(self) -> None:
        self._wakeup.set()

    async def stop(self) -> None:
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops = []

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()
            try:
                claim = await self.store.claim_page()
            except Exception:
                log.exception("page_claim_failed")
                claim = None
            if claim is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(),
                                           self.settings.worker.poll_interval_s)
                continue
            try:
                await self._process(claim)
            except asyncio.CancelledError:
                await asyncio.shield(self.store.release_page(claim, count_attempt=False))
                raise

    async def _read(self, task: PageTask) -> PageResult:
        limits = self.settings.limits
        remote_first, local_rest = (split_chain(task.route, self.remote)
                                    if task.route is not None and self.remote else ([], []))
        if remote_first:
            return await self._read_remote_first(task, remote_first, local_rest)
        result: PageResult = await self.pool.run(
            read_page, task, deadlines={"render": limits.render_timeout_s},
            total_s=limits.page_timeout_s)
        return result

    async def _read_remote_first(self, task: PageTask, remote_first: list[str],
                                 local_rest: list[str]) -> PageResult:
        assert task.route is not None
        limits = self.settings.limits
        started = time.perf_counter()
        wants_lines = any(isinstance(self.remote[n], OpenAIVisionProvider) for n in remote_first)
        rendered = await self.pool.run(render_for_remote, task, wants_lines,
                                       deadlines={"render": limits.render_timeout_s},
                                       total_s=limits.page_timeout_s)
        attempts: list[Attempt] = []
        failures: list[str] = []
        for name in remote_first:
            called = time.perf_counter()
            try:
                recognized = await read_remote(self.remote[name], rendered)
            except ProviderError as exc:
                attempts.append(Attempt(provider=name, confidence=0.0,
                                        seconds=round(time.perf_counter() - called, 3),
                                        error=f"{exc.code}: {exc.message}"[:300]))
                failures.append(f"{name} failed ({exc.code})")
                continue
            attempts.append(Attempt(provider=name,
                                    confidence=round(reading_confidence(recognized), 4),
                                    seconds=round(time.perf_counter() - called, 3)))
            return remote_result(task, task.route, name, recognized, rendered, attempts,
                                 started, "; ".join(failures) or None)
        if not local_rest:
            raise PageError("ocr_failed", "no provider could read the page: "
                            + "; ".join(failures))
        local = msgspec.structs.replace(task, route=local_route(task.route, local_rest))
        result: PageResult = await self.pool.run(
            read_page, local, deadlines={"render": limits.render_timeout_s},
            total_s=limits.page_timeout_s)
        return merge_fallback(result, attempts,
                              "; ".join(failures) + f"; read locally by {local_rest[0]}")

    async def _process(self, claim: ClaimedPage) -> None:
        logger = log.bind(job_id=claim.job_id, tenant_id=claim.tenant_id, page=claim.page_number)
        task = PageTask(path=claim.file_path, kind=DocumentKind(claim.file_kind),
                        page_number=claim.page_number, route=claim.route)
        started = time.perf_counter()
        try:
            result = await self._read(task)
        except PageError as exc:
            logger.info("page_failed", code=exc.code, reason=exc.message)
            await self.store.fail_page(claim, exc.detail())
        except TaskTimeoutError as exc:
            code = "render_timeout" if exc.phase == "render" else "page_timeout"
            logger.warning("page_timed_out", phase=exc.phase, limit_s=exc.limit_s)
            await self.store.fail_page(claim, ErrorDetail(
                code=code, message=f"page {claim.page_number}: {exc.phase} took longer than "
                f"{exc.limit_s:g} s and was stopped"))
        except WorkerCrashedError as exc:
            logger.warning("page_worker_crashed", attempts=claim.attempts, reason=str(exc))
            if claim.attempts >= self.settings.worker.max_page_attempts:
                await self.store.fail_page(claim, ErrorDetail(
                    code="page_crashed", message=f"page {claim.page_number} crashed the reader "
                    f"{claim.attempts} times; the file is probably damaged"))
            else:
                await self.store.release_page(claim)
                self.wake()
        except (RemoteError, Exception) as exc:  # noqa: BLE001 - one page never stops the worker
            logger.error("page_error", error_type=type(exc).__name__, detail=str(exc)[:2000])
            await self.store.fail_page(claim, ErrorDetail(
                code="internal_error", message=f"page {claim.page_number} could not be read "
                "because of an internal error"))
        else:
            seconds = time.perf_counter() - started
            await self.store.complete_page(claim, result, seconds)
            logger.info("page_completed", seconds=round(seconds, 3),
                        provider=result.pipeline_metadata.provider_used
                        if result.pipeline_metadata else None)
