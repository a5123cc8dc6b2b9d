"""Authentication and rate limiting: guards that run before the request body is read.

Tenant routes take `X-API-Key`; each route's `opt["rate_limit"]` says which budget it spends:
`submit` (the plan's submission limits, per tenant) or `read` (a generous per-key budget, so
polling is never starved by submissions). Admin routes take the admin token as a Bearer token.
A missing or wrong credential is 401 on both (`unauthorized`); 403 only when the admin API is
off because no token is configured.
The rate-limit status goes into the ASGI scope state, where the middleware turns it into
`X-RateLimit-*` headers on every response, errors included. When the limits' Redis does not
answer, the limiter raises RateLimitStoreUnavailableError (503 `service_unavailable`,
Retry-After): the request is refused, never admitted unmetered.
"""

from __future__ import annotations

import hmac
import os

import structlog
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from gateway.errors import ForbiddenError, RateLimitedError, UnauthorizedError
from gateway.services import Services
from gateway.store.tenants import Tenant, authenticate

API_KEY_HEADER = "X-API-Key"
RATE_LIMIT_STATE = "ocr_gateway_rate_limit"


def _services(connection: ASGIConnection) -> Services:  # type: ignore[type-arg]
    services: Services = connection.app.state.services
    return services


async def _spend(
    connection: ASGIConnection,  # type: ignore[type-arg]
    scope: str,
    identity: str,
    services: Services,
    rule: str,
) -> None:
    items = services.rate_items(rule)
    state = connection.scope.setdefault("state", {})
    try:
        state[RATE_LIMIT_STATE] = await services.rate_limiter.hit(scope, identity, items)
    except RateLimitedError as exc:
        state[RATE_LIMIT_STATE] = exc.status
        raise


async def require_api_key(connection: ASGIConnection, handler: BaseRouteHandler) -> None:  # type: ignore[type-arg]
    key = connection.headers.get(API_KEY_HEADER, "").strip()
    if not key:
        raise UnauthorizedError()
    services = _services(connection)
    auth = await authenticate(services.db, key)
    if auth is None:
        raise UnauthorizedError()
    connection.state.tenant = auth.tenant
    structlog.contextvars.bind_contextvars(tenant_id=auth.tenant.id)
    if handler.opt.get("rate_limit") == "submit":
        await _spend(connection, "submit", auth.tenant.id, services, f"plan:{auth.tenant.plan}")
    else:
        await _spend(connection, "read", auth.key_id, services, "reads")


async def require_admin(connection: ASGIConnection, _: BaseRouteHandler) -> None:  # type: ignore[type-arg]
    services = _services(connection)
    expected = os.environ.get(services.settings.admin.token_env, "")
    if not expected:
        raise ForbiddenError(f"the admin API is disabled: set {services.settings.admin.token_env}")
    given = connection.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not given:
        raise UnauthorizedError("missing admin token (send Authorization: Bearer <token>)")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise UnauthorizedError("wrong admin token")
    await _spend(connection, "admin", "admin", services, "admin")


def provide_tenant(request: ASGIConnection) -> Tenant:  # type: ignore[type-arg]
    tenant: Tenant = request.state.tenant
    return tenant


def provide_services(request: ASGIConnection) -> Services:  # type: ignore[type-arg]
    return _services(request)
