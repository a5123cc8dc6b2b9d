"""The image solver API (002) over the gateway, under `compat.solver.prefix`: `?api=KEY` on
every route, `GET /api/balance`, `POST /api/ocr/solve` (`image`), `GET /api/ocr/result/{task_id}`.

One solve is the simple tier's credits (1 by default): an image's first page is read with
`max_credits` at that price, charged when it is read and refunded when it fails. A task and its
image are deleted `compat.solver.task_ttl_s` (30 s) after it finishes; then it is 404. The key
never reaches a log line or an error message: it is read from the query in the guard only, the
request log has the path without its query, and `gateway.logs` masks `api=` in any line.
Errors are `{"detail": "..."}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
import structlog
from litestar import Controller, Litestar, Request, Response, Router, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import UploadFile
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import SecurityScheme
from litestar.params import Body

from gateway.api.compat.base import (
    SUBMIT,
    Surface,
    admit_key,
    as_gateway_error,
    provide_tenant,
    submit_document,
    surface_handlers,
)
from gateway.clock import now_ms
from gateway.config import Settings
from gateway.errors import (
    InsufficientCreditsError,
    JobNotFoundError,
    NotFoundError,
    UnauthorizedError,
)
from gateway.outputs.text import page_text
from gateway.services import Services
from gateway.store import compat as compat_store
from gateway.store.models import JobResult, JobStatus
from gateway.store.tenants import Tenant
from gateway.store.usage import get_balance
from gateway.work.reuse import SubmitOptions
from router.policy import TIER_ORDER

log = structlog.get_logger(__name__)

NAME = "solver"
SCHEME = "SolverKey"
IN_PROCESS = "in_process"
FIRST_PAGE = '[{"start":1,"end":1}]'

# the document's error details
INVALID_KEY = "Invalid API key"
NO_SOLVES = "No solves remaining"
NOT_FOUND = "Task not found or expired"

_DESCRIPTIONS = {
    400: "The image cannot be read",
    401: INVALID_KEY,
    402: NO_SOLVES,
    404: NOT_FOUND,
    413: "The image is too large",
    415: "Not an image format the gateway reads",
    422: "The request is missing `image` or is malformed",
    429: "Too many requests (Retry-After)",
    500: "Internal error",
    503: "The queue is full (Retry-After)",
}


class Detail(msgspec.Struct, frozen=True, kw_only=True):
    detail: str


class SolverBalance(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    solves: int  # solves remaining
    last_24h: int = msgspec.field(name="24h")  # solves used in the last 24 hours


class Submitted(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    result: str
    task_id: str
    solves: int  # remaining after this submission


class TaskResult(msgspec.Struct, frozen=True, kw_only=True):
    status: str  # "ok", or "fail" when it could not be read
    result: str  # the text, "in_process", or the error message
    task_id: str
    time: float | None  # processing seconds; null until finished
    solves: int


@dataclasses.dataclass
class ImageForm:
    """multipart/form-data: `image`, the image to read (PNG, JPEG, BMP, TIFF, WEBP)."""

    image: UploadFile


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    return {
        s: ResponseSpec(data_container=Detail, description=_DESCRIPTIONS[s])
        for s in sorted({400, 401, 422, 429, 500, *statuses})
    }


def solve_price(settings: Settings) -> int:
    return max(1, settings.routing.credits(TIER_ORDER[0]))


def task_result(job: JobResult, solves: int) -> TaskResult:
    """The document's answer for a task: in process, its text, or why it failed."""
    if job.status not in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
        return TaskResult(status="ok", result=IN_PROCESS, task_id=job.id, time=None, solves=solves)
    page = job.results[0] if job.results else None
    seconds = (job.completed_at or job.created_at) - job.created_at
    if page is not None and page.pipeline_metadata is not None:
        seconds = round(page.pipeline_metadata.timings.total_ms)
    time = round(seconds / 1000, 2)
    if job.status == JobStatus.COMPLETED and page is not None and page.status == "completed":
        return TaskResult(
            status="ok", result=page_text(page), task_id=job.id, time=time, solves=solves
        )
    error = page.error if page is not None and page.error is not None else job.error
    message = error.message if error is not None else "the task was cancelled"
    return TaskResult(status="fail", result=message, task_id=job.id, time=time, solves=solves)


async def require_query_key(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    await admit_key(connection, connection.query_params.get("api"), handler)


def handle_error(_: Request[Any, Any, Any], exc: Exception) -> Response[Detail]:
    error = as_gateway_error(exc)
    if isinstance(exc, HTTPException) and exc.status_code == 400:  # validation, bad multipart
        return Response(Detail(detail=error.message), status_code=422)
    message = error.message
    if isinstance(error, UnauthorizedError):
        message = INVALID_KEY
    elif isinstance(error, InsufficientCreditsError):
        message = NO_SOLVES
    elif isinstance(error, NotFoundError):
        message = NOT_FOUND
    return Response(
        Detail(detail=message), status_code=error.status_code, headers=error.headers() or None
    )


async def _solves(services: Services, tenant: Tenant) -> tuple[int, int]:
    """(solves remaining, solves used in the last 24 hours), from the one credit balance."""
    balance = await get_balance(services.db, tenant)
    price = solve_price(services.settings)
    return balance.credits_available // price, balance.usage_last_24h.credits // price


class SolverController(Controller):
    path = "/api"

    @get("/balance", summary="Solves remaining and used in 24 h (002)", responses=errors())
    async def balance(self, tenant: Tenant, services: Services) -> SolverBalance:
        left, used = await _solves(services, tenant)
        return SolverBalance(status="ok", solves=left, last_24h=used)

    @post(
        "/ocr/solve",
        status_code=200,
        summary="Submit an image for OCR (002)",
        opt=SUBMIT,
        responses=errors(402, 413, 415, 503),
    )
    async def solve(
        self,
        data: Annotated[ImageForm, Body(media_type=RequestEncodingType.MULTI_PART)],
        tenant: Tenant,
        services: Services,
    ) -> Submitted:
        """Its first page is read at one solve; poll the result every 1-2 seconds."""
        options = SubmitOptions(
            page_ranges=FIRST_PAGE,
            max_credits=solve_price(services.settings),
            allow_remote=tenant.allow_remote,
        )
        content = await data.image.read()
        submitted = await submit_document(
            services, tenant, content, data.image.filename, options, NAME
        )
        left, _ = await _solves(services, tenant)
        return Submitted(status="ok", result=IN_PROCESS, task_id=submitted.job_id, solves=left)

    @get(
        "/ocr/result/{task_id:str}",
        summary="The task's result (002)",
        responses=errors(404),
    )
    async def result(self, task_id: str, tenant: Tenant, services: Services) -> TaskResult:
        """`404` for an unknown task, another account's, or one finished more than
        `task_ttl_s` (30 s) ago: it and its image are deleted then."""
        if await compat_store.job_surface(services.db, tenant.id, task_id) != NAME:
            raise JobNotFoundError()
        job = await services.store.get_job(tenant.id, task_id)
        ttl_ms = int(services.settings.compat.solver.task_ttl_s * 1000)
        if job.completed_at is not None and job.completed_at + ttl_ms <= now_ms():
            await services.delete_job(tenant.id, task_id)
            raise JobNotFoundError()
        left, _ = await _solves(services, tenant)
        return task_result(job, left)


async def expire_tasks(services: Services) -> int:
    """Delete the solver's tasks (and their images) finished more than `task_ttl_s` ago."""
    ttl_ms = int(services.settings.compat.solver.task_ttl_s * 1000)
    expired = await compat_store.finished_before(services.db, NAME, now_ms() - ttl_ms)
    for tenant_id, job_id in expired:
        with contextlib.suppress(JobNotFoundError):  # deleted meanwhile
            await services.delete_job(tenant_id, job_id)
    if expired:
        log.info("solver_tasks_expired", tasks=len(expired))
    return len(expired)


@contextlib.asynccontextmanager
async def sweeper(app: Litestar) -> AsyncIterator[None]:
    """While the app runs, expire finished tasks every `compat.solver.sweep_interval_s`."""
    services: Services = app.state.services

    async def loop() -> None:
        while True:
            try:
                await expire_tasks(services)
            except Exception:  # broad on purpose: logged, and the next sweep tries again
                log.exception("solver_sweep_failed")
            await asyncio.sleep(services.settings.compat.solver.sweep_interval_s)

    task = asyncio.create_task(loop(), name="solver-sweep")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def build(settings: Settings, prefix: str) -> Router:
    del settings  # the handlers read it from the running services
    return Router(
        path=prefix or "/",
        route_handlers=[SolverController],
        tags=[NAME],
        security=[{SCHEME: []}],
        guards=[require_query_key],
        dependencies={"tenant": Provide(provide_tenant, sync_to_thread=False)},
        exception_handlers=surface_handlers(handle_error),
    )


SURFACE = Surface(
    name=NAME,
    tag=NAME,
    description="Image solver API (002): ?api=KEY; one solve = one simple-tier page; "
    "/api/balance, /api/ocr/solve -> task_id, /api/ocr/result/{task_id}; tasks deleted 30 s "
    "after they finish",
    security_schemes={
        SCHEME: SecurityScheme(type="apiKey", name="api", security_scheme_in="query")
    },
    build=build,
    lifespan=sweeper,
)
