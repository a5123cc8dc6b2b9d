"""Request and response shapes of the native API."""

from __future__ import annotations

from typing import Annotated, TypeVar

import msgspec
from litestar.datastructures import UploadFile
from msgspec import UNSET, UnsetType

from gateway.store.models import JobResult
from gateway.store.outbox import WebhookState
from router.policy import Mode

T = TypeVar("T")

# Bounds of every integer a request carries: the schema states them and validation enforces
# them, so no number reaches SQLite (64-bit) or the ledger unchecked.
MAX_CREDITS = 1_000_000_000  # one grant, an opening balance, a document's max_credits
MAX_OFFSET = 1_000_000_000  # list offsets

Credits = Annotated[int, msgspec.Meta(ge=1, le=MAX_CREDITS)]
QuoteId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]


class QuoteForm(msgspec.Struct, frozen=True, kw_only=True):
    """multipart/form-data body of `POST /v1/quote` (and the first fields of `POST /v1/ocr`).
    Optional fields are absent or have a value; a form field cannot be null (the text "null" is
    not a mode, a number or a boolean)."""

    file: UploadFile | UnsetType = UNSET  # the document; or `url`, exactly one of the two
    url: Url | UnsetType = UNSET  # an http(s) URL the gateway fetches the document from
    # JSON, e.g. [{"start":1,"end":3}], 1-based inclusive; absent or blank: every page
    page_ranges: str | UnsetType = UNSET
    mode: Mode = Mode.AUTO
    max_credits: Credits | UnsetType = UNSET  # cap on the credits of the whole document
    allow_remote: bool | UnsetType = UNSET  # false: remote providers never see this document
    cache: bool | UnsetType = UNSET  # false: read again, even if an earlier job could answer
    # what the engines read: auto (default), a name (french) or a code (fra, fr); README "Language"
    language: Annotated[str, msgspec.Meta(max_length=32)] | UnsetType = UNSET


class SubmitForm(QuoteForm, frozen=True, kw_only=True):
    """multipart/form-data body of `POST /v1/ocr`."""

    quote_id: QuoteId | UnsetType = UNSET  # bill by this quote (same file and options)
    # POSTed the job when it finishes (signed, retried; see README "Webhooks")
    callback_url: Url | UnsetType = UNSET
    callback_full: bool | UnsetType = UNSET  # false: the job's status without its results


def given(value: T | UnsetType) -> T | None:
    """A form field's value, or None when the field was not sent."""
    return None if isinstance(value, UnsetType) else value


class JobView(JobResult, frozen=True, kw_only=True):
    """`GET /v1/jobs/{jobId}`: the job, and its webhook when it asked for one."""

    webhook: WebhookState | None = None


class SubmitResponse(msgspec.Struct, frozen=True, kw_only=True):
    jobId: str  # noqa: N815 - the native API's field names
    status: str
    pageCount: int  # noqa: N815
    creditsReserved: int  # noqa: N815
    estimatedCompletionSeconds: int  # noqa: N815
    cached: bool = False  # answered at once from an earlier job of the same file and options


class QuotedPageResponse(msgspec.Struct, frozen=True, kw_only=True):
    pageNumber: int  # noqa: N815 - the native API's field names
    tier: str
    credits: int
    provider: str  # who reads it first (`pdf_text`: the PDF's own text layer)
    reason: str  # the features and values that decided tier and provider
    cached: bool  # answered from an earlier job of the same file and options


class QuoteResponse(msgspec.Struct, frozen=True, kw_only=True):
    quoteId: str  # noqa: N815 - pass it to POST /v1/ocr as `quote_id` to be billed by it
    pageCount: int  # noqa: N815
    credits: int  # what a submit of the same file and options reserves
    expiresAt: int  # noqa: N815 - epoch ms
    pages: list[QuotedPageResponse]


class EngineHealth(msgspec.Struct, frozen=True, kw_only=True):
    providers: list[str]
    default_provider: str
    workers_ready: int
    workers_total: int
    workers_busy: int
    worker_crashes: int
    devices: dict[str, str]  # local engine -> "cpu" or "cuda", as the worker processes loaded them
    remote: dict[str, dict[str, object]]  # remote providers: breaker state, calls, failures


class NodeHealth(msgspec.Struct, frozen=True, kw_only=True):
    """A node sharing the database, as its last heartbeat said."""

    id: str
    role: str  # "api+worker" (serve), "api" (serve --workers 0) or "worker"
    host: str
    pid: int
    workers: int  # page-reading processes
    version: str
    started_at: int  # epoch ms
    last_seen_at: int  # epoch ms: its last heartbeat
    seen_s_ago: float
    this_node: bool  # the node that answered this request


class DatabaseHealth(msgspec.Struct, frozen=True, kw_only=True):
    backend: str  # "sqlite" (embedded) or "postgresql"
    location: str  # the file, or the server without credentials


class RateLimitHealth(msgspec.Struct, frozen=True, kw_only=True):
    store: str  # "memory", or the Redis server without credentials
    available: bool  # false from the first request Redis did not answer until it answers again
    unavailable_s: float | None = None  # how long it has not answered, while it does not


class HealthResponse(msgspec.Struct, frozen=True, kw_only=True):
    status: str  # "ok"; "degraded" while no worker process is ready or the limits' Redis is down
    version: str
    uptime_s: float
    queue_depth: int  # pages waiting or being read
    jobs_processed: int
    engines: EngineHealth  # this node's processes
    role: str = "api+worker"  # this node's
    database: DatabaseHealth | None = None
    nodes: list[NodeHealth] = []  # every node seen within three heartbeats, this one included
    workers_seen: int = 0  # page-reading processes over those nodes
    rate_limits: RateLimitHealth | None = None  # judged by requests; asked again while down
