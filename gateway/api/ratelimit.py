"""Rate limits on top of the `limits` library, with storage a multi-node deployment can share.

Moving windows (exact: a request is admitted only if fewer than N were admitted in the last
window). A rule with several windows ("10/hour", "100/day") admits a request only when every
window has room, and then counts it in all of them; the check-then-count runs under a per-key
lock, so racing requests never overshoot.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict

import msgspec
from limits import RateLimitItem, parse_many
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from gateway.config import RateLimitSettings
from gateway.errors import RateLimitedError


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


class RateLimiter:
    def __init__(self, settings: RateLimitSettings) -> None:
        self._limiter = MovingWindowRateLimiter(storage_from_string(settings.storage_uri))
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def hit(
        self, scope: str, identity: str, items: tuple[RateLimitItem, ...]
    ) -> RateLimitStatus:
        """Count one request against every window, or raise RateLimitedError (Retry-After)."""
        key = f"{scope}:{identity}"
        async with self._locks[key]:
            for item in items:
                if not await self._limiter.test(item, scope, identity):
                    status = await self._status(scope, identity, items)
                    retry_after = max(1, math.ceil(status.reset_epoch_s - time.time()))
                    raise RateLimitedError(
                        f"rate limit {item} exceeded; retry in {retry_after} s",
                        status=status,
                        retry_after_s=retry_after,
                    )
            for item in items:
                await self._limiter.hit(item, scope, identity)
            return await self._status(scope, identity, items)

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
