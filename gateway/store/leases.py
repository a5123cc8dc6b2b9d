"""How a page is claimed and held: the claiming query, the lease a reader extends, and a
job's completion once its last page is settled (`finish_if_done`, in the page's transaction).

A claimed page is `processing` with `lease_until` (epoch ms) and its attempt number; the
attempt number fences every later write, so a reader whose lease ran out (its node died, or
the database was unreachable too long) can neither extend it nor record a result.
"""

from __future__ import annotations

import msgspec

from gateway.clock import now_ms
from gateway.errors import ErrorDetail
from gateway.store.db import Database, Tx
from gateway.store.models import ACTIVE_JOB, OPEN_PAGE, ClaimedPage, JobStatus, PageStatus

_ENCODER = msgspec.json.Encoder()
_ERROR_DECODER = msgspec.json.Decoder(ErrorDetail)


def error_text(error: ErrorDetail) -> str:
    """An error as the TEXT its columns hold."""
    return _ENCODER.encode(error).decode()


def claim_sql(db: Database) -> str:
    """The first waiting page of the active job claimed longest ago (round-robin over jobs).
    Both engines walk `jobs_claim` in order and stop at the first job with a waiting page, so
    the cost does not grow with the queue; PostgreSQL skips pages other claimers hold."""
    active = ", ".join(f"'{status.value}'" for status in sorted(ACTIVE_JOB))  # the index's
    waiting = f"'{PageStatus.PENDING.value}'"  # literals, so the planner may use the indexes
    order = f"j.status IN ({active}) ORDER BY COALESCE(j.last_claimed_at, 0), j.created_at LIMIT 1"
    if db.lock_clause:
        return (
            "SELECT p.job_id, p.page_number, j.status AS job_status"  # noqa: S608 - enums
            " FROM jobs j CROSS JOIN LATERAL"
            " (SELECT q.job_id, q.page_number FROM pages q"
            f" WHERE q.job_id = j.id AND q.status = {waiting}"
            f" ORDER BY q.page_number LIMIT 1{db.lock_clause}) p WHERE {order}"
        )
    return (
        "SELECT j.id AS job_id, j.status AS job_status,"  # noqa: S608 - enums
        " (SELECT MIN(q.page_number) FROM pages q"
        f" WHERE q.job_id = j.id AND q.status = {waiting}) AS page_number FROM jobs j"
        f" WHERE EXISTS (SELECT 1 FROM pages q WHERE q.job_id = j.id"
        f" AND q.status = {waiting}) AND {order}"
    )


async def extend(db: Database, claim: ClaimedPage, lease_s: float) -> bool:
    """Extend the page's lease; False if the page is no longer this claim's (its lease ran out
    and another worker took it, or its job was cancelled)."""
    async with db.transaction() as tx:
        cur = await tx.execute(
            "UPDATE pages SET lease_until = ? WHERE job_id = ? AND page_number = ?"
            " AND status = ? AND attempts = ?",
            (
                now_ms() + int(lease_s * 1000),
                claim.job_id,
                claim.page_number,
                PageStatus.PROCESSING,
                claim.attempts,
            ),
        )
    return cur.rowcount == 1


async def finish_if_done(tx: Tx, job_id: str) -> None:
    """Count the job's pages: its credits used so far, and once none is open, its end."""
    # The job's row first: on PostgreSQL two pages of one job finishing at once would each
    # count the other as still open; the second waits here, then counts after the first.
    await tx.execute("UPDATE jobs SET credits_used = credits_used WHERE id = ?", (job_id,))
    async with tx.execute(
        "SELECT SUM(CASE WHEN status IN (?, ?) THEN 1 ELSE 0 END) AS open,"
        " SUM(CASE WHEN status = ? THEN 1 ELSE 0 END) AS done,"
        " SUM(credits_charged) AS used,"
        " MIN(CASE WHEN status = ? THEN error END) AS first_error"
        " FROM pages WHERE job_id = ?",
        (*OPEN_PAGE, PageStatus.COMPLETED, PageStatus.FAILED, job_id),
    ) as cur:
        row = await cur.fetchone()
    assert row is not None
    if row["open"]:
        await tx.execute("UPDATE jobs SET credits_used = ? WHERE id = ?", (row["used"], job_id))
        return
    error = None
    status = JobStatus.COMPLETED
    if not row["done"]:
        status = JobStatus.FAILED
        page_error = _ERROR_DECODER.decode(row["first_error"])
        error = error_text(
            ErrorDetail(
                code="all_pages_failed",
                message=f"no page could be read; first error: {page_error.message}",
                details={"page_error": page_error.code},
            )
        )
    await tx.execute(
        "UPDATE jobs SET status = ?, credits_used = ?, completed_at = ?, error = ? WHERE id = ?",
        (status, row["used"], now_ms(), error, job_id),
    )
