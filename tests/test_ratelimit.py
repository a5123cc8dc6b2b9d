"""Rate limits exact across API nodes: RateLimiter instances sharing one real Redis, and memory;
a real gateway through a Redis outage (refused with 503, never unmetered; back by itself)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from gateway.api.ratelimit import (
    STORE_RETRY_AFTER_S,
    STORE_TIMEOUT_S,
    RateLimiter,
    RateLimitStatus,
    parse_rule,
)
from gateway.config import RateLimitSettings, load_settings
from gateway.errors import RateLimitedError
from tests.support.gateway_process import GatewayProcess, write_config
from tests.support.servers import RedisServer

TENANT = ("plan:free", "tenant-1")


@pytest.fixture
async def nodes(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[list[RateLimiter]]:
    """API nodes' limiters on one Redis (2, or the parameter): the first set by the environment."""
    from_env = load_settings(env={"OCR_GATEWAY_REDIS_URL": redis_url}).rate_limits
    assert from_env.storage_uri == f"async+{redis_url}"
    count = getattr(request, "param", 2)
    limiters = [RateLimiter(from_env)]
    limiters += [
        RateLimiter(RateLimitSettings(storage_uri=from_env.storage_uri)) for _ in range(count - 1)
    ]
    yield limiters
    for limiter in limiters:
        await limiter.aclose()


async def burst(
    nodes: list[RateLimiter], rule: list[str], hits: int = 16
) -> tuple[list[RateLimitStatus], list[RateLimitedError]]:
    """`hits` concurrent requests of one tenant, spread round-robin over `nodes`."""
    items = parse_rule(rule)
    results = await asyncio.gather(
        *(nodes[i % len(nodes)].hit(*TENANT, items) for i in range(hits)),
        return_exceptions=True,
    )
    admitted = [r for r in results if isinstance(r, RateLimitStatus)]
    refused = [r for r in results if isinstance(r, RateLimitedError)]
    assert len(admitted) + len(refused) == hits, results
    return admitted, refused


def entries(redis: RedisServer, rule: str) -> int:
    """How many requests limits' moving window in Redis holds for `rule` of the tenant."""
    (item,) = parse_rule(rule)
    reply = redis.command("LLEN", f"LIMITS:{item.key_for(*TENANT)}")
    assert reply.startswith(":"), reply
    return int(reply[1:])


# With 3 nodes the former check-all-then-hit-all under a per-process lock admitted 12.
@pytest.mark.parametrize("nodes", [2, 3], indirect=True)
async def test_nodes_on_one_redis_admit_exactly_the_limit(
    redis_server: RedisServer, nodes: list[RateLimiter]
) -> None:
    """16 concurrent hits of 10/minute over the nodes: 10 admitted, 6 refused with Retry-After."""
    admitted, refused = await burst(nodes, ["10/minute"])
    assert len(admitted) == 10
    assert len(refused) == 6
    assert all(e.retry_after_s > 0 and e.status.remaining == 0 for e in refused)
    assert entries(redis_server, "10/minute") == 10  # counted in Redis, not in either process


@pytest.mark.parametrize("nodes", [2, 3], indirect=True)
async def test_nodes_admit_exactly_the_limit_of_a_rule_with_two_windows(
    redis_server: RedisServer, nodes: list[RateLimiter]
) -> None:
    """The free plan's ["10/hour", "100/day"] over the nodes: 10 admitted, counted once in each."""
    admitted, refused = await burst(nodes, ["10/hour", "100/day"])
    assert len(admitted) == 10
    assert entries(redis_server, "10/hour") == 10
    assert entries(redis_server, "100/day") == 10
    assert all(e.status.limit == 10 for e in refused)


@pytest.mark.parametrize("nodes", [2, 3], indirect=True)
async def test_a_full_longer_window_refuses_across_nodes(
    redis_server: RedisServer, nodes: list[RateLimiter]
) -> None:
    """3 of 5/hour already used: of 16 concurrent hits of 3/minute + 5/hour exactly 2 pass."""
    for _ in range(3):
        await nodes[0].hit(*TENANT, parse_rule("5/hour"))
    admitted, _ = await burst(nodes, ["3/minute", "5/hour"])
    assert len(admitted) == 2
    assert entries(redis_server, "5/hour") == 5
    assert entries(redis_server, "3/minute") <= 3
    for _ in range(2):  # the hour is full: later bursts admit nothing and count nowhere
        admitted, _ = await burst(nodes, ["3/minute", "5/hour"])
        assert admitted == []
        assert entries(redis_server, "5/hour") == 5


async def test_one_node_in_memory_admits_exactly_the_limit() -> None:
    """Memory storage, one process: 10 of 16 admitted, each told a different remaining count."""
    limiter = RateLimiter(RateLimitSettings(storage_uri="async+memory://"))
    admitted, refused = await burst([limiter], ["10/minute"])
    assert sorted(s.remaining for s in admitted) == list(range(10))
    assert len(refused) == 6
    await limiter.aclose()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of the test's own, to stop and start again (the session's one stays up)."""
    server = RedisServer().start()
    yield server
    server.stop()


ADMIN = "ratelimit-admin-token"


async def test_a_redis_outage_refuses_with_503_and_ends_by_itself(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    """An API node on a Redis that hangs (SIGSTOP), then dies and comes back on its port:
    admitted, then 503 service_unavailable with Retry-After in the native shape and in two
    compatible surfaces' shapes (never admitted unmetered, no request held past the timeout),
    then admitted again without a restart; one warning per outage in the log."""
    config = write_config(tmp_path / "config.yaml", tmp_path / "data")
    env = {"OCR_GATEWAY_REDIS_URL": own_redis.url(), "OCR_GATEWAY_ADMIN_TOKEN": ADMIN}
    node = GatewayProcess(config, tmp_path / "gateway.log", env, ("serve", "--workers", "0"))
    node.start()
    try:
        async with httpx.AsyncClient(base_url=node.url, timeout=30) as client:
            created = await client.post(
                "/admin/tenants",
                headers={"Authorization": f"Bearer {ADMIN}"},
                json={"name": "outage", "plan": "starter", "credits": 10},
            )
            assert created.status_code == 201, created.text
            key = created.json()["api_key"]
            native = {"X-API-Key": key}
            bearer = {"Authorization": f"Bearer {key}"}

            async def balances() -> list[httpx.Response]:
                """Eight concurrent reads of one key's budget: they queue on one lock."""
                return await asyncio.gather(
                    *(client.get("/v1/balance", headers=native) for _ in range(8))
                )

            assert {r.status_code for r in await balances()} == {200}
            health = (await client.get("/health")).json()["rate_limits"]
            assert health["available"] is True
            assert health["store"].startswith("redis://")
            assert "@" not in health["store"]

            def refused(response: httpx.Response) -> None:
                assert response.status_code == 503, response.text
                assert response.headers["Retry-After"] == str(STORE_RETRY_AFTER_S)
                assert "X-RateLimit-Remaining" not in response.headers

            def native_refused(response: httpx.Response) -> None:
                refused(response)
                error = response.json()["error"]
                assert error["code"] == "service_unavailable"
                assert "rate limits cannot be checked" in error["message"]

            # Redis hangs: every request is refused within the timeout, none waits on another's
            assert own_redis.proc is not None
            own_redis.proc.send_signal(signal.SIGSTOP)
            started = time.monotonic()
            for response in await balances():
                native_refused(response)
            # one deadline for all eight, not one after another (8 x 2 s); slack for a busy box
            assert time.monotonic() - started < 2 * STORE_TIMEOUT_S + 2
            own_redis.proc.send_signal(signal.SIGCONT)
            assert {r.status_code for r in await balances()} == {200}

            # Redis dies: refused at once, in each surface's own shape
            own_redis.halt()
            for response in await balances():
                native_refused(response)
            sota = await client.get("/compat/sotaocr/v1/balance", headers=bearer)
            refused(sota)
            assert sota.json()["error"]["code"] == "service_unavailable"
            jobs = await client.get("/compat/jobapi/api/jobs", headers=native)
            refused(jobs)
            assert "rate limits cannot be checked" in jobs.json()["detail"]
            health = (await client.get("/health")).json()
            assert health["status"] == "degraded"
            assert (await client.get("/compat/jobapi/health")).json()["status"] == "degraded"
            assert health["rate_limits"]["available"] is False
            assert health["rate_limits"]["unavailable_s"] >= 0

            # Redis is back on its port (empty): admitted again, no restart of the node
            own_redis.restart()
            # /health finds it back by itself (it asks Redis once per Retry-After while down),
            # before any rate-limited request does: a quiet node does not stay degraded
            deadline = time.monotonic() + STORE_RETRY_AFTER_S + 5
            while time.monotonic() < deadline:
                if (await client.get("/health")).json()["status"] == "ok":
                    break
                await asyncio.sleep(0.5)
            assert (await client.get("/health")).json()["rate_limits"]["available"] is True
            assert {r.status_code for r in await balances()} == {200}
            assert (await client.get("/compat/sotaocr/v1/balance", headers=bearer)).is_success
            assert (await client.get("/compat/jobapi/api/jobs", headers=native)).is_success
            health = (await client.get("/health")).json()
            assert health["rate_limits"]["available"] is True
            assert health["status"] == "ok"
            assert (await client.get("/compat/jobapi/health")).json()["status"] == "ok"
    finally:
        node.stop()
    logs = node.logs()
    assert logs.count("rate_limit_store_unavailable") == 2, logs[-3000:]  # one per outage
    assert logs.count("rate_limit_store_recovered") == 2, logs[-3000:]
