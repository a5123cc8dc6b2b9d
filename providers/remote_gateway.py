"""Another ocr-gateway instance, through its native API: one installation sends pages to a
bigger one.

Per page: `POST /v1/ocr` with the page as PNG (so the upstream's geometry refers to the same
pixels) and an Idempotency-Key, so a retried submit after a dropped connection neither starts
nor charges a second job; then `GET /v1/jobs/{id}?wait=...` long polls until the job ends; the
upstream's relative geometry of lines and words becomes page-pixel TextLines. Each request is
retried on its own (see `providers.resilience`); the whole page is capped by `total_timeout_s`.

An upstream page failure, or a failed or cancelled job, is an UpstreamPageError
(`providers.errors`) naming the upstream's error code. A page given up here (total timeout,
our own cancellation) is cancelled upstream on a best-effort basis, which refunds its upstream
credits; a finished job is deleted upstream (`delete_jobs`) so the page does not stay there.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any, Literal, TypeVar, overload

import httpx
import msgspec

from providers.errors import (
    ProviderError,
    ProviderResponseError,
    UpstreamPageError,
    error_for_status,
    error_for_transport,
)
from providers.resilience import (
    BreakerSettings,
    CallGate,
    CircuitBreaker,
    RetryPolicy,
    RetrySettings,
    encode_png,
    read_api_key,
)
from providers.types import (
    PageHints,
    PageImage,
    Quad,
    RecognizedPage,
    TextLine,
    TextWord,
    quad_from_box,
    words_by_share,
)

T = TypeVar("T")
MAX_POLL_WAIT_S = 30.0  # the native API holds a poll at most this long
MIN_POLL_INTERVAL_S = 0.2
CLEANUP_TIMEOUT_S = 5.0


class GatewayProviderConfig(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="gateway",
    tag_field="kind",
):
    base_url: str  # the other gateway's root: https://ocr.example.com
    api_key_env: str  # environment variable holding its X-API-Key
    poll_wait_s: float = 20.0  # long-poll hold per GET /v1/jobs/{id}
    concurrency: int = 8  # pages in flight upstream at once
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0  # silence allowed on top of the poll wait
    total_timeout_s: float = 600.0  # one page, upstream queueing and retries included
    delete_jobs: bool = True  # delete each finished job upstream once read
    retry: RetrySettings = RetrySettings()
    breaker: BreakerSettings = BreakerSettings()

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        if not 0 < self.poll_wait_s <= MAX_POLL_WAIT_S:
            raise ValueError(f"poll_wait_s must be in (0, {MAX_POLL_WAIT_S:g}]")
        if self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if min(self.connect_timeout_s, self.read_timeout_s, self.total_timeout_s) <= 0:
            raise ValueError("timeouts must be > 0")


# --- The upstream's shapes (only the fields read here) ----------------------------------------


class UpstreamError(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    message: str


class _Geometry(msgspec.Struct, frozen=True, kw_only=True):
    x: float
    y: float
    width: float
    height: float


class _Word(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    confidence: float
    geometry: _Geometry


class _Line(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    confidence: float
    geometry: _Geometry
    words: list[_Word] = msgspec.field(default_factory=list)  # absent from older upstreams


class _Block(msgspec.Struct, frozen=True, kw_only=True):
    lines: list[_Line]


class _Metadata(msgspec.Struct, frozen=True, kw_only=True):
    source_model: str


class UpstreamPage(msgspec.Struct, frozen=True, kw_only=True):
    page_number: int
    status: Literal["completed", "failed"]
    document_metadata: _Metadata | None = None
    content_blocks: list[_Block] = msgspec.field(default_factory=list)
    error: UpstreamError | None = None


JobState = Literal["pending", "processing", "completed", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled"})


class UpstreamJob(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    status: JobState
    error: UpstreamError | None = None
    results: list[UpstreamPage] = msgspec.field(default_factory=list)


class _Submitted(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    job_id: str


def page_from_job(job: UpstreamJob, width: int, height: int) -> RecognizedPage:
    """The one page of a finished upstream job, in the pixels of the `width` x `height` image
    that was sent; raises UpstreamPageError when there is no page to give."""
    page = job.results[0] if job.results else None
    if job.status == "cancelled":
        raise UpstreamPageError(f"upstream job {job.id} was cancelled")
    if page is not None and page.status == "failed":
        error = page.error or UpstreamError(code="unknown", message="no error given")
        raise UpstreamPageError(f"upstream page failed ({error.code}): {error.message}")
    if page is None or page.document_metadata is None:
        error = job.error or UpstreamError(code="unknown", message="no page result")
        raise UpstreamPageError(f"upstream job {job.status} ({error.code}): {error.message}")
    lines = tuple(
        _line(line, width, height) for block in page.content_blocks for line in block.lines
    )
    return RecognizedPage(
        lines=lines, model=page.document_metadata.source_model, width=width, height=height
    )


def _in_pixels(geometry: _Geometry, width: int, height: int) -> Quad:
    return quad_from_box(
        geometry.x * width,
        geometry.y * height,
        (geometry.x + geometry.width) * width,
        (geometry.y + geometry.height) * height,
    )


def _confidence(value: float) -> float:
    return min(1.0, max(0.0, value))


def _line(line: _Line, width: int, height: int) -> TextLine:
    """An upstream line in page pixels, with the upstream's words when it gave words that
    spell the line; else the line's box split in proportion to character counts (approximate)."""
    quad = _in_pixels(line.geometry, width, height)
    confidence = _confidence(line.confidence)
    if line.words and " ".join(w.text for w in line.words) == " ".join(line.text.split()):
        words = tuple(
            TextWord(
                text=w.text,
                confidence=_confidence(w.confidence),
                quad=_in_pixels(w.geometry, width, height),
            )
            for w in line.words
        )
    else:
        words = words_by_share(line.text, confidence, quad)
    return TextLine(text=line.text, confidence=confidence, quad=quad, words=words)


# --- The provider -----------------------------------------------------------------------------


class GatewayProvider:
    def __init__(
        self,
        name: str,
        config: GatewayProviderConfig,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.config = config
        key = read_api_key(config.api_key_env, name)
        assert key is not None
        self._client = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/"),
            headers={"X-API-Key": key},
            timeout=httpx.Timeout(config.read_timeout_s, connect=config.connect_timeout_s),
            transport=transport,
        )
        self._poll_timeout = httpx.Timeout(
            config.poll_wait_s + config.read_timeout_s, connect=config.connect_timeout_s
        )
        self._gate = CallGate(
            name,
            concurrency=config.concurrency,
            total_timeout_s=config.total_timeout_s,
            breaker=CircuitBreaker(name, config.breaker),
            retry=RetryPolicy(name, config.retry),
        )

    wants_line_boxes = False  # the upstream gateway finds its own geometry

    async def recognize(self, page: PageImage, hints: PageHints | None = None) -> RecognizedPage:
        self._gate.check()  # refuse fast, before encoding anything
        png = await asyncio.to_thread(encode_png, page)
        return await self._gate.run(lambda: self._read(png, page))

    async def _read(self, png: bytes, page: PageImage) -> RecognizedPage:
        """Submit, then poll until the job ends; an abandoned job is cancelled upstream."""
        retry = self._gate.retry
        files = {"file": (f"page-{page.page_number}.png", png, "image/png")}
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        submitted = await retry.call(
            lambda: self._send(
                "submit", "POST", "/v1/ocr", _Submitted, files=files, headers=headers
            )
        )
        job_id = submitted.job_id
        finished = False
        loop = asyncio.get_running_loop()
        try:
            while True:
                asked = loop.time()
                job = await retry.call(
                    lambda: self._send(
                        "poll",
                        "GET",
                        f"/v1/jobs/{job_id}",
                        UpstreamJob,
                        params={"wait": self.config.poll_wait_s},
                        timeout=self._poll_timeout,
                    )
                )
                if job.status in TERMINAL:
                    finished = True
                    return page_from_job(job, page.width, page.height)
                # a status change ends a long poll early; never spin on an upstream that
                # answers at once
                await asyncio.sleep(max(0.0, MIN_POLL_INTERVAL_S - (loop.time() - asked)))
        finally:
            await asyncio.shield(self._clean_up(job_id, finished))

    async def _clean_up(self, job_id: str, finished: bool) -> None:
        if finished and not self.config.delete_jobs:
            return
        method, path = (
            ("DELETE", f"/v1/jobs/{job_id}") if finished else ("POST", f"/v1/jobs/{job_id}/cancel")
        )
        with contextlib.suppress(ProviderError):
            await self._send(
                "clean up", method, path, None, timeout=httpx.Timeout(CLEANUP_TIMEOUT_S)
            )

    @overload
    async def _send(
        self, what: str, method: str, path: str, shape: type[T], **options: Any
    ) -> T: ...

    @overload
    async def _send(
        self, what: str, method: str, path: str, shape: None, **options: Any
    ) -> None: ...

    async def _send(
        self, what: str, method: str, path: str, shape: type[T] | None, **options: Any
    ) -> T | None:
        """One request (`options` go to httpx); every httpx, HTTP and JSON failure becomes a
        provider error here."""
        label = f"{self.name}: {what} {method} {path}"
        try:
            response = await self._client.request(method, path, **options)
        except httpx.HTTPError as exc:
            raise error_for_transport(label, exc) from exc
        if not response.is_success:
            raise error_for_status(label, response)
        if shape is None:
            return None
        try:
            return msgspec.json.decode(response.content, type=shape)
        except msgspec.DecodeError as exc:
            raise ProviderResponseError(f"{label}: unexpected answer ({exc})") from exc

    def state(self) -> dict[str, object]:
        return {"kind": "gateway", "base_url": self.config.base_url, **self._gate.state()}

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> GatewayProvider:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
