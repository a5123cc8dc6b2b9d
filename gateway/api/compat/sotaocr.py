"""The page-balance API (000, "SotaOCR") over the gateway: `Authorization: Bearer KEY`,
`/v1/balance`, `/v1/extract`, `/v1/jobs/{job_id}` (+ `/result`, `/pages/{n}/preview`) and
`/api/v1/info`, mounted under `compat.sotaocr.prefix`. Errors are `{"error": {"code",
"message"}}`; shapes and mappings are in `sotaocr_map`.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, Router, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import ResponseHeader, UploadFile
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import SecurityScheme
from litestar.params import Body, Parameter
from msgspec import UNSET, UnsetType

from gateway.api.compat.base import (
    SUBMIT,
    Surface,
    admit_key,
    as_gateway_error,
    provide_tenant,
    submit_document,
    surface_handlers,
)
from gateway.api.compat.sotaocr_map import (
    ENTITY_CODE,
    RESULT_FORMATS,
    SotaBalance,
    SotaErrorBody,
    SotaInfo,
    SotaJob,
    SotaResult,
    balance_of,
    error_of,
    job_of,
    result_of,
    upstream_failed,
)
from gateway.api.previews import MAX_PAGE_NUMBER, local_preview_request
from gateway.config import Settings
from gateway.errors import (
    BadRequestError,
    InternalError,
    ResultNotReadyError,
    UpstreamUnavailableError,
)
from gateway.outputs.formats import OutputFormat
from gateway.page_errors import PageError, PoolError
from gateway.services import VERSION, Services
from gateway.store import compat as compat_store
from gateway.store.models import TERMINAL_JOB
from gateway.store.tenants import Tenant
from gateway.work.previews import make_preview, preview_file_name
from gateway.work.reuse import SubmitOptions
from router.policy import TIER_ORDER

NAME = "sotaocr"
SCHEME = "SotaBearer"

_DESCRIPTIONS = {
    202: "Not finished yet (`result_not_ready`; a page's preview: `page_not_ready`); "
    "poll again, at most once a second",
    400: "bad_request: invalid multipart payload, missing file, invalid page_ranges or "
    "model_profile, invalid document",
    401: "unauthorized: missing or invalid Bearer token",
    403: "insufficient_balance (with entity_code, requested_units, available_units)",
    404: "job_not_found: unknown job ID or another account's (page_not_found: no such page)",
    409: "The page failed (`page_failed`) or was never read (`page_not_read`): no preview",
    413: "payload_too_large: the upload is over the limit",
    415: "unsupported_media: not PDF, PNG, JPEG, WEBP, BMP or TIFF",
    429: "rate_limited or too_many_concurrent_jobs (Retry-After)",
    500: "internal_error",
    502: "upstream_unavailable: the OCR provider the job needs is down",
    503: "service_unavailable: the queue is full (Retry-After)",
}
READS = (400, 401, 429, 500)


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    return {
        s: ResponseSpec(data_container=SotaErrorBody, description=_DESCRIPTIONS[s])
        for s in sorted({*READS, *statuses})
    }


class ResultFormat(enum.StrEnum):
    JSON = "json"
    MARKDOWN = "markdown"
    TEXT = "text"


assert [f.value for f in ResultFormat] == [f.value for f in RESULT_FORMATS]


class ExtractForm(msgspec.Struct, frozen=True, kw_only=True):
    """multipart/form-data body of `POST /v1/extract`."""

    file: UploadFile
    # JSON array of ranges, 1-based inclusive, e.g. [{"start":1,"end":3}]
    page_ranges: str | UnsetType = UNSET
    model_profile: str | UnsetType = UNSET  # one of GET /api/v1/info's model_profiles


async def require_bearer(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    scheme, _, key = connection.headers.get("Authorization", "").strip().partition(" ")
    await admit_key(connection, key if scheme.lower() == "bearer" else None, handler)


def handle_error(_: Request[Any, Any, Any], exc: Exception) -> Response[SotaErrorBody]:
    error = as_gateway_error(exc)
    status, body = error_of(error)
    return Response(body, status_code=status, headers=error.headers() or None)


def _profile(settings: Settings, data: ExtractForm) -> str:
    config = settings.compat.sotaocr
    profile = data.model_profile if isinstance(data.model_profile, str) else None
    profile = profile or config.default_model_profile
    if profile not in config.model_profiles:
        raise BadRequestError(
            f"model_profile {profile!r} is not enabled; GET /api/v1/info lists "
            + ", ".join(sorted(config.model_profiles))
        )
    return profile


def _check_upstream(services: Services) -> None:
    """A configuration that sends every page to one remote provider (pipeline.provider) needs
    it: while its breaker is open, a document would only fail."""
    forced = services.settings.pipeline.provider
    if forced in services.remote and forced not in services.available_providers():
        raise UpstreamUnavailableError(f"the OCR provider {forced!r} is unavailable now")


class SotaController(Controller):
    path = "/"

    @get("/v1/balance", summary="Page balance (000)", responses=errors())
    async def balance(self, tenant: Tenant, services: Services) -> SotaBalance:
        """One unit is one credit: a simple page costs 1, medium 3, complex 5."""
        totals = await compat_store.ledger_totals(services.db, tenant.id)
        return balance_of(totals, services.settings.routing.credits(TIER_ORDER[0]))

    @post(
        "/v1/extract",
        status_code=202,
        summary="Upload a document for OCR (000)",
        opt=SUBMIT,
        responses=errors(403, 413, 415, 502, 503),
    )
    async def extract(
        self,
        data: Annotated[ExtractForm, Body(media_type=RequestEncodingType.MULTI_PART)],
        tenant: Tenant,
        services: Services,
    ) -> SotaJob:
        """`file` (PDF, PNG, JPG, JPEG, WEBP, BMP, TIF, TIFF), optional `page_ranges` and
        `model_profile` (mapped onto the gateway's mode). Units are reserved at once."""
        profile = _profile(services.settings, data)
        _check_upstream(services)
        options = SubmitOptions(
            page_ranges=data.page_ranges if isinstance(data.page_ranges, str) else None,
            mode=services.settings.compat.sotaocr.model_profiles[profile],
            allow_remote=tenant.allow_remote,
        )
        submitted = await submit_document(
            services, tenant, await data.file.read(), data.file.filename, options, NAME
        )
        job = await services.store.get_job(tenant.id, submitted.job_id)
        return job_of(job, tenant.id, profile)

    @get("/v1/jobs/{job_id:str}", summary="Job status (000)", responses=errors(404))
    async def job(self, job_id: str, tenant: Tenant, services: Services) -> SotaJob:
        return job_of(await services.store.get_job(tenant.id, job_id), tenant.id)

    @get(
        "/v1/jobs/{job_id:str}/result",
        summary="The finished job's content: json, markdown or text (000)",
        responses=errors(202, 404, 502),
    )
    async def result(
        self,
        job_id: str,
        tenant: Tenant,
        services: Services,
        fmt: Annotated[
            ResultFormat, Parameter(query="format", description="json (default), markdown, text")
        ] = ResultFormat.JSON,
    ) -> SotaResult:
        """`202 result_not_ready` until the job has finished."""
        job = await services.store.get_job(tenant.id, job_id)
        if job.status not in TERMINAL_JOB:
            raise ResultNotReadyError()
        if upstream_failed(job):
            raise UpstreamUnavailableError("the OCR provider could not be reached for any page")
        orientation = services.settings.pipeline.orientation
        return result_of(job, OutputFormat(fmt.value), orientation)

    @get(
        "/v1/jobs/{job_id:str}/pages/{page_number:int}/preview",
        media_type="image/png",
        content_media_type="image/png",
        summary="The page image in the bbox coordinate space (PNG) (000)",
        response_headers=[
            ResponseHeader(
                name="Content-Disposition",
                value='inline; filename="page_0001_preview.png"',
                required=True,
                documentation_only=True,
            )
        ],
        responses=errors(202, 404, 409),
    )
    async def preview(
        self,
        job_id: str,
        page_number: Annotated[int, Parameter(ge=1, le=MAX_PAGE_NUMBER)],
        tenant: Tenant,
        services: Services,
    ) -> Response[bytes]:
        """After automatic rotation (no unwarping): its size is the page's page_preview."""
        page = await services.store.get_job_page(tenant.id, job_id, page_number)
        request = await local_preview_request(services, page, job_id, page_number)
        try:
            preview = await make_preview(services.engines, request, services.settings)
        except (PageError, PoolError) as exc:
            await services.store.get_job_page(tenant.id, job_id, page_number)  # deleted: 404
            raise InternalError(f"page {page_number} could not be rendered") from exc
        name = preview_file_name(page_number)
        return Response(
            preview.png,
            media_type="image/png",
            headers={"Content-Disposition": f'inline; filename="{name}"'},
        )

    @get("/api/v1/info", summary="Model profiles enabled here (000)", responses=errors())
    async def info(self, services: Services) -> SotaInfo:
        config = services.settings.compat.sotaocr
        return SotaInfo(
            service="ocr-gateway",
            version=VERSION,
            entity_code=ENTITY_CODE,
            model_profiles=list(config.model_profiles),
            default_model_profile=config.default_model_profile,
            result_formats=[f.value for f in ResultFormat],
        )


def build(settings: Settings, prefix: str) -> Router:
    del settings  # the handlers read it from the running services
    return Router(
        path=prefix or "/",
        route_handlers=[SotaController],
        tags=[NAME],
        security=[{SCHEME: []}],
        guards=[require_bearer],
        dependencies={"tenant": Provide(provide_tenant, sync_to_thread=False)},
        exception_handlers=surface_handlers(handle_error),
        include_in_schema=True,
    )


SURFACE = Surface(
    name=NAME,
    tag=NAME,
    description="Page-balance OCR API (000): Bearer key; balance in scan_page units (1 unit = "
    "1 credit); /v1/extract, /v1/jobs/{job_id}, result formats, page preview, /api/v1/info",
    security_schemes={
        SCHEME: SecurityScheme(type="http", scheme="bearer", description="an API key")
    },
    build=build,
)
