"""The worker: claims pages from the store and reads them in the process pool.

One claiming loop per worker process. Every outcome of a page is written back: its result, a
clear page error, or (when its process died and attempts remain) a return to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog

from gateway.config import Settings
from gateway.errors import ErrorDetail, PageError
from gateway.jobs import ClaimedPage, JobStore
from gateway.pipeline import PageEngine, PageTask, Phase
from gateway.procpool import RemoteError, TaskTimeoutError, WorkerCrashedError, WorkerPool
from gateway.results import PageResult

log = structlog.get_logger(__name__)


def start_engine(settings: Settings) -> PageEngine:
    """Worker-process initializer: load every configured provider once."""
    import warnings

    warnings.simplefilter("ignore", UserWarning)  # decoders' notes on damaged files
    return PageEngine(settings)


def read_page(engine: PageEngine, task: PageTask, *, phase: Phase) -> PageResult:
    return engine.read_page(task, phase)


class Worker:
    def __init__(self, store: JobStore, pool: WorkerPool, settings: Settings) -> None:
        self.store = store
        self.pool = pool
        self.settings = settings
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

    async def _process(self, claim: ClaimedPage) -> None:
        logger = log.bind(job_id=claim.job_id, tenant_id=claim.tenant_id, page=claim.page_number)
        limits = self.settings.limits
        task = PageTask(path=claim.file_path, kind=claim.file_kind,
                        page_number=claim.page_number, route=claim.route)
        started = time.perf_counter()
        try:
            result: PageResult = await self.pool.run(
                read_page, task, deadlines={"render": limits.render_timeout_s},
                total_s=limits.page_timeout_s)
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
