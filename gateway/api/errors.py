"""Every error becomes `{"error": {"code", "message", "details"?}}`; one place maps them all."""

from __future__ import annotations

from http import HTTPStatus

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from gateway.errors import (
    BadRequestError,
    ErrorBody,
    GatewayError,
    InternalError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    UnauthorizedError,
)

log = structlog.get_logger(__name__)

_BY_STATUS: dict[int, type[GatewayError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    404: NotFoundError,
    405: MethodNotAllowedError,
    413: PayloadTooLargeError,
    503: ServiceUnavailableError,
}

_DESCRIPTIONS = {
    400: "Bad request: a parameter or body field out of its schema, invalid page ranges, or a "
    "document that cannot be read",
    401: "Missing or unknown API key",
    402: "Insufficient credits (details: required, available)",
    403: "Forbidden",
    404: "Not found (also for another tenant's job)",
    409: "Conflict: Idempotency-Key reused with another file, job finished, account exists",
    413: "Request body larger than the limit",
    415: "Unsupported document type (detected from the bytes)",
    429: "Rate limit or concurrent-job limit exceeded (Retry-After)",
    500: "Internal error (the message never echoes the exception)",
    503: (
        "Service not ready, the queue is full (limits.max_queued_pages), or the rate limits' "
        "Redis does not answer; Retry-After"
    ),
}


def error_responses(
    *statuses: int, described: dict[int, str] | None = None
) -> dict[int, ResponseSpec]:
    """OpenAPI error responses in our shape; 400 always (any route can fail validation, and
    Litestar would otherwise document its own 400 shape, which we never send). `described`
    says what a status means on these routes where the generic description is not enough."""
    descriptions = {**_DESCRIPTIONS, **(described or {})}
    return {
        s: ResponseSpec(data_container=ErrorBody, description=descriptions[s])
        for s in sorted({400, *statuses})
    }


def _respond(error: GatewayError, headers: dict[str, str] | None = None) -> Response[ErrorBody]:
    return Response(content=error.body(), status_code=error.status_code, headers=headers)


def handle_gateway_error(_: Request, exc: GatewayError) -> Response[ErrorBody]:  # type: ignore[type-arg]
    return _respond(exc, exc.headers() or None)


def handle_http_exception(_: Request, exc: HTTPException) -> Response[ErrorBody]:  # type: ignore[type-arg]
    """Litestar's own 4xx (routing, validation, body size) in our shape."""
    status = exc.status_code
    if status >= 500:
        log.error("http_exception", status=status)
        return _respond(InternalError())
    cls = _BY_STATUS.get(status, BadRequestError)
    message = exc.detail or HTTPStatus(status).phrase
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list) and exc.extra:
        first = exc.extra[0]
        if isinstance(first, dict) and first.get("message"):
            key = first.get("key")
            message = f"{message}: {key + ': ' if key else ''}{first['message']}"
    error = cls(message)
    if cls is BadRequestError and status != 400:
        return Response(content=error.body(), status_code=status, headers=exc.headers)
    return _respond(error, exc.headers)


def handle_unexpected(_: Request, exc: Exception) -> Response[ErrorBody]:  # type: ignore[type-arg]
    log.error("unhandled_exception", exc_info=exc)
    return _respond(InternalError())
