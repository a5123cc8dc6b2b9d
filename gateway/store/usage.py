"""What a tenant has and has used, read from the ledger: balance, and usage per day and tier.

A page read is one `charge` row, so pages and credits used both come from charges. Until
complexity routing lands every page is billed at the `simple` tier.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from gateway.clock import now_ms
from gateway.errors import BadRequestError
from gateway.store.db import Database
from gateway.store.ledger import LedgerKind
from gateway.store.tenants import Tenant
from router.policy import Tier

MAX_USAGE_DAYS = 366
DAY_MS = 86_400_000  # ledger times are epoch milliseconds; a UTC day is their integer quotient
EPOCH = dt.date(1970, 1, 1)


class UsageTotals(msgspec.Struct, frozen=True, kw_only=True):
    pages: int
    credits: int


class Balance(msgspec.Struct, frozen=True, kw_only=True):
    plan: str
    credits_available: int
    credits_reserved: int  # held for pages not read yet
    usage_last_24h: UsageTotals
    usage_this_month: UsageTotals  # since the first of the month, UTC


class DayUsage(msgspec.Struct, frozen=True, kw_only=True):
    date: str  # YYYY-MM-DD, UTC
    pages: int
    credits: int
    tiers: dict[str, UsageTotals]


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    from_date: str = msgspec.field(name="from")
    to_date: str = msgspec.field(name="to")
    total: UsageTotals
    days: list[DayUsage]  # days with usage only, oldest first


async def _charged_since(db: Database, tenant_id: str, since_ms: int) -> UsageTotals:
    row = await db.fetch_one(
        "SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM ledger"
        " WHERE tenant_id = ? AND kind = ? AND created_at >= ?",
        (tenant_id, LedgerKind.CHARGE, since_ms),
    )
    return UsageTotals(pages=row[0], credits=row[1]) if row else UsageTotals(pages=0, credits=0)


async def get_balance(db: Database, tenant: Tenant) -> Balance:
    now = dt.datetime.now(dt.UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    row = await db.fetch_one(
        "SELECT plan, credits_available, credits_reserved FROM tenants WHERE id = ?", (tenant.id,)
    )
    assert row is not None
    return Balance(
        plan=row["plan"],
        credits_available=row["credits_available"],
        credits_reserved=row["credits_reserved"],
        usage_last_24h=await _charged_since(db, tenant.id, now_ms() - 86_400_000),
        usage_this_month=await _charged_since(db, tenant.id, int(month_start.timestamp() * 1000)),
    )


def _parse_day(value: str | None, default: dt.date, name: str) -> dt.date:
    if value is None or not value.strip():
        return default
    try:
        return dt.date.fromisoformat(value.strip()[:10])
    except ValueError as exc:
        raise BadRequestError(f"{name} must be a date like 2026-11-01") from exc


async def get_usage(db: Database, tenant: Tenant, start: str | None, end: str | None) -> Usage:
    today = dt.datetime.now(dt.UTC).date()
    last = _parse_day(end, today, "to")
    first = _parse_day(start, last - dt.timedelta(days=29), "from")
    if first > last or (last - first).days >= MAX_USAGE_DAYS:
        raise BadRequestError(
            f"from must not be after to, and the range at most {MAX_USAGE_DAYS} days"
        )
    lo = int(dt.datetime.combine(first, dt.time(), dt.UTC).timestamp() * 1000)
    hi = int(dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), dt.UTC).timestamp() * 1000)
    rows = await db.fetch_all(
        "SELECT created_at / ? AS day, COALESCE(tier, ?) AS tier,"
        " COUNT(*) AS pages, SUM(amount) AS credits FROM ledger"
        " WHERE tenant_id = ? AND kind = ? AND created_at >= ? AND created_at < ?"
        " GROUP BY 1, 2 ORDER BY 1",
        (DAY_MS, Tier.SIMPLE, tenant.id, LedgerKind.CHARGE, lo, hi),
    )
    days: dict[str, dict[str, UsageTotals]] = {}
    for r in rows:
        day = (EPOCH + dt.timedelta(days=int(r["day"]))).isoformat()
        days.setdefault(day, {})[r["tier"]] = UsageTotals(pages=r["pages"], credits=r["credits"])
    day_rows = [
        DayUsage(
            date=day,
            pages=sum(t.pages for t in tiers.values()),
            credits=sum(t.credits for t in tiers.values()),
            tiers=tiers,
        )
        for day, tiers in days.items()
    ]
    return Usage(
        from_date=first.isoformat(),
        to_date=last.isoformat(),
        total=UsageTotals(
            pages=sum(d.pages for d in day_rows), credits=sum(d.credits for d in day_rows)
        ),
        days=day_rows,
    )
