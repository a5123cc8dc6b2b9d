"""What remote providers share: retries, a circuit breaker, the per-provider call gate
(concurrency slots, breaker, total timeout, counters), and the two chores of every remote call
(reading the secret, encoding the page as PNG).

The error kinds, which of them are retried and which count as breaker failures, and the mapping
of HTTP outcomes to them are in `providers.errors`.
Retries happen inside one page's call; the breaker sees one outcome per page, after them.
Retry-After is honoured exactly; one longer than `retry_after_max_s` is not waited for: the
error goes up at once, so the page moves on to the next provider instead of stalling.
Everything here is pure asyncio; clock, sleep and randomness are constructor seams.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import io
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import msgspec
import structlog
from PIL import Image
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from providers.errors import (
    CircuitOpenError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    is_breaker_failure,
    is_retryable,
)
from providers.types import PageImage

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

log = structlog.get_logger("providers.remote")


# --- The chores of every call ---------------------------------------------------------------


def read_api_key(env: str | None, provider: str) -> str | None:
    """The secret named by `api_key_env`, checked when the provider is built."""
    if env is None:
        return None
    value = os.environ.get(env, "").strip()
    if not value:
        raise ProviderUnavailableError(
            f"provider {provider!r}: environment variable {env} (api_key_env) is not set"
        )
    return value


def encode_png(page: PageImage, max_side_px: int | None = None, compress_level: int = 3) -> bytes:
    """The page as PNG with its resolution in pHYs, optionally downscaled. CPU-bound: call it
    in a thread."""
    image = Image.fromarray(page.pixels)
    dpi = page.dpi
    if max_side_px is not None and max(image.size) > max_side_px:
        scale = max_side_px / max(image.size)
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
            Image.Resampling.LANCZOS,
        )
        dpi *= scale
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(dpi, dpi), compress_level=compress_level)
    return out.getvalue()


# --- Retries ----------------------------------------------------------------------------------


class RetrySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    attempts: int = 3  # including the first
    budget_s: float = 60.0  # no retry whose wait would end later than this after the first try
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    retry_after_max_s: float = 30.0  # a longer Retry-After is not waited for

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("retry.attempts must be >= 1")
        if (
            min(self.budget_s, self.backoff_initial_s, self.backoff_max_s, self.retry_after_max_s)
            < 0
        ):
            raise ValueError("retry times must be >= 0")


class RetryPolicy:
    """tenacity, retrying the retryable kinds only: Retry-After when the server sent one, else
    exponential backoff with equal jitter (half fixed, half random), within attempts and budget.
    """

    def __init__(
        self,
        name: str,
        settings: RetrySettings,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.name = name
        self.settings = settings
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self.retries = 0  # for /health

    def backoff_s(self, attempt: int) -> float:
        """The wait after failed attempt `attempt` (1-based) when no Retry-After came."""
        s = self.settings
        ceiling = min(s.backoff_max_s, s.backoff_initial_s * 2.0 ** (attempt - 1))
        return ceiling / 2 + self._rand() * ceiling / 2

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after_s", None)
        if isinstance(retry_after, float):
            return retry_after
        return self.backoff_s(state.attempt_number)

    def _stop(self, state: RetryCallState, started: float) -> bool:
        s = self.settings
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after_s", None)
        return (
            state.attempt_number >= s.attempts
            or (isinstance(retry_after, float) and retry_after > s.retry_after_max_s)
            or self._clock() - started + state.upcoming_sleep > s.budget_s
        )

    def _before_sleep(self, state: RetryCallState) -> None:
        self.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        log.info(
            "provider_call_retried",
            provider=self.name,
            attempt=state.attempt_number,
            error=getattr(exc, "code", type(exc).__name__),
            wait_s=round(state.upcoming_sleep, 3),
        )

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """`fn()` until it succeeds, fails for good, or attempts or budget run out; the last
        error is raised as it is."""
        started = self._clock()
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_retryable),
            wait=self._wait,
            stop=lambda state: self._stop(state, started),
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        async for attempt in retrying:  # any awaitable, unlike `await retrying(fn)`
            with attempt:
                return await fn()
        raise AssertionError("unreachable: reraise=True raises the last error")


# --- Circuit breaker --------------------------------------------------------------------------


class BreakerSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    failure_threshold: int = 5  # consecutive failed pages that open the breaker
    cooldown_s: float = 30.0  # open this long before one probe is let through

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("breaker.failure_threshold must be >= 1")
        if self.cooldown_s < 0:
            raise ValueError("breaker.cooldown_s must be >= 0")


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"  # one probe is in flight, or would be let through now


class CircuitBreaker:
    """Closed -> open after `failure_threshold` consecutive failures -> after `cooldown_s` one
    probe at a time -> closed on its success, open again (for another cooldown) on its failure.
    A probe that is cancelled frees its place for the next caller."""

    def __init__(
        self, name: str, settings: BreakerSettings, *, clock: Clock = time.monotonic
    ) -> None:
        self.name = name
        self.settings = settings
        self._clock = clock
        self._open = False
        self._opened_at = 0.0
        self._probing = False
        self.consecutive_failures = 0
        self.times_opened = 0

    @property
    def state(self) -> BreakerState:
        if not self._open:
            return BreakerState.CLOSED
        if self._probing or self._retry_in_s() <= 0:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def _retry_in_s(self) -> float:
        return max(0.0, self._opened_at + self.settings.cooldown_s - self._clock())

    def _refusal(self) -> CircuitOpenError:
        wait = self._retry_in_s()
        why = "a probe is in flight" if self._probing else f"next probe in {wait:.1f} s"
        return CircuitOpenError(
            f"{self.name}: circuit open after {self.consecutive_failures} consecutive "
            f"failures ({why})",
            retry_in_s=wait,
        )

    def check(self) -> None:
        """Raise CircuitOpenError if a call now would be refused; changes nothing."""
        if self._open and (self._probing or self._retry_in_s() > 0):
            raise self._refusal()

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        """Admit one call (or refuse it) and record how it ended."""
        self.check()
        probe = self._open
        if probe:
            self._probing = True
        try:
            yield
        except Exception as exc:  # broad on purpose: every failure is an outcome; re-raised
            if is_breaker_failure(exc):
                self._failed(probe)
            else:
                self._succeeded(probe)
            raise
        except BaseException:  # cancelled: neither outcome, free the probe's place
            if probe:
                self._probing = False
            raise
        self._succeeded(probe)

    def _succeeded(self, probe: bool) -> None:
        if probe:
            self._probing = False
            self._open = False
            log.info("provider_circuit_closed", provider=self.name)
        if not self._open:
            self.consecutive_failures = 0

    def _failed(self, probe: bool) -> None:
        if probe:
            self._probing = False
            self._opened_at = self._clock()
            log.info("provider_circuit_reopened", provider=self.name)
            return
        if self._open:
            return  # admitted before it opened; it is open already
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.settings.failure_threshold:
            self._open = True
            self._opened_at = self._clock()
            self.times_opened += 1
            log.warning(
                "provider_circuit_opened", provider=self.name, failures=self.consecutive_failures
            )

    def snapshot(self) -> dict[str, object]:
        return {
            "state": self.state.value,
            "consecutive_failures": self.consecutive_failures,
            "times_opened": self.times_opened,
            "retry_in_s": round(self._retry_in_s(), 1) if self._open else 0.0,
        }


# --- The call gate ----------------------------------------------------------------------------


class CallGate:
    """One per provider: refuses fast while the breaker is open, holds at most `concurrency`
    calls at once, caps each call at `total_timeout_s`, and keeps the counters for /health."""

    def __init__(
        self,
        name: str,
        *,
        concurrency: int,
        total_timeout_s: float,
        breaker: CircuitBreaker,
        retry: RetryPolicy,
    ) -> None:
        self.name = name
        self.concurrency = concurrency
        self.total_timeout_s = total_timeout_s
        self.breaker = breaker
        self.retry = retry
        self._slots = asyncio.Semaphore(concurrency)
        self.in_flight = 0
        self.waiting = 0
        self.calls = 0
        self.failures = 0
        self.refused = 0
        self.last_error: str | None = None

    def check(self) -> None:
        """Refuse at once while the breaker is open (cheap: call it before preparing a page)."""
        try:
            self.breaker.check()
        except CircuitOpenError:
            self.refused += 1
            raise

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        self.check()
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        try:
            return await self._admitted(work)
        finally:
            self._slots.release()

    async def _admitted(self, work: Callable[[], Awaitable[T]]) -> T:
        try:
            with self.breaker.call():
                self.calls += 1
                self.in_flight += 1
                try:
                    return await self._timed(work)
                finally:
                    self.in_flight -= 1
        except CircuitOpenError:
            self.refused += 1
            raise
        except ProviderError as exc:
            self.failures += 1
            self.last_error = f"{exc.code}: {exc.message}"[:300]
            raise

    async def _timed(self, work: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self.total_timeout_s):
                return await work()
        except TimeoutError as exc:
            raise ProviderTimeoutError(
                f"{self.name}: no result within total_timeout_s={self.total_timeout_s:g}"
            ) from exc

    def state(self) -> dict[str, object]:
        return {
            "breaker": self.breaker.snapshot(),
            "concurrency": self.concurrency,
            "in_flight": self.in_flight,
            "waiting": self.waiting,
            "calls": self.calls,
            "failures": self.failures,
            "retries": self.retry.retries,
            "refused_open": self.refused,
            "last_error": self.last_error,
        }
