"""Every error a provider raises, and the one mapping of HTTP outcomes to them.

    ProviderError                         code                       retried?  breaker failure?
    ├── ProviderTimeoutError              ocr_timeout                yes       yes
    │                                     (engine or connect/read/total timeout)
    ├── ProviderUnavailableError          provider_unavailable       no        yes
    │   │                                 (binary, model or secret missing; unsupported URL)
    │   ├── ProviderConnectionError       provider_connection_failed yes       yes
    │   │                                 (refused, reset, dropped)
    │   ├── ProviderRefusedError          provider_refused           no        yes
    │   │                                 (401/402/403: every page would fail)
    │   └── CircuitOpenError              provider_circuit_open      no        no
    │                                     (not called: the breaker is open)
    ├── ProviderRateLimitedError          provider_rate_limited      yes       yes
    │                                     (429, after Retry-After)
    ├── ProviderServerError               provider_server_error      502-504   yes   (5xx)
    ├── ProviderResponseError             provider_bad_response      no        yes
    │                                     (a body that is not the protocol)
    ├── ProviderRejectedError             provider_rejected          no        no
    │   │                                 (other 4xx: this page's own fault)
    │   └── ProviderOutputTruncatedError  provider_output_truncated  no        no
    │                                     (a VLM's answer stopped at max_tokens)
    └── UpstreamPageError                 upstream_page_failed       no        yes
                                          (another gateway failed the page, or its job)

`ProviderError` itself (ocr_failed) is an engine that failed on the page (RapidOCR raised,
Tesseract exited non-zero) or an httpx failure of no known kind.

Each provider maps the foreign exceptions of its engine to these in one place: local engines in
their `recognize`, remote ones through `error_for_status` and `error_for_transport` here.
Retries (`providers.resilience.RetryPolicy`) apply to `is_retryable` kinds only; the circuit
breaker counts `is_breaker_failure` kinds only.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime
from typing import ClassVar

import httpx
import msgspec

TRANSIENT_STATUS = frozenset({502, 503, 504})
REFUSED_STATUS = frozenset({401, 402, 403})


class ProviderError(Exception):
    code: ClassVar[str] = "ocr_failed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProviderTimeoutError(ProviderError):
    code = "ocr_timeout"


class ProviderUnavailableError(ProviderError):
    code = "provider_unavailable"


class ProviderConnectionError(ProviderUnavailableError):
    code = "provider_connection_failed"


class ProviderRefusedError(ProviderUnavailableError):
    code = "provider_refused"


class CircuitOpenError(ProviderUnavailableError):
    code = "provider_circuit_open"

    def __init__(self, message: str, retry_in_s: float) -> None:
        super().__init__(message)
        self.retry_in_s = retry_in_s


class ProviderRateLimitedError(ProviderError):
    code = "provider_rate_limited"

    def __init__(self, message: str, retry_after_s: float | None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ProviderServerError(ProviderError):
    code = "provider_server_error"

    def __init__(self, message: str, status: int, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s

    @property
    def transient(self) -> bool:
        return self.status in TRANSIENT_STATUS


class ProviderResponseError(ProviderError):
    code = "provider_bad_response"


class ProviderRejectedError(ProviderError):
    code = "provider_rejected"


class ProviderOutputTruncatedError(ProviderRejectedError):
    """The answer stopped at max_tokens: this page is too long for the limit (not retried)."""

    code = "provider_output_truncated"


class UpstreamPageError(ProviderError):
    """The upstream could not read the page (or its job failed or was cancelled)."""

    code = "upstream_page_failed"


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, ProviderServerError):
        return exc.transient
    return isinstance(
        exc, ProviderTimeoutError | ProviderConnectionError | ProviderRateLimitedError
    )


def is_breaker_failure(exc: BaseException) -> bool:
    """Errors that say the provider is unwell; a rejected page or a refusal by the breaker
    itself says nothing about it."""
    return not isinstance(exc, ProviderRejectedError | CircuitOpenError)


# --- HTTP outcomes ----------------------------------------------------------------------------


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; None if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class _ErrorBody(msgspec.Struct, kw_only=True):
    code: str | None = None
    type: str | None = None
    message: str | None = None


class _ErrorEnvelope(msgspec.Struct, kw_only=True):
    error: _ErrorBody | str | None = None


def _describe_body(body: bytes) -> str:
    """`code: message` of an OpenAI or gateway error body, else the start of the text."""
    try:
        error = msgspec.json.decode(body, type=_ErrorEnvelope).error
    except msgspec.DecodeError:
        error = None
    if isinstance(error, str):
        return error[:300]
    if isinstance(error, _ErrorBody) and error.message:
        code = error.code or error.type
        return f"{code}: {error.message[:300]}" if code else error.message[:300]
    return body.decode("utf-8", errors="replace").strip()[:200] or "no body"


def error_for_status(what: str, response: httpx.Response) -> ProviderError:
    """The error kind of a non-2xx answer; its message names the status and the body's code."""
    status = response.status_code
    message = f"{what}: HTTP {status} ({_describe_body(response.content)})"
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status == 429:
        return ProviderRateLimitedError(message, retry_after)
    if status >= 500:
        return ProviderServerError(message, status, retry_after)
    if status in REFUSED_STATUS:
        return ProviderRefusedError(message)
    return ProviderRejectedError(message)


def error_for_transport(what: str, exc: httpx.HTTPError) -> ProviderError:
    """The error kind of an httpx failure (no answer, or an unreadable one)."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeoutError(f"{what}: {type(exc).__name__} ({detail})")
    if isinstance(exc, httpx.UnsupportedProtocol):
        return ProviderUnavailableError(f"{what}: {detail}")
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
        return ProviderConnectionError(f"{what}: {type(exc).__name__} ({detail})")
    if isinstance(exc, httpx.DecodingError):
        return ProviderResponseError(f"{what}: undecodable body ({detail})")
    return ProviderError(f"{what}: {type(exc).__name__} ({detail})")
