"""The persistent job queue: jobs, their pages, and page results.

A page is claimed by one atomic `UPDATE ... RETURNING`; its result, its charge and the job's
completion are written in one transaction, so a crash at any point leaves every page either
pending (read again after restart) or finished exactly once, and charged at most once.
Pages are claimed round-robin across jobs, so one large document does not starve the others.
"""

from __future__ import annotations

import enum
import uuid

import aiosqlite
import msgspec

from gateway import ledger
from gateway.clock import now_ms
from gateway.db import Database
from gateway.documents import DocumentKind
from gateway.errors import ErrorDetail, JobNotFoundError
from gateway.results import PageResult, failed_page


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


class PageStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


TERMINAL_JOB = frozenset({JobStatus.COMPLETED, JobStatus.FAILED})
TERMINAL_PAGE = frozenset({PageStatus.COMPLETED, PageStatus.FAILED})


class ClaimedPage(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str
    tenant_id: str
    page_number: int
    attempts: int
    credits_reserved: int
    file_path: str
    file_kind: DocumentKind


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


_RESULT_DECODER = msgspec.json.Decoder(PageResult)
_ERROR_DECODER = msgspec.json.Decoder(ErrorDetail)
_ENCODER = msgspec.json.Encoder()


def new_job_id() -> str:
    return str(uuid.uuid4())


class JobStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_job(self, *, job_id: str, tenant_id: str, file_path: str,
                         kind: DocumentKind, file_name: str | None, page_numbers: list[int],
                         credits_per_page: int) -> int:
        """Insert the job and its pages and reserve their credits; returns credits reserved."""
        reserved = credits_per_page * len(page_numbers)
        now = now_ms()
        async with self.db.transaction() as tx:
            await ledger.reserve(tx, tenant_id, reserved, job_id)
            await tx.execute(
                "INSERT INTO jobs (id, tenant_id, status, file_path, file_kind, file_name,"
                " page_count, credits_reserved, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, tenant_id, JobStatus.PENDING, file_path, kind.value, file_name,
                 len(page_numbers), reserved, now))
            await tx.executemany(
                "INSERT INTO pages (job_id, page_number, status, credits_reserved, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(job_id, n, PageStatus.PENDING, credits_per_page, now) for n in page_numbers])
        return reserved

    async def claim_page(self) -> ClaimedPage | None:
        now = now_ms()
        async with self.db.transaction() as tx:
            async with tx.execute(
                "UPDATE pages SET status = 'processing', attempts = attempts + 1, updated_at = ?"
                " WHERE rowid = (SELECT p.rowid FROM pages p JOIN jobs j ON j.id = p.job_id"
                "  WHERE p.status = 'pending'"
                "  ORDER BY COALESCE(j.last_claimed_at, 0), j.created_at, p.page_number LIMIT 1)"
                " RETURNING job_id, page_number, attempts, credits_reserved",
                (now,),
            ) as cur:
                page = await cur.fetchone()
            if page is None:
                return None
            async with tx.execute(
                "UPDATE jobs SET status = 'processing', started_at = COALESCE(started_at, ?),"
                " last_claimed_at = ? WHERE id = ? RETURNING tenant_id, file_path, file_kind",
                (now, now, page["job_id"]),
            ) as cur:
                job = await cur.fetchone()
        assert job is not None
        return ClaimedPage(job_id=page["job_id"], tenant_id=job["tenant_id"],
                           page_number=page["page_number"], attempts=page["attempts"],
                           credits_reserved=page["credits_reserved"],
                           file_path=job["file_path"], file_kind=DocumentKind(job["file_kind"]))

    async def complete_page(self, claim: ClaimedPage, result: PageResult,
                            seconds: float) -> bool:
        """Store the result and charge the page; False if the page was no longer in flight."""
        async with self.db.transaction() as tx:
            cur = await tx.execute(
                "UPDATE pages SET status = 'completed', result = ?, credits_charged = ?,"
                " seconds = ?, updated_at = ?"
                " WHERE job_id = ? AND page_number = ? AND status = 'processing'",
                (_ENCODER.encode(result), claim.credits_reserved, seconds, now_ms(),
                 claim.job_id, claim.page_number))
            if cur.rowcount != 1:
                return False
            await ledger.charge(tx, claim.tenant_id, claim.credits_reserved, claim.job_id,
                                claim.page_number)
            await self._finish_if_done(tx, claim.job_id)
        return True

    async def fail_page(self, claim: ClaimedPage, error: ErrorDetail) -> bool:
        """Mark the page failed and refund its credits."""
        async with self.db.transaction() as tx:
            cur = await tx.execute(
                "UPDATE pages SET status = 'failed', error = ?, updated_at = ?"
                " WHERE job_id = ? AND page_number = ? AND status = 'processing'",
                (_ENCODER.encode(error), now_ms(), claim.job_id, claim.page_number))
            if cur.rowcount != 1:
                return False
            await ledger.refund(tx, claim.tenant_id, claim.credits_reserved, claim.job_id,
                                claim.page_number, note=error.code)
            await self._finish_if_done(tx, claim.job_id)
        return True

    async def release_page(self, claim: ClaimedPage, *, count_attempt: bool = True) -> None:
        """Put an in-flight page back in the queue: its worker died, or the server is stopping
        (`count_attempt=False`: a clean shutdown is not the page's fault)."""
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE pages SET status = 'pending', updated_at = ?, attempts = attempts - ?"
                " WHERE job_id = ? AND page_number = ? AND status = 'processing'",
                (now_ms(), 0 if count_attempt else 1, claim.job_id, claim.page_number))

    async def sweep(self, max_attempts: int) -> int:
        """At start-up nothing is in flight: requeue interrupted pages, fail exhausted ones."""
        async with self.db.transaction() as tx:
            async with tx.execute(
                "SELECT p.job_id, p.page_number, p.attempts, p.credits_reserved, j.tenant_id"
                " FROM pages p JOIN jobs j ON j.id = p.job_id WHERE p.status = 'processing'"
            ) as cur:
                rows = list(await cur.fetchall())
            for row in rows:
                if row["attempts"] < max_attempts:
                    await tx.execute(
                        "UPDATE pages SET status = 'pending' WHERE job_id = ? AND page_number = ?",
                        (row["job_id"], row["page_number"]))
                    continue
                error = ErrorDetail(code="page_attempts_exhausted",
                                    message=f"reading this page was interrupted {row['attempts']}"
                                    " times; it was given up")
                await tx.execute(
                    "UPDATE pages SET status = 'failed', error = ? WHERE job_id = ?"
                    " AND page_number = ?",
                    (_ENCODER.encode(error), row["job_id"], row["page_number"]))
                await ledger.refund(tx, row["tenant_id"], row["credits_reserved"],
                                    row["job_id"], row["page_number"], note=error.code)
                await self._finish_if_done(tx, row["job_id"])
        return len(rows)

    async def _finish_if_done(self, tx: aiosqlite.Connection, job_id: str) -> None:
        async with tx.execute(
            "SELECT SUM(status NOT IN ('completed', 'failed')) AS open,"
            " SUM(status = 'completed') AS done, SUM(credits_charged) AS used,"
            " MIN(CASE WHEN status = 'failed' THEN error END) AS first_error"
            " FROM pages WHERE job_id = ?", (job_id,),
        ) as cur:
            row = await cur.fetchone()
        assert row is not None
        if row["open"]:
            await tx.execute("UPDATE jobs SET credits_used = ? WHERE id = ?",
                             (row["used"], job_id))
            return
        error = None
        status = JobStatus.COMPLETED
        if not row["done"]:
            status = JobStatus.FAILED
            page_error = _ERROR_DECODER.decode(row["first_error"])
            error = _ENCODER.encode(ErrorDetail(
                code="all_pages_failed",
                message=f"no page could be read; first error: {page_error.message}",
                details={"page_error": page_error.code}))
        await tx.execute(
            "UPDATE jobs SET status = ?, credits_used = ?, completed_at = ?, error = ?"
            " WHERE id = ?", (status, row["used"], now_ms(), error, job_id))

    async def get_job(self, tenant_id: str, job_id: str) -> JobResult:
        """The job as its owner sees it; another tenant's job is not found."""
        job = await self.db.fetch_one(
            "SELECT * FROM jobs WHERE id = ? AND tenant_id = ?", (job_id, tenant_id))
        if job is None:
            raise JobNotFoundError()
        pages = await self.db.fetch_all(
            "SELECT page_number, status, result, error FROM pages"
            " WHERE job_id = ? AND status IN ('completed', 'failed') ORDER BY page_number",
            (job_id,))
        results = [
            _RESULT_DECODER.decode(p["result"]) if p["status"] == PageStatus.COMPLETED
            else failed_page(p["page_number"], _ERROR_DECODER.decode(p["error"]))
            for p in pages
        ]
        return JobResult(
            id=job["id"], status=JobStatus(job["status"]), pages_processed=len(results),
            page_count=job["page_count"], credits_reserved=job["credits_reserved"],
            credits_used=job["credits_used"], created_at=job["created_at"],
            completed_at=job["completed_at"],
            error=_ERROR_DECODER.decode(job["error"]) if job["error"] else None,
            results=results)

    async def queue_depth(self) -> int:
        row = await self.db.fetch_one(
            "SELECT COUNT(*) FROM pages WHERE status IN ('pending', 'processing')")
        return int(row[0]) if row else 0

    async def jobs_processed(self) -> int:
        row = await self.db.fetch_one(
            "SELECT COUNT(*) FROM jobs WHERE status IN ('completed', 'failed')")
        return int(row[0]) if row else 0

    async def mean_page_seconds(self) -> float | None:
        row = await self.db.fetch_one(
            "SELECT AVG(seconds) FROM (SELECT seconds FROM pages WHERE seconds IS NOT NULL"
            " ORDER BY updated_at DESC LIMIT 50)")
        return float(row[0]) if row and row[0] is not None else None
