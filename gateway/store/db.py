"""The database behind the store: SQLite in the data folder (the embedded default) or
PostgreSQL (`database.url`, for several API and worker nodes), behind one interface.

Store modules write SQL once, with `?` placeholders and the subset both engines share; a backend
adapts the placeholders. Every multi-statement change runs in `async with db.transaction() as
tx:` (committed at the end, rolled back on any error); `tx.execute(sql, params)` is awaited, or
entered (`async with tx.execute(...) as cur:`) to read what it returned. Rows are read by column
name or position. A broken constraint raises `ConstraintError`, whatever the backend.

Where the engines differ the backend says so: `lock_clause` (PostgreSQL claims rows with
`FOR UPDATE SKIP LOCKED`; SQLite has one writer), `shared` (several nodes may use the database:
uploads are kept in it and leases matter), `publish`/`listen` (PostgreSQL's NOTIFY carries a
job's changes to every node; with SQLite there is one node, and nothing to carry).
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Sequence,
)
from typing import Any, Protocol

from gateway.config import Settings


class ConstraintError(Exception):
    """A unique, foreign-key or check constraint refused the change (the transaction is undone)."""


class Row:
    """One result row: `row["column"]` or `row[0]`; `dict(row)` works."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: str | int) -> Any:
        return self._values[self._index[key] if isinstance(key, str) else key]

    def keys(self) -> list[str]:
        return list(self._index)

    def __iter__(self) -> Any:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values, strict=False))!r})"


def row_index(names: Sequence[str]) -> dict[str, int]:
    return {name: i for i, name in enumerate(names)}


class Cursor:
    """What a statement returned: its rows (read at once) and how many rows it changed."""

    __slots__ = ("rowcount", "rows")
    rows: list[Row]
    rowcount: int

    def __init__(self, rows: list[Row], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    async def fetchone(self) -> Row | None:
        return self.rows[0] if self.rows else None

    async def fetchall(self) -> list[Row]:
        return self.rows


class Execution:
    """A statement running: awaited for its cursor, or entered (`async with`)."""

    __slots__ = ("_run",)

    def __init__(self, run: Coroutine[Any, Any, Cursor]) -> None:
        self._run = run

    def __await__(self) -> Generator[Any, None, Cursor]:
        return self._run.__await__()

    async def __aenter__(self) -> Cursor:
        return await self._run

    async def __aexit__(self, *exc: object) -> None:
        return None


class Tx(Protocol):
    """A transaction's connection, as store modules use it."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Execution: ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...


class Database(abc.ABC):
    backend: str  # "sqlite" or "postgresql"
    shared: bool  # several nodes may use it at once
    lock_clause: str  # appended to a claiming SELECT

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, and bring the schema to the latest version (SchemaTooNewError if newer)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractAsyncContextManager[Tx]: ...

    @abc.abstractmethod
    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> Row | None: ...

    @abc.abstractmethod
    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]: ...

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the data is, without credentials (for /health and logs)."""

    async def publish(self, channel: str, payload: str) -> None:
        """Tell every node's listeners on `channel` (one node: nothing to tell)."""
        del channel, payload

    async def publish_at_commit(self, tx: Tx, channel: str, payload: str) -> None:
        """`publish`, sent when `tx` commits (and not at all if it rolls back)."""
        del tx, channel, payload

    async def listen(self, channel: str, callback: Callable[[str], Awaitable[None] | None]) -> None:
        """Call `callback(payload)` for what other nodes publish on `channel`, until closed."""
        del channel, callback


def open_database(settings: Settings) -> Database:
    """The configured backend, not yet opened: PostgreSQL when `database.url` is set."""
    url = settings.database.url
    if url:
        from gateway.store.db_postgres import PostgresDatabase

        return PostgresDatabase(url, pool_size=settings.database.pool_size)
    from gateway.store.db_sqlite import SqliteDatabase

    return SqliteDatabase(settings.database_path)


@contextlib.asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[Database]:
    """The configured database, open for the block (CLI commands)."""
    db = open_database(settings)
    await db.open()
    try:
        yield db
    finally:
        await db.close()
