"""What the sync and the async client share: the errors, each API call as a request, the
decoding of each answer, and the retry decision. No I/O here."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

import httpx
import msgspec

T = TypeVar("T")
Source = str | os.PathLike[str] | bytes | IO[bytes]
Format = Literal["json", "markdown", "text", "hocr", "alto", "pdf"]
Mode = Literal["auto", "fast", "accurate"]
PageRanges = list[tuple[int, int]] | str
RETRIED_STATUSES = frozenset({429, 503})
MAX_WAIT_S = 30.0  # the server holds a long poll at most this long
TERMINAL = frozenset({"completed", "failed", "cancelled"})


class ApiError(Exception):
    """An error answer of the API, `{"error": {"code", "message", "details"?}}`, with its
    HTTP status and, on 429/503, the Retry-After it carried."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details or {})
        self.retry_after_s = retry_after_s


class NotReadyError(ApiError):
    """`202 result_not_ready` or `page_not_ready`: not a failure; ask again later."""


class WaitTimeoutError(TimeoutError):
    """`wait()` ran out of time before the job finished."""


class Request(msgspec.Struct, frozen=True, kw_only=True):
    """One API call, rebuilt into an httpx request for every attempt."""

    method: str
    path: str
    expected: int = 200  # the status of success
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    data: dict[str, str] = msgspec.field(default_factory=dict)
    files: dict[str, tuple[str | None, bytes]] = msgspec.field(
        default_factory=dict
    )  # None: a field
    headers: dict[str, str] = msgspec.field(default_factory=dict)


class Options(msgspec.Struct, frozen=True, kw_only=True):
    """The reading options of a submit or a quote (None: the server's default)."""

    page_ranges: PageRanges | None = None  # [(1, 3), (7, 7)], 1-based inclusive, or the JSON
    mode: Mode | None = None
    max_credits: int | None = None
    allow_remote: bool | None = None
    cache: bool | None = None
    language: str | None = None  # auto, a name (french) or a code (fr, fra)

    def form(self) -> dict[str, object]:
        return {f: getattr(self, f) for f in self.__struct_fields__}


def retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


def api_error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()["error"]
        code, message, details = body["code"], body["message"], body.get("details")
    except (ValueError, KeyError, TypeError):
        code, message, details = "http_error", response.text[:500] or response.reason_phrase, None
    cls = NotReadyError if response.status_code == 202 else ApiError
    return cls(response.status_code, code, message, details, retry_after(response))


def checked(response: httpx.Response, expected: int = 200) -> httpx.Response:
    if response.status_code != expected:
        raise api_error(response)
    return response


def decoded(response: httpx.Response, kind: type[T], expected: int = 200) -> T:
    return msgspec.json.decode(checked(response, expected).content, type=kind)


def read_source(source: Source, filename: str | None) -> tuple[str, bytes]:
    """(file name, bytes) of a path, bytes or a binary file object."""
    if isinstance(source, bytes):
        return filename or "document", source
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        return filename or path.name, path.read_bytes()
    return filename or Path(str(getattr(source, "name", "document"))).name, source.read()


def form_fields(fields: Mapping[str, object]) -> dict[str, str]:
    """The fields that were given, as the API spells them (booleans `true`/`false`, page
    ranges as JSON)."""
    form: dict[str, str] = {}
    for name, value in fields.items():
        if value is None:
            continue
        if isinstance(value, bool):
            form[name] = "true" if value else "false"
        elif isinstance(value, list | tuple):
            ranges = [{"start": int(a), "end": int(b)} for a, b in value]
            form[name] = msgspec.json.encode(ranges).decode()
        else:
            form[name] = str(value)
    return form


def document_request(
    path: str,
    source: Source | None,
    url: str | None,
    filename: str | None,
    fields: Mapping[str, object],
    headers: dict[str, str] | None = None,
    expected: int = 200,
) -> Request:
    if (source is None) == (url is None):
        raise ValueError("give a document (a path, bytes or a file object) or a url, not both")
    form = form_fields({"url": url, **fields})
    if source is None:  # still multipart (httpx would send a bare form url-encoded)
        return Request(
            method="POST",
            path=path,
            expected=expected,
            files={name: (None, value.encode()) for name, value in form.items()},
            headers=headers or {},
        )
    return Request(
        method="POST",
        path=path,
        expected=expected,
        data=form,
        files={"file": read_source(source, filename)},
        headers=headers or {},
    )


def submit_request(
    source: Source | None,
    url: str | None,
    filename: str | None,
    options: Options,
    *,
    quote_id: str | None,
    callback_url: str | None,
    callback_full: bool | None,
    idempotency_key: str | None,
) -> Request:
    """`POST /v1/ocr`; one Idempotency-Key (generated unless given) for every retry of it, so a
    retried submit never makes or charges a second job."""
    fields = {
        **options.form(),
        "quote_id": quote_id,
        "callback_url": callback_url,
        "callback_full": callback_full,
    }
    key = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
    return document_request("/v1/ocr", source, url, filename, fields, key, expected=202)


def job_request(job_id: str, wait_s: float, words: bool) -> Request:
    params: dict[str, Any] = {"wait": round(wait_s, 3)} if wait_s > 0 else {}
    if not words:
        params["words"] = "false"
    return Request(method="GET", path=f"/v1/jobs/{job_id}", params=params)


def jobs_request(limit: int, offset: int, status: str | None) -> Request:
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if status:
        params["status"] = status
    return Request(method="GET", path="/v1/jobs", params=params)


def usage_request(from_date: str | None, to_date: str | None) -> Request:
    params = {k: v for k, v in (("from", from_date), ("to", to_date)) if v}
    return Request(method="GET", path="/v1/usage", params=params)


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """How a client talks to the gateway."""

    base_url: str
    api_key: str
    timeout_s: float = 60.0  # per request, beyond a long poll's own wait
    retries: int = 3  # of a 429, a 503 or a connection failure
    max_retry_wait_s: float = 30.0  # a longer Retry-After is not waited for: the error is raised
    backoff_s: float = 0.5  # first wait when the server said none; doubles each time

    def pause(self, attempt: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before retrying after attempt `attempt` (1-based), or None."""
        if attempt > self.retries:
            return None
        if response is not None and response.status_code not in RETRIED_STATUSES:
            return None
        after = retry_after(response) if response is not None else None
        wait = after if after is not None else self.backoff_s * 2 ** (attempt - 1)
        return None if wait > self.max_retry_wait_s else wait

    def build(self, http: httpx.Client | httpx.AsyncClient, request: Request) -> httpx.Request:
        return http.build_request(
            request.method,
            request.path,
            params=request.params or None,
            data=request.data or None,
            files=request.files or None,
            headers={"X-API-Key": self.api_key, **request.headers},
            timeout=self.timeout_s + float(request.params.get("wait", 0)),
        )
