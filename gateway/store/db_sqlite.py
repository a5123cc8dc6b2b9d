"""The embedded backend: one SQLite file, one writer connection behind a lock, one reader.

WAL mode lets status reads proceed while the worker writes; a transaction is BEGIN IMMEDIATE ...
COMMIT. One node uses the file, so nothing needs claiming clauses or cross-node notices.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from gateway.store.db import ConstraintError, Cursor, Database, Execution, Row, row_index
from gateway.store.schema import migrate

_INDEXES: dict[tuple[str, ...], dict[str, int]] = {}


def _row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> Row:
    names = tuple(d[0] for d in cursor.description)
    index = _INDEXES.get(names)
    if index is None:
        index = _INDEXES[names] = row_index(names)
    return Row(values, index)


class _Tx:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Execution:
        return Execution(_run(self._conn, sql, params))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            await self._conn.executemany(sql, [tuple(r) for r in rows])
        except sqlite3.IntegrityError as exc:
            raise ConstraintError(str(exc)) from exc


async def _run(conn: aiosqlite.Connection, sql: str, params: Iterable[Any]) -> Cursor:
    try:
        async with conn.execute(sql, tuple(params)) as cur:
            rows: list[Row] = list(await cur.fetchall())  # type: ignore[arg-type]
            return Cursor(rows, cur.rowcount)
    except sqlite3.IntegrityError as exc:
        raise ConstraintError(str(exc)) from exc


class SqliteDatabase(Database):
    backend = "sqlite"
    shared = False
    lock_clause = ""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    def describe(self) -> str:
        return f"sqlite:{self.path}"

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await self._connect()
        try:
            await migrate(self._writer, self.path)
        except BaseException:  # a failed migration leaves no open connection behind
            await self._writer.close()
            self._writer = None
            raise
        self._reader = await self._connect()

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = _row  # type: ignore[assignment]
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute("PRAGMA busy_timeout=10000")
        return conn

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Tx]:
        assert self._writer is not None, "database is not open"
        async with self._lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield _Tx(self._writer)
            except BaseException:  # any failure, cancellation included: undo, then re-raise
                await self._writer.execute("ROLLBACK")
                raise
            await self._writer.execute("COMMIT")

    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        assert self._reader is not None, "database is not open"
        cur = await _run(self._reader, sql, params)
        return cur.rows[0] if cur.rows else None

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        assert self._reader is not None, "database is not open"
        return (await _run(self._reader, sql, params)).rows
