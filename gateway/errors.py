"""One error tree for the whole gateway.

    GatewayError                      status_code, code, message, details
    ├── BadRequestError               400 bad_request
    │   ├── InvalidPageRangesError    400 invalid_page_ranges
    │   ├── DocumentError             400 invalid_document   (the file cannot be read)
    │   │   ├── EncryptedDocumentError   400 encrypted_document
    │   │   ├── EmptyDocumentError       400 empty_document
    │   │   ├── ImageTooLargeError       400 image_too_large  (decompression bombs)
    │   │   └── InspectTimeoutError      400 document_timeout
    │   └── TooManyPagesError         400 too_many_pages
    ├── UnauthorizedError             401 unauthorized
    ├── InsufficientCreditsError      402 insufficient_credits
    ├── ForbiddenError                403 forbidden
    ├── NotFoundError                 404 not_found
    │   └── JobNotFoundError          404 job_not_found
    ├── MethodNotAllowedError         405 method_not_allowed
    ├── ConflictError                 409 conflict
    │   ├── IdempotencyKeyReusedError 409 idempotency_key_reused
    │   ├── JobNotCancellableError    409 job_not_cancellable
    │   └── AccountExistsError        409 account_exists
    ├── PayloadTooLargeError          413 payload_too_large
    ├── UnsupportedMediaTypeError     415 unsupported_media_type
    ├── RateLimitedError              429 rate_limited          (Retry-After)
    ├── TooManyJobsError              429 too_many_concurrent_jobs
    ├── InternalError                 500 internal_error  (never echoes an exception)
    └── ServiceUnavailableError       503 service_unavailable

    PageError                         a page that could not be read; stored on the page, never
                                      raised to a client (code, message)

Every error body is `{"error": {"code", "message", "details"?}}`, the same object a failed
job or page stores.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec


class ErrorDetail(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    code: str
    message: str
    details: dict[str, Any] | None = None


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    """The one error shape of every response."""

    error: ErrorDetail


class GatewayError(Exception):
    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "internal error"

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or self.default_message
        self.details = details or None
        super().__init__(self.message)

    def __reduce__(self) -> tuple[Any, ...]:
        # Document errors cross the worker-process boundary; keep their details on the way.
        return (self.__class__, (self.message,), {"details": self.details})

    def detail(self) -> ErrorDetail:
        return ErrorDetail(code=self.code, message=self.message, details=self.details)

    def headers(self) -> dict[str, str]:
        return {}

    def body(self) -> ErrorBody:
        return ErrorBody(error=self.detail())


class BadRequestError(GatewayError):
    status_code = 400
    code = "bad_request"
    default_message = "bad request"


class InvalidPageRangesError(BadRequestError):
    code = "invalid_page_ranges"


class DocumentError(BadRequestError):
    code = "invalid_document"
    default_message = "the document could not be read"


class EncryptedDocumentError(DocumentError):
    code = "encrypted_document"
    default_message = "the PDF is password-protected; remove the password and submit it again"


class EmptyDocumentError(DocumentError):
    code = "empty_document"
    default_message = "the document has no pages"


class ImageTooLargeError(DocumentError):
    code = "image_too_large"


class InspectTimeoutError(DocumentError):
    code = "document_timeout"
    default_message = "opening the document took too long"


class TooManyPagesError(BadRequestError):
    code = "too_many_pages"


class UnauthorizedError(GatewayError):
    status_code = 401
    code = "unauthorized"
    default_message = "missing or invalid API key (send it in the X-API-Key header)"


class InsufficientCreditsError(GatewayError):
    status_code = 402
    code = "insufficient_credits"


class ForbiddenError(GatewayError):
    status_code = 403
    code = "forbidden"
    default_message = "not allowed"


class NotFoundError(GatewayError):
    status_code = 404
    code = "not_found"
    default_message = "not found"


class JobNotFoundError(NotFoundError):
    code = "job_not_found"
    default_message = "job not found"


class MethodNotAllowedError(GatewayError):
    status_code = 405
    code = "method_not_allowed"
    default_message = "method not allowed"


class PayloadTooLargeError(GatewayError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaTypeError(GatewayError):
    status_code = 415
    code = "unsupported_media_type"


class ConflictError(GatewayError):
    status_code = 409
    code = "conflict"


class IdempotencyKeyReusedError(ConflictError):
    code = "idempotency_key_reused"
    default_message = "this Idempotency-Key was used with a different file"


class JobNotCancellableError(ConflictError):
    code = "job_not_cancellable"
    default_message = "the job has already finished"


class AccountExistsError(ConflictError):
    code = "account_exists"
    default_message = "an account with this email already exists"


class RateLimitedError(GatewayError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, status: Any, retry_after_s: int) -> None:
        super().__init__(message, retry_after_s=retry_after_s)
        self.status = status  # RateLimitStatus: the middleware adds its X-RateLimit-* headers
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class TooManyJobsError(GatewayError):
    status_code = 429
    code = "too_many_concurrent_jobs"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


class InternalError(GatewayError):
    status_code = 500
    code = "internal_error"
    default_message = "internal error; the request id identifies it in the server logs"


class ServiceUnavailableError(GatewayError):
    status_code = 503
    code = "service_unavailable"
    default_message = "the service is not ready"


DOCUMENT_ERRORS: dict[str, type[DocumentError]] = {
    cls.code: cls
    for cls in (DocumentError, EncryptedDocumentError, EmptyDocumentError, ImageTooLargeError,
                InspectTimeoutError)
}


class PageError(Exception):
    """A page that could not be read. Crosses the worker-process boundary as (code, message)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def detail(self) -> ErrorDetail:
        return ErrorDetail(code=self.code, message=self.message)

    def __reduce__(self) -> tuple[type[PageError], tuple[str, str]]:
        return (PageError, (self.code, self.message))
