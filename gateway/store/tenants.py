"""Tenants and their API keys. A key is shown once at creation and stored only as a hash.

Keys carry 256 bits of randomness, so a plain SHA-256 is a sound hash for them (no password
stretching needed) and lets authentication be one indexed lookup. Nothing is cached: a plan
change or a revoked key takes effect on the next request.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Collection

import msgspec

from gateway.clock import now_ms
from gateway.errors import (
    AccountExistsError,
    BadRequestError,
    KeyNotFoundError,
    TenantNotFoundError,
)
from gateway.store import ledger
from gateway.store.db import ConstraintError, Database, Row, Tx

KEY_PREFIX = "ocrg_"
PLANS = ("free", "starter", "professional", "business")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")


class Tenant(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    plan: str
    email: str | None
    credits_available: int
    credits_reserved: int
    created_at: int
    allow_remote: bool = True  # false: this tenant's pages never go to remote providers


class ApiKeyInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    tenant_id: str
    prefix: str  # the first characters, to recognize a key without revealing it
    created_at: int
    revoked_at: int | None


class Authenticated(msgspec.Struct, frozen=True, kw_only=True):
    tenant: Tenant
    key_id: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _tenant(row: Row) -> Tenant:
    return Tenant(
        id=row["id"],
        name=row["name"],
        plan=row["plan"],
        email=row["email"],
        credits_available=row["credits_available"],
        credits_reserved=row["credits_reserved"],
        created_at=row["created_at"],
        allow_remote=bool(row["allow_remote"]),
    )


def check_plan(plan: str, plans: Collection[str]) -> None:
    if plan not in plans:
        raise BadRequestError(f"unknown plan {plan!r}", plans=sorted(plans))


async def create_tenant(
    db: Database, name: str, plan: str, credits: int, email: str | None = None
) -> tuple[Tenant, str]:
    """Create a tenant with an opening grant and one API key; returns the key in clear, once."""
    if credits < 0:
        raise BadRequestError("credits must be >= 0")
    tenant_id = str(uuid.uuid4())
    key = new_api_key()
    now = now_ms()
    try:
        async with db.transaction() as tx:
            await tx.execute(
                "INSERT INTO tenants (id, name, plan, email, created_at) VALUES (?, ?, ?, ?, ?)",
                (tenant_id, name, plan, email, now),
            )
            await _insert_key(tx, tenant_id, key, now)
            if credits:
                await ledger.grant(tx, tenant_id, credits, note="opening balance")
    except ConstraintError as exc:
        raise AccountExistsError() from exc
    return Tenant(
        id=tenant_id,
        name=name,
        plan=plan,
        email=email,
        credits_available=credits,
        credits_reserved=0,
        created_at=now,
    ), key


async def signup(db: Database, email: str, plan: str, credits: int) -> tuple[Tenant, str]:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise BadRequestError("invalid email address")
    return await create_tenant(db, email, plan, credits, email=email)


async def _insert_key(tx: Tx, tenant_id: str, key: str, now: int) -> str:
    key_id = str(uuid.uuid4())
    await tx.execute(
        "INSERT INTO api_keys (id, tenant_id, key_hash, prefix, created_at) VALUES (?, ?, ?, ?, ?)",
        (key_id, tenant_id, hash_key(key), key[:12], now),
    )
    return key_id


async def authenticate(db: Database, key: str) -> Authenticated | None:
    row = await db.fetch_one(
        "SELECT t.*, k.id AS key_id FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"
        " WHERE k.key_hash = ? AND k.revoked_at IS NULL",
        (hash_key(key),),
    )
    if row is None:
        return None
    return Authenticated(tenant=_tenant(row), key_id=row["key_id"])


async def get_tenant(db: Database, tenant_id: str) -> Tenant:
    row = await db.fetch_one("SELECT * FROM tenants WHERE id = ?", (tenant_id,))
    if row is None:
        raise TenantNotFoundError()
    return _tenant(row)


async def list_tenants(db: Database, limit: int = 100, offset: int = 0) -> list[Tenant]:
    rows = await db.fetch_all(
        "SELECT * FROM tenants ORDER BY created_at DESC LIMIT ? OFFSET ?", (limit, offset)
    )
    return [_tenant(r) for r in rows]


async def update_tenant(
    db: Database, tenant_id: str, *, plan: str | None = None, allow_remote: bool | None = None
) -> Tenant:
    async with db.transaction() as tx:
        cur = await tx.execute(
            "UPDATE tenants SET plan = COALESCE(?, plan),"
            " allow_remote = COALESCE(?, allow_remote) WHERE id = ?",
            (plan, None if allow_remote is None else int(allow_remote), tenant_id),
        )
        if cur.rowcount != 1:
            raise TenantNotFoundError()
    return await get_tenant(db, tenant_id)


async def set_plan(db: Database, tenant_id: str, plan: str) -> Tenant:
    return await update_tenant(db, tenant_id, plan=plan)


async def grant_credits(db: Database, tenant_id: str, amount: int, note: str) -> Tenant:
    if amount < 1:
        raise BadRequestError("amount must be >= 1")
    async with db.transaction() as tx:
        async with tx.execute("SELECT 1 FROM tenants WHERE id = ?", (tenant_id,)) as cur:
            if await cur.fetchone() is None:
                raise TenantNotFoundError()
        await ledger.grant(tx, tenant_id, amount, note=note)
    return await get_tenant(db, tenant_id)


async def create_key(db: Database, tenant_id: str) -> tuple[ApiKeyInfo, str]:
    key = new_api_key()
    now = now_ms()
    async with db.transaction() as tx:
        async with tx.execute("SELECT 1 FROM tenants WHERE id = ?", (tenant_id,)) as cur:
            if await cur.fetchone() is None:
                raise TenantNotFoundError()
        key_id = await _insert_key(tx, tenant_id, key, now)
    return ApiKeyInfo(
        id=key_id, tenant_id=tenant_id, prefix=key[:12], created_at=now, revoked_at=None
    ), key


async def list_keys(db: Database, tenant_id: str) -> list[ApiKeyInfo]:
    await get_tenant(db, tenant_id)
    rows = await db.fetch_all(
        "SELECT id, tenant_id, prefix, created_at, revoked_at FROM api_keys"
        " WHERE tenant_id = ? ORDER BY created_at",
        (tenant_id,),
    )
    return [ApiKeyInfo(**dict(r)) for r in rows]


async def revoke_key(db: Database, key_id: str) -> None:
    async with db.transaction() as tx:
        cur = await tx.execute(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
            (now_ms(), key_id),
        )
        if cur.rowcount != 1:
            raise KeyNotFoundError()
