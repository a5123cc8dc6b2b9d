from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.gateway_process import CORPUS, GatewayProcess, create_tenant, write_config
from tests.support.outbound import Outbound
from tests.support.servers import PostgresServer, RedisServer


@pytest.fixture(scope="session")
def corpus() -> Path:
    assert CORPUS.is_dir(), f"the shared corpus is expected at {CORPUS}"
    return CORPUS


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One real gateway with the default config (RapidOCR, two workers) for the session."""
    root = tmp_path_factory.mktemp("gateway")
    config = write_config(root / "config.yaml", root / "data")
    server = GatewayProcess(config, root / "gateway.log").start()
    yield server
    server.stop()


@pytest.fixture
def client(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=60) as c:
        yield c


@pytest.fixture
def api_key(gateway: GatewayProcess) -> str:
    return create_tenant(gateway.config, credits=1000)


@pytest.fixture(scope="session")
def compat_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One gateway for every compatible-surface test module (its settings: compat_support)."""
    from tests.compat_support import start_gateway

    server = start_gateway(tmp_path_factory.mktemp("compat"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def outbound(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outbound]:
    """One gateway shared by the tests of URL input, webhooks and the read-results API."""
    running = Outbound(tmp_path_factory.mktemp("outbound"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL on a free loopback port for the session (fails if not installed)."""
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """postgresql://gateway@127.0.0.1:PORT/t_<hex>: a fresh empty database, dropped after."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port for the session (fails if not installed)."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """redis://127.0.0.1:PORT/0 of an emptied server (FLUSHALL before the test)."""
    redis_server.flushall()
    return redis_server.url()
