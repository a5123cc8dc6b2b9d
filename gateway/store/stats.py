"""Counts for `/health` and the submission's completion estimate. Read-only."""

from __future__ import annotations

from gateway.store.db import Database
from gateway.store.models import OPEN_PAGE, PROCESSED_JOB, PageStatus

RECENT_PAGES = 50  # the completion estimate follows the pages read last


async def queue_depth(db: Database) -> int:
    """Pages waiting or being read."""
    row = await db.fetch_one("SELECT COUNT(*) FROM pages WHERE status IN (?, ?)", (*OPEN_PAGE,))
    return int(row[0]) if row else 0


async def jobs_processed(db: Database) -> int:
    """Jobs read to the end, completed or failed (not cancelled)."""
    row = await db.fetch_one("SELECT COUNT(*) FROM jobs WHERE status IN (?, ?)", (*PROCESSED_JOB,))
    return int(row[0]) if row else 0


async def mean_page_seconds(db: Database) -> float | None:
    """Mean reading time of the last pages read; None before the first."""
    # `seconds IS NOT NULL` is also the condition of the partial index pages_timed, which lets
    # this read the newest rows only instead of sorting every page ever stored.
    row = await db.fetch_one(
        "SELECT AVG(seconds) FROM (SELECT seconds FROM pages WHERE seconds IS NOT NULL"
        " ORDER BY updated_at DESC LIMIT ?) AS recent",
        (RECENT_PAGES,),
    )
    return float(row[0]) if row and row[0] is not None else None


async def oldest_waiting_ms(db: Database) -> int | None:
    """When the job of the oldest page still waiting to be read was submitted (epoch ms)."""
    row = await db.fetch_one(
        "SELECT MIN(j.created_at) FROM pages p JOIN jobs j ON j.id = p.job_id WHERE p.status = ?",
        (PageStatus.PENDING,),
    )
    return int(row[0]) if row and row[0] is not None else None
