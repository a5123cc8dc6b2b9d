"""Admitting a job to the queue: its Idempotency-Key, the plan's cap on active jobs, the
credits it reserves and its pages, all in one transaction."""

from __future__ import annotations

import msgspec

from gateway.clock import now_ms
from gateway.errors import IdempotencyKeyReusedError, TooManyJobsError
from gateway.store import ledger, uploads
from gateway.store.db import Database, Tx
from gateway.store.models import ACTIVE_JOB, Idempotency, JobStatus, NewJob, PageStatus
from router.policy import PageRoute

_ENCODER = msgspec.json.Encoder()


async def find_idempotent(db: Database, tenant_id: str, idem: Idempotency) -> str | None:
    """The job a retry with this key refers to; 409 if the key came with another file."""
    row = await db.fetch_one(
        "SELECT file_sha256, job_id FROM idempotency_keys WHERE tenant_id = ? AND key = ?",
        (tenant_id, idem.key),
    )
    if row is None:
        return None
    if row["file_sha256"] != idem.file_sha256:
        raise IdempotencyKeyReusedError()
    job_id: str = row["job_id"]
    return job_id


async def record_idempotency(tx: Tx, job: NewJob, now: int) -> None:
    """Remember the job's Idempotency-Key, if it came with one (in the job's transaction)."""
    if job.idempotency is not None:
        await tx.execute(
            "INSERT INTO idempotency_keys (tenant_id, key, file_sha256, job_id, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (job.tenant_id, job.idempotency.key, job.idempotency.file_sha256, job.job_id, now),
        )


async def lock_tenant(tx: Tx, tenant_id: str) -> None:
    """Hold the tenant's row to the end of the transaction: admissions of one tenant on several
    nodes (PostgreSQL) then count its active jobs one after the other, never both under the cap."""
    await tx.execute("UPDATE tenants SET plan = plan WHERE id = ?", (tenant_id,))


async def create_job(
    db: Database, job: NewJob, routes: dict[int, PageRoute], *, max_active_jobs: int
) -> int:
    """Insert the job and its pages and reserve their credits; returns credits reserved.

    Raises InsufficientCreditsError, TooManyJobsError, or ConstraintError when a
    concurrent request with the same Idempotency-Key won the race.
    """
    reserved = sum(route.credits for route in routes.values())
    now = now_ms()
    job_id, tenant_id = job.job_id, job.tenant_id
    content = await uploads.read_for(db, job.file_path)
    async with db.transaction() as tx:
        await record_idempotency(tx, job, now)
        await lock_tenant(tx, tenant_id)
        async with tx.execute(
            "SELECT COUNT(*) FROM jobs WHERE tenant_id = ? AND status IN (?, ?)",
            (tenant_id, *ACTIVE_JOB),
        ) as cur:
            row = await cur.fetchone()
        if row is not None and row[0] >= max_active_jobs:
            raise TooManyJobsError(
                f"{row[0]} jobs are already pending or processing; the plan allows "
                f"{max_active_jobs} at once",
                max_concurrent_jobs=max_active_jobs,
            )
        await ledger.reserve(tx, tenant_id, reserved, job_id)
        await tx.execute(
            "INSERT INTO jobs (id, tenant_id, status, file_path, file_kind, file_name,"
            " page_count, credits_reserved, created_at, file_sha256, options_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job_id,
                tenant_id,
                JobStatus.PENDING,
                job.file_path,
                job.kind,
                job.file_name,
                len(routes),
                reserved,
                now,
                job.key.file_sha256,
                job.key.options_key,
            ),
        )
        await tx.executemany(
            "INSERT INTO pages (job_id, page_number, status, credits_reserved, tier, route,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (job_id, n, PageStatus.PENDING, r.credits, r.tier.value, _ENCODER.encode(r), now)
                for n, r in sorted(routes.items())
            ],
        )
        await uploads.save(tx, job_id, content, now)
    return reserved
