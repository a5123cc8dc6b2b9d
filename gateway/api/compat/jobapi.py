"""The job API with signup (001) over the gateway, under `compat.jobapi.prefix`: signup,
`POST /api/ocr` (201, `queued -> processing -> done | error`), job status with `result_md` and
`result_json`, list, delete, the synchronous `POST /ocr` and `/health`. The key goes in
`X-API-Key`; errors are FastAPI's (`{"detail": ...}`, 422 for validation). Shapes and mappings
are in `jobapi_map`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from typing import Annotated, Any

from litestar import Controller, Request, Response, Router, delete, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import UploadFile
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Schema,
    SecurityScheme,
)
from litestar.params import Body, Parameter

from gateway.api.compat.base import (
    SUBMIT,
    Surface,
    admit_key,
    as_gateway_error,
    provide_tenant,
    submit_document,
    surface_handlers,
)
from gateway.api.compat.jobapi_map import (
    Detail,
    Health,
    JobCreated,
    JobDetail,
    JobListOut,
    SignupAnswer,
    SignupBody,
    ValidationDetail,
    detail_of,
    field_errors,
    markdown,
    result_json,
    summary_of,
)
from gateway.api.schemas import MAX_OFFSET
from gateway.api.signup import SIGNUPS_PER_ADDRESS
from gateway.api.strict import check_body_types
from gateway.config import Settings
from gateway.errors import (
    BadRequestError,
    ForbiddenError,
    GatewayTimeoutError,
    JobNotCancellableError,
)
from gateway.services import VERSION, Services
from gateway.store.models import TERMINAL_JOB
from gateway.store.tenants import Tenant, signup
from gateway.work.reuse import SubmitOptions
from router.language import UnknownLanguageError, resolve

NAME = "jobapi"
SCHEME = "JobApiKey"
MAX_WAIT_S = 30.0  # one long-poll of the synchronous read

_DESCRIPTIONS = {
    400: "Invalid email address, or a document that cannot be read",
    401: "Missing or unknown API key (X-API-Key)",
    402: "Not enough free pages or credits left",
    403: "Signup is disabled on this gateway",
    404: "Job not found (also another account's)",
    409: "Account already exists",
    413: "File too large",
    415: "Not an image or PDF",
    422: "Validation error",
    429: "Too many requests (Retry-After)",
    500: "Internal error",
    503: "Queue full (Retry-After)",
    504: "Timeout (> 5 min by default)",
}


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    return {
        s: ResponseSpec(
            data_container=ValidationDetail if s == 422 else Detail, description=_DESCRIPTIONS[s]
        )
        for s in sorted({400, 422, 429, 500, *statuses})
    }


class OutputFormat(enum.StrEnum):
    MARKDOWN = "markdown"
    JSON = "json"


@dataclasses.dataclass
class FileForm:
    """multipart/form-data: `file`, an image or PDF."""

    file: UploadFile


async def require_key(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    key = connection.headers.get("X-API-Key")
    scheme, _, bearer = connection.headers.get("Authorization", "").partition(" ")
    await admit_key(connection, key or (bearer if scheme.lower() == "bearer" else None), handler)


def handle_error(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, HTTPException) and exc.status_code == 400:  # validation, bad multipart
        body = ValidationDetail(detail=field_errors(exc.extra, exc.detail))
        return Response(body, status_code=422)
    error = as_gateway_error(exc)
    return Response(
        Detail(detail=error.message), status_code=error.status_code, headers=error.headers() or None
    )


async def strict_bodies(request: Request[Any, Any, Any]) -> None:
    """The app's strict body check, answered as FastAPI answers a body of the wrong type."""
    try:
        await check_body_types(request)
    except BadRequestError as exc:
        raise ValidationException(detail=exc.message, extra=[{"source": "body"}]) from exc


def language_code(language: str) -> str | None:
    try:
        return resolve(language)
    except UnknownLanguageError as exc:
        raise ValidationException(
            detail="Validation failed",
            extra=[{"key": "language", "source": "query", "message": str(exc)}],
        ) from exc


@dataclasses.dataclass
class SyncOperation(Operation):
    """`POST /ocr`'s 200: markdown or the JSON result."""

    def __post_init__(self) -> None:
        if self.responses is not None and "200" in self.responses:
            described = self.responses["200"]
            assert isinstance(described, OpenAPIResponse)
            described.content = {
                "text/markdown": OpenAPIMediaType(schema=Schema(type="string")),  # type: ignore[arg-type]
                "application/json": OpenAPIMediaType(schema=Schema(type="object")),  # type: ignore[arg-type]
            }


FormatQuery = Annotated[OutputFormat, Parameter(description="markdown (default) or json")]
LanguageQuery = Annotated[
    str,
    Parameter(
        max_length=32,
        description="Language hint (e.g. polish, english, pl); auto (default) lets the engines "
        "use their defaults",
    ),
]


async def _submit(
    data: FileForm, tenant: Tenant, services: Services, language: str | None
) -> tuple[str, int, int]:
    options = SubmitOptions(allow_remote=tenant.allow_remote, language=language)
    content = await data.file.read()
    submitted = await submit_document(services, tenant, content, data.file.filename, options, NAME)
    return submitted.job_id, submitted.page_count, submitted.credits_reserved


class JobApiController(Controller):
    path = "/"
    guards = [require_key]  # noqa: RUF012 - Litestar's class-level configuration
    security = [{SCHEME: []}]  # noqa: RUF012
    dependencies = {"tenant": Provide(provide_tenant, sync_to_thread=False)}  # noqa: RUF012

    @post(
        "/api/ocr",
        status_code=201,
        summary="Submit document for OCR (001)",
        opt=SUBMIT,
        responses=errors(401, 402, 413, 415, 503),
    )
    async def submit(
        self,
        data: Annotated[FileForm, Body(media_type=RequestEncodingType.MULTI_PART)],
        tenant: Tenant,
        services: Services,
        format: FormatQuery = OutputFormat.MARKDOWN,
        language: LanguageQuery = "auto",
    ) -> JobCreated:
        """Upload an image or PDF; poll `GET /api/jobs/{job_id}` every 2 seconds."""
        job_id, pages, _ = await _submit(data, tenant, services, language_code(language))
        summary = await services.store.get_summary(tenant.id, job_id)
        return JobCreated(
            job_id=job_id,
            status="queued" if summary.completed_at is None else "done",
            filename=summary.file_name,
            format=format.value,
            language=language,
            page_count=pages,
            created_at=summary_of(summary).created_at,
        )

    @get(
        "/api/jobs/{job_id:str}",
        summary="Get job status and results (001)",
        responses=errors(401, 404),
    )
    async def job(self, job_id: str, tenant: Tenant, services: Services) -> JobDetail:
        job = await services.store.get_job(tenant.id, job_id)
        summary = await services.store.get_summary(tenant.id, job_id)
        return detail_of(job, summary.file_name)

    @get("/api/jobs", summary="List recent jobs (001)", responses=errors(401))
    async def jobs(
        self,
        tenant: Tenant,
        services: Services,
        limit: Annotated[int, Parameter(ge=1, le=100)] = 20,
        offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET)] = 0,
    ) -> JobListOut:
        found = await services.store.list_jobs(tenant.id, limit=limit, offset=offset, status=None)
        return JobListOut(
            jobs=[summary_of(job) for job in found.jobs],
            total=found.total,
            limit=found.limit,
            offset=found.offset,
        )

    @delete(
        "/api/jobs/{job_id:str}",
        status_code=204,
        summary="Delete a job (001)",
        responses=errors(401, 404),
    )
    async def delete_job(self, job_id: str, tenant: Tenant, services: Services) -> None:
        """Permanently removes the job record and uploaded file (a running job is cancelled)."""
        await services.delete_job(tenant.id, job_id)

    @post(
        "/ocr",
        status_code=200,
        summary="Synchronous OCR, blocks until complete (001)",
        opt=SUBMIT,
        operation_class=SyncOperation,
        responses=errors(401, 402, 413, 415, 503, 504),
    )
    async def read_now(
        self,
        data: Annotated[FileForm, Body(media_type=RequestEncodingType.MULTI_PART)],
        tenant: Tenant,
        services: Services,
        format: FormatQuery = OutputFormat.MARKDOWN,
        language: LanguageQuery = "auto",
    ) -> Response[Any]:
        """The result itself, markdown or JSON, within `compat.jobapi.sync_timeout_s` (5 min);
        past it 504 and the job is cancelled (unread pages refunded)."""
        job_id, _, _ = await _submit(data, tenant, services, language_code(language))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + services.settings.compat.jobapi.sync_timeout_s
        while True:
            left = deadline - loop.time()
            job = await services.store.wait_for_change(
                tenant.id, job_id, max(0.0, min(left, MAX_WAIT_S))
            )
            if job.status in TERMINAL_JOB:
                break
            if left <= 0:
                try:
                    await services.store.cancel_job(tenant.id, job_id)
                except JobNotCancellableError:
                    continue  # it finished meanwhile: answer it
                raise GatewayTimeoutError(f"job {job_id} was not read in time; it was cancelled")
        if format == OutputFormat.JSON:
            return Response(result_json(job), media_type="application/json")
        return Response(markdown(job.results), media_type="text/markdown; charset=utf-8")


@post(
    "/api/signup",
    status_code=200,
    summary="Create account and get API key (001)",
    security=[],
    responses=errors(403, 409),
)
async def create_account(
    data: SignupBody,
    request: Request[Any, Any, Any],
    services: Services,
) -> SignupAnswer:
    """An email gets an API key and the configured free pages (`signup.free_credits`: one
    credit reads a simple page). 400 invalid email, 409 exists; rate-limited per address."""
    config = services.settings.signup
    if not config.enabled:
        raise ForbiddenError("signup is disabled on this gateway")
    client = request.client.host if request.client else "unknown"
    await services.rate_limiter.hit("signup", client, SIGNUPS_PER_ADDRESS)
    if len(data.email) > 254:
        raise BadRequestError("invalid email address")
    tenant, key = await signup(services.db, data.email, config.plan, config.free_credits)
    return SignupAnswer(api_key=key, email=tenant.email or "", credits=tenant.credits_available)


@get("/health", summary="Health check (001)", security=[], responses=errors())
async def health(services: Services) -> Health:
    """Server status, queue depth (pages waiting or being read), jobs processed, uptime."""
    return Health(
        status=await services.status(),
        version=VERSION,
        queue_depth=await services.store.queue_depth(),
        jobs_processed=await services.store.jobs_processed(),
        uptime=round(services.uptime_s(), 1),
    )


def build(settings: Settings, prefix: str) -> Router:
    del settings  # the handlers read it from the running services
    return Router(
        path=prefix or "/",
        route_handlers=[JobApiController, create_account, health],
        tags=[NAME],
        before_request=strict_bodies,
        exception_handlers=surface_handlers(handle_error),
    )


SURFACE = Surface(
    name=NAME,
    tag=NAME,
    description="Job API with signup (001): X-API-Key; POST /api/ocr -> job_id, "
    "queued -> processing -> done | error; result_md, result_json; synchronous POST /ocr",
    security_schemes={
        SCHEME: SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header")
    },
    build=build,
)
