"""Accepting a document: detect, store, inspect, select pages, plan, reserve credits, queue;
or answer it from the cache, or bill it by a quote; or only quote it.

Nothing is charged and nothing is kept when any step refuses the document.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from pathlib import Path

import msgspec
import structlog

from gateway.clock import now_ms
from gateway.config import PlanSettings, Settings
from gateway.errors import (
    BadRequestError,
    DocumentError,
    PayloadTooLargeError,
    QueueFullError,
    UnsupportedMediaTypeError,
)
from gateway.store.cache import StoredQuote
from gateway.store.db import ConstraintError
from gateway.store.models import Idempotency, NewJob
from gateway.store.queue import JobStore, new_job_id
from gateway.store.tenants import Tenant
from gateway.work.assess import plan_context
from gateway.work.documents import DocumentKind, detect_kind
from gateway.work.inspection import inspect_and_measure
from gateway.work.procpool import WorkerPool
from gateway.work.reuse import (
    SubmitOptions,
    answer_from_cache,
    cache_key,
    cached_answer,
    quoted_routes,
)
from providers.factory import is_remote
from providers.tesseract import TesseractConfig
from router.language import with_language
from router.plan import plan_document
from router.policy import PageRoute, Tier

log = structlog.get_logger(__name__)

SUPPORTED = "PDF, PNG, JPEG, TIFF, WEBP or BMP"
DEFAULT_PAGE_SECONDS = 3.0  # a page's reading time before any was measured
MAX_RETRY_AFTER_S = 300


class Submitted(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str
    page_count: int
    credits_reserved: int
    replayed: bool = False  # an Idempotency-Key retry answered with the original job
    cached: bool = False  # answered from an earlier job of the same file and options


PlannedPages = dict[int, PageRoute]  # page number -> its route


class QuotedPage(msgspec.Struct, frozen=True, kw_only=True):
    page_number: int
    tier: str
    credits: int
    provider: str  # who reads it first (`pdf_text`: its own text layer)
    reason: str
    cached: bool  # answered from an earlier job


class Quote(msgspec.Struct, frozen=True, kw_only=True):
    quote_id: str
    page_count: int
    credits: int
    expires_at: int  # epoch ms: until then a submit naming the quote is billed by it
    pages: list[QuotedPage]


class Intake:
    """Accepting documents for one tenant's request: check, detect, plan (or reuse), admit."""

    def __init__(
        self,
        *,
        settings: Settings,
        plan: PlanSettings,
        store: JobStore,
        inspector: WorkerPool,
        tenant: Tenant,
        available: frozenset[str],
    ) -> None:
        self.settings = settings
        self.plan = plan
        self.store = store
        self.inspector = inspector
        self.tenant = tenant
        self.available = available

    def _check(self, content: bytes, options: SubmitOptions) -> DocumentKind:
        limits = self.settings.limits
        max_bytes = min(limits.max_upload_bytes, int(self.plan.max_upload_mb * 1024 * 1024))
        if len(content) > max_bytes:
            raise PayloadTooLargeError(
                f"the file is {len(content)} bytes; the limit is {max_bytes}",
                limit_bytes=max_bytes,
            )
        if not content:
            raise DocumentError("the file is empty")
        if options.max_credits is not None and options.max_credits < 1:
            raise BadRequestError("max_credits must be >= 1")
        kind = detect_kind(content[:2048])
        if kind is None:
            raise UnsupportedMediaTypeError(
                f"the file is not a supported document type ({SUPPORTED}); "
                "the type is detected from the file's bytes"
            )
        return kind

    async def _plan(self, path: Path, kind: DocumentKind, options: SubmitOptions) -> PlannedPages:
        limits = self.settings.limits
        max_pages = min(limits.max_pages, self.plan.max_pages_per_document)
        prepared = await inspect_and_measure(
            self.inspector, path, kind, options.page_ranges, max_pages, self.settings
        )
        context = plan_context(
            self.settings,
            available=self.available,
            mode=options.mode,
            max_credits=options.max_credits,
            plan=self.tenant.plan,
            allowed_tiers=frozenset(self.plan.allowed_tiers),
            allow_remote=options.allow_remote,
        )
        planned = plan_document(prepared.evidence, self.settings.routing, context)
        routes = with_language(planned.routes, options.language, self._language_readers())
        if not planned.fits(options.max_credits):
            raise BadRequestError(
                f"max_credits {options.max_credits} is below the {planned.credits} credits "
                f"these pages need even at the {Tier.SIMPLE.value} tier",
                max_credits=options.max_credits,
                minimum=planned.credits,
            )
        return dict(zip(prepared.pages, routes, strict=True))

    def _language_readers(self) -> frozenset[str]:
        """Providers that read a language hint: Tesseract (its packs) and remote ones."""
        providers = self.settings.providers.items()
        able = {n for n, c in providers if isinstance(c, TesseractConfig) or is_remote(c)}
        return frozenset(able & self.available)

    async def _check_queue(self) -> None:
        """503 with Retry-After while `limits.max_queued_pages` pages wait or are being read."""
        bound = self.settings.limits.max_queued_pages
        queued = await self.store.queue_depth()
        if queued < bound:
            return
        page_s = await self.store.mean_page_seconds() or DEFAULT_PAGE_SECONDS
        workers = self.settings.worker.process_count
        retry_after = max(
            1, min(MAX_RETRY_AFTER_S, math.ceil((queued - bound + 1) * page_s / workers))
        )
        raise QueueFullError(
            f"{queued} pages are queued, the limit is {bound}; retry in {retry_after} s",
            retry_after_s=retry_after,
            queued_pages=queued,
            max_queued_pages=bound,
        )

    async def submit(
        self,
        content: bytes,
        file_name: str | None,
        options: SubmitOptions,
        idempotency_key: str | None = None,
    ) -> Submitted:
        kind = self._check(content, options)
        await self._check_queue()
        store, tenant = self.store, self.tenant
        key = cache_key(content, options, tenant.plan)
        idempotency = None
        if idempotency_key:
            idempotency = Idempotency(key=idempotency_key[:200], file_sha256=key.file_sha256)
            replay = await _replay(store, tenant, idempotency)
            if replay is not None:
                return replay
        quoted = (
            await quoted_routes(store, tenant, key, options.quote_id) if options.quote_id else None
        )
        job_id = new_job_id()
        path = self.settings.uploads_dir / f"{job_id}.{kind.value}"
        await asyncio.to_thread(_write, path, content)
        job = NewJob(
            job_id=job_id,
            tenant_id=tenant.id,
            file_path=str(path),
            kind=kind,
            file_name=file_name,
            key=key,
            idempotency=idempotency,
        )
        try:
            if options.cache and self.settings.cache.enabled:
                cached = await answer_from_cache(store, tenant, job, self.settings)
                if cached is not None:
                    pages, charged = cached
                    return Submitted(
                        job_id=job_id, page_count=pages, credits_reserved=charged, cached=True
                    )
            routes = quoted if quoted is not None else await self._plan(path, kind, options)
            reserved = await store.create_job(
                job, routes, max_active_jobs=self.plan.max_concurrent_jobs
            )
        except ConstraintError:
            path.unlink(missing_ok=True)
            assert idempotency is not None  # the only unique key a new job can collide on
            replay = await _replay(store, tenant, idempotency)
            assert replay is not None
            return replay
        except BaseException:  # refused or cancelled: keep no upload, then re-raise as it was
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        return Submitted(job_id=job_id, page_count=len(routes), credits_reserved=reserved)

    async def quote(self, content: bytes, options: SubmitOptions) -> Quote:
        """Each page's tier, credits and reason, as a submit of the same bytes and options
        would bill them; nothing reserved, no job, no upload kept."""
        kind = self._check(content, options)
        key = cache_key(content, options, self.tenant.plan)
        path = self.settings.uploads_dir / f"quote-{new_job_id()}.{kind.value}"
        await asyncio.to_thread(_write, path, content)
        try:
            routes = await self._plan(path, kind, options)
        finally:
            with contextlib.suppress(OSError):
                path.unlink()
        cached: dict[int, str] = {}
        if options.cache and self.settings.cache.enabled:
            source, pages = await cached_answer(self.store, self.tenant, key, self.settings)
            if len(pages) == len(routes):
                price = self.settings.cache.credits_per_page
                cached = {p.page_number: source for p in pages}
                routes = {
                    n: msgspec.structs.replace(
                        r, credits=price, reason=f"{r.reason}; answered from job {source}"
                    )
                    for n, r in routes.items()
                }
        quote_id = new_job_id()
        expires_at = now_ms() + int(self.settings.quotes.hold_s * 1000)
        total = sum(r.credits for r in routes.values())
        await self.store.cache.save_quote(
            self.tenant.id,
            StoredQuote(id=quote_id, key=key, routes=routes, credits=total, expires_at=expires_at),
        )
        return Quote(
            quote_id=quote_id,
            page_count=len(routes),
            credits=total,
            expires_at=expires_at,
            pages=[
                QuotedPage(
                    page_number=n,
                    tier=r.tier.value,
                    credits=r.credits,
                    provider=r.providers[0] if r.providers else "",
                    reason=r.reason,
                    cached=n in cached,
                )
                for n, r in sorted(routes.items())
            ],
        )


async def _replay(store: JobStore, tenant: Tenant, idempotency: Idempotency) -> Submitted | None:
    job_id = await store.find_idempotent(tenant.id, idempotency)
    if job_id is None:
        return None
    job = await store.get_summary(tenant.id, job_id)
    return Submitted(
        job_id=job.id,
        page_count=job.page_count,
        credits_reserved=job.credits_reserved,
        replayed=True,
    )


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
