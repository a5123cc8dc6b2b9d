"""The read-results API (004, "OCR v2") over the gateway, under `compat.ocrv2.prefix`:
`POST /ocr` (JSON response) and `POST /ocr/zip` (ZIP of CSV, JSON, TXT and the original).

Headers `orgId` (the tenant's id) and `authKey` (one of its API keys) must belong together,
else 403; `apiVersion` and `subOrgId` are accepted and logged, `subOrgId` comes back in the
response; `version` (header or body, 1 or 2) picks the routing mode through
`compat.ocrv2.versions`. Documents come as `inputUrl`/`inputURL` (fetched under the gateway's
address rules), `base64`, or a multipart `file`. Both routes answer once the document is read
(`compat.ocrv2.sync_timeout_s`), except `POST /ocr/zip?async=true`, which answers at once and
PUTs the ZIP to `outputURL`. `webhook` gets the response (or its status only) through the
gateway's signed, durable webhooks. Every error is `{"status": "FAILURE", "message": ...}`.
Shapes and the mapping are in `ocrv2_map`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
import structlog
from litestar import Controller, Litestar, Request, Response, Router, post
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import SecurityScheme
from litestar.params import Parameter

from gateway.api.compat import ocrv2_map as m
from gateway.api.compat.base import (
    SUBMIT,
    Surface,
    admit_key,
    as_gateway_error,
    provide_tenant,
    submit_document,
    surface_handlers,
)
from gateway.api.compat.ocrv2_input import OcrBody, Request004, ZipBody, missing, read_request
from gateway.clock import now_ms
from gateway.config import Settings
from gateway.errors import (
    BadRequestError,
    DocumentNotReadError,
    ForbiddenError,
    GatewayTimeoutError,
    JobNotCancellableError,
    UnauthorizedError,
)
from gateway.services import Services
from gateway.store.models import TERMINAL_JOB, JobResult, JobStatus
from gateway.store.tenants import Tenant
from gateway.work.documents import detect_kind
from gateway.work.fetch import AddressPolicy, outgoing_client, parse_url, pinned_stream
from gateway.work.reuse import SubmitOptions
from gateway.work.webhooks import check_callback_url, register

log = structlog.get_logger(__name__)

NAME = "ocrv2"
_ID = re.compile(r"^[a-zA-Z0-9\-_]+$")
_DATE = re.compile(r"^\d{4}-\d\d-\d\d$")
MAX_WAIT_S = 30.0
# The document's statuses: what the gateway's others become on this surface.
_STATUS = {401: 403, 402: 403, 409: 400, 413: 400, 415: 400, 503: 502, 504: 502}
_DESCRIPTIONS = {
    400: "A field missing or of the wrong type, a URL refused, a file that is not a PDF, "
    "JPEG, PNG or TIFF (or too large)",
    403: "orgId and authKey missing or not of one organization, or not enough credits",
    404: "Not found",
    429: "Too many requests (Retry-After)",
    500: "Internal error",
    502: "The document could not be read (or not in time)",
}


def errors() -> dict[int, ResponseSpec]:
    return {
        s: ResponseSpec(data_container=m.Failure, description=text)
        for s, text in _DESCRIPTIONS.items()
    }


async def require_org(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    org, key = connection.headers.get("orgId", ""), connection.headers.get("authKey", "")
    if not (_ID.match(org) and _ID.match(key)):
        raise ForbiddenError("the orgId and authKey headers are required")
    try:
        tenant = await admit_key(connection, key, handler)
    except UnauthorizedError:
        tenant = None
    if tenant is None or tenant.id != org:
        raise ForbiddenError("orgId and authKey do not belong to one organization")
    api_version = connection.headers.get("apiVersion")
    sub_org = connection.headers.get("subOrgId")
    if api_version is not None and not _DATE.match(api_version):
        raise BadRequestError("apiVersion must be a date, YYYY-MM-DD")
    if sub_org is not None and not _ID.match(sub_org):
        raise BadRequestError("subOrgId may hold letters, digits, - and _ only")
    structlog.contextvars.bind_contextvars(api_version=api_version, sub_org_id=sub_org)


def handle_error(_: Request[Any, Any, Any], exc: Exception) -> Response[m.Failure]:
    error = as_gateway_error(exc)
    status = _STATUS.get(error.status_code, error.status_code)
    return Response(m.Failure(message=error.message), status_code=status, headers=error.headers())


def _version(request: Request[Any, Any, Any], body: OcrBody, settings: Settings) -> int:
    header = request.headers.get("version")
    try:
        version = body.version if body.version is not None else int(header or 1)
    except ValueError as exc:
        raise BadRequestError("version must be 1 or 2") from exc
    if version not in settings.compat.ocrv2.versions:
        allowed = ", ".join(str(v) for v in sorted(settings.compat.ocrv2.versions))
        raise BadRequestError(f"version must be one of {allowed}")
    return version


async def _admit(
    request: Request[Any, Any, Any], tenant: Tenant, services: Services, req: Request004
) -> tuple[str, m.Context]:
    """Check, submit, owe the webhook: the job's id and what its answers echo."""
    body, settings = req.body, services.settings
    version = _version(request, body, settings)
    webhook = await check_callback_url(body.webhook, settings) if body.webhook else None
    mode = settings.compat.ocrv2.versions[version]
    options = SubmitOptions(mode=mode, allow_remote=tenant.allow_remote)
    file_name = body.fileId or req.file_name
    submitted = await submit_document(services, tenant, req.content, file_name, options, NAME)
    base = str(request.base_url).rstrip("/")
    context = m.Context(
        document_id=body.fileId or submitted.job_id,
        metadata=body.metadata,
        sub_org_id=request.headers.get("subOrgId"),
        version=version,
        requested_at=now_ms(),
        result_url=f"{base}/v1/jobs/{submitted.job_id}",
    )
    if webhook is not None:
        encoded = msgspec.json.encode(context)
        full = body.webhookSendFull
        await register(services.db, submitted.job_id, tenant.id, webhook, full, encoded)
    return submitted.job_id, context


async def finished(services: Services, tenant: Tenant, job_id: str) -> JobResult:
    """The job once read; past `compat.ocrv2.sync_timeout_s` it is cancelled (504, which this
    surface answers as 502), and a job with no page read is 502."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + services.settings.compat.ocrv2.sync_timeout_s
    while True:
        left = deadline - loop.time()
        job = await services.store.wait_for_change(tenant.id, job_id, max(0, min(left, MAX_WAIT_S)))
        if job.status in TERMINAL_JOB:
            break
        if left <= 0:
            with contextlib.suppress(JobNotCancellableError):
                await services.store.cancel_job(tenant.id, job_id)
                raise GatewayTimeoutError(f"the document was not read in time (job {job_id})")
    if job.status != JobStatus.COMPLETED:
        reason = job.error.message if job.error else job.status.value
        raise DocumentNotReadError(f"the document could not be read: {reason}")
    return job


class Ocrv2Controller(Controller):
    path = "/"
    guards = [require_org]  # noqa: RUF012 - Litestar's class-level configuration
    security = [{"Ocrv2OrgId": [], "Ocrv2AuthKey": []}]  # noqa: RUF012
    dependencies = {"tenant": Provide(provide_tenant, sync_to_thread=False)}  # noqa: RUF012

    @post(
        "/ocr", status_code=200, summary="OCR, JSON response (004)", opt=SUBMIT, responses=errors()
    )
    async def ocr(
        self, request: Request[Any, Any, Any], tenant: Tenant, services: Services
    ) -> m.OcrResponse:
        """JSON `inputUrl` or `base64` (with `fileId`, `metadata`, `webhook`, ...), or a
        multipart `file`; answers once the document is read."""
        req = await read_request(request, OcrBody)
        job_id, context = await _admit(request, tenant, services, req)
        return m.response_of(await finished(services, tenant, job_id), context)

    @post(
        "/ocr/zip",
        status_code=200,
        summary="OCR, ZIP response (004)",
        opt=SUBMIT,
        responses=errors(),
        media_type="application/zip",
    )
    async def ocr_zip(
        self,
        request: Request[Any, Any, Any],
        tenant: Tenant,
        services: Services,
        run_async: Annotated[
            bool | None, Parameter(query="async", description="answer at once; PUT the ZIP")
        ] = None,
    ) -> Response[Any]:
        """JSON only: `inputURL` (or `base64`) and `webhook` required. The ZIP holds
        `<name>.csv`, `.json`, `.txt` and the original, named by `fileId` or the epoch time;
        with `?async=true` the answer comes at once and the ZIP is PUT to `outputURL`."""
        req = await read_request(request, ZipBody)
        body = req.body
        assert isinstance(body, ZipBody)
        output = None
        if run_async:
            if not body.outputURL:
                raise missing("outputURL")
            output = await check_callback_url(body.outputURL, services.settings)
        job_id, context = await _admit(request, tenant, services, req)
        stem = m.file_stem(body.fileId, now_ms())
        if output is None:
            job = await finished(services, tenant, job_id)
            archive = _zip(job, context, stem, req.content)
            disposition = f'attachment; filename="{stem}.zip"'
            return Response(
                archive, media_type="application/zip", headers={"Content-Disposition": disposition}
            )
        upload = _put_zip(services, tenant, job_id, context, stem, req.content, output, body)
        uploads: set[asyncio.Task[None]] = request.app.state.ocrv2_uploads
        task = asyncio.create_task(upload, name=f"ocrv2-zip-{job_id}")
        uploads.add(task)
        task.add_done_callback(uploads.discard)
        answer = m.StatusBody(
            status="SUCCESS",
            id=job_id,
            documentId=context.document_id,
            message=f"the ZIP will be PUT to {output} once the document is read",
            subOrgId=context.sub_org_id,
        )
        return Response(answer, media_type="application/json")


def _zip(job: JobResult, context: m.Context, stem: str, original: bytes) -> bytes:
    kind = detect_kind(original[:2048])
    return m.zip_of(m.response_of(job, context), stem, original, kind.value if kind else "bin")


async def _put_zip(
    services: Services,
    tenant: Tenant,
    job_id: str,
    context: m.Context,
    stem: str,
    original: bytes,
    output: str,
    body: ZipBody,
) -> None:
    """Wait for the job, then PUT its ZIP to `outputURL` with `outputURLHeaders` (in this
    process: a restart before the upload loses it; the webhook is durable)."""
    logger = log.bind(job_id=job_id, tenant_id=tenant.id)
    try:
        job = await finished(services, tenant, job_id)
        archive = _zip(job, context, stem, original)
        settings = services.settings
        headers = {"Content-Type": "application/zip", **body.outputURLHeaders}
        async with (
            outgoing_client(settings.fetch, settings.fetch.timeout_s) as client,
            pinned_stream(
                client,
                "PUT",
                parse_url(output),
                AddressPolicy(settings.fetch),
                headers=headers,
                content=archive,
            ) as response,
        ):
            logger.info("ocrv2_zip_put", status=response.status_code, bytes=len(archive))
    except Exception:  # broad on purpose: nobody waits for this task; logged
        logger.exception("ocrv2_zip_put_failed")


async def webhook_body(job: JobResult, full: bool, context: bytes | None) -> bytes:
    """The body of this surface's webhooks: the response, or its status only."""
    known = msgspec.json.decode(context or b"{}", type=m.Context) if context else None
    if known is None:
        known = m.Context(
            document_id=job.id,
            metadata={},
            sub_org_id=None,
            version=1,
            requested_at=job.created_at,
            result_url="",
        )
    if full and job.status == JobStatus.COMPLETED:
        return msgspec.json.encode(m.response_of(job, known))
    return msgspec.json.encode(m.status_of(job, known))


@contextlib.asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    """Jobs of this surface get their webhooks in its shape; async ZIP uploads in flight are
    kept here and cancelled when the app stops."""
    services: Services = app.state.services
    services.webhooks.bodies[NAME] = webhook_body
    uploads: set[asyncio.Task[None]] = set()
    app.state.ocrv2_uploads = uploads
    try:
        yield
    finally:
        for task in list(uploads):
            task.cancel()
        await asyncio.gather(*uploads, return_exceptions=True)


def build(settings: Settings, prefix: str) -> Router:
    del settings  # the handlers read it from the running services
    return Router(
        path=prefix or "/",
        route_handlers=[Ocrv2Controller],
        tags=[NAME],
        exception_handlers=surface_handlers(handle_error),
    )


SURFACE = Surface(
    name=NAME,
    tag=NAME,
    description="Read-results API (004): orgId + authKey headers; POST /ocr (JSON: readResults "
    "with lines, words, spans into rawText, readStyles) and POST /ocr/zip (CSV, JSON, TXT, "
    "original)",
    security_schemes={
        "Ocrv2OrgId": SecurityScheme(type="apiKey", name="orgId", security_scheme_in="header"),
        "Ocrv2AuthKey": SecurityScheme(type="apiKey", name="authKey", security_scheme_in="header"),
    },
    build=build,
    lifespan=lifespan,
)
