"""The persistent job queue: jobs, their pages, and page results.

A page is claimed in one transaction under a lease its reader extends (`leases`); its result,
its charge and the job's completion are written in one transaction, fenced by the attempt
number, so a crash at any point (of a process or of a whole node) leaves every page either
waiting (read again once its lease runs out, or at once when an embedded server restarts) or
finished exactly once, and charged at most once. Pages are claimed round-robin across jobs,
so one large document does not starve the others.

`JobStore` is the one object callers hold. The page flow, cancelling and deleting are here;
admitting a job is `admission`, reading jobs back (and the long poll) is `reads`. A change is
told to this node's long polls and, on PostgreSQL, to every other node's (`JOB_CHANNEL`).
"""

from __future__ import annotations

import uuid

import msgspec

from gateway.clock import now_ms
from gateway.errors import ErrorDetail, JobNotCancellableError, JobNotFoundError
from gateway.results import PageResult
from gateway.store import admission, leases, ledger, reads, retention, stats
from gateway.store.cache import CacheStore
from gateway.store.db import Database, Tx
from gateway.store.leases import error_text, finish_if_done
from gateway.store.models import (
    ACTIVE_JOB,
    OPEN_PAGE,
    TERMINAL_JOB,
    ClaimedPage,
    Idempotency,
    JobList,
    JobResult,
    JobStatus,
    JobSummary,
    NewJob,
    PageStatus,
)
from gateway.store.reads import JobPage
from router.policy import PageRoute

_ERROR_DECODER = msgspec.json.Decoder(ErrorDetail)
_ROUTE_DECODER = msgspec.json.Decoder(PageRoute)
_ENCODER = msgspec.json.Encoder()


JOB_CHANNEL = "ocr_gateway_jobs"  # a job changed: its id (long polls wake on every node)
QUEUE_CHANNEL = "ocr_gateway_queue"  # pages were queued (workers wake on every node)


def new_job_id() -> str:
    return str(uuid.uuid4())


class JobStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.events = reads.JobEvents()
        self.cache = CacheStore(db)  # quotes and answers from earlier jobs

    async def claim_page(self, lease_s: float) -> ClaimedPage | None:
        """The next page to read, leased to the caller for `lease_s` seconds (see `extend`)."""
        now = now_ms()
        async with self.db.transaction() as tx:
            async with tx.execute(leases.claim_sql(self.db)) as cur:
                next_page = await cur.fetchone()
            if next_page is None:
                return None
            async with tx.execute(
                "UPDATE pages SET status = ?, attempts = attempts + 1, updated_at = ?,"
                " lease_until = ? WHERE job_id = ? AND page_number = ? AND status = ?"
                " RETURNING job_id, page_number, attempts, credits_reserved, tier, route",
                (
                    PageStatus.PROCESSING,
                    now,
                    now + int(lease_s * 1000),
                    next_page["job_id"],
                    next_page["page_number"],
                    PageStatus.PENDING,
                ),
            ) as cur:
                page = await cur.fetchone()
            assert page is not None  # locked by the SELECT (PostgreSQL), or the one writer
            async with tx.execute(
                "UPDATE jobs SET status = ?, started_at = COALESCE(started_at, ?),"
                " last_claimed_at = ? WHERE id = ? RETURNING tenant_id, file_path, file_kind",
                (JobStatus.PROCESSING, now, now, page["job_id"]),
            ) as cur:
                job = await cur.fetchone()
            started = next_page["job_status"] != JobStatus.PROCESSING
            if started:  # the only change a long poll sees in a claim
                await self._publish(tx, page["job_id"])
        assert job is not None
        if started:
            self.events.notify(page["job_id"])
        return ClaimedPage(
            job_id=page["job_id"],
            tenant_id=job["tenant_id"],
            page_number=page["page_number"],
            attempts=page["attempts"],
            credits_reserved=page["credits_reserved"],
            tier=page["tier"],
            file_path=job["file_path"],
            file_kind=job["file_kind"],
            route=_ROUTE_DECODER.decode(page["route"]) if page["route"] else None,
        )

    async def extend(self, claim: ClaimedPage, lease_s: float) -> bool:
        """Extend the page's lease; False if the page is no longer this claim's."""
        return await leases.extend(self.db, claim, lease_s)

    async def complete_page(self, claim: ClaimedPage, result: PageResult, seconds: float) -> bool:
        """Store the result and charge the page; False if the page was no longer in flight."""
        async with self.db.transaction() as tx:
            cur = await tx.execute(
                "UPDATE pages SET status = ?, result = ?, credits_charged = ?,"
                " seconds = ?, updated_at = ?"
                " WHERE job_id = ? AND page_number = ? AND status = ? AND attempts = ?",
                (
                    PageStatus.COMPLETED,
                    _ENCODER.encode(result),
                    claim.credits_reserved,
                    seconds,
                    now_ms(),
                    claim.job_id,
                    claim.page_number,
                    PageStatus.PROCESSING,
                    claim.attempts,
                ),
            )
            if cur.rowcount != 1:
                return False
            await ledger.charge(
                tx,
                claim.tenant_id,
                claim.credits_reserved,
                claim.job_id,
                claim.page_number,
                claim.tier,
            )
            await finish_if_done(tx, claim.job_id)
            await self._publish(tx, claim.job_id)
        self.events.notify(claim.job_id)
        return True

    async def fail_page(self, claim: ClaimedPage, error: ErrorDetail) -> bool:
        """Mark the page failed and refund its credits."""
        async with self.db.transaction() as tx:
            cur = await tx.execute(
                "UPDATE pages SET status = ?, error = ?, updated_at = ?"
                " WHERE job_id = ? AND page_number = ? AND status = ? AND attempts = ?",
                (
                    PageStatus.FAILED,
                    error_text(error),
                    now_ms(),
                    claim.job_id,
                    claim.page_number,
                    PageStatus.PROCESSING,
                    claim.attempts,
                ),
            )
            if cur.rowcount != 1:
                return False
            await ledger.refund(
                tx,
                claim.tenant_id,
                claim.credits_reserved,
                claim.job_id,
                claim.page_number,
                note=error.code,
            )
            await finish_if_done(tx, claim.job_id)
            await self._publish(tx, claim.job_id)
        self.events.notify(claim.job_id)
        return True

    async def release_page(self, claim: ClaimedPage, *, count_attempt: bool = True) -> None:
        """Put an in-flight page back in the queue: its worker died, or the server is stopping
        (`count_attempt=False`: a clean shutdown is not the page's fault)."""
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE pages SET status = ?, updated_at = ?, attempts = attempts - ?,"
                " lease_until = NULL"
                " WHERE job_id = ? AND page_number = ? AND status = ? AND attempts = ?",
                (
                    PageStatus.PENDING,
                    now_ms(),
                    0 if count_attempt else 1,
                    claim.job_id,
                    claim.page_number,
                    PageStatus.PROCESSING,
                    claim.attempts,
                ),
            )

    async def requeue_expired(self, max_attempts: int, *, all_in_flight: bool = False) -> int:
        """Pages whose lease ran out (their worker's node died) go back to the queue, or fail
        and are refunded once they have been tried `max_attempts` times. `all_in_flight`: every
        page being read counts as expired (an embedded server starting: nothing else reads)."""
        expired_before = 2**62 if all_in_flight else now_ms()
        async with self.db.transaction() as tx:
            async with tx.execute(
                "SELECT p.job_id, p.page_number, p.attempts, p.credits_reserved, j.tenant_id"  # noqa: S608
                " FROM pages p JOIN jobs j ON j.id = p.job_id WHERE p.status = ?"
                " AND COALESCE(p.lease_until, 0) < ?"
                + (" FOR UPDATE OF p SKIP LOCKED" if self.db.lock_clause else ""),
                (PageStatus.PROCESSING, expired_before),
            ) as cur:
                rows = list(await cur.fetchall())
            for row in rows:
                if row["attempts"] < max_attempts:
                    await tx.execute(
                        "UPDATE pages SET status = ?, lease_until = NULL"
                        " WHERE job_id = ? AND page_number = ?",
                        (PageStatus.PENDING, row["job_id"], row["page_number"]),
                    )
                    continue
                error = ErrorDetail(
                    code="page_attempts_exhausted",
                    message=f"reading this page was interrupted {row['attempts']}"
                    " times; it was given up",
                )
                await tx.execute(
                    "UPDATE pages SET status = ?, error = ? WHERE job_id = ? AND page_number = ?",
                    (PageStatus.FAILED, error_text(error), row["job_id"], row["page_number"]),
                )
                await ledger.refund(
                    tx,
                    row["tenant_id"],
                    row["credits_reserved"],
                    row["job_id"],
                    row["page_number"],
                    note=error.code,
                )
                await finish_if_done(tx, row["job_id"])
        for job_id in {row["job_id"] for row in rows}:
            await self._changed(job_id)
        return len(rows)

    async def cancel_job(self, tenant_id: str, job_id: str) -> None:
        """Pages not yet read are not read and their credits are refunded at once. A page being
        read right now is discarded when it finishes, uncharged."""
        async with self.db.transaction() as tx:
            async with tx.execute(
                "SELECT status FROM jobs WHERE id = ? AND tenant_id = ?", (job_id, tenant_id)
            ) as cur:
                job = await cur.fetchone()
            if job is None:
                raise JobNotFoundError()
            if job["status"] in TERMINAL_JOB:
                raise JobNotCancellableError(f"the job is already {job['status']}")
            await self._cancel_open_pages(tx, tenant_id, job_id)
        await self._changed(job_id)

    async def _cancel_open_pages(self, tx: Tx, tenant_id: str, job_id: str) -> None:
        async with tx.execute(
            "UPDATE pages SET status = ?, updated_at = ? WHERE job_id = ?"
            " AND status IN (?, ?) RETURNING page_number, credits_reserved",
            (PageStatus.CANCELLED, now_ms(), job_id, *OPEN_PAGE),
        ) as cur:
            cancelled = list(await cur.fetchall())
        for page in cancelled:
            await ledger.refund(
                tx,
                tenant_id,
                page["credits_reserved"],
                job_id,
                page["page_number"],
                note="cancelled",
            )
        async with tx.execute(
            "SELECT COALESCE(SUM(credits_charged), 0) FROM pages WHERE job_id = ?", (job_id,)
        ) as cur:
            used = await cur.fetchone()
        await tx.execute(
            "UPDATE jobs SET status = ?, completed_at = ?, credits_used = ?"
            " WHERE id = ? AND status IN (?, ?)",
            (JobStatus.CANCELLED, now_ms(), used[0] if used else 0, job_id, *ACTIVE_JOB),
        )

    async def delete_job(self, tenant_id: str, job_id: str) -> str:
        """Cancel the job if it runs, then remove it and its results; returns the upload path
        for the caller to delete. Ledger rows stay: they are the account's history."""
        async with self.db.transaction() as tx:
            async with tx.execute(
                "SELECT status, file_path FROM jobs WHERE id = ? AND tenant_id = ?",
                (job_id, tenant_id),
            ) as cur:
                job = await cur.fetchone()
            if job is None:
                raise JobNotFoundError()
            if job["status"] not in TERMINAL_JOB:
                await self._cancel_open_pages(tx, tenant_id, job_id)
            await tx.execute("DELETE FROM pages WHERE job_id = ?", (job_id,))
            await tx.execute("DELETE FROM idempotency_keys WHERE job_id = ?", (job_id,))
            await tx.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        await self._changed(job_id)
        path: str = job["file_path"]
        return path

    # Thin delegates, so callers keep one object: the queries live in their own modules.

    async def find_idempotent(self, tenant_id: str, idem: Idempotency) -> str | None:
        """The job a retry with this key refers to; 409 if the key came with another file."""
        return await admission.find_idempotent(self.db, tenant_id, idem)

    async def create_job(
        self, job: NewJob, routes: dict[int, PageRoute], *, max_active_jobs: int
    ) -> int:
        """Admit the job: see `admission.create_job`. Returns the credits reserved."""
        reserved = await admission.create_job(self.db, job, routes, max_active_jobs=max_active_jobs)
        if self.db.shared:
            await self.db.publish(QUEUE_CHANNEL, job.job_id)
        return reserved

    async def _publish(self, tx: Tx, job_id: str) -> None:
        """Tell other nodes (PostgreSQL) that the job changed, when `tx` commits; this node's
        long polls are woken by the caller after the commit (`events.notify`)."""
        await self.db.publish_at_commit(tx, JOB_CHANNEL, job_id)

    async def _changed(self, job_id: str) -> None:
        """Wake this node's long polls on the job, and (PostgreSQL) every other node's."""
        self.events.notify(job_id)
        if self.db.shared:
            await self.db.publish(JOB_CHANNEL, job_id)

    async def get_job(self, tenant_id: str, job_id: str) -> JobResult:
        """The job as its owner sees it; another tenant's job is not found."""
        return await reads.get_job(self.db, tenant_id, job_id)

    async def wait_for_change(self, tenant_id: str, job_id: str, wait_s: float) -> JobResult:
        """The job once its status or page count changes, or after `wait_s` seconds."""
        return await reads.wait_for_change(self.db, self.events, tenant_id, job_id, wait_s)

    async def list_jobs(
        self,
        tenant_id: str,
        *,
        limit: int,
        offset: int,
        status: JobStatus | None,
        job_id: str | None = None,
    ) -> JobList:
        return await reads.list_jobs(
            self.db, tenant_id, limit=limit, offset=offset, status=status, job_id=job_id
        )

    async def get_summary(self, tenant_id: str, job_id: str) -> JobSummary:
        return await reads.get_summary(self.db, tenant_id, job_id)

    async def get_job_page(self, tenant_id: str, job_id: str, page_number: int) -> JobPage:
        """A page of the job and the job's upload; another tenant's job is not found."""
        return await reads.get_job_page(self.db, tenant_id, job_id, page_number)

    async def expired_jobs(self, before_ms: int) -> list[tuple[str, str]]:
        """(tenant_id, job_id) of finished jobs completed before `before_ms`."""
        return await retention.expired_jobs(self.db, before_ms)

    async def known_uploads(self) -> set[str]:
        return await retention.known_uploads(self.db)

    async def queue_depth(self) -> int:
        return await stats.queue_depth(self.db)

    async def jobs_processed(self) -> int:
        return await stats.jobs_processed(self.db)

    async def mean_page_seconds(self) -> float | None:
        return await stats.mean_page_seconds(self.db)
