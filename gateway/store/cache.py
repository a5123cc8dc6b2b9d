"""Quotes and the result cache.

A quote keeps the routes it priced, for its tenant, the upload's digest and the options that
shape the reading, until it expires: a submit that names it is planned by those routes. A job
remembers the same digest and options; a later submit of the same bytes with the same options
by the same tenant is answered from the newest such job whose every page was read, as a new
job that is complete at once. A deleted job answers nothing more.
"""

from __future__ import annotations

import msgspec

from gateway.clock import now_ms
from gateway.results import PageResult
from gateway.store import ledger, uploads
from gateway.store.admission import record_idempotency
from gateway.store.db import Database
from gateway.store.models import CacheKey, JobStatus, NewJob, PageStatus
from router.policy import PageRoute

_ENCODER = msgspec.json.Encoder()
_ROUTES = msgspec.json.Decoder(dict[int, PageRoute])
_RESULT = msgspec.json.Decoder(PageResult)


class StoredQuote(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    key: CacheKey
    routes: dict[int, PageRoute]
    credits: int
    expires_at: int  # epoch ms


class CachedPage(msgspec.Struct, frozen=True, kw_only=True):
    page_number: int
    tier: str
    credits: int  # what this answer costs
    result: PageResult


class CacheStore:
    """Quotes and cached answers of one database (`JobStore.cache`)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def save_quote(self, tenant_id: str, quote: StoredQuote) -> None:
        async with self.db.transaction() as tx:
            await tx.execute("DELETE FROM quotes WHERE expires_at < ?", (now_ms(),))
            await tx.execute(
                "INSERT INTO quotes (id, tenant_id, file_sha256, options_key, routes, credits,"
                " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    quote.id,
                    tenant_id,
                    quote.key.file_sha256,
                    quote.key.options_key,
                    _ENCODER.encode(quote.routes),
                    quote.credits,
                    now_ms(),
                    quote.expires_at,
                ),
            )

    async def get_quote(self, tenant_id: str, quote_id: str) -> StoredQuote | None:
        """The tenant's quote, expired or not (None: no such quote for this tenant)."""
        row = await self.db.fetch_one(
            "SELECT id, file_sha256, options_key, routes, credits, expires_at FROM quotes"
            " WHERE id = ? AND tenant_id = ?",
            (quote_id, tenant_id),
        )
        if row is None:
            return None
        return StoredQuote(
            id=row["id"],
            key=CacheKey(file_sha256=row["file_sha256"], options_key=row["options_key"]),
            routes=_ROUTES.decode(row["routes"]),
            credits=row["credits"],
            expires_at=row["expires_at"],
        )

    async def cached_pages(self, tenant_id: str, key: CacheKey) -> tuple[str, list[PageResult]]:
        """The newest completed job of the tenant with this key whose every page was read, and its
        page results in order; ("", []) when there is none."""
        row = await self.db.fetch_one(
            "SELECT j.id FROM jobs j WHERE j.tenant_id = ? AND j.file_sha256 = ?"
            " AND j.options_key = ? AND j.status = ? AND NOT EXISTS (SELECT 1 FROM pages p"
            " WHERE p.job_id = j.id AND p.status != ?) ORDER BY j.created_at DESC LIMIT 1",
            (
                tenant_id,
                key.file_sha256,
                key.options_key,
                JobStatus.COMPLETED,
                PageStatus.COMPLETED,
            ),
        )
        if row is None:
            return "", []
        pages = await self.db.fetch_all(
            "SELECT result FROM pages WHERE job_id = ? ORDER BY page_number", (row["id"],)
        )
        return row["id"], [_RESULT.decode(p["result"]) for p in pages]

    async def create_cached_job(
        self,
        job: NewJob,
        *,
        source_job_id: str,
        pages: list[CachedPage],
    ) -> int:
        """A job answered from the cache: complete at once, each page charged its cache price
        (reserved and charged in the same transaction). Returns the credits charged."""
        total = sum(p.credits for p in pages)
        now = now_ms()
        job_id, tenant_id, key = job.job_id, job.tenant_id, job.key
        content = await uploads.read_for(self.db, job.file_path)
        async with self.db.transaction() as tx:
            await record_idempotency(tx, job, now)
            await ledger.reserve(tx, tenant_id, total, job_id)
            await tx.execute(
                "INSERT INTO jobs (id, tenant_id, status, file_path, file_kind, file_name,"
                " page_count, credits_reserved, credits_used, created_at, started_at, completed_at,"
                " file_sha256, options_key, cached_from) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    tenant_id,
                    JobStatus.COMPLETED,
                    job.file_path,
                    job.kind,
                    job.file_name,
                    len(pages),
                    total,
                    total,
                    now,
                    now,
                    now,
                    key.file_sha256,
                    key.options_key,
                    source_job_id,
                ),
            )
            await tx.executemany(
                "INSERT INTO pages (job_id, page_number, status, credits_reserved, credits_charged,"
                " tier, result, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        job_id,
                        p.page_number,
                        PageStatus.COMPLETED,
                        p.credits,
                        p.credits,
                        p.tier,
                        _ENCODER.encode(p.result),
                        now,
                    )
                    for p in pages
                ],
            )
            for p in pages:
                await ledger.charge(tx, tenant_id, p.credits, job_id, p.page_number, p.tier)
            await uploads.save(tx, job_id, content, now)
        return total
