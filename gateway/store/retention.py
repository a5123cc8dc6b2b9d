"""What the retention sweep reads: finished jobs past their time, and the uploads jobs hold.

Deleting a job is the queue's (`JobStore.delete_job`: it cancels a running one first).
"""

from __future__ import annotations

from gateway.store.db import Database
from gateway.store.models import TERMINAL_JOB


async def expired_jobs(db: Database, before_ms: int) -> list[tuple[str, str]]:
    """(tenant_id, job_id) of finished jobs completed before `before_ms`."""
    rows = await db.fetch_all(
        "SELECT tenant_id, id FROM jobs WHERE status IN (?, ?, ?) AND completed_at < ?",
        (*TERMINAL_JOB, before_ms),
    )
    return [(r["tenant_id"], r["id"]) for r in rows]


async def known_uploads(db: Database) -> set[str]:
    """The upload path of every job still stored: any other upload is an orphan."""
    rows = await db.fetch_all("SELECT file_path FROM jobs")
    return {r["file_path"] for r in rows}
