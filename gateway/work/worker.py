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

from gateway import metrics
from gateway.config import Settings
from gateway.page_errors import PageInternalError, page_error_for_pool
from gateway.results import PageResult
from gateway.store.models import ClaimedPage
from gateway.store.queue import JobStore
from gateway.store.uploads import local_file
from gateway.work.documents import DocumentKind
from gateway.work.pipeline import PageEngine, PageTask, Phase
from gateway.work.procpool import WorkerPool
from gateway.work.readers import has_remote, read_with_remote
from providers.base import RemoteProvider

log = structlog.get_logger(__name__)


def start_engine(settings: Settings) -> PageEngine:
    """Worker-process initializer: load every configured provider once."""
    import warnings

    warnings.simplefilter("ignore", UserWarning)  # decoders' notes on damaged files
    return PageEngine(settings)


def start_renderer(settings: Settings) -> PageEngine:
    """Process initializer of an API-only node: renders previews and PDFs, loads no model."""
    return PageEngine(settings, load_providers=False)


def read_page(engine: PageEngine, task: PageTask, *, phase: Phase) -> PageResult:
    return engine.read_page(task, phase)


class Worker:
    def __init__(
        self,
        store: JobStore,
        pool: WorkerPool,
        settings: Settings,
        remote: dict[str, RemoteProvider] | None = None,
    ) -> None:
        self.store = store
        self.pool = pool
        self.settings = settings
        self.remote = remote if remote is not None else {}  # filled when services start
        self._wakeup = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._in_flight: dict[asyncio.Task[Any], ClaimedPage] = {}

    async def start(self) -> None:
        # Embedded, nothing else reads this queue: a page left in flight was interrupted by the
        # last stop. Shared, another node may be reading it: only expired leases count.
        swept = await self.store.requeue_expired(
            self.settings.worker.max_page_attempts, all_in_flight=not self.store.db.shared
        )
        if swept:
            log.info("pages_requeued", count=swept)
        self._loops = [
            asyncio.create_task(self._run(), name=f"worker-{i}") for i in range(self.pool.size)
        ]
        if self.store.db.shared:
            self._loops.append(asyncio.create_task(self._reap(), name="lease-reaper"))

    async def _reap(self) -> None:
        """Put back the pages whose worker's node died (their lease ran out)."""
        while True:
            await asyncio.sleep(self.settings.worker.lease_s / 3)
            try:
                swept = await self.store.requeue_expired(self.settings.worker.max_page_attempts)
            except Exception:  # a store hiccup must not end the loop: logged, retried
                log.exception("lease_reap_failed")
                continue
            if swept:
                log.warning("pages_requeued_after_lease", count=swept)
                self.wake()

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
                claim = await self.store.claim_page(self.settings.worker.lease_s)
            except Exception:  # a store hiccup must not end the claiming loop: logged, retried
                log.exception("page_claim_failed")
                claim = None
            if claim is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._wakeup.wait(), self.settings.worker.poll_interval_s
                    )
                continue
            try:
                await self._process(claim)
            except asyncio.CancelledError:
                await asyncio.shield(self.store.release_page(claim, count_attempt=False))
                raise

    async def _read(self, task: PageTask) -> PageResult:
        """Along the stored route: in one worker-process task when every provider is local,
        from the event loop when some are remote."""
        if has_remote(task, self.remote):
            return await read_with_remote(task, self.pool, self.remote, self.settings)
        limits = self.settings.limits
        result: PageResult = await self.pool.run(
            read_page,
            task,
            deadlines={"render": limits.render_timeout_s},
            total_s=limits.page_timeout_s,
        )
        return result

    async def _keep_lease(self, claim: ClaimedPage) -> None:
        """Extend the page's lease while it is read (a worker node that dies stops extending)."""
        lease_s = self.settings.worker.lease_s
        while True:
            await asyncio.sleep(lease_s / 3)
            try:
                if not await self.store.extend(claim, lease_s):
                    return  # cancelled, or taken over: the result will not be recorded
            except Exception:  # logged; the next beat tries again before the lease runs out
                log.exception("lease_extend_failed", job_id=claim.job_id, page=claim.page_number)

    async def _process(self, claim: ClaimedPage) -> None:
        logger = log.bind(job_id=claim.job_id, tenant_id=claim.tenant_id, page=claim.page_number)
        lease = asyncio.create_task(self._keep_lease(claim), name="lease")
        try:
            await self._process_leased(claim, logger)
        finally:
            lease.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lease

    async def _process_leased(self, claim: ClaimedPage, logger: Any) -> None:
        started = time.perf_counter()
        try:
            path = await local_file(
                self.store.db, claim.job_id, claim.file_path, self.settings.uploads_dir
            )
            task = PageTask(
                path=path,
                kind=DocumentKind(claim.file_kind),
                page_number=claim.page_number,
                route=claim.route,
            )
            result = await self._read(task)
        except Exception as exc:  # noqa: BLE001 - one page never stops the worker: mapped below
            error = page_error_for_pool(
                exc, claim.page_number, claim.attempts, self.settings.worker.max_page_attempts
            )
            if error is None:  # its process died and attempts remain: read it again
                logger.warning("page_worker_crashed", attempts=claim.attempts, reason=str(exc))
                await self.store.release_page(claim)
                self.wake()
                return
            if isinstance(error, PageInternalError):
                logger.error("page_error", error_type=type(exc).__name__, detail=str(exc)[:2000])
            else:
                logger.info("page_failed", code=error.code, reason=error.message)
            await self.store.fail_page(claim, error.detail())
            metrics.page_failed(claim.tier, error.code)
        else:
            seconds = time.perf_counter() - started
            await self.store.complete_page(claim, result, seconds)
            metrics.page_completed(result, seconds)
            logger.info(
                "page_completed",
                seconds=round(seconds, 3),
                provider=result.pipeline_metadata.provider_used
                if result.pipeline_metadata
                else None,
            )
