"""create_app(settings): the Litestar application and its lifespan."""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable

import structlog
from litestar import Litestar
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from gateway import metrics
from gateway.api.admin import AdminController, document_plans
from gateway.api.auth import RATE_LIMIT_STATE
from gateway.api.compat import mount as mount_compat
from gateway.api.console import console_routes
from gateway.api.errors import handle_gateway_error, handle_http_exception, handle_unexpected
from gateway.api.metrics import scrape
from gateway.api.native import SERVICES, NativeController, health
from gateway.api.previews import PreviewController
from gateway.api.results import ResultController
from gateway.api.signup import create_account
from gateway.api.strict import check_body_types
from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.services import VERSION, Role, Services

log = structlog.get_logger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MULTIPART_OVERHEAD = 64 * 1024  # form boundaries and fields around the file


def request_context(app: ASGIApp) -> ASGIApp:
    """Bind a request id for every log line of the request; echo it as X-Request-ID."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        method = str(scope.get("method", ""))
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        state = scope.setdefault("state", {})
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                extra = [(b"x-request-id", request_id.encode())]
                limit = state.get(RATE_LIMIT_STATE)
                if limit is not None:
                    extra += [(k.lower().encode(), v.encode()) for k, v in limit.headers().items()]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            log.info(
                "request_completed",
                method=method,
                path=scope["path"],
                status=status,
                ms=round(seconds * 1000, 1),
            )
            route = str(scope.get("path_template") or "unmatched")
            metrics.http_request(method, route, status, seconds)

    return middleware


def complete_allow_header(allowed: dict[str, str]) -> Callable[[ASGIApp], ASGIApp]:
    """Litestar 2 answers OPTIONS on a path served by several handlers (GET and DELETE
    /v1/jobs/{id}) with the methods of the first one only (litestar#4169, fixed in 3.0): put
    the route's full list, `allowed[path template]`, in the Allow header of that answer."""

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            methods = allowed.get(str(scope.get("path_template", "")))
            if scope["type"] != ScopeType.HTTP or scope.get("method") != "OPTIONS" or not methods:
                await app(scope, receive, send)
                return

            async def send_allow(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = list(message.get("headers", []))
                    kept = [(name, value) for name, value in headers if name.lower() != b"allow"]
                    if len(kept) < len(headers):
                        message["headers"] = [*kept, (b"allow", methods.encode())]
                await send(message)

            await app(scope, receive, send_allow)

        return middleware

    return factory


def create_app(settings: Settings, role: Role = "api+worker") -> Litestar:
    """The HTTP gateway; `role="api"` reads no page here (worker nodes do)."""
    services = Services(settings, role)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await services.start()
        app.state.services = services
        if settings.unknown_chain_providers():
            log.warning(
                "routing_providers_not_configured", providers=settings.unknown_chain_providers()
            )
        log.info(
            "gateway_started",
            data_dir=settings.data_dir,
            workers=services.node.workers,
            role=role,
            database=services.db.describe(),
            provider=settings.pipeline.provider,
        )
        try:
            yield
        finally:
            await services.stop()
            log.info("gateway_stopped")

    handlers: list[object] = [NativeController, AdminController, health]
    handlers.append(PreviewController)  # GET /v1/jobs/{id}/pages/{n}/preview
    handlers.append(ResultController)  # GET /v1/jobs/{id}/result?format=
    if settings.signup.enabled:
        handlers.append(create_account)
    if settings.metrics.enabled:
        handlers.append(scrape)  # GET /metrics (Prometheus)
    handlers.extend(console_routes())  # the web console's static files at /console/
    compat = mount_compat(settings, handlers)  # ConfigError on a route collision
    allowed: dict[str, str] = {}  # path template -> Allow, filled once the routes exist
    app = Litestar(
        route_handlers=[*handlers, *compat.routers],  # type: ignore[list-item]
        dependencies=SERVICES,
        lifespan=[lifespan, *compat.lifespans],
        middleware=[request_context, complete_allow_header(allowed)],
        before_request=check_body_types,
        exception_handlers={
            GatewayError: handle_gateway_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
        request_max_body_size=settings.limits.max_upload_bytes + MULTIPART_OVERHEAD,
        openapi_config=OpenAPIConfig(
            title="ocr-gateway",
            version=VERSION,
            path="/schema",
            description="Self-hostable OCR gateway. Native API: submit a document, poll the job.",
            components=Components(
                security_schemes={
                    "ApiKeyAuth": SecurityScheme(
                        type="apiKey", name="X-API-Key", security_scheme_in="header"
                    ),
                    "AdminToken": SecurityScheme(
                        type="http", scheme="bearer", description="$OCR_GATEWAY_ADMIN_TOKEN"
                    ),
                    **compat.security_schemes,
                }
            ),
            tags=compat.tags,
        ),
        logging_config=None,
    )
    allowed.update(
        {
            route.path_format: ", ".join(sorted(route.methods))
            for route in app.routes
            if isinstance(route, HTTPRoute)
        }
    )
    document_plans(app.openapi_schema, settings.plans)
    return app
