"""One error tree for the whole gateway.

    GatewayError                      status_code, code, message, details
    ├── ResultNotReadyError           202 result_not_ready  (not a failure: poll again)
    │   └── PageNotReadyError         202 page_not_ready    (a page's preview; Retry-After)
    ├── BadRequestError               400 bad_request
    │   ├── InvalidPageRangesError    400 invalid_page_ranges
    │   ├── DocumentError             400 invalid_document   (the file cannot be read)
    │   │   ├── EncryptedDocumentError   400 encrypted_document
    │   │   ├── EmptyDocumentError       400 empty_document
    │   │   ├── ImageTooLargeError       400 image_too_large  (decompression bombs)
    │   │   └── InspectTimeoutError      400 document_timeout
    │   ├── TooManyPagesError         400 too_many_pages
    │   └── UrlError                  400 invalid_url  (a document or webhook URL refused)
    │       ├── UrlSchemeError           400 url_scheme_not_allowed  (http and https only)
    │       ├── UrlAddressError          400 url_address_not_allowed (private, loopback, ...)
    │       ├── TooManyRedirectsError    400 too_many_redirects
    │       ├── FetchTimeoutError        400 fetch_timeout
    │       └── FetchFailedError         400 fetch_failed  (no answer, or not 2xx)
    ├── UnauthorizedError             401 unauthorized
    ├── InsufficientCreditsError      402 insufficient_credits
    ├── ForbiddenError                403 forbidden
    ├── NotFoundError                 404 not_found
    │   ├── JobNotFoundError          404 job_not_found
    │   ├── QuoteNotFoundError        404 quote_not_found
    │   ├── JobPageNotFoundError      404 page_not_found    (the job has no such page)
    │   ├── TenantNotFoundError       404 tenant_not_found
    │   └── KeyNotFoundError          404 key_not_found
    ├── MethodNotAllowedError         405 method_not_allowed
    ├── ConflictError                 409 conflict
    │   ├── IdempotencyKeyReusedError 409 idempotency_key_reused
    │   ├── JobNotCancellableError    409 job_not_cancellable
    │   ├── AccountExistsError        409 account_exists
    │   ├── QuoteMismatchError        409 quote_mismatch  (another file, other options, expired)
    │   ├── PageFailedError           409 page_failed     (it has no preview)
    │   └── PageNotReadError          409 page_not_read   (the job was cancelled before it)
    ├── PayloadTooLargeError          413 payload_too_large
    │   └── RemoteFileTooLargeError   413 url_file_too_large  (declared or streamed)
    ├── UnsupportedMediaTypeError     415 unsupported_media_type
    ├── RateLimitedError              429 rate_limited          (Retry-After)
    ├── TooManyJobsError              429 too_many_concurrent_jobs
    ├── InternalError                 500 internal_error  (never echoes an exception)
    │   └── SchemaTooNewError         500 schema_too_new  (the database is of a newer release)
    ├── UpstreamUnavailableError      502 upstream_unavailable  (a remote provider is down)
    ├── DocumentNotReadError          502 document_not_read  (a synchronous read: no page read)
    ├── GatewayTimeoutError           504 timeout  (a synchronous read ran past its limit)
    └── ServiceUnavailableError       503 service_unavailable
        ├── QueueFullError            503 service_unavailable  (pages waiting past the bound)
        └── RateLimitStoreUnavailableError  503 service_unavailable  (Redis unreachable)

Page and pool errors, which never answer a request, are the two trees of
`gateway.page_errors`.

Every error body is `{"error": {"code", "message", "details"?}}`, the same object a failed
job or page stores. This module imports nothing from gateway sub-packages.
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


class ResultNotReadyError(GatewayError):
    """The job's result is asked for before the job has finished: 202, in the error shape."""

    status_code = 202
    code = "result_not_ready"
    default_message = "the job has not finished yet; poll again in a second"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class PageNotReadyError(ResultNotReadyError):
    """Not an error of the request: the page is still queued or being read (202, as the
    whole-document result answers `result_not_ready`)."""

    status_code = 202
    code = "page_not_ready"
    default_message = "the page is not read yet; try again shortly"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


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


class UrlError(BadRequestError):
    """A URL the gateway was asked to fetch (a document) or to call (a webhook) is refused."""

    code = "invalid_url"
    default_message = "the URL is not valid"


class UrlSchemeError(UrlError):
    code = "url_scheme_not_allowed"
    default_message = "only http and https URLs are fetched"


class UrlAddressError(UrlError):
    code = "url_address_not_allowed"


class TooManyRedirectsError(UrlError):
    code = "too_many_redirects"


class FetchTimeoutError(UrlError):
    code = "fetch_timeout"


class FetchFailedError(UrlError):
    code = "fetch_failed"


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


class QuoteNotFoundError(NotFoundError):
    code = "quote_not_found"
    default_message = "quote not found"


class JobPageNotFoundError(NotFoundError):
    code = "page_not_found"
    default_message = "the job has no such page"


class TenantNotFoundError(NotFoundError):
    code = "tenant_not_found"
    default_message = "tenant not found"


class KeyNotFoundError(NotFoundError):
    code = "key_not_found"
    default_message = "API key not found"


class MethodNotAllowedError(GatewayError):
    status_code = 405
    code = "method_not_allowed"
    default_message = "method not allowed"


class PayloadTooLargeError(GatewayError):
    status_code = 413
    code = "payload_too_large"


class RemoteFileTooLargeError(PayloadTooLargeError):
    code = "url_file_too_large"


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


class QuoteMismatchError(ConflictError):
    code = "quote_mismatch"


class PageFailedError(ConflictError):
    code = "page_failed"
    default_message = "the page could not be read, so it has no preview"


class PageNotReadError(ConflictError):
    code = "page_not_read"
    default_message = "the page was not read (the job was cancelled), so it has no preview"


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


class SchemaTooNewError(InternalError):
    """The database was written by a newer release; this one must not read or change it."""

    code = "schema_too_new"


class UpstreamUnavailableError(GatewayError):
    """A remote provider the document needs cannot be reached now (its breaker is open)."""

    status_code = 502
    code = "upstream_unavailable"
    default_message = "the OCR provider this document needs is unavailable; retry later"


class DocumentNotReadError(GatewayError):
    """A synchronous surface's document was read to the end without a page read (every page
    failed): the engines behind the gateway could not read it."""

    status_code = 502
    code = "document_not_read"


class GatewayTimeoutError(GatewayError):
    """A request that waits for a job (a synchronous read) ran past its limit; the job was
    cancelled and its unread pages refunded."""

    status_code = 504
    code = "timeout"
    default_message = "the document was not read within the time limit"


class ServiceUnavailableError(GatewayError):
    status_code = 503
    code = "service_unavailable"
    default_message = "the service is not ready"
    retry_after_s: int | None = None  # set by a subclass that knows when to come back

    def headers(self) -> dict[str, str]:
        return {} if self.retry_after_s is None else {"Retry-After": str(self.retry_after_s)}


class QueueFullError(ServiceUnavailableError):
    """More pages wait than `limits.max_queued_pages`: nothing was reserved; retry later."""

    default_message = "the queue is full; retry after the Retry-After seconds"

    def __init__(self, message: str | None = None, *, retry_after_s: int, **details: Any) -> None:
        super().__init__(message, retry_after_s=retry_after_s, **details)
        self.retry_after_s = retry_after_s

    def __reduce__(self) -> tuple[Any, ...]:
        return (_queue_full, (self.message, self.details or {}))


def _queue_full(message: str, details: dict[str, Any]) -> QueueFullError:
    return QueueFullError(message, **details)


class RateLimitStoreUnavailableError(ServiceUnavailableError):
    """The shared rate-limit store (Redis) did not answer: the request is refused, never
    admitted unmetered (limits guard credits); retry after the Retry-After seconds."""

    default_message = "rate limits cannot be checked now (their store is unreachable); retry later"

    def __init__(self, message: str | None = None, *, retry_after_s: int = 5) -> None:
        super().__init__(message, retry_after_s=retry_after_s)
        self.retry_after_s = retry_after_s
