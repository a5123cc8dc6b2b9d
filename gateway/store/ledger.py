"""Credit movements. Every change of a balance is a ledger row written in the same transaction.

Balances: `available` can be spent; `reserved` is held for pages in flight.
    grant:   + available
    reserve: available -> reserved   (at submit, for every page)
    charge:  reserved -> spent       (a page was read)
    refund:  reserved -> available   (a page failed or was not needed)
Invariant: available + reserved == sum(grants) - sum(charges).
"""

from __future__ import annotations

import enum

from gateway import metrics
from gateway.clock import now_ms
from gateway.errors import InsufficientCreditsError
from gateway.store.db import Tx


class LedgerKind(enum.StrEnum):
    """The movement a ledger row records (the table above)."""

    GRANT = "grant"
    RESERVE = "reserve"
    CHARGE = "charge"
    REFUND = "refund"


async def _record(
    tx: Tx,
    tenant_id: str,
    kind: LedgerKind,
    amount: int,
    job_id: str | None = None,
    page_number: int | None = None,
    note: str | None = None,
    tier: str | None = None,
) -> None:
    await tx.execute(
        "INSERT INTO ledger (tenant_id, job_id, page_number, kind, amount, note, tier,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (tenant_id, job_id, page_number, kind, amount, note, tier, now_ms()),
    )
    metrics.credits_moved(kind, amount)  # counted when recorded (a rolled-back one too: rare)


async def grant(tx: Tx, tenant_id: str, amount: int, note: str) -> None:
    await tx.execute(
        "UPDATE tenants SET credits_available = credits_available + ? WHERE id = ?",
        (amount, tenant_id),
    )
    await _record(tx, tenant_id, LedgerKind.GRANT, amount, note=note)


async def reserve(tx: Tx, tenant_id: str, amount: int, job_id: str) -> None:
    """Hold `amount` for a job, or raise InsufficientCreditsError; never goes negative."""
    async with tx.execute(
        "UPDATE tenants SET credits_available = credits_available - ?,"
        " credits_reserved = credits_reserved + ?"
        " WHERE id = ? AND credits_available >= ? RETURNING credits_available",
        (amount, amount, tenant_id, amount),
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        async with tx.execute(
            "SELECT credits_available FROM tenants WHERE id = ?", (tenant_id,)
        ) as cur:
            balance = await cur.fetchone()
        available = int(balance[0]) if balance else 0
        raise InsufficientCreditsError(
            f"this document needs {amount} credits and {available} are available",
            required=amount,
            available=available,
        )
    await _record(tx, tenant_id, LedgerKind.RESERVE, amount, job_id=job_id)


async def charge(
    tx: Tx, tenant_id: str, amount: int, job_id: str, page_number: int, tier: str
) -> None:
    await tx.execute(
        "UPDATE tenants SET credits_reserved = credits_reserved - ? WHERE id = ?",
        (amount, tenant_id),
    )
    await _record(
        tx, tenant_id, LedgerKind.CHARGE, amount, job_id=job_id, page_number=page_number, tier=tier
    )


async def refund(
    tx: Tx,
    tenant_id: str,
    amount: int,
    job_id: str,
    page_number: int | None,
    note: str,
) -> None:
    await tx.execute(
        "UPDATE tenants SET credits_reserved = credits_reserved - ?,"
        " credits_available = credits_available + ? WHERE id = ?",
        (amount, amount, tenant_id),
    )
    await _record(
        tx, tenant_id, LedgerKind.REFUND, amount, job_id=job_id, page_number=page_number, note=note
    )
