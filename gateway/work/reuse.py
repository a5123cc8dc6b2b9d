"""Prices held and readings reused: quotes, and answers from the result cache.

A document's cache key is its bytes' digest and a digest of every option that shapes its
reading (the pages selected, mode, max_credits, allow_remote, the plan). A quote stores the
routes it priced under that key; a submit that names the quote is billed by those routes while
it holds. A submit whose key matches a finished job of the same tenant, every page of it read,
is answered from that job at once, at `cache.credits_per_page`.
"""

from __future__ import annotations

import hashlib

import msgspec

from gateway.clock import now_ms
from gateway.config import Settings
from gateway.errors import QuoteMismatchError, QuoteNotFoundError
from gateway.results import RESULT_SHAPE, PageResult
from gateway.store.cache import CachedPage
from gateway.store.models import CacheKey, NewJob
from gateway.store.queue import JobStore
from gateway.store.tenants import Tenant
from router.policy import Mode, PageRoute


class SubmitOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What a request asks of the reading, besides the file."""

    page_ranges: str | None = None  # JSON ranges, 1-based inclusive; None: every page
    mode: Mode = Mode.AUTO
    max_credits: int | None = None
    allow_remote: bool = True  # the request's and its tenant's choice together
    cache: bool = True  # false: read again even when an earlier job could answer
    quote_id: str | None = None
    language: str | None = None  # a Tesseract code (router.language.resolve); None: auto


class _KeyedOptions(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    shape: int  # the page result's shape: an upgrade that adds to it reads again
    pages: object
    mode: str
    max_credits: int | None
    allow_remote: bool
    plan: str
    language: str | None = None  # omitted when None: keys made before it existed still match


def cache_key(content: bytes, options: SubmitOptions, plan: str) -> CacheKey:
    raw = (options.page_ranges or "").strip()
    try:  # the same ranges however they were spaced
        pages: object = msgspec.json.decode(raw) if raw else "all"
    except msgspec.DecodeError:
        pages = raw
    keyed = _KeyedOptions(
        shape=RESULT_SHAPE,
        pages=pages,
        mode=options.mode.value,
        max_credits=options.max_credits,
        allow_remote=options.allow_remote,
        plan=plan,
        language=options.language,
    )
    return CacheKey(
        file_sha256=hashlib.sha256(content).hexdigest(),
        options_key=hashlib.sha256(msgspec.json.encode(keyed)).hexdigest(),
    )


async def quoted_routes(
    store: JobStore, tenant: Tenant, key: CacheKey, quote_id: str
) -> dict[int, PageRoute]:
    """The routes a quote holds for this file and these options; 404 or 409 otherwise."""
    quote = await store.cache.get_quote(tenant.id, quote_id)
    if quote is None:
        raise QuoteNotFoundError(f"no quote {quote_id!r} for this account")
    if quote.key != key:
        raise QuoteMismatchError(
            "the quote was made for another file or other options (page_ranges, mode, "
            "max_credits, allow_remote, plan); quote this request again"
        )
    if quote.expires_at < now_ms():
        raise QuoteMismatchError("the quote has expired; quote the document again")
    return quote.routes


def cached_result(result: PageResult, source_job_id: str, credits: int) -> PageResult:
    """An earlier job's page result as a new job's answer: marked cached, at the cache price."""
    meta = result.pipeline_metadata
    if meta is None:
        return result
    reason = (
        f"{meta.provider_reason}; answered from job {source_job_id} (the same file and options)"
    )
    return msgspec.structs.replace(
        result,
        pipeline_metadata=msgspec.structs.replace(
            meta, cached=True, credits=credits, provider_reason=reason
        ),
    )


async def cached_answer(
    store: JobStore, tenant: Tenant, key: CacheKey, settings: Settings
) -> tuple[str, list[CachedPage]]:
    """(the job that answers, its pages as cached pages), or ("", []) when none can."""
    source, results = await store.cache.cached_pages(tenant.id, key)
    price = settings.cache.credits_per_page
    pages = [
        CachedPage(
            page_number=r.page_number,
            tier=r.pipeline_metadata.tier if r.pipeline_metadata else "simple",
            credits=price,
            result=cached_result(r, source, price),
        )
        for r in results
    ]
    return source, pages


async def answer_from_cache(
    store: JobStore,
    tenant: Tenant,
    job: NewJob,
    settings: Settings,
) -> tuple[int, int] | None:
    """A new job answered from the cache: (pages, credits charged), or None when no finished
    job of this tenant has the same file and options."""
    source, pages = await cached_answer(store, tenant, job.key, settings)
    if not pages:
        return None
    charged = await store.cache.create_cached_job(job, source_job_id=source, pages=pages)
    return len(pages), charged
