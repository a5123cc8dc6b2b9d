"""The read side of the queue: a job with its results, one page with the job's upload (for
its preview), the job list, and the long poll.

Read-only. Every write is the queue's (`JobStore`), which tells `JobEvents` when a job
changes, so a long-polling reader wakes as soon as there is something new to see.
"""

from __future__ import annotations

import asyncio
import contextlib

import msgspec

from gateway.errors import ErrorDetail, JobNotFoundError
from gateway.results import PageResult, failed_page
from gateway.store.db import Database
from gateway.store.models import (
    PROCESSED_PAGE,
    TERMINAL_JOB,
    JobList,
    JobResult,
    JobStatus,
    JobSummary,
    PageStatus,
)


class JobEvents:
    """Wakes long-polling readers when a job changes (in this process).

    Subscribe before reading the job, then wait on the event: a change between the read and
    the wait is not missed.
    """

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def subscribe(self, job_id: str) -> asyncio.Event:
        return self._events.setdefault(job_id, asyncio.Event())

    def notify(self, job_id: str) -> None:
        event = self._events.pop(job_id, None)
        if event is not None:
            event.set()


_RESULT_DECODER = msgspec.json.Decoder(PageResult)
_ERROR_DECODER = msgspec.json.Decoder(ErrorDetail)


async def get_job(db: Database, tenant_id: str, job_id: str) -> JobResult:
    """The job as its owner sees it; another tenant's job is not found."""
    job = await db.fetch_one(
        "SELECT * FROM jobs WHERE id = ? AND tenant_id = ?", (job_id, tenant_id)
    )
    if job is None:
        raise JobNotFoundError()
    pages = await db.fetch_all(
        "SELECT page_number, status, result, error FROM pages"
        " WHERE job_id = ? AND status IN (?, ?) ORDER BY page_number",
        (job_id, *PROCESSED_PAGE),
    )
    results = [
        _RESULT_DECODER.decode(p["result"])
        if p["status"] == PageStatus.COMPLETED
        else failed_page(p["page_number"], _ERROR_DECODER.decode(p["error"]))
        for p in pages
    ]
    return JobResult(
        id=job["id"],
        status=JobStatus(job["status"]),
        pages_processed=len(results),
        page_count=job["page_count"],
        credits_reserved=job["credits_reserved"],
        credits_used=job["credits_used"],
        created_at=job["created_at"],
        completed_at=job["completed_at"],
        error=_ERROR_DECODER.decode(job["error"]) if job["error"] else None,
        results=results,
    )


async def wait_for_change(
    db: Database, events: JobEvents, tenant_id: str, job_id: str, wait_s: float
) -> JobResult:
    """The job once its status or page count changes, or after `wait_s` seconds."""
    deadline = asyncio.get_running_loop().time() + wait_s
    first = None
    while True:
        event = events.subscribe(job_id)
        job = await get_job(db, tenant_id, job_id)
        first = first or job
        left = deadline - asyncio.get_running_loop().time()
        if (
            job.status in TERMINAL_JOB
            or left <= 0
            or (job.status, job.pages_processed) != (first.status, first.pages_processed)
        ):
            return job
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), left)


async def list_jobs(
    db: Database,
    tenant_id: str,
    *,
    limit: int,
    offset: int,
    status: JobStatus | None,
    job_id: str | None = None,
) -> JobList:
    """The tenant's jobs, newest first, without their results."""
    params = (tenant_id, status, status, job_id, job_id)
    total = await db.fetch_one(
        "SELECT COUNT(*) FROM jobs WHERE tenant_id = ? AND (CAST(? AS TEXT) IS NULL OR status = ?)"
        " AND (CAST(? AS TEXT) IS NULL OR id = ?)",
        params,
    )
    rows = await db.fetch_all(
        "SELECT j.*, (SELECT COUNT(*) FROM pages p WHERE p.job_id = j.id AND p.status"
        " IN (?, ?)) AS processed FROM jobs j"
        " WHERE tenant_id = ? AND (CAST(? AS TEXT) IS NULL OR status = ?)"
        " AND (CAST(? AS TEXT) IS NULL OR id = ?)"
        " ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
        (*PROCESSED_PAGE, *params, limit, offset),
    )
    return JobList(
        jobs=[
            JobSummary(
                id=r["id"],
                status=JobStatus(r["status"]),
                file_name=r["file_name"],
                page_count=r["page_count"],
                pages_processed=r["processed"],
                credits_reserved=r["credits_reserved"],
                credits_used=r["credits_used"],
                created_at=r["created_at"],
                completed_at=r["completed_at"],
            )
            for r in rows
        ],
        total=int(total[0]) if total else 0,
        limit=limit,
        offset=offset,
    )


async def get_summary(db: Database, tenant_id: str, job_id: str) -> JobSummary:
    """One job as the list shows it; another tenant's job is not found."""
    page = await list_jobs(db, tenant_id, limit=1, offset=0, status=None, job_id=job_id)
    if not page.jobs:
        raise JobNotFoundError()
    return page.jobs[0]


class JobPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a job, with the upload it is read from (a preview renders it again)."""

    file_path: str
    file_kind: str  # a DocumentKind value
    page_status: PageStatus | None  # None: the job has no such page
    result: PageResult | None  # a completed page's result
    error: ErrorDetail | None  # a failed page's error


async def get_job_page(db: Database, tenant_id: str, job_id: str, page_number: int) -> JobPage:
    """Page `page_number` of the job and the job's upload; another tenant's job is not found."""
    row = await db.fetch_one(
        "SELECT j.file_path, j.file_kind, p.status AS page_status,"
        " p.result, p.error FROM jobs j LEFT JOIN pages p"
        " ON p.job_id = j.id AND p.page_number = ? WHERE j.id = ? AND j.tenant_id = ?",
        (page_number, job_id, tenant_id),
    )
    if row is None:
        raise JobNotFoundError()
    completed = row["page_status"] == PageStatus.COMPLETED
    return JobPage(
        file_path=row["file_path"],
        file_kind=row["file_kind"],
        page_status=PageStatus(row["page_status"]) if row["page_status"] else None,
        result=_RESULT_DECODER.decode(row["result"]) if completed else None,
        error=_ERROR_DECODER.decode(row["error"]) if row["error"] else None,
    )
