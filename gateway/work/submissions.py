"""Accepting a document: detect, store, inspect, select pages, reserve credits, queue.

Nothing is charged and nothing is kept when any step refuses the document.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import structlog

from gateway.config import PlanSettings, Settings
from gateway.errors import (
    BadRequestError,
    DocumentError,
    InvalidPageRangesError,
    PageError,
    PayloadTooLargeError,
    TaskTimeoutError,
    TooManyPagesError,
    UnsupportedMediaTypeError,
    WorkerCrashedError,
    document_error_for_pool,
)
from gateway.store.models import Idempotency
from gateway.store.queue import JobStore, new_job_id
from gateway.store.tenants import Tenant
from gateway.work.assess import assess_page, plan_context
from gateway.work.documents import DocumentKind, Thumbnail, detect_kind, inspect_document
from gateway.work.procpool import WorkerPool
from router.plan import PageEvidence, plan_document
from router.policy import Mode, Tier
from scoring.features import SCORING_SIDE

log = structlog.get_logger(__name__)

SUPPORTED = "PDF, PNG, JPEG, TIFF, WEBP or BMP"
ASSESS_SECONDS_PER_PAGE = 2.0  # budget for scoring one page at submit, on top of the inspection


class PageRange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    start: int
    end: int


class Submitted(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str
    page_count: int
    credits_reserved: int
    replayed: bool = False  # an Idempotency-Key retry answered with the original job


def parse_page_ranges(raw: str | None, page_count: int) -> list[int]:
    """1-based inclusive ranges as JSON, e.g. `[{"start":1,"end":3}]`; None means every page."""
    if raw is None or not raw.strip():
        return list(range(1, page_count + 1))
    try:
        ranges = msgspec.json.decode(raw, type=list[PageRange])
    except msgspec.DecodeError as exc:
        raise InvalidPageRangesError(
            f'page_ranges must be JSON like [{{"start": 1, "end": 3}}]: {exc}'
        ) from exc
    if not ranges:
        raise InvalidPageRangesError("page_ranges is empty")
    pages: set[int] = set()
    for r in ranges:
        if not 1 <= r.start <= r.end <= page_count:
            raise InvalidPageRangesError(
                f"page range {r.start}-{r.end} is outside the document's pages 1-{page_count}",
                page_count=page_count,
            )
        pages.update(range(r.start, r.end + 1))
    return sorted(pages)


def assess_in_worker(
    path: str,
    kind: DocumentKind,
    pages: list[int],
    settings: Settings,
    first_page: Thumbnail | None = None,
) -> list[PageEvidence]:
    evidence = []
    for number in pages:
        try:
            evidence.append(
                assess_page(Path(path), kind, number, settings, first_page if number == 1 else None)
            )
        except PageError as exc:  # read (and fail, refunded) by the worker like any page
            evidence.append(PageEvidence(unassessed=exc.message))
        except Exception as exc:  # a scoring defect must not refuse the upload: bill simple
            log.exception("page_assessment_failed", path=path, page=number)
            evidence.append(PageEvidence(unassessed=f"{type(exc).__name__}: {exc}"))
    return evidence


class Prepared(msgspec.Struct, frozen=True, kw_only=True):
    pages: list[int]  # the selected page numbers, in order
    evidence: list[PageEvidence]  # measured on each of them


def prepare_in_worker(
    _state: Any,
    path: str,
    kind: DocumentKind,
    page_ranges: str | None,
    max_pages: int,
    settings: Settings,
    *,
    phase: Any,
) -> Prepared:
    """Inspector-process task: open the document, select its pages, measure each one."""
    phase("inspect")
    info = inspect_document(
        Path(path), kind, settings.limits.max_pixels_per_page, thumbnail_side=SCORING_SIDE
    )
    phase("assess")
    pages = parse_page_ranges(page_ranges, info.page_count)
    if len(pages) > max_pages:
        raise TooManyPagesError(
            f"{len(pages)} pages selected; the limit is {max_pages} per document",
            pages=len(pages),
            max_pages=max_pages,
        )
    return Prepared(
        pages=pages, evidence=assess_in_worker(path, kind, pages, settings, info.first_page)
    )


def parse_mode(raw: str | None) -> Mode:
    try:
        return Mode((raw or Mode.AUTO.value).strip().lower())
    except ValueError as exc:
        raise BadRequestError(f"mode must be one of {', '.join(m.value for m in Mode)}") from exc


async def submit_document(
    *,
    settings: Settings,
    plan: PlanSettings,
    store: JobStore,
    inspector: WorkerPool,
    tenant: Tenant,
    content: bytes,
    file_name: str | None,
    page_ranges: str | None,
    available: frozenset[str],
    allow_remote: bool = True,
    idempotency_key: str | None = None,
    mode: str | None = None,
    max_credits: int | None = None,
) -> Submitted:
    limits = settings.limits
    max_bytes = min(limits.max_upload_bytes, int(plan.max_upload_mb * 1024 * 1024))
    if len(content) > max_bytes:
        raise PayloadTooLargeError(
            f"the file is {len(content)} bytes; the limit is {max_bytes}", limit_bytes=max_bytes
        )
    if not content:
        raise DocumentError("the file is empty")
    chosen_mode = parse_mode(mode)
    if max_credits is not None and max_credits < 1:
        raise BadRequestError("max_credits must be >= 1")
    idempotency = None
    if idempotency_key:
        idempotency = Idempotency(
            key=idempotency_key[:200], file_sha256=hashlib.sha256(content).hexdigest()
        )
        replay = await _replay(store, tenant, idempotency)
        if replay is not None:
            return replay
    kind = detect_kind(content[:2048])
    if kind is None:
        raise UnsupportedMediaTypeError(
            f"the file is not a supported document type ({SUPPORTED}); "
            "the type is detected from the file's bytes"
        )
    job_id = new_job_id()
    path = settings.uploads_dir / f"{job_id}.{kind.value}"
    await asyncio.to_thread(_write, path, content)
    try:
        prepared = await _prepare(
            inspector,
            path,
            kind,
            page_ranges,
            min(limits.max_pages, plan.max_pages_per_document),
            settings,
        )
        context = plan_context(
            settings,
            available=available,
            mode=chosen_mode,
            max_credits=max_credits,
            plan=tenant.plan,
            allowed_tiers=frozenset(plan.allowed_tiers),
            allow_remote=allow_remote,
        )
        planned = plan_document(prepared.evidence, settings.routing, context)
        if not planned.fits(max_credits):
            raise BadRequestError(
                f"max_credits {max_credits} is below the {planned.credits} credits these pages "
                f"need even at the {Tier.SIMPLE.value} tier",
                max_credits=max_credits,
                minimum=planned.credits,
            )
        routes = dict(zip(prepared.pages, planned.routes, strict=True))
        reserved = await store.create_job(
            job_id=job_id,
            tenant_id=tenant.id,
            file_path=str(path),
            kind=kind,
            file_name=file_name,
            routes=routes,
            max_active_jobs=plan.max_concurrent_jobs,
            idempotency=idempotency,
        )
    except sqlite3.IntegrityError:
        path.unlink(missing_ok=True)
        assert idempotency is not None  # the only unique key a new job can collide on
        replay = await _replay(store, tenant, idempotency)
        assert replay is not None
        return replay
    except BaseException:  # refused or cancelled: keep no upload, then re-raise as it was
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return Submitted(job_id=job_id, page_count=len(prepared.pages), credits_reserved=reserved)


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


async def _prepare(
    inspector: WorkerPool,
    path: Path,
    kind: DocumentKind,
    page_ranges: str | None,
    max_pages: int,
    settings: Settings,
) -> Prepared:
    """Inspect and score in the inspector process: a hostile file costs that process only.
    Opening the document has its own deadline; scoring gets a budget per page allowed."""
    limits = settings.limits
    timeout = limits.inspect_timeout_s + ASSESS_SECONDS_PER_PAGE * max_pages
    try:
        prepared: Prepared = await inspector.run(
            prepare_in_worker,
            str(path),
            kind,
            page_ranges,
            max_pages,
            settings,
            deadlines={"inspect": limits.inspect_timeout_s},
            total_s=timeout,
        )
    except (TaskTimeoutError, WorkerCrashedError) as exc:
        raise document_error_for_pool(exc) from exc
    return prepared


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
