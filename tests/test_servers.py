"""The test fixtures' real servers: PostgreSQL and Redis on loopback, fresh state per test."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import coredis
import psycopg

from tests.support.gateway_process import REPO
from tests.support.servers import PostgresServer, RedisServer


def test_postgres_url_is_a_fresh_database_on_loopback(postgres_url: str) -> None:
    """The URL is a new, empty database on 127.0.0.1 the tests can write to."""
    assert postgres_url.startswith("postgresql://gateway@127.0.0.1:")
    with psycopg.connect(postgres_url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        assert tables == (0,)
        conn.execute("CREATE TABLE t (id bigint PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO t VALUES (1, 'é')")
        assert conn.execute("SELECT name FROM t").fetchone() == ("é",)
        assert conn.execute("SHOW fsync").fetchone() == ("off",)
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)


def test_each_test_gets_its_own_database(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """Databases from create_database() are distinct and drop_database() removes one."""
    other = postgres_server.create_database()
    assert postgres_server.url(other) != postgres_url
    postgres_server.drop_database(other)
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        names = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
    assert postgres_url.rsplit("/", 1)[1] in names
    assert other not in names


async def test_postgres_async_connection(postgres_url: str) -> None:
    """psycopg's async connection (the store's) reaches the fixture's server."""
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        cur = await conn.execute("SELECT current_database(), current_user")
        assert await cur.fetchone() == (postgres_url.rsplit("/", 1)[1], "gateway")


async def test_redis_url_starts_empty(redis_url: str) -> None:
    """PING, SET and GET on the fixture's server; the database is empty at the start."""
    client = coredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert await client.ping() == "PONG"
        assert await client.dbsize() == 0
        await client.set("left-behind", "1")
        assert await client.get("left-behind") == "1"
    finally:
        client.connection_pool.disconnect()


def test_redis_is_flushed_between_tests(redis_server: RedisServer, redis_url: str) -> None:
    """The key the previous test left is gone: redis_url flushes the server."""
    assert redis_server.command("DBSIZE") == ":0"
    assert redis_url == redis_server.url(0)


def test_servers_die_with_the_test_process(tmp_path: Path) -> None:
    """A test run killed outright leaves no gateway (nor its worker processes) and no Redis."""
    script = f"""
import json, sys, time
from pathlib import Path
from tests.support.gateway_process import GatewayProcess, write_config
from tests.support.servers import RedisServer
tmp = Path({str(tmp_path)!r})
redis = RedisServer().start()
node = GatewayProcess(write_config(tmp / "config.yaml", tmp / "data"), tmp / "node.log",
                      args=("serve", "--workers", "0")).start()
print(json.dumps([str(redis.root), redis.proc.pid, *node.pids()]), flush=True)
time.sleep(600)
"""
    with subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True
    ) as parent:
        try:
            assert parent.stdout is not None
            redis_root, *pids = json.loads(parent.stdout.readline())
            assert len(pids) >= 3, pids  # Redis, the node, its render process
            assert all(alive(pid) for pid in pids)
        finally:
            parent.kill()
    try:
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in pids if alive(pid)]
    finally:
        shutil.rmtree(redis_root, ignore_errors=True)


def alive(pid: int) -> bool:
    """Running: not gone and not a zombie waiting for its reaper."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
