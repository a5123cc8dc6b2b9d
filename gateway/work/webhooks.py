"""Job webhooks: registered at submit, delivered from the store's outbox once the job finishes.

The body is JSON in the Standard Webhooks envelope, `{"type": "job.completed" | "job.failed" |
"job.cancelled", "timestamp": ISO 8601, "data": ...}`, where `data` is the job as
`GET /v1/jobs/{jobId}` gives it (or, with `callback_full=false`, its status fields only; a job
of a compatible surface gets that surface's own body). Each attempt is signed: headers
`webhook-id` (the same for every attempt: receivers deduplicate on it), `webhook-timestamp`
(epoch seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` keyed by
the tenant's `whsec_` secret. Any 2xx delivers it; anything else is retried after
`webhooks.first_retry_s`, doubling up to `webhooks.max_retry_interval_s`, until
`webhooks.retry_for_s` after the job finished. The URL follows the fetch address rules, checked
at submit and again at every attempt (the connection pinned to the checked address).
Delivery is at least once: an attempt the receiver answered but the gateway could not record
(a crash) is made again, with the same `webhook-id`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import hmac
from collections.abc import Awaitable, Callable

import msgspec
import structlog

from gateway.clock import now_ms
from gateway.config import Settings
from gateway.errors import FetchTimeoutError, GatewayError, JobNotFoundError
from gateway.store import outbox
from gateway.store.db import Database
from gateway.store.models import JobResult
from gateway.store.queue import JobStore
from gateway.work.fetch import (
    AddressPolicy,
    checked_addresses,
    outgoing_client,
    parse_url,
    pinned_stream,
)

log = structlog.get_logger(__name__)

MAX_IN_FLIGHT = 32
# A compatible surface's webhook body, in that surface's shape: (job, full, what the body
# echoes of the request, as the surface registered it) -> the body.
BodyBuilder = Callable[[JobResult, bool, bytes | None], Awaitable[bytes]]


class StatusOnly(msgspec.Struct, frozen=True, kw_only=True):
    """`data` of a webhook sent with `callback_full=false`."""

    id: str
    status: str
    page_count: int
    pages_processed: int
    credits_used: int
    completed_at: int | None
    error: object | None


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    timestamp: str
    data: JobResult | StatusOnly


_ENCODER = msgspec.json.Encoder()


async def native_body(job: JobResult, full: bool, context: bytes | None = None) -> bytes:
    del context  # the native body is the job itself
    data: JobResult | StatusOnly = job
    if not full:
        data = StatusOnly(
            id=job.id,
            status=job.status.value,
            page_count=job.page_count,
            pages_processed=job.pages_processed,
            credits_used=job.credits_used,
            completed_at=job.completed_at,
            error=job.error,
        )
    stamp = dt.datetime.fromtimestamp((job.completed_at or now_ms()) / 1000, dt.UTC)
    return _ENCODER.encode(
        Envelope(type=f"job.{job.status.value}", timestamp=stamp.isoformat(), data=data)
    )


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks signature header value: `v1,<base64 HMAC-SHA256>`."""
    key = base64.b64decode(secret.removeprefix(outbox.SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


async def check_callback_url(url: str, settings: Settings) -> str:
    """The URL, if webhooks may be sent to it (the fetch address rules); else a clear 400."""
    parsed = parse_url(url)
    limit_s = settings.fetch.connect_timeout_s
    try:
        async with asyncio.timeout(limit_s):
            await checked_addresses(parsed, AddressPolicy(settings.fetch))
    except TimeoutError as exc:
        raise FetchTimeoutError(f"resolving the URL's host took longer than {limit_s:g} s") from exc
    return str(parsed)


async def register(
    db: Database, job_id: str, tenant_id: str, url: str, full: bool, context: bytes | None = None
) -> None:
    """Owe the job's webhook; its tenant's signing secret exists from now on. `context`: what
    a surface's body echoes of the request (its BodyBuilder gets it back)."""
    await outbox.signing_secret(db, tenant_id)
    await outbox.add(db, job_id, tenant_id, url, full, context)


class WebhookDeliverer:
    """Looks at the outbox every `webhooks.poll_interval_s` and delivers what is due."""

    def __init__(
        self, store: JobStore, settings: Settings, bodies: dict[str, BodyBuilder] | None = None
    ) -> None:
        self.store = store
        self.db = store.db
        self.settings = settings
        self.policy = AddressPolicy(settings.fetch)
        self.bodies = bodies or {}  # surface -> its body; native_body for the rest
        self._loop: asyncio.Task[None] | None = None
        self._in_flight: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        self._loop = asyncio.create_task(self._run(), name="webhooks")

    async def stop(self) -> None:
        tasks = [t for t in (self._loop, *self._in_flight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self.deliver_due()
            except Exception:  # broad on purpose: logged, and the next look tries again
                log.exception("webhook_poll_failed")
            await asyncio.sleep(self.settings.webhooks.poll_interval_s)

    async def deliver_due(self) -> None:
        for webhook in await outbox.due(self.db, now_ms(), MAX_IN_FLIGHT):
            if webhook.job_id in self._in_flight or len(self._in_flight) >= MAX_IN_FLIGHT:
                continue
            # one node attempts it (several API nodes look at one outbox); if this one dies
            # mid-attempt the webhook is due again after the hold
            hold_until = now_ms() + int(3 * self.settings.webhooks.timeout_s * 1000)
            if not await outbox.claim(self.db, webhook, hold_until):
                continue
            task = asyncio.create_task(self._attempt(webhook), name=f"webhook-{webhook.job_id}")
            self._in_flight[webhook.job_id] = task
            task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._in_flight = {k: t for k, t in self._in_flight.items() if t is not task}

    async def _attempt(self, webhook: outbox.DueWebhook) -> None:
        try:
            await self._deliver(webhook)
        except Exception:  # broad on purpose: logged; the row stays due and is tried again
            log.exception("webhook_attempt_failed", job_id=webhook.job_id)

    async def _deliver(self, webhook: outbox.DueWebhook) -> None:
        logger = log.bind(job_id=webhook.job_id, tenant_id=webhook.tenant_id)
        try:
            job = await self.store.get_job(webhook.tenant_id, webhook.job_id)
        except JobNotFoundError:
            return  # deleted meanwhile: its row went with it
        build = self.bodies.get(webhook.surface or "", native_body)
        body = await build(job, webhook.full, webhook.context)
        started = now_ms()
        status, error = await self._post(webhook, body)
        delivered = status is not None and 200 <= status < 300
        attempt = outbox.WebhookAttempt(at=started, status_code=status, error=error)
        next_at = None if delivered else self._next_attempt(webhook)
        await outbox.record_attempt(
            self.db, webhook.job_id, attempt, delivered=delivered, next_attempt_at=next_at
        )
        if delivered:
            logger.info("webhook_delivered", attempts=webhook.attempts + 1, status=status)
        elif next_at is None:
            logger.warning("webhook_given_up", attempts=webhook.attempts + 1, error=error)
        else:
            logger.info("webhook_retry", status=status, error=error, next_attempt_at=next_at)

    async def _post(self, webhook: outbox.DueWebhook, body: bytes) -> tuple[int | None, str | None]:
        timeout_s = self.settings.webhooks.timeout_s
        secret = await outbox.signing_secret(self.db, webhook.tenant_id)
        timestamp = now_ms() // 1000
        headers = {
            "Content-Type": "application/json",
            "webhook-id": webhook.message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, webhook.message_id, timestamp, body),
        }
        try:
            url = parse_url(webhook.url)
            async with (
                asyncio.timeout(timeout_s),
                outgoing_client(self.settings.fetch, timeout_s) as client,
                pinned_stream(
                    client, "POST", url, self.policy, headers=headers, content=body
                ) as response,
            ):
                status = response.status_code
        except TimeoutError:
            return None, f"no answer in {timeout_s:g} s"
        except GatewayError as exc:  # the address rules, or no connection
            return None, exc.message
        return status, None if 200 <= status < 300 else f"answered {status}"

    def _next_attempt(self, webhook: outbox.DueWebhook) -> int | None:
        """When to try again after attempt number `attempts + 1` failed; None: give up."""
        config = self.settings.webhooks
        delay_s = min(config.max_retry_interval_s, config.first_retry_s * 2**webhook.attempts)
        next_at = now_ms() + int(delay_s * 1000)
        if next_at > webhook.completed_at + int(config.retry_for_s * 1000):
            return None
        return next_at
