"""create_app(settings): the Litestar application and its lifespan."""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator

import structlog
from litestar import Litestar
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.admin import AdminController
from gateway.api.auth import RATE_LIMIT_STATE
from gateway.api.errors import handle_gateway_error, handle_http_exception, handle_unexpected
from gateway.api.native import SERVICES, NativeController, health
from gateway.api.signup import create_account
from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.services import VERSION, Services

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
                    extra += [(k.lower().encode(), v.encode())
                              for k, v in limit.headers().items()]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            log.info("request_completed", method=method, path=scope["path"],
                     status=status, ms=round((time.perf_counter() - started) * 1000, 1))

    return middleware


def create_app(settings: Settings) -> Litestar:
    services = Services(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await services.start()
        app.state.services = services
        if settings.unknown_chain_providers():
            log.warning("routing_providers_not_configured",
                        providers=settings.unknown_chain_providers())
        log.info("gateway_started", data_dir=settings.data_dir,
                 workers=services.engines.size, provider=settings.pipeline.provider)
        try:
            yield
        finally:
            await services.stop()
            log.info("gateway_stopped")

    handlers: list[object] = [NativeController, AdminController, health]
    if settings.signup.enabled:
        handlers.append(create_account)
    return Litestar(
        route_handlers=handlers,  # type: ignore[arg-type]
        dependencies=SERVICES,
        lifespan=[lifespan],
        middleware=[request_context],
        exception_handlers={
            GatewayError: handle_gateway_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
        request_max_body_size=settings.limits.max_upload_bytes + MULTIPART_OVERHEAD,
        openapi_config=OpenAPIConfig(
            title="ocr-gateway", version=VERSION, path="/schema",
            description="Self-hostable OCR gateway. Native API: submit a document, poll the job.",
            components=Components(security_schemes={
                "ApiKeyAuth": SecurityScheme(type="apiKey", name="X-API-Key",
                                             security_scheme_in="header"),
                "AdminToken": SecurityScheme(type="http", scheme="bearer",
                                             description="$OCR_GATEWAY_ADMIN_TOKEN"),
            }),
        ),
        logging_config=None,
    )
