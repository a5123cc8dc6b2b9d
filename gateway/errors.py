"""One error tree for the whole gateway.

    GatewayError                      status_code, code, message, details
    ├── ResultNotReadyError           202 result_not_ready  (not a failure: poll again)
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
    │   ├── JobNotFoundError          404 job_not_found
    │   └── QuoteNotFoundError        404 quote_not_found
    ├── MethodNotAllowedError         405 method_not_allowed
    ├── ConflictError                 409 conflict
    │   ├── IdempotencyKeyReusedError 409 idempotency_key_reused
    │   ├── JobNotCancellableError    409 job_not_cancellable
    │   ├── AccountExistsError        409 account_exists
    │   └── QuoteMismatchError        409 quote_mismatch  (another file, other options, expired)
    ├── PayloadTooLargeError          413 payload_too_large
    ├── UnsupportedMediaTypeError     415 unsupported_media_type
    ├── RateLimitedError              429 rate_limited          (Retry-After)
    ├── TooManyJobsError              429 too_many_concurrent_jobs
    ├── InternalError                 500 internal_error  (never echoes an exception)
    └── ServiceUnavailableError       503 service_unavailable

    PageError                         a page that could not be read: stored on the page as
    │                                 {code, message}, its credit refunded; never a response
    ├── PageNotFoundError             page_not_found
    ├── PageRenderFailedError         page_render_failed
    ├── PageDocumentError             invalid_document    (the file could not be opened again)
    │   ├── PageEncryptedError        encrypted_document
    │   └── PageImageTooLargeError    image_too_large
    ├── TextLayerMissingError         text_layer_missing
    ├── OcrFailedError                ocr_failed          (every provider of the page failed)
    ├── PageTimeoutError              page_timeout
    │   └── RenderTimeoutError        render_timeout
    ├── PageCrashedError              page_crashed
    ├── PageAttemptsExhaustedError    page_attempts_exhausted
    └── PageInternalError             internal_error      (never echoes an exception)

    PoolError                         the worker-process pool failed a task; never a response
    ├── WorkerCrashedError            the process running the task died
    ├── TaskTimeoutError              a phase ran past its deadline (phase, limit_s)
    └── RemoteError                   an unexpected exception inside the task (traceback text)

Every error body is `{"error": {"code", "message", "details"?}}`, the same object a failed
job or page stores. What a pool error means for a page or for an upload is decided in one
place each: `page_error_for_pool` and `document_error_for_pool`; a DocumentError met while
reading one page becomes a page error in `page_error_for_document`. Page errors cross the
worker-process boundary by pickling. This module imports nothing from gateway sub-packages.
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


class QuoteNotFoundError(NotFoundError):
    code = "quote_not_found"
    default_message = "quote not found"


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


class QuoteMismatchError(ConflictError):
    code = "quote_mismatch"


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


# --- Page errors ----------------------------------------------------------------------------


class PageError(Exception):
    """A page that could not be read. Raise a subclass with a message; `code` is the class's."""

    code: ClassVar[str] = "page_failed"

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(f"{self.code}: {self.message}")

    def detail(self) -> ErrorDetail:
        return ErrorDetail(code=self.code, message=self.message)

    def __reduce__(self) -> tuple[type[PageError], tuple[str]]:
        # crosses the worker-process boundary: rebuilt as its own class, with its message
        return (type(self), (self.message,))


class PageNotFoundError(PageError):
    code = "page_not_found"


class PageRenderFailedError(PageError):
    code = "page_render_failed"


class PageDocumentError(PageError):
    code = "invalid_document"


class PageEncryptedError(PageDocumentError):
    code = "encrypted_document"


class PageImageTooLargeError(PageDocumentError):
    code = "image_too_large"


class TextLayerMissingError(PageError):
    code = "text_layer_missing"


class OcrFailedError(PageError):
    code = "ocr_failed"


class PageTimeoutError(PageError):
    code = "page_timeout"


class RenderTimeoutError(PageTimeoutError):
    code = "render_timeout"


class PageCrashedError(PageError):
    code = "page_crashed"


class PageAttemptsExhaustedError(PageError):
    code = "page_attempts_exhausted"


class PageInternalError(PageError):
    code = "internal_error"


def _descendants(cls: type[PageError]) -> list[type[PageError]]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_descendants(sub))]


PAGE_ERRORS: dict[str, type[PageError]] = {cls.code: cls for cls in _descendants(PageError)}


def page_error_for_document(exc: DocumentError) -> PageError:
    """A DocumentError met while reading one page: the page fails with the same code (a file
    that cannot be opened again is `invalid_document`), the document does not."""
    cls = PAGE_ERRORS.get(exc.code)
    if cls is None or not issubclass(cls, PageDocumentError):
        cls = PageDocumentError
    return cls(exc.message)


# --- Pool errors ----------------------------------------------------------------------------


class PoolError(Exception):
    """The worker-process pool failed a task; never a response (see the mappings below)."""


class WorkerCrashedError(PoolError):
    """The process running the task died."""


class TaskTimeoutError(PoolError):
    """Phase `phase` (or the whole "task") ran past `limit_s`; its process was killed."""

    def __init__(self, phase: str, limit_s: float) -> None:
        super().__init__(f"{phase} ran past {limit_s:g} s")
        self.phase = phase
        self.limit_s = limit_s

    def __reduce__(self) -> tuple[type[TaskTimeoutError], tuple[str, float]]:
        return (type(self), (self.phase, self.limit_s))


class RemoteError(PoolError):
    """An unexpected exception inside a task, with its traceback text for the logs."""


def page_error_for_pool(
    exc: Exception, page_number: int, attempts: int, max_attempts: int
) -> PageError | None:
    """What a failed `WorkerPool.run` for one page means: its page error, or None when the page
    goes back to the queue (its process died and it has attempts left). The page's own
    PageError passes through; anything else is an internal error that never echoes it."""
    if isinstance(exc, PageError):
        return exc
    if isinstance(exc, TaskTimeoutError):
        timeout = RenderTimeoutError if exc.phase == "render" else PageTimeoutError
        return timeout(
            f"page {page_number}: {exc.phase} took longer than {exc.limit_s:g} s and was stopped"
        )
    if isinstance(exc, WorkerCrashedError):
        if attempts < max_attempts:
            return None
        return PageCrashedError(
            f"page {page_number} crashed the reader {attempts} times; the file is probably damaged"
        )
    return PageInternalError(f"page {page_number} could not be read because of an internal error")


def document_error_for_pool(exc: TaskTimeoutError | WorkerCrashedError) -> DocumentError:
    """What a timed-out or crashed inspection (opening, then scoring the pages) means for the
    upload. A RemoteError is not the document's fault: it stays a 500."""
    if isinstance(exc, TaskTimeoutError):
        what = "opening" if exc.phase == "inspect" else "scoring the pages of"
        return InspectTimeoutError(f"{what} the document took longer than {exc.limit_s:g} s")
    return DocumentError("the document is damaged: reading it crashed the decoder")
