"""Retry policy, circuit breaker, call gate and HTTP error mapping: pure, with a fake clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
import pytest

from providers.errors import (
    CircuitOpenError,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimitedError,
    ProviderRefusedError,
    ProviderRejectedError,
    ProviderResponseError,
    ProviderServerError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    error_for_status,
    error_for_transport,
    parse_retry_after,
)
from providers.resilience import (
    BreakerSettings,
    BreakerState,
    CallGate,
    CircuitBreaker,
    RetryPolicy,
    RetrySettings,
    read_api_key,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def policy(clock: FakeClock, rand: float = 0.5, **settings: float) -> RetryPolicy:
    values: dict[str, float] = {
        "attempts": 4,
        "budget_s": 100.0,
        "backoff_initial_s": 1.0,
        "backoff_max_s": 4.0,
        "retry_after_max_s": 10.0,
        **settings,
    }
    return RetryPolicy(
        "test",
        RetrySettings(attempts=int(values.pop("attempts")), **values),
        clock=clock,
        sleep=clock.sleep,
        rand=lambda: rand,
    )


def failing(
    errors: list[ProviderError],
    calls: list[int],
    clock: FakeClock | None = None,
    takes_s: float = 0.0,
) -> Callable[[], Awaitable[str]]:
    """Raises `errors` in turn, then answers "ok"; counts its calls."""

    async def call() -> str:
        calls.append(1)
        if clock is not None:
            clock.now += takes_s
        if errors:
            raise errors.pop(0)
        return "ok"

    return call


async def test_retry_after_is_waited_exactly() -> None:
    clock, calls = FakeClock(), list[int]()
    result = await policy(clock).call(
        failing([ProviderRateLimitedError("429", retry_after_s=2.5)], calls)
    )
    assert result == "ok"
    assert clock.sleeps == [2.5]


async def test_retry_after_beyond_the_cap_is_not_waited_for() -> None:
    clock, calls = FakeClock(), list[int]()
    error = ProviderRateLimitedError("429", retry_after_s=60.0)
    with pytest.raises(ProviderRateLimitedError) as raised:
        await policy(clock, retry_after_max_s=10.0).call(failing([error], calls))
    assert raised.value is error
    assert (len(calls), clock.sleeps) == (1, [])


@pytest.mark.parametrize(
    ("rand", "expected"),
    [
        (0.0, [0.5, 1.0, 2.0]),  # half of 1, 2, 4: the fixed half
        (1.0, [1.0, 2.0, 4.0]),  # the whole ceiling
    ],
)
async def test_backoff_is_exponential_with_equal_jitter(rand: float, expected: list[float]) -> None:
    clock, calls = FakeClock(), list[int]()
    errors: list[ProviderError] = [ProviderConnectionError("reset") for _ in range(3)]
    await policy(clock, rand=rand).call(failing(errors, calls))
    assert clock.sleeps == expected


async def test_backoff_stops_growing_at_its_maximum() -> None:
    clock = FakeClock()
    retry = policy(clock, rand=1.0, backoff_max_s=3.0)
    assert [retry.backoff_s(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize(
    "error",
    [
        ProviderTimeoutError("read timeout"),
        ProviderConnectionError("refused"),
        ProviderServerError("bad gateway", 502),
        ProviderServerError("unavailable", 503),
        ProviderServerError("gateway timeout", 504),
        ProviderRateLimitedError("429 without Retry-After", retry_after_s=None),
    ],
    ids=lambda e: e.message,
)
async def test_transient_errors_are_retried(error: ProviderError) -> None:
    clock, calls = FakeClock(), list[int]()
    assert await policy(clock).call(failing([error], calls)) == "ok"
    assert len(calls) == 2


@pytest.mark.parametrize(
    "error",
    [
        ProviderRejectedError("400"),
        ProviderRefusedError("401"),
        ProviderResponseError("not json"),
        ProviderServerError("internal", 500),
        CircuitOpenError("open", retry_in_s=3.0),
        ProviderError("anything else"),
    ],
    ids=lambda e: e.message,
)
async def test_other_errors_are_raised_at_once(error: ProviderError) -> None:
    clock, calls = FakeClock(), list[int]()
    with pytest.raises(type(error)) as raised:
        await policy(clock).call(failing([error], calls))
    assert raised.value is error
    assert (len(calls), clock.sleeps) == (1, [])


async def test_attempts_bound_the_calls_and_the_last_error_is_raised() -> None:
    clock, calls = FakeClock(), list[int]()
    errors: list[ProviderError] = [ProviderConnectionError(f"try {n}") for n in range(1, 6)]
    with pytest.raises(ProviderConnectionError, match="try 3"):
        await policy(clock, attempts=3).call(failing(errors, calls))
    assert len(calls) == 3


async def test_no_retry_waits_past_the_budget() -> None:
    """No wait starts that would end past `budget_s` after the first try began."""
    clock, calls = FakeClock(), list[int]()
    errors: list[ProviderError] = [ProviderTimeoutError(f"t{n}") for n in range(10)]
    with pytest.raises(ProviderTimeoutError):
        await policy(
            clock, rand=0.0, backoff_initial_s=2.0, backoff_max_s=2.0, budget_s=4.5, attempts=10
        ).call(failing(errors, calls, clock, 1.0))
    # try 1 ends at 1, wait to 2; try 2 ends at 3, a wait to 4 is allowed; try 3 ends at 5:
    # another wait would end at 6 > 4.5
    assert (len(calls), clock.sleeps) == (3, [1.0, 1.0])


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        ("0.5", 0.5),
        ("-2", 0.0),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_header_is_parsed(header: str | None, expected: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(header, now) == expected


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, ProviderRejectedError),
        (404, ProviderRejectedError),
        (413, ProviderRejectedError),
        (401, ProviderRefusedError),
        (402, ProviderRefusedError),
        (403, ProviderRefusedError),
        (429, ProviderRateLimitedError),
        (500, ProviderServerError),
        (503, ProviderServerError),
    ],
)
def test_http_status_maps_to_its_error_kind(status: int, kind: type[ProviderError]) -> None:
    response = httpx.Response(status, json={"error": {"code": "some_code", "message": "why"}})
    error = error_for_status("upstream", response)
    assert type(error) is kind
    assert f"HTTP {status} (some_code: why)" in error.message


def test_retry_after_travels_with_a_rate_limit() -> None:
    error = error_for_status("x", httpx.Response(429, headers={"Retry-After": "7"}))
    assert isinstance(error, ProviderRateLimitedError)
    assert error.retry_after_s == 7.0


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ConnectError("refused"), ProviderConnectionError),
        (httpx.RemoteProtocolError("server disconnected"), ProviderConnectionError),
        (httpx.ReadError("reset"), ProviderConnectionError),
        (httpx.ReadTimeout("slow"), ProviderTimeoutError),
        (httpx.ConnectTimeout("slow"), ProviderTimeoutError),
        (httpx.UnsupportedProtocol("ftp"), ProviderUnavailableError),
        (httpx.DecodingError("bad gzip"), ProviderResponseError),
    ],
    ids=lambda v: type(v).__name__,
)
def test_transport_failure_maps_to_its_error_kind(
    exc: httpx.HTTPError, kind: type[ProviderError]
) -> None:
    assert type(error_for_transport("x", exc)) is kind


def test_an_unset_secret_is_named_when_the_provider_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OCR_TEST_UNSET_KEY", raising=False)
    with pytest.raises(ProviderUnavailableError, match="OCR_TEST_UNSET_KEY"):
        read_api_key("OCR_TEST_UNSET_KEY", "vlm")


# --- Circuit breaker --------------------------------------------------------------------------


def breaker(clock: FakeClock, threshold: int = 3, cooldown_s: float = 10.0) -> CircuitBreaker:
    return CircuitBreaker(
        "test", BreakerSettings(failure_threshold=threshold, cooldown_s=cooldown_s), clock=clock
    )


def state_of(b: CircuitBreaker) -> BreakerState:
    return b.state  # a call, so that mypy does not narrow the property between assertions


def fail(b: CircuitBreaker, error: Exception | None = None) -> None:
    with pytest.raises(type(error) if error else ProviderConnectionError), b.call():
        raise error or ProviderConnectionError("down")


def succeed(b: CircuitBreaker) -> None:
    with b.call():
        pass


def test_breaker_opens_after_n_consecutive_failures() -> None:
    b = breaker(FakeClock(), threshold=3)
    fail(b)
    fail(b)
    assert state_of(b) is BreakerState.CLOSED
    fail(b)
    assert state_of(b) is BreakerState.OPEN
    with pytest.raises(CircuitOpenError) as refused:
        succeed(b)
    assert refused.value.retry_in_s == 10.0


def test_a_success_resets_the_failure_count() -> None:
    b = breaker(FakeClock(), threshold=2)
    fail(b)
    succeed(b)
    fail(b)
    assert (state_of(b), b.consecutive_failures) == (BreakerState.CLOSED, 1)


def test_rejected_pages_do_not_count_against_the_provider() -> None:
    b = breaker(FakeClock(), threshold=1)
    fail(b, ProviderRejectedError("400: this page"))
    assert state_of(b) is BreakerState.CLOSED


def test_after_the_cooldown_exactly_one_probe_goes_through_and_closes_it() -> None:
    clock = FakeClock()
    b = breaker(clock, threshold=1, cooldown_s=10.0)
    fail(b)
    clock.now += 9.9
    with pytest.raises(CircuitOpenError):
        b.check()
    clock.now += 0.1
    assert state_of(b) is BreakerState.HALF_OPEN
    with b.call(), pytest.raises(CircuitOpenError, match="probe is in flight"):  # the probe
        succeed(b)
    assert (state_of(b), b.consecutive_failures) == (BreakerState.CLOSED, 0)


def test_a_failed_probe_opens_it_for_another_cooldown() -> None:
    clock = FakeClock()
    b = breaker(clock, threshold=1, cooldown_s=10.0)
    fail(b)
    clock.now += 10.0
    fail(b)  # the probe
    assert state_of(b) is BreakerState.OPEN
    clock.now += 9.0
    with pytest.raises(CircuitOpenError):
        b.check()
    clock.now += 1.0
    succeed(b)
    assert state_of(b) is BreakerState.CLOSED


def test_a_cancelled_probe_lets_the_next_caller_probe() -> None:
    clock = FakeClock()
    b = breaker(clock, threshold=1, cooldown_s=1.0)
    fail(b)
    clock.now += 1.0
    with pytest.raises(asyncio.CancelledError), b.call():
        raise asyncio.CancelledError
    assert state_of(b) is BreakerState.HALF_OPEN
    succeed(b)
    assert state_of(b) is BreakerState.CLOSED


def test_late_failures_of_calls_admitted_before_it_opened_change_nothing() -> None:
    clock = FakeClock()
    b = breaker(clock, threshold=1, cooldown_s=10.0)
    with contextlib.suppress(ProviderConnectionError), b.call():
        fail(b)  # opens it while the outer call is still running
        clock.now += 10.0
        raise ProviderConnectionError("late")
    assert state_of(b) is BreakerState.HALF_OPEN  # the cooldown was not restarted


# --- Call gate --------------------------------------------------------------------------------


def gate(concurrency: int = 2, total_timeout_s: float = 5.0) -> CallGate:
    clock = FakeClock()
    return CallGate(
        "test",
        concurrency=concurrency,
        total_timeout_s=total_timeout_s,
        breaker=breaker(clock),
        retry=policy(clock),
    )


async def test_gate_holds_at_most_its_concurrency() -> None:
    g = gate(concurrency=2)
    running, peak = 0, 0

    async def work() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1

    await asyncio.gather(*(g.run(work) for _ in range(7)))
    assert (peak, g.calls, g.in_flight) == (2, 7, 0)


async def test_gate_caps_a_call_at_its_total_timeout() -> None:
    g = gate(total_timeout_s=0.05)
    with pytest.raises(ProviderTimeoutError, match="total_timeout_s"):
        await g.run(lambda: asyncio.sleep(5))
    assert g.breaker.consecutive_failures == 1
    assert g.state()["last_error"] == "ocr_timeout: test: no result within total_timeout_s=0.05"
