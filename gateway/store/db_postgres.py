"""The scale-out backend: PostgreSQL through psycopg 3, a connection pool and LISTEN/NOTIFY.

Any number of API and worker nodes share one database. Pages are claimed with `FOR UPDATE SKIP
LOCKED` (`lock_clause`), so concurrent claimers never wait on each other's rows; transactions run
at READ COMMITTED, and the store takes the row locks its invariants need (a job's row before its
completion count, a tenant's row before its admission count). A job's change is published with
`pg_notify` and heard by every node's listener, which wakes that node's long polls and workers.

The store's SQL is written once with `?` placeholders: they become psycopg's `%s` here (a
literal `%` is doubled). Booleans are bound as integers (the schema's flags are integers on both
engines), string enums by value, and `numeric` results (PostgreSQL's SUM of integers) come back
as `int`, or `float` when they have a fraction.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import structlog
from psycopg.adapt import Loader
from psycopg_pool import AsyncConnectionPool

from gateway.store.db import ConstraintError, Cursor, Database, Execution, Row, Tx, row_index
from gateway.store.schema import migrate_postgres

log = structlog.get_logger(__name__)
LISTEN_RETRY_S = 2.0


def to_pyformat(sql: str) -> str:
    """`?` placeholders outside quoted text become `%s`; a literal `%` becomes `%%`."""
    out: list[str] = []
    quote: str | None = None
    for char in sql:
        if quote:
            if char == quote:
                quote = None
            out.append("%%" if char == "%" else char)
        elif char in "'\"":
            quote = char
            out.append(char)
        elif char == "?":
            out.append("%s")
        elif char == "%":
            out.append("%%")
        else:
            out.append(char)
    return "".join(out)


_SQL_CACHE: dict[str, str] = {}


def _sql(sql: str) -> str:
    translated = _SQL_CACHE.get(sql)
    if translated is None:
        translated = _SQL_CACHE[sql] = to_pyformat(sql)
    return translated


def _param(value: Any) -> Any:
    if value is True or value is False:
        return int(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


class _NumericLoader(Loader):
    def load(self, data: Any) -> int | float:
        text = bytes(data).decode()
        return float(text) if "." in text or "e" in text.lower() else int(text)


def _rows(cur: psycopg.AsyncCursor[Any], values: list[tuple[Any, ...]]) -> list[Row]:
    if not values or cur.description is None:
        return []
    index = row_index([column.name for column in cur.description])
    return [Row(v, index) for v in values]


async def _run(conn: psycopg.AsyncConnection[Any], sql: str, params: Iterable[Any]) -> Cursor:
    try:
        async with conn.cursor() as cur:
            await cur.execute(_sql(sql), tuple(_param(p) for p in params))
            values = await cur.fetchall() if cur.description is not None else []
            return Cursor(_rows(cur, values), cur.rowcount)
    except psycopg.errors.IntegrityError as exc:
        raise ConstraintError(str(exc)) from exc


class _Tx:
    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Execution:
        return Execution(_run(self._conn, sql, params))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            async with self._conn.cursor() as cur:
                await cur.executemany(_sql(sql), [tuple(_param(p) for p in r) for r in rows])
        except psycopg.errors.IntegrityError as exc:
            raise ConstraintError(str(exc)) from exc


def redact(url: str) -> str:
    """The URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    conn.adapters.register_loader("numeric", _NumericLoader)
    # Page results and uploads are large values: lz4 stores them in about half pglz's CPU
    # (a server built without lz4 keeps its default).
    with contextlib.suppress(psycopg.Error):
        await conn.execute("SET default_toast_compression = 'lz4'")


class PostgresDatabase(Database):
    backend = "postgresql"
    shared = True
    lock_clause = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.url = url
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._pool_size = pool_size
        self._listeners: list[asyncio.Task[None]] = []

    def describe(self) -> str:
        return redact(self.url)

    async def open(self) -> None:
        conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        try:
            await _configure(conn)
            await migrate_postgres(conn, self.describe())
        finally:
            await conn.close()
        self._pool = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=self._pool_size,
            kwargs={"autocommit": True},
            configure=_configure,
            open=False,
        )
        await self._pool.open(wait=True)

    async def close(self) -> None:
        for task in self._listeners:
            task.cancel()
        for task in self._listeners:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._listeners = []
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Tx]:
        assert self._pool is not None, "database is not open"
        async with self._pool.connection() as conn, conn.transaction():
            yield _Tx(conn)

    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        assert self._pool is not None, "database is not open"
        async with self._pool.connection() as conn:
            return (await _run(conn, sql, params)).rows

    async def publish(self, channel: str, payload: str) -> None:
        assert self._pool is not None, "database is not open"
        async with self._pool.connection() as conn:
            await conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))

    async def publish_at_commit(self, tx: Tx, channel: str, payload: str) -> None:
        await tx.execute("SELECT pg_notify(?, ?)", (channel, payload))

    async def listen(self, channel: str, callback: Callable[[str], Awaitable[None] | None]) -> None:
        ready = asyncio.Event()
        self._listeners.append(
            asyncio.create_task(self._listen(channel, callback, ready), name=f"listen-{channel}")
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), 10)

    async def _listen(
        self,
        channel: str,
        callback: Callable[[str], Awaitable[None] | None],
        ready: asyncio.Event,
    ) -> None:
        """One connection per channel, LISTENing; reconnects after a lost connection."""
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
                async with conn:
                    await conn.execute(f'LISTEN "{channel}"')
                    ready.set()
                    async for notice in conn.notifies():
                        outcome = callback(notice.payload)
                        if outcome is not None:
                            await outcome
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the listener outlives a lost connection
                log.warning("listen_reconnecting", channel=channel, reason=str(exc)[:200])
            await asyncio.sleep(LISTEN_RETRY_S)
