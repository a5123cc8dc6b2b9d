"""What the compatible API surfaces record and read beyond the native tables: which surface a
job came through (`compat_jobs`), the tasks a surface expires, and an account's ledger totals.
"""

from __future__ import annotations

import msgspec

from gateway.clock import now_ms
from gateway.store.db import Database
from gateway.store.ledger import LedgerKind
from gateway.store.models import TERMINAL_JOB


class LedgerTotals(msgspec.Struct, frozen=True, kw_only=True):
    """An account's credits: granted = available + reserved + charged (the ledger invariant)."""

    granted: int
    charged: int
    reserved: int
    available: int


async def record_job(db: Database, tenant_id: str, job_id: str, surface: str) -> None:
    """Remember that `job_id` came through `surface` (a job answered from the cache too)."""
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO compat_jobs (job_id, tenant_id, surface, created_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (job_id) DO NOTHING",
            (job_id, tenant_id, surface, now_ms()),
        )


async def job_surface(db: Database, tenant_id: str, job_id: str) -> str | None:
    """The surface the tenant's job came through; None for a native job or another tenant's."""
    row = await db.fetch_one(
        "SELECT c.surface FROM compat_jobs c JOIN jobs j ON j.id = c.job_id"
        " WHERE c.job_id = ? AND c.tenant_id = ? AND j.tenant_id = ?",
        (job_id, tenant_id, tenant_id),
    )
    return str(row["surface"]) if row is not None else None


async def finished_before(db: Database, surface: str, before_ms: int) -> list[tuple[str, str]]:
    """(tenant_id, job_id) of the surface's jobs that finished before `before_ms`."""
    rows = await db.fetch_all(
        "SELECT j.tenant_id, j.id FROM compat_jobs c JOIN jobs j ON j.id = c.job_id"
        " WHERE c.surface = ? AND j.status IN (?, ?, ?) AND j.completed_at < ?",
        (surface, *TERMINAL_JOB, before_ms),
    )
    return [(r["tenant_id"], r["id"]) for r in rows]


async def ledger_totals(db: Database, tenant_id: str) -> LedgerTotals:
    row = await db.fetch_one(
        "SELECT t.credits_available, t.credits_reserved,"
        " COALESCE((SELECT SUM(amount) FROM ledger WHERE tenant_id = t.id AND kind = ?), 0),"
        " COALESCE((SELECT SUM(amount) FROM ledger WHERE tenant_id = t.id AND kind = ?), 0)"
        " FROM tenants t WHERE t.id = ?",
        (LedgerKind.GRANT, LedgerKind.CHARGE, tenant_id),
    )
    assert row is not None
    return LedgerTotals(available=row[0], reserved=row[1], granted=row[2], charged=row[3])
