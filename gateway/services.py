"""Everything the running gateway owns, started and stopped by the app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Literal

import structlog
from limits import RateLimitItem

from gateway import metrics
from gateway.api.ratelimit import RateLimiter, parse_rule
from gateway.clock import now_ms
from gateway.config import Settings
from gateway.store import nodes, uploads
from gateway.store.db import open_database
from gateway.store.queue import JOB_CHANNEL, QUEUE_CHANNEL, JobStore
from gateway.work.procpool import WorkerPool
from gateway.work.webhooks import WebhookDeliverer
from gateway.work.worker import Worker, start_engine, start_renderer
from providers.base import RemoteProvider
from providers.factory import build_remote_provider, is_local, is_remote
from providers.resilience import BreakerState

log = structlog.get_logger(__name__)
ORPHAN_UPLOAD_AGE_S = 3600.0  # an upload with no job this old was left by a crash mid-submit

VERSION = "0.1.0"
Role = Literal["api+worker", "api", "worker"]  # serve, serve --workers 0, worker


def _breaker_open(provider: RemoteProvider) -> bool:
    breaker = provider.state().get("breaker")
    return isinstance(breaker, dict) and breaker.get("state") == BreakerState.OPEN.value


class Services:
    """`role` says what this node does: serve the API, read pages, or both (the embedded
    default). An API-only node keeps one process that renders previews and PDFs; a worker node
    serves no HTTP (`ocr-gateway worker`)."""

    def __init__(self, settings: Settings, role: Role = "api+worker") -> None:
        self.settings = settings
        self.role = role
        self.reads_pages = role != "api"
        self.serves_api = role != "worker"
        self.db = open_database(settings)
        self.store = JobStore(self.db)
        self.engines = (
            WorkerPool(
                "engine",
                settings.worker.process_count,
                initializer=start_engine,
                init_args=(settings,),
            )
            if self.reads_pages
            else WorkerPool("render", 1, initializer=start_renderer, init_args=(settings,))
        )
        self.node = nodes.Node(
            id=f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
            role=role,
            host=socket.gethostname(),
            pid=os.getpid(),
            workers=settings.worker.process_count if self.reads_pages else 0,
            version=VERSION,
            started_at=now_ms(),
            last_seen_at=now_ms(),
        )
        self.inspector = WorkerPool("inspect", 1)
        self.remote: dict[str, RemoteProvider] = {}
        self.worker = Worker(self.store, self.engines, settings, self.remote)
        self.webhooks = WebhookDeliverer(self.store, settings)  # the job webhook outbox
        self.rate_limiter = RateLimiter(settings.rate_limits)
        self._rate_items: dict[str, tuple[RateLimitItem, ...]] = {
            "reads": parse_rule(settings.rate_limits.reads),
            "admin": parse_rule(settings.rate_limits.admin),
            **{
                f"plan:{name}": parse_rule(plan.submissions)
                for name, plan in settings.plans.items()
            },
        }
        self._loops: list[asyncio.Task[None]] = []
        self.started = time.monotonic()

    def available_providers(self, allow_remote: bool = True) -> frozenset[str]:
        """Local providers, plus remote ones whose breaker is not open (when allowed): what a
        plan made now may route to."""
        local = {n for n, c in self.settings.providers.items() if is_local(c)}
        if not allow_remote:
            return frozenset(local)
        return frozenset(local | {n for n, p in self.remote.items() if not _breaker_open(p)})

    def rate_items(self, rule: str) -> tuple[RateLimitItem, ...]:
        return self._rate_items[rule]

    async def start(self) -> None:
        for name, config in self.settings.providers.items():
            if is_remote(config):  # an unset secret stops the start here, naming the variable
                self.remote[name] = build_remote_provider(name, config)
        self.settings.uploads_dir.mkdir(parents=True, exist_ok=True)
        if self.settings.metrics.enabled:  # before the worker processes start: they inherit it
            metrics.start(self.settings.metrics_dir)
        await self.db.open()
        log.info("database_opened", database=self.db.describe(), role=self.role)
        await self.db.listen(JOB_CHANNEL, self.store.events.notify)  # other nodes' changes
        if self.reads_pages:
            await self.db.listen(QUEUE_CHANNEL, lambda _job_id: self.worker.wake())
        if self.serves_api:
            await self.inspector.start()
        await self.engines.start()
        if self.reads_pages:
            await self.worker.start()
        if self.serves_api:
            await self.webhooks.start()
        await nodes.beat(self.db, self.node)
        self._loops.append(asyncio.create_task(self._heartbeat_loop(), name="heartbeat"))
        if self.settings.retention.days > 0:
            self._loops.append(asyncio.create_task(self._retention_loop(), name="retention"))

    async def stop(self) -> None:
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops = []
        self.engines.stop_accepting()
        await self.worker.stop()
        await self.webhooks.stop()
        await self.engines.close()
        await self.inspector.close()
        for provider in self.remote.values():
            await provider.aclose()
        await self.rate_limiter.aclose()
        with contextlib.suppress(Exception):  # a database already gone: nothing to leave
            await nodes.leave(self.db, self.node.id)
        await self.db.close()

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.worker.heartbeat_s)
            try:
                await nodes.beat(self.db, self.node)
            except Exception:  # broad on purpose: logged, and the next beat tries again
                log.exception("heartbeat_failed")

    async def recent_nodes(self) -> list[nodes.Node]:
        """The nodes seen within three heartbeats."""
        since = now_ms() - int(3 * self.settings.worker.heartbeat_s * 1000)
        return await nodes.seen_since(self.db, since)

    async def delete_job(self, tenant_id: str, job_id: str) -> None:
        path = await self.store.delete_job(tenant_id, job_id)
        local = uploads.node_path(self.db, path, self.settings.uploads_dir)
        await asyncio.to_thread(local.unlink, missing_ok=True)

    async def local_upload(self, job_id: str, recorded: str) -> str:
        """Where this node reads the job's upload (see `uploads.local_file`)."""
        return await uploads.local_file(self.db, job_id, recorded, self.settings.uploads_dir)

    async def apply_retention(self) -> int:
        """Delete finished jobs older than the retention period, and orphaned uploads."""
        cutoff = now_ms() - int(self.settings.retention.days * 86_400_000)
        expired = await self.store.expired_jobs(cutoff)
        for tenant_id, job_id in expired:
            await self.delete_job(tenant_id, job_id)
        known = await self.store.known_uploads()
        orphans = await asyncio.to_thread(self._orphan_uploads, known)
        if expired or orphans:
            log.info("retention_applied", jobs_deleted=len(expired), orphans_deleted=orphans)
        return len(expired)

    def _orphan_uploads(self, known: set[str]) -> int:
        deleted = 0
        horizon = time.time() - ORPHAN_UPLOAD_AGE_S
        known_names = {Path(p).name for p in known}
        for path in self.settings.uploads_dir.iterdir():
            if path.name not in known_names and path.stat().st_mtime < horizon:
                path.unlink(missing_ok=True)
                deleted += 1
        return deleted

    async def _retention_loop(self) -> None:
        while True:
            try:
                await self.apply_retention()
            except Exception:  # broad on purpose: logged, and the next sweep tries again
                log.exception("retention_failed")
            await asyncio.sleep(self.settings.retention.sweep_interval_s)

    def uptime_s(self) -> float:
        return time.monotonic() - self.started

    async def status(self) -> str:
        """For every surface's health: "ok", or "degraded" while no worker process is ready
        or the rate limits' Redis does not answer (asked again at most every few seconds)."""
        await self.rate_limiter.probe()
        working = self.engines.ready > 0 and self.rate_limiter.unavailable_s() is None
        return "ok" if working else "degraded"
