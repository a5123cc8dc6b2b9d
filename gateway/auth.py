"""API-key authentication: a guard that runs before the request body is read."""

from __future__ import annotations

import structlog
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from gateway.errors import UnauthorizedError
from gateway.services import Services
from gateway.tenants import Tenant, find_tenant_by_key

API_KEY_HEADER = "X-API-Key"


async def require_api_key(connection: ASGIConnection, _: BaseRouteHandler) -> None:  # type: ignore[type-arg]
    key = connection.headers.get(API_KEY_HEADER)
    if not key:
        raise UnauthorizedError()
    services: Services = connection.app.state.services
    tenant = await find_tenant_by_key(services.db, key.strip())
    if tenant is None:
        raise UnauthorizedError()
    connection.state.tenant = tenant
    structlog.contextvars.bind_contextvars(tenant_id=tenant.id)


def provide_tenant(request: ASGIConnection) -> Tenant:  # type: ignore[type-arg]
    tenant: Tenant = request.state.tenant
    return tenant


def provide_services(request: ASGIConnection) -> Services:  # type: ignore[type-arg]
    services: Services = request.app.state.services
    return services
