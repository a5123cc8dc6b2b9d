"""The webhook outbox and the tenants' webhook signing secrets.

A job that asked for a webhook has one row here from its submission on. The row is due as soon
as its job is finished (completed, failed or cancelled) and its next attempt time has come: the
job's own completion commit is what makes it due, so a crash between finishing a job and
calling its webhook loses nothing; the deliverer finds it at the next start. Each attempt is
appended to the row (`attempts`, JSON) with the delivery or the retry time in the same UPDATE.
Deleting a job deletes its row (foreign key, ON DELETE CASCADE).

Secrets follow the Standard Webhooks format: `whsec_` and the base64 of 32 random bytes.
"""

from __future__ import annotations

import base64
import secrets
import uuid

import msgspec

from gateway.clock import now_ms
from gateway.errors import TenantNotFoundError
from gateway.store.db import Database
from gateway.store.models import TERMINAL_JOB

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret


class WebhookAttempt(msgspec.Struct, frozen=True, kw_only=True):
    at: int  # epoch ms the attempt started
    status_code: int | None  # the receiver's answer; None when there was none
    error: str | None = None  # why it did not count as delivered


class WebhookState(msgspec.Struct, frozen=True, kw_only=True):
    """A job's webhook as `GET /v1/jobs/{jobId}` shows it."""

    url: str
    full: bool  # the whole job (results included), or its status only
    attempts: list[WebhookAttempt]
    delivered_at: int | None  # epoch ms of the 2xx answer
    next_attempt_at: int | None  # epoch ms; None once delivered or given up
    gave_up_at: int | None  # epoch ms: retried for webhooks.retry_for_s without a 2xx


class DueWebhook(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str
    tenant_id: str
    url: str
    full: bool
    message_id: str  # webhook-id: the same for every attempt of this webhook
    attempts: int
    completed_at: int  # when its job finished
    surface: str | None  # the compatible API surface the job came through (None: native)
    context: bytes | None  # what that surface's body echoes of its request
    next_attempt_at: int = 0  # as read: `claim` takes the webhook only if it is unchanged


_ATTEMPTS = msgspec.json.Decoder(list[WebhookAttempt])
_ENCODER = msgspec.json.Encoder()


async def add(
    db: Database, job_id: str, tenant_id: str, url: str, full: bool, context: bytes | None = None
) -> None:
    """Owe the job's webhook (a second call for the same job, an idempotent replay, is a no-op)."""
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO webhooks (job_id, tenant_id, url, send_full, message_id, created_at,"
            " context) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_id) DO NOTHING",
            (job_id, tenant_id, url, int(full), f"msg_{uuid.uuid4().hex}", now_ms(), context),
        )


async def get(db: Database, job_id: str) -> WebhookState | None:
    row = await db.fetch_one("SELECT * FROM webhooks WHERE job_id = ?", (job_id,))
    if row is None:
        return None
    open_ = row["delivered_at"] is None and row["gave_up_at"] is None
    return WebhookState(
        url=row["url"],
        full=bool(row["send_full"]),
        attempts=_ATTEMPTS.decode(row["attempts"]),
        delivered_at=row["delivered_at"],
        next_attempt_at=row["next_attempt_at"] if open_ else None,
        gave_up_at=row["gave_up_at"],
    )


async def due(db: Database, now: int, limit: int) -> list[DueWebhook]:
    """Webhooks of finished jobs whose next attempt has come, the longest waiting first."""
    rows = await db.fetch_all(
        "SELECT w.job_id, w.tenant_id, w.url, w.send_full, w.message_id, w.attempts, w.context,"
        " w.next_attempt_at,"
        " j.completed_at, (SELECT c.surface FROM compat_jobs c WHERE c.job_id = w.job_id)"
        " AS surface FROM webhooks w JOIN jobs j ON j.id = w.job_id"
        " WHERE w.delivered_at IS NULL AND w.gave_up_at IS NULL AND w.next_attempt_at <= ?"
        " AND j.status IN (?, ?, ?) ORDER BY w.next_attempt_at LIMIT ?",
        (now, *TERMINAL_JOB, limit),
    )
    return [
        DueWebhook(
            job_id=r["job_id"],
            tenant_id=r["tenant_id"],
            url=r["url"],
            full=bool(r["send_full"]),
            message_id=r["message_id"],
            attempts=len(_ATTEMPTS.decode(r["attempts"])),
            completed_at=r["completed_at"] or now,
            surface=r["surface"],
            context=r["context"],
            next_attempt_at=r["next_attempt_at"],
        )
        for r in rows
    ]


async def record_attempt(
    db: Database,
    job_id: str,
    attempt: WebhookAttempt,
    *,
    delivered: bool,
    next_attempt_at: int | None,
) -> None:
    """Append the attempt; the webhook is delivered, due again at `next_attempt_at`, or (None
    and not delivered) given up."""
    done_at = now_ms()
    async with db.transaction() as tx:
        async with tx.execute("SELECT attempts FROM webhooks WHERE job_id = ?", (job_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            return
        attempts = [*_ATTEMPTS.decode(row["attempts"]), attempt]
        await tx.execute(
            "UPDATE webhooks SET attempts = ?,"
            " delivered_at = ?, gave_up_at = ?, next_attempt_at = COALESCE(?, next_attempt_at)"
            " WHERE job_id = ? AND delivered_at IS NULL AND gave_up_at IS NULL",
            (
                _ENCODER.encode(attempts),
                done_at if delivered else None,
                done_at if not delivered and next_attempt_at is None else None,
                next_attempt_at,
                job_id,
            ),
        )


async def claim(db: Database, webhook: DueWebhook, hold_until: int) -> bool:
    """Take the due webhook for one attempt: its next attempt moves to `hold_until`, unless
    another node took it first (its next attempt time is no longer the one seen)."""
    async with db.transaction() as tx:
        cur = await tx.execute(
            "UPDATE webhooks SET next_attempt_at = ? WHERE job_id = ? AND next_attempt_at = ?"
            " AND delivered_at IS NULL AND gave_up_at IS NULL",
            (hold_until, webhook.job_id, webhook.next_attempt_at),
        )
    return cur.rowcount == 1


def _new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


async def signing_secret(db: Database, tenant_id: str) -> str:
    """The tenant's webhook secret, made on first use."""
    row = await db.fetch_one("SELECT secret FROM webhook_secrets WHERE tenant_id = ?", (tenant_id,))
    if row is not None:
        return str(row["secret"])
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO webhook_secrets (tenant_id, secret, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (tenant_id) DO NOTHING",
            (tenant_id, _new_secret(), now_ms()),
        )
        async with tx.execute(
            "SELECT secret FROM webhook_secrets WHERE tenant_id = ?", (tenant_id,)
        ) as cur:
            made = await cur.fetchone()
    assert made is not None
    return str(made["secret"])


async def rotate_secret(db: Database, tenant_id: str) -> str:
    """A new secret for the tenant; every delivery from now on is signed with it."""
    secret = _new_secret()
    async with db.transaction() as tx:
        async with tx.execute("SELECT 1 FROM tenants WHERE id = ?", (tenant_id,)) as cur:
            if await cur.fetchone() is None:
                raise TenantNotFoundError()
        await tx.execute(
            "INSERT INTO webhook_secrets (tenant_id, secret, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (tenant_id) DO UPDATE SET secret = excluded.secret,"
            " created_at = excluded.created_at",
            (tenant_id, secret, now_ms()),
        )
    return secret
