"""Rate limits on top of the `limits` library, with storage a multi-node deployment can share.

Moving windows, exact: a request is admitted only if fewer than N were admitted in the last
window. The gate is the storage's atomic moving-window `hit` (a Lua script on Redis, a lock in
memory): it counts the request only if the window has room, so API nodes sharing one Redis
(`async+redis://`, env OCR_GATEWAY_REDIS_URL) never admit more than N between them.

A rule with several windows ("10/hour", "100/day") admits a request only when every window has
room, and then counts it in all of them: the windows after the first are tested (a full one
refuses, nothing is counted), then each window's atomic hit is taken in turn, shortest window
first. Every window is gated by its own atomic hit, so none ever admits more than its limit.
The one inexactness errs on refusing: when another node takes a window's last room between this
node's test and hit, the refused request stays counted in the shorter windows hit before it (it
was admitted there), for at most their length, while the longer window was full anyway. Within
one process a per-key lock serializes test and hit, so there it never happens. Windows are
judged by each node's clock: the nodes must keep time (NTP).

A Redis that does not answer fails closed: the request is refused with 503
`service_unavailable` and Retry-After (RateLimitStoreUnavailableError), never admitted
unmetered. A request's wait for its key's lock and its Redis calls are each bounded by
STORE_TIMEOUT_S, so an outage cannot hang requests; a lock wait that runs out (a burst on one
key) is refused the same way but is no outage. One warning is logged when an outage is first
met and one line when Redis answers again, found by a request or by /health (which asks Redis
at most once per Retry-After during an outage); the pool reconnects by itself, no restart.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit

import coredis
import msgspec
import structlog
from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from gateway.config import RateLimitSettings
from gateway.errors import RateLimitedError, RateLimitStoreUnavailableError

log = structlog.get_logger(__name__)

# Redis must connect, answer each command, and finish a request's whole check within this; a
# Redis URL's own ?connect_timeout= or ?stream_timeout= wins for the first two.
STORE_TIMEOUT_S = 2.0
STORE_RETRY_AFTER_S = 5  # Retry-After while Redis is unreachable
# What a Redis that cannot answer raises: refused, reset, still loading its data after a restart
# (coredis ConnectionError and its subclasses), no answer in time (coredis' and our deadline's
# TimeoutError), a replica after a failover (ReadOnlyError), a socket's own OSError.
_STORE_DOWN: tuple[type[BaseException], ...] = (
    coredis.exceptions.ConnectionError,
    coredis.exceptions.TimeoutError,
    coredis.exceptions.ReadOnlyError,
    TimeoutError,
    OSError,
)


class RateLimitStatus(msgspec.Struct, frozen=True, kw_only=True):
    limit: int
    remaining: int
    reset_epoch_s: int  # when the tightest window has room again

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_epoch_s),
        }


def parse_rule(rules: list[str] | str) -> tuple[RateLimitItem, ...]:
    texts = [rules] if isinstance(rules, str) else rules
    return tuple(item for text in texts for item in parse_many(text))


# limits' schemes for one Redis server, served by its coredis bridge; the URL coredis reads
_REDIS_SCHEMES = {"async+redis": "redis", "async+rediss": "rediss", "async+redis+unix": "unix"}


def _location(url: str) -> str:
    """A Redis URL without its credentials, for the logs."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


class RateLimiter:
    def __init__(self, settings: RateLimitSettings) -> None:
        uri = settings.storage_uri
        scheme, sep, rest = uri.partition("://")
        self._pool: coredis.ConnectionPool | None = None
        self._deadline_s: float | None = None  # memory: nothing to wait for
        self._store = "memory"
        self._down_since: float | None = None  # monotonic time the current outage was first met
        self._probed = 0.0  # monotonic time of the last probe during an outage
        if scheme in _REDIS_SCHEMES:  # our own pool, so that aclose() can close its connections
            url = f"{_REDIS_SCHEMES[scheme]}{sep}{rest}"
            self._pool = coredis.ConnectionPool.from_url(
                url, connect_timeout=STORE_TIMEOUT_S, stream_timeout=STORE_TIMEOUT_S
            )
            self._deadline_s = STORE_TIMEOUT_S
            self._store = _location(url)
            options: dict[str, Any] = {"connection_pool": self._pool}  # documented, typed narrower
            redis = RedisStorage(uri, implementation="coredis", **options)
            self._limiter = MovingWindowRateLimiter(redis)
        else:
            self._limiter = MovingWindowRateLimiter(storage_from_string(uri))
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def aclose(self) -> None:
        """Close the connections to a Redis storage (the memory storage has none)."""
        if self._pool is not None:
            self._pool.disconnect()

    async def hit(
        self, scope: str, identity: str, items: tuple[RateLimitItem, ...]
    ) -> RateLimitStatus:
        """Count one request against every window, or raise RateLimitedError (429) when one is
        full, or RateLimitStoreUnavailableError (503) when Redis does not answer in time; both
        with Retry-After."""
        lock = self._locks[f"{scope}:{identity}"]
        try:
            async with asyncio.timeout(self._deadline_s):
                await lock.acquire()
        except TimeoutError:  # the key's earlier checks took the time: refused, but no outage
            raise RateLimitStoreUnavailableError(retry_after_s=STORE_RETRY_AFTER_S) from None
        try:
            async with asyncio.timeout(self._deadline_s):
                status = await self._admit(scope, identity, items)
        except RateLimitedError:
            self._answered()
            raise
        except _STORE_DOWN as exc:
            raise self._unavailable(exc) from exc
        finally:
            lock.release()
        self._answered()
        return status

    async def probe(self) -> None:
        """During an outage, ask Redis once per Retry-After whether it answers again, so that a
        node no request reaches does not stay degraded; nothing otherwise."""
        now = time.monotonic()
        if (
            self._down_since is None
            or self._pool is None
            or now - self._probed < STORE_RETRY_AFTER_S
        ):
            return
        self._probed = now
        try:
            async with asyncio.timeout(self._deadline_s):
                await coredis.Redis(connection_pool=self._pool).ping()
        except _STORE_DOWN:
            return
        self._answered()

    @property
    def store(self) -> str:
        """Where the windows are counted: "memory", or the Redis server without credentials."""
        return self._store

    def unavailable_s(self) -> float | None:
        """Seconds since a request first found Redis not answering, while it still does not;
        None while it answers (or the store is memory)."""
        if self._down_since is None:
            return None
        return round(time.monotonic() - self._down_since, 1)

    def _unavailable(self, exc: BaseException) -> RateLimitStoreUnavailableError:
        if self._down_since is None:  # one warning per outage, not one per refused request
            self._down_since = time.monotonic()
            log.warning(
                "rate_limit_store_unavailable",
                store=self._store,
                error=repr(exc),
                timeout_s=self._deadline_s,
                detail="requests are refused with 503 until it answers again",
            )
        return RateLimitStoreUnavailableError(retry_after_s=STORE_RETRY_AFTER_S)

    def _answered(self) -> None:
        if self._down_since is not None:
            down_s = round(time.monotonic() - self._down_since, 1)
            self._down_since = None
            log.info("rate_limit_store_recovered", store=self._store, down_s=down_s)

    async def _admit(
        self, scope: str, identity: str, items: tuple[RateLimitItem, ...]
    ) -> RateLimitStatus:
        """Under the key's lock (taken by `hit`)."""
        windows = sorted(items, key=lambda item: (item.get_expiry(), item.amount))
        for item in windows[1:]:
            if not await self._limiter.test(item, scope, identity):
                raise await self._refusal(item, scope, identity, items)
        for item in windows:
            if not await self._limiter.hit(item, scope, identity):  # atomic: the gate
                raise await self._refusal(item, scope, identity, items)
        return await self._status(scope, identity, items)

    async def _refusal(
        self, item: RateLimitItem, scope: str, identity: str, items: tuple[RateLimitItem, ...]
    ) -> RateLimitedError:
        status = await self._status(scope, identity, items)
        retry_after = max(1, math.ceil(status.reset_epoch_s - time.time()))
        return RateLimitedError(
            f"rate limit {item} exceeded; retry in {retry_after} s",
            status=status,
            retry_after_s=retry_after,
        )

    async def _status(
        self, scope: str, identity: str, items: tuple[RateLimitItem, ...]
    ) -> RateLimitStatus:
        tightest: RateLimitStatus | None = None
        for item in items:
            stats = await self._limiter.get_window_stats(item, scope, identity)
            status = RateLimitStatus(
                limit=item.amount,
                remaining=max(0, stats.remaining),
                reset_epoch_s=math.ceil(stats.reset_time),
            )
            if tightest is None or (status.remaining, -status.reset_epoch_s) < (
                tightest.remaining,
                -tightest.reset_epoch_s,
            ):
                tightest = status
        assert tightest is not None
        return tightest
