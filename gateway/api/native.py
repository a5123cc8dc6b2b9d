"""The native API (complexity-routing OCR API): submit, poll, manage jobs, balance, health."""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.openapi.spec import SecurityRequirement
from litestar.params import Body, Parameter

from gateway.api.auth import provide_services, provide_tenant, require_api_key
from gateway.api.errors import error_responses
from gateway.api.schemas import (
    MAX_OFFSET,
    DatabaseHealth,
    EngineHealth,
    HealthResponse,
    JobView,
    NodeHealth,
    QuotedPageResponse,
    QuoteForm,
    QuoteResponse,
    RateLimitHealth,
    SubmitForm,
    SubmitResponse,
    given,
)
from gateway.clock import now_ms
from gateway.errors import BadRequestError
from gateway.services import VERSION, Services
from gateway.store import outbox
from gateway.store.models import JobList, JobStatus, JobSummary
from gateway.store.tenants import Tenant
from gateway.store.usage import MAX_USAGE_DAYS, Balance, Usage, get_balance, get_usage
from gateway.work.fetch import document_limit, fetch_document
from gateway.work.layout import without_words
from gateway.work.reuse import SubmitOptions
from gateway.work.submissions import Intake
from gateway.work.webhooks import check_callback_url
from gateway.work.webhooks import register as register_webhook
from router.language import UnknownLanguageError, resolve

DEFAULT_PAGE_SECONDS = 3.0
MAX_WAIT_S = 30.0
FIRST_DAY, LAST_DAY = dt.date(1970, 1, 1), dt.date(9999, 12, 30)  # usage: the ledger's clock
API_KEY: list[SecurityRequirement] = [{"ApiKeyAuth": []}]
READ_ERRORS = (401, 429, 500, 503)  # any authenticated read (503: Redis limits down); 400 always


class TenantController(Controller):
    """A native-API controller: every route needs an API key and is handed its tenant."""

    guards = [require_api_key]  # noqa: RUF012 - Litestar's class-level configuration
    dependencies = {"tenant": Provide(provide_tenant, sync_to_thread=False)}  # noqa: RUF012
    security = API_KEY
    tags = ["native"]  # noqa: RUF012


class NativeController(TenantController):
    path = "/v1"

    @post(
        "/ocr",
        status_code=202,
        summary="Submit a document for OCR",
        opt={"rate_limit": "submit"},
        responses=error_responses(401, 402, 404, 409, 413, 415, 429, 500, 503),
    )
    async def submit(
        self,
        data: Annotated[SubmitForm, Body(media_type=RequestEncodingType.MULTI_PART)],
        tenant: Tenant,
        services: Services,
        idempotency_key: Annotated[
            str | None,
            Parameter(
                header="Idempotency-Key",
                required=False,
                description="a retry with the same key and file returns the "
                "original job and reserves nothing more",
            ),
        ] = None,
    ) -> Response[SubmitResponse]:
        """Multipart `file` (PDF, PNG, JPEG, TIFF, WEBP, BMP; type detected from the bytes)
        or `url` (fetched by the gateway: http(s), public addresses only unless configured),
        optional `page_ranges`, `mode` (auto, fast, accurate) and `max_credits`. Every page is
        scored and its tier's credits (1, 3 or 5) reserved; the job is queued."""
        callback = given(data.callback_url)
        if callback is not None:  # refused before anything is fetched or reserved
            callback = await check_callback_url(callback, services.settings)
        content, file_name = await read_document(services, tenant, data)
        queued = await services.store.queue_depth()
        submitted = await intake(services, tenant, data).submit(
            content, file_name, options(tenant, data), idempotency_key
        )
        if callback is not None:
            full = given(data.callback_full) is not False
            await register_webhook(services.db, submitted.job_id, tenant.id, callback, full)
        services.worker.wake()
        page_s = await services.store.mean_page_seconds() or DEFAULT_PAGE_SECONDS
        eta = (queued + submitted.page_count) * page_s / max(services.engines.size, 1)
        body = SubmitResponse(
            jobId=submitted.job_id,
            status="completed" if submitted.cached else "pending",
            pageCount=submitted.page_count,
            creditsReserved=submitted.credits_reserved,
            estimatedCompletionSeconds=0 if submitted.cached else max(1, math.ceil(eta)),
            cached=submitted.cached,
        )
        headers = {"Idempotent-Replayed": "true"} if submitted.replayed else None
        return Response(body, status_code=202, headers=headers)

    @post(
        "/quote",
        status_code=200,
        summary="Price a document before reading it",
        opt={"rate_limit": "submit"},
        responses=error_responses(401, 413, 415, 429, 500, 503),
    )
    async def quote(
        self,
        data: Annotated[QuoteForm, Body(media_type=RequestEncodingType.MULTI_PART)],
        tenant: Tenant,
        services: Services,
    ) -> QuoteResponse:
        """The same form as `POST /v1/ocr`, answered at once with each page's tier, credits and
        reason and the total; nothing is reserved and no job is made. A submit of the same file
        and options is billed the same; with `quote_id` it is billed by this quote while it
        holds (`quotes.hold_s`), whatever changed meanwhile."""
        content, _ = await read_document(services, tenant, data)
        quote = await intake(services, tenant, data).quote(content, options(tenant, data))
        return QuoteResponse(
            quoteId=quote.quote_id,
            pageCount=quote.page_count,
            credits=quote.credits,
            expiresAt=quote.expires_at,
            pages=[
                QuotedPageResponse(
                    pageNumber=p.page_number,
                    tier=p.tier,
                    credits=p.credits,
                    provider=p.provider,
                    reason=p.reason,
                    cached=p.cached,
                )
                for p in quote.pages
            ],
        )

    @get(
        "/jobs/{job_id:str}",
        summary="Job status and the finished pages so far",
        responses=error_responses(*READ_ERRORS, 404),
    )
    async def get_job(
        self,
        job_id: str,
        tenant: Tenant,
        services: Services,
        wait: Annotated[
            float,
            Parameter(
                ge=0,
                le=MAX_WAIT_S,
                description="hold the request until the job "
                "changes or this many seconds pass (at most 30)",
            ),
        ] = 0.0,
        words: Annotated[
            bool,
            Parameter(description="false leaves the words of every line out (large documents)"),
        ] = True,
    ) -> JobView:
        """Another tenant's job is answered exactly like a missing one (404). `webhook`: the
        job's webhook and each delivery attempt, when it was submitted with `callback_url`."""
        if wait > 0:
            job = await services.store.wait_for_change(tenant.id, job_id, wait)
        else:
            job = await services.store.get_job(tenant.id, job_id)
        if not words:
            job = msgspec.structs.replace(job, results=[without_words(p) for p in job.results])
        webhook = await outbox.get(services.db, job.id)
        return JobView(**msgspec.structs.asdict(job), webhook=webhook)

    @get(
        "/jobs",
        summary="The tenant's jobs, newest first (summary fields)",
        responses=error_responses(*READ_ERRORS),
    )
    async def list_jobs(
        self,
        tenant: Tenant,
        services: Services,
        limit: Annotated[int, Parameter(ge=1, le=100)] = 20,
        offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET)] = 0,
        status: JobStatus | None = None,
    ) -> JobList:
        return await services.store.list_jobs(tenant.id, limit=limit, offset=offset, status=status)

    @post(
        "/jobs/{job_id:str}/cancel",
        status_code=200,
        summary="Cancel a job",
        responses=error_responses(*READ_ERRORS, 404, 409),
    )
    async def cancel_job(self, job_id: str, tenant: Tenant, services: Services) -> JobSummary:
        """Pages not read yet are not read; their credits are refunded at once."""
        await services.store.cancel_job(tenant.id, job_id)
        return await services.store.get_summary(tenant.id, job_id)

    @delete(
        "/jobs/{job_id:str}",
        status_code=204,
        summary="Delete a job, its upload and results",
        responses=error_responses(*READ_ERRORS, 404),
    )
    async def delete_job(self, job_id: str, tenant: Tenant, services: Services) -> None:
        """A running job is cancelled first (unread pages refunded)."""
        await services.delete_job(tenant.id, job_id)

    @get(
        "/balance",
        summary="Credits available and reserved, plan, recent usage",
        responses=error_responses(*READ_ERRORS),
    )
    async def balance(self, tenant: Tenant, services: Services) -> Balance:
        return await get_balance(services.db, tenant)

    @get(
        "/usage",
        summary="Pages and credits per day and per tier",
        responses=error_responses(
            *READ_ERRORS,
            described={
                400: f"A date that is not YYYY-MM-DD or is outside {FIRST_DAY}..{LAST_DAY}, "
                f"`from` after `to`, or a range over {MAX_USAGE_DAYS} days"
            },
        ),
    )
    async def usage(
        self,
        tenant: Tenant,
        services: Services,
        from_: Annotated[
            dt.date | None,
            Parameter(query="from", description="first day (UTC); default: 29 days before `to`"),
        ] = None,
        to: Annotated[
            dt.date | None, Parameter(description="last day, inclusive; default: today")
        ] = None,
    ) -> Usage:
        for day in (from_, to):
            if day is not None and not FIRST_DAY <= day <= LAST_DAY:
                raise BadRequestError(f"dates must be between {FIRST_DAY} and {LAST_DAY}")
        return await get_usage(
            services.db,
            tenant,
            None if from_ is None else from_.isoformat(),
            None if to is None else to.isoformat(),
        )


@get("/health", summary="Service health", tags=["service"], responses=error_responses(500))
async def health(services: Services) -> HealthResponse:
    engines = services.engines
    now = now_ms()
    nodes = [
        NodeHealth(
            **msgspec.structs.asdict(node),
            seen_s_ago=round(max(0, now - node.last_seen_at) / 1000, 1),
            this_node=node.id == services.node.id,
        )
        for node in await services.recent_nodes()
    ]
    status = await services.status()  # first: during an outage it asks Redis again
    limiter = services.rate_limiter
    down_s = limiter.unavailable_s()
    return HealthResponse(
        status=status,
        role=services.role,
        database=DatabaseHealth(backend=services.db.backend, location=services.db.describe()),
        nodes=nodes,
        workers_seen=sum(node.workers for node in nodes),
        rate_limits=RateLimitHealth(
            store=limiter.store, available=down_s is None, unavailable_s=down_s
        ),
        version=VERSION,
        uptime_s=round(services.uptime_s(), 1),
        queue_depth=await services.store.queue_depth(),
        jobs_processed=await services.store.jobs_processed(),
        engines=EngineHealth(
            providers=sorted(services.settings.providers),
            default_provider=services.settings.pipeline.provider,
            workers_ready=engines.ready,
            workers_total=engines.size,
            workers_busy=engines.busy,
            worker_crashes=engines.crashes,
            devices=engine_devices(engines.described()),
            remote={name: provider.state() for name, provider in services.remote.items()},
        ),
    )


def engine_devices(described: list[dict[str, str]]) -> dict[str, str]:
    """Each local engine's device over the worker processes: "cpu", "cuda", or "cpu+cuda" when
    some processes fell back."""
    devices: dict[str, set[str]] = {}
    for worker in described:
        for engine, device in worker.items():
            devices.setdefault(engine, set()).add(device)
    return {engine: "+".join(sorted(found)) for engine, found in sorted(devices.items())}


SERVICES = {"services": Provide(provide_services, sync_to_thread=False)}


def intake(services: Services, tenant: Tenant, data: QuoteForm) -> Intake:
    allow_remote = tenant.allow_remote and given(data.allow_remote) is not False
    return Intake(
        settings=services.settings,
        plan=services.settings.plans[tenant.plan],
        store=services.store,
        inspector=services.inspector,
        tenant=tenant,
        available=services.available_providers(allow_remote),
    )


async def read_document(
    services: Services, tenant: Tenant, data: QuoteForm
) -> tuple[bytes, str | None]:
    """The uploaded `file`, or the document fetched from `url` (under the same size limit)."""
    file, url = given(data.file), given(data.url)
    if (file is None) == (url is None):
        raise BadRequestError("send the document as `file` or its address as `url` (one of them)")
    if file is not None:
        return await file.read(), file.filename
    assert url is not None
    settings = services.settings
    fetched = await fetch_document(url, settings.fetch, document_limit(settings, tenant.plan))
    return fetched.content, fetched.file_name


def options(tenant: Tenant, data: QuoteForm) -> SubmitOptions:
    """What the form asks of the reading (the tenant may forbid remote providers)."""
    return SubmitOptions(
        page_ranges=given(data.page_ranges),
        mode=data.mode,
        max_credits=given(data.max_credits),
        allow_remote=tenant.allow_remote and given(data.allow_remote) is not False,
        cache=given(data.cache) is not False,
        quote_id=given(data.quote_id) if isinstance(data, SubmitForm) else None,
        language=language_code(given(data.language)),
    )


def language_code(hint: str | None) -> str | None:
    """The Tesseract code of a `language` field; an unknown one is a 400 naming the accepted."""
    try:
        return resolve(hint)
    except UnknownLanguageError as exc:
        raise BadRequestError(str(exc)) from exc
