"""The job API with signup (001): its shapes, and pure functions from the core's records onto
them. Its errors are FastAPI's: `{"detail": "..."}`, and for a request that fails validation
`422 {"detail": [{"type", "loc", "msg", "input"}]}`.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from gateway.api.compat.base import iso_time
from gateway.outputs.markdown import to_markdown
from gateway.results import PageResult
from gateway.store.models import JobResult, JobStatus, JobSummary

_BODY_FIELD = re.compile(r"required field `(\w+)`|at `\$\.(\w+)")

# the document's status words: queued -> processing -> done | error
STATUS = {
    JobStatus.PENDING: "queued",
    JobStatus.PROCESSING: "processing",
    JobStatus.COMPLETED: "done",
    JobStatus.FAILED: "error",
    JobStatus.CANCELLED: "error",
}


class Detail(msgspec.Struct, frozen=True, kw_only=True):
    """FastAPI's error body."""

    detail: str


class FieldError(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    loc: list[str]
    msg: str
    input: Any = None


class ValidationDetail(msgspec.Struct, frozen=True, kw_only=True):
    """FastAPI's 422 body."""

    detail: list[FieldError]


class SignupBody(msgspec.Struct, frozen=True, kw_only=True):
    email: str


class SignupAnswer(msgspec.Struct, frozen=True, kw_only=True):
    api_key: str  # shown once; send it as X-API-Key
    email: str
    credits: int  # free pages: one credit reads one simple page


class JobCreated(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str
    status: str
    filename: str | None
    format: str
    language: str
    page_count: int
    created_at: str


class JobSummaryOut(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str
    status: str
    filename: str | None
    page_count: int
    pages_done: int
    created_at: str
    completed_at: str | None
    elapsed: float | None  # seconds from submission to the end, once finished


class JobDetail(JobSummaryOut, frozen=True, kw_only=True):
    error: str | None  # why a job is `error`
    result_md: str | None  # when done
    result_json: dict[str, Any] | None  # when done: the pages as the native API gives them


class JobListOut(msgspec.Struct, frozen=True, kw_only=True):
    jobs: list[JobSummaryOut]
    total: int
    limit: int
    offset: int


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    version: str
    queue_depth: int  # pages waiting or being read
    jobs_processed: int
    uptime: float  # seconds


def elapsed(created_at: int, completed_at: int | None) -> float | None:
    return None if completed_at is None else round((completed_at - created_at) / 1000, 1)


def summary_of(job: JobSummary) -> JobSummaryOut:
    return JobSummaryOut(
        job_id=job.id,
        status=STATUS[job.status],
        filename=job.file_name,
        page_count=job.page_count,
        pages_done=job.pages_processed,
        created_at=iso_time(job.created_at) or "",
        completed_at=iso_time(job.completed_at),
        elapsed=elapsed(job.created_at, job.completed_at),
    )


def result_json(job: JobResult) -> dict[str, Any]:
    pages: list[Any] = msgspec.to_builtins(job.results)
    return {"job_id": job.id, "page_count": job.page_count, "pages": pages}


def markdown(pages: list[PageResult]) -> str:
    return to_markdown(pages)


def detail_of(job: JobResult, file_name: str | None) -> JobDetail:
    done = job.status == JobStatus.COMPLETED
    error = None
    if job.status == JobStatus.CANCELLED:
        error = "cancelled"
    elif job.error is not None:
        error = f"{job.error.code}: {job.error.message}"
    return JobDetail(
        job_id=job.id,
        status=STATUS[job.status],
        filename=file_name,
        page_count=job.page_count,
        pages_done=job.pages_processed,
        created_at=iso_time(job.created_at) or "",
        completed_at=iso_time(job.completed_at),
        elapsed=elapsed(job.created_at, job.completed_at),
        error=error,
        result_md=markdown(job.results) if done else None,
        result_json=result_json(job) if done else None,
    )


def field_errors(extra: object, fallback: str) -> list[FieldError]:
    """Litestar's validation details (`key`, `source`, `message`) as FastAPI's entries."""
    entries = extra if isinstance(extra, list) else []
    out = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        message = str(entry.get("message") or fallback)
        missing = "required" in message.lower() or "missing" in message.lower()
        source = entry.get("source") or "body"
        source = str(getattr(source, "value", source))  # Litestar's ParamType, or a string
        key = entry.get("key")
        if key == "data":  # the body: the field is named in the message
            named = _BODY_FIELD.search(message)
            key = named.group(1) or named.group(2) if named else None
        out.append(
            FieldError(
                type="missing" if missing else "value_error",
                loc=[source, str(key)] if key else [source],
                msg="Field required" if missing else message,
            )
        )
    return out or [FieldError(type="value_error", loc=["body"], msg=fallback)]
