"""The native API (complexity-routing OCR API): submit, poll, health."""

from __future__ import annotations

import math
from typing import Annotated

from litestar import Controller, get, post
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.openapi.spec import SecurityRequirement
from litestar.params import Body

from gateway.api.errors import error_responses
from gateway.api.schemas import EngineHealth, HealthResponse, SubmitForm, SubmitResponse
from gateway.auth import provide_services, provide_tenant, require_api_key
from gateway.jobs import JobResult
from gateway.services import VERSION, Services
from gateway.submissions import submit_document
from gateway.tenants import Tenant

DEFAULT_PAGE_SECONDS = 3.0
API_KEY: list[SecurityRequirement] = [{"ApiKeyAuth": []}]


class NativeController(Controller):
    path = "/v1"
    guards = [require_api_key]  # noqa: RUF012 - Litestar's class-level configuration
    dependencies = {"tenant": Provide(provide_tenant, sync_to_thread=False)}  # noqa: RUF012
    security = API_KEY
    tags = ["native"]  # noqa: RUF012

    @post("/ocr", status_code=202, summary="Submit a document for OCR",
          responses=error_responses(400, 401, 402, 413, 415, 500, 503))
    async def submit(self, data: Annotated[SubmitForm, Body(
                         media_type=RequestEncodingType.MULTI_PART)],
                     tenant: Tenant, services: Services) -> SubmitResponse:
        """Multipart `file` (PDF, PNG, JPEG, TIFF, WEBP, BMP; type detected from the bytes) and
        optional `page_ranges`. Reserves the pages' credits and queues the job."""
        content = await data.file.read()
        queued = await services.store.queue_depth()
        submitted = await submit_document(
            settings=services.settings, store=services.store, inspector=services.inspector,
            tenant=tenant, content=content, file_name=data.file.filename,
            page_ranges=data.page_ranges)
        services.worker.wake()
        page_s = await services.store.mean_page_seconds() or DEFAULT_PAGE_SECONDS
        eta = (queued + submitted.page_count) * page_s / max(services.engines.size, 1)
        return SubmitResponse(jobId=submitted.job_id, status="pending",
                              pageCount=submitted.page_count,
                              creditsReserved=submitted.credits_reserved,
                              estimatedCompletionSeconds=max(1, math.ceil(eta)))

    @get("/jobs/{job_id:str}", summary="Job status and the finished pages so far",
         responses=error_responses(400, 401, 404, 500))
    async def get_job(self, job_id: str, tenant: Tenant, services: Services) -> JobResult:
        """Another tenant's job is answered exactly like a missing one (404)."""
        return await services.store.get_job(tenant.id, job_id)


@get("/health", summary="Service health", tags=["service"], responses=error_responses(500))
async def health(services: Services) -> HealthResponse:
    engines = services.engines
    return HealthResponse(
        status="ok" if engines.ready > 0 else "degraded",
        version=VERSION,
        uptime_s=round(services.uptime_s(), 1),
        queue_depth=await services.store.queue_depth(),
        jobs_processed=await services.store.jobs_processed(),
        engines=EngineHealth(
            providers=sorted(services.settings.providers),
            default_provider=services.settings.pipeline.provider,
            workers_ready=engines.ready, workers_total=engines.size, workers_busy=engines.busy,
            worker_crashes=engines.crashes),
    )


SERVICES = {"services": Provide(provide_services, sync_to_thread=False)}
