"""The store's records: job and page statuses with their named sets, and the Structs that the
queue returns (a claimed page, a job with its results, a job's summary)."""

from __future__ import annotations

import enum

import msgspec

from gateway.errors import ErrorDetail
from gateway.results import PageResult
from router.policy import PageRoute


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class PageStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


# SQL binds these as parameters (`status IN (?, ?)`, `*OPEN_PAGE`): no status is spelled in SQL.
TERMINAL_JOB = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE_JOB = frozenset({JobStatus.PENDING, JobStatus.PROCESSING})  # count against the plan
PROCESSED_JOB = frozenset({JobStatus.COMPLETED, JobStatus.FAILED})  # read to the end
OPEN_PAGE = frozenset({PageStatus.PENDING, PageStatus.PROCESSING})  # queued or being read
PROCESSED_PAGE = frozenset({PageStatus.COMPLETED, PageStatus.FAILED})  # has a result or error


class ClaimedPage(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str
    tenant_id: str
    page_number: int
    attempts: int
    credits_reserved: int
    tier: str
    file_path: str
    file_kind: str  # a DocumentKind value
    route: PageRoute | None


class JobResult(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /v1/jobs/{jobId}`: status and the finished pages so far, in page order."""

    id: str
    status: JobStatus
    pages_processed: int
    page_count: int
    credits_reserved: int
    credits_used: int
    created_at: int
    completed_at: int | None
    error: ErrorDetail | None
    results: list[PageResult]


class JobSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    status: JobStatus
    file_name: str | None
    page_count: int
    pages_processed: int
    credits_reserved: int
    credits_used: int
    created_at: int
    completed_at: int | None


class JobList(msgspec.Struct, frozen=True, kw_only=True):
    jobs: list[JobSummary]
    total: int
    limit: int
    offset: int


class Idempotency(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    file_sha256: str


class CacheKey(msgspec.Struct, frozen=True, kw_only=True):
    file_sha256: str
    options_key: str  # a digest of every option that shapes the reading


class NewJob(msgspec.Struct, frozen=True, kw_only=True):
    """A job about to be admitted: to the queue, or answered from the cache."""

    job_id: str
    tenant_id: str
    file_path: str
    kind: str  # a DocumentKind value
    file_name: str | None
    key: CacheKey  # what it reads, for the result cache
    idempotency: Idempotency | None = None
