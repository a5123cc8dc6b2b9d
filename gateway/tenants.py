"""Tenants and their API keys. A key is shown once at creation and stored only as a hash.

Keys carry 256 bits of randomness, so a plain SHA-256 is a sound hash for them (no password
stretching needed) and lets authentication be one indexed lookup.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
import uuid

import msgspec

from gateway import ledger
from gateway.clock import now_ms
from gateway.db import Database

KEY_PREFIX = "ocrg_"


class Plan(enum.StrEnum):
    FREE = "free"
    STARTER = "starter"
    PROFESSIONAL = "professional"
    BUSINESS = "business"


class Tenant(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    plan: Plan
    credits_available: int
    credits_reserved: int


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


async def create_tenant(db: Database, name: str, plan: Plan, credits: int) -> tuple[Tenant, str]:
    """Create a tenant with an opening grant and one API key; returns the key in clear, once."""
    if credits < 0:
        raise ValueError("credits must be >= 0")
    tenant_id = str(uuid.uuid4())
    key = new_api_key()
    now = now_ms()
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO tenants (id, name, plan, created_at) VALUES (?, ?, ?, ?)",
            (tenant_id, name, plan.value, now))
        await tx.execute(
            "INSERT INTO api_keys (id, tenant_id, key_hash, prefix, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (str(uuid.uuid4()), tenant_id, hash_key(key), key[:12], now))
        if credits:
            await ledger.grant(tx, tenant_id, credits, note="opening balance")
    return Tenant(id=tenant_id, name=name, plan=plan, credits_available=credits,
                  credits_reserved=0), key


async def find_tenant_by_key(db: Database, key: str) -> Tenant | None:
    row = await db.fetch_one(
        "SELECT t.id, t.name, t.plan, t.credits_available, t.credits_reserved"
        " FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"
        " WHERE k.key_hash = ? AND k.revoked_at IS NULL",
        (hash_key(key),))
    if row is None:
        return None
    return Tenant(id=row["id"], name=row["name"], plan=Plan(row["plan"]),
                  credits_available=row["credits_available"],
                  credits_reserved=row["credits_reserved"])
