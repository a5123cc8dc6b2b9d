"""What every compatible surface shares: a key resolved to its tenant (the same key store and
rate-limit budgets as the native API), a document admitted through the one `Intake`, and the
description of a surface that `gateway.api.compat.mount` mounts.

A surface reads its key its own way (Bearer, X-API-Key, `?api=`) and hands it to
`admit_key`; a refusal is a `GatewayError`, which the surface's own exception handlers turn
into its own error body.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from http import HTTPStatus
from typing import Any

import structlog
from litestar import Litestar, Router
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import SecurityScheme
from litestar.types import ExceptionHandler, ExceptionHandlersMap

from gateway.api.auth import RATE_LIMIT_STATE
from gateway.config import Settings
from gateway.errors import (
    BadRequestError,
    GatewayError,
    InternalError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    UnauthorizedError,
)
from gateway.services import Services
from gateway.store import compat as compat_store
from gateway.store.tenants import Tenant, authenticate
from gateway.work.reuse import SubmitOptions
from gateway.work.submissions import Intake, Submitted

log = structlog.get_logger(__name__)

SUBMIT = {"rate_limit": "submit"}  # a route's opt: spends the plan's submission budget


_BY_STATUS: dict[int, type[GatewayError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    404: NotFoundError,
    405: MethodNotAllowedError,
    413: PayloadTooLargeError,
}


@dataclasses.dataclass(frozen=True)
class Surface:
    """A compatible API surface: `build(settings, prefix)` makes its router (its own tag,
    security, guards and exception handlers); `lifespan`, if any, runs beside the app's."""

    name: str  # the key under `compat:` in the configuration
    tag: str  # its OpenAPI tag
    description: str
    security_schemes: dict[str, SecurityScheme]
    build: Callable[[Settings, str], Router]
    lifespan: Callable[[Litestar], AbstractAsyncContextManager[None]] | None = None


def services_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Services:
    services: Services = connection.app.state.services
    return services


async def admit_key(
    connection: ASGIConnection[Any, Any, Any, Any], key: str | None, handler: BaseRouteHandler
) -> Tenant:
    """The tenant of `key`, with the route's rate-limit budget spent (the same budgets as the
    native API: submissions per tenant across every surface, reads per key); raises
    UnauthorizedError for a missing or unknown key. The key itself is never logged."""
    key = (key or "").strip()
    if not key:
        raise UnauthorizedError()
    services = services_of(connection)
    auth = await authenticate(services.db, key)
    if auth is None:
        raise UnauthorizedError()
    connection.state.tenant = auth.tenant
    structlog.contextvars.bind_contextvars(tenant_id=auth.tenant.id)
    submit = handler.opt.get("rate_limit") == "submit"
    scope, identity = ("submit", auth.tenant.id) if submit else ("read", auth.key_id)
    rule = f"plan:{auth.tenant.plan}" if submit else "reads"
    state = connection.scope.setdefault("state", {})
    try:
        state[RATE_LIMIT_STATE] = await services.rate_limiter.hit(
            scope, identity, services.rate_items(rule)
        )
    except RateLimitedError as exc:
        state[RATE_LIMIT_STATE] = exc.status
        raise
    return auth.tenant


def surface_handlers(handler: ExceptionHandler[Any]) -> ExceptionHandlersMap:
    """A surface's exception handlers: every error (the app's own handlers included, which
    would otherwise win for GatewayError and HTTPException) goes to `handler`."""
    return {GatewayError: handler, HTTPException: handler, Exception: handler}


def provide_tenant(request: ASGIConnection[Any, Any, Any, Any]) -> Tenant:
    tenant: Tenant = request.state.tenant
    return tenant


async def submit_document(
    services: Services,
    tenant: Tenant,
    content: bytes,
    file_name: str | None,
    options: SubmitOptions,
    surface: str,
) -> Submitted:
    """Admit a document exactly as the native API does (checks, plan limits, queue bound,
    credits reserved once), and remember the surface it came through."""
    intake = Intake(
        settings=services.settings,
        plan=services.settings.plans[tenant.plan],
        store=services.store,
        inspector=services.inspector,
        tenant=tenant,
        available=services.available_providers(options.allow_remote),
    )
    submitted = await intake.submit(content, file_name, options)
    services.worker.wake()
    await compat_store.record_job(services.db, tenant.id, submitted.job_id, surface)
    return submitted


def iso_time(epoch_ms: int | None) -> str | None:
    """`2026-03-24T12:00:00Z` (UTC, seconds) from epoch milliseconds."""
    if epoch_ms is None:
        return None
    moment = dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def as_gateway_error(exc: Exception) -> GatewayError:
    """Any exception a surface's handler meets as a gateway error: Litestar's own (routing,
    validation, body size) by status, with the first validation message; anything else is a
    defect, logged here and answered as 500 without its text."""
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, HTTPException) and exc.status_code < 500:
        message = exc.detail or HTTPStatus(exc.status_code).phrase
        if isinstance(exc, ValidationException) and isinstance(exc.extra, list) and exc.extra:
            first = exc.extra[0]
            if isinstance(first, dict) and first.get("message"):
                key = first.get("key")
                message = f"{message}: {key + ': ' if key else ''}{first['message']}"
        error = _BY_STATUS.get(exc.status_code, BadRequestError)(message)
        if type(error) is BadRequestError and exc.status_code != 400:
            error.status_code = exc.status_code  # type: ignore[misc]
        return error
    log.error("unhandled_exception", exc_info=exc)
    return InternalError()
