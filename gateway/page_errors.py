"""The errors that never answer a request: a page that could not be read, and the worker-process
pool failing a task, with the one place each decides what such a failure means.

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

What a pool error means for a page or for an upload is decided in one place each:
`page_error_for_pool` and `document_error_for_pool`; a DocumentError met while reading one page
becomes a page error in `page_error_for_document`. Page errors cross the worker-process boundary
by pickling. The request errors are the tree of `gateway.errors`.
"""

from __future__ import annotations

from typing import ClassVar

from gateway.errors import DocumentError, ErrorDetail, InspectTimeoutError

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
