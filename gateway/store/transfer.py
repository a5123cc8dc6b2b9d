"""Move an embedded installation into PostgreSQL: every row of the data folder's SQLite file,
and each job's upload file into `uploads` (nodes share no disk), in one transaction on the target.

`move(settings, url)` opens the source (migrating it to the latest schema), refuses while a node
was seen on it within three heartbeats (stop the server first), opens the target (its migrations
run) and refuses one that holds any row. Tables are copied in foreign-key order, in batches of
`batch_rows`, with the columns both sides have (the same, since both are at the latest version);
an identity column (the ledger's id) keeps its values, and its sequence is moved past them. Each
job's upload is read from its recorded path, else from the data folder's uploads under the same
name; a missing one is counted and reported, and the move goes on (the job's result is kept; the
page cannot be previewed or read again). Before the commit the target is checked: its row counts
equal the source's, and every tenant's balance and ledger sums equal the source's, with
available + reserved == grants - charges. Any failure rolls the target back to empty.

`nodes` is not copied (its rows describe the old process); `uploads` of the source is empty
(embedded, the uploads are files).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import psycopg

from gateway.clock import now_ms
from gateway.config import DatabaseSettings, Settings
from gateway.store import nodes
from gateway.store.db import ConstraintError, Database, Tx, open_database
from gateway.store.ledger import LedgerKind

# Parents before children. A table of the source not named here (nor in SKIPPED) stops the
# move: a new migration's table must be placed here first.
TABLES = (
    "tenants",
    "api_keys",
    "ledger",
    "jobs",
    "pages",
    "idempotency_keys",
    "quotes",
    "compat_jobs",
    "webhook_secrets",
    "webhooks",
)
SKIPPED = ("nodes", "uploads")
UPLOAD_BATCH_BYTES = 32 * 1024 * 1024


class TransferError(Exception):
    """The move cannot be made or did not check out; the target is left as it was."""


class TargetNotEmptyError(TransferError):
    """The target already holds data: nothing is merged into it."""


class MissingUpload(msgspec.Struct, frozen=True):
    job_id: str
    path: str


class Report(msgspec.Struct, kw_only=True):
    source: str
    target: str
    rows: dict[str, int]  # table -> rows copied
    uploads: int = 0  # upload files copied into the target
    upload_bytes: int = 0
    missing: list[MissingUpload] = msgspec.field(default_factory=list)
    tenants_checked: int = 0  # ledger sums and balances equal on both sides


async def move(
    settings: Settings,
    url: str,
    *,
    batch_rows: int = 500,
    on_missing: Callable[[MissingUpload], None] | None = None,
) -> Report:
    """Copy the embedded installation of `settings` (its data folder) into the empty
    PostgreSQL database at `url`, all or nothing."""
    try:
        target_db = DatabaseSettings(url=url, pool_size=2)
    except ValueError as exc:
        raise TransferError(str(exc)) from exc
    if not settings.database_path.is_file():
        raise TransferError(
            f"no embedded database at {settings.database_path}: nothing to move "
            "(check --config and data_dir)"
        )
    embedded = msgspec.structs.replace(settings, database=DatabaseSettings())
    async with _opened(open_database(embedded), "the embedded database") as source:
        await _refuse_running(source, settings)
        target_settings = msgspec.structs.replace(settings, database=target_db)
        async with _opened(open_database(target_settings), "the target database") as target:
            if target.backend != "postgresql":
                raise TransferError("the target must be a PostgreSQL database")
            return await _copy(source, target, settings.uploads_dir, batch_rows, on_missing)


@contextlib.asynccontextmanager
async def _opened(db: Database, what: str) -> AsyncIterator[Database]:
    try:
        await db.open()
    except (psycopg.Error, OSError) as exc:
        raise TransferError(f"cannot open {what} ({db.describe()}): {exc}") from exc
    try:
        yield db
    finally:
        await db.close()


async def _refuse_running(source: Database, settings: Settings) -> None:
    """A node that beat within three heartbeats may still be writing: stop it first."""
    since = now_ms() - int(3 * settings.worker.heartbeat_s * 1000)
    alive = await nodes.seen_since(source, since)
    if alive:
        who = ", ".join(f"{n.role} pid {n.pid} on {n.host}" for n in alive)
        raise TransferError(
            f"a gateway is running on {source.describe()} ({who}): stop it first, then move "
            "(a crashed one stops counting after three heartbeats)"
        )


async def _copy(
    source: Database,
    target: Database,
    uploads_dir: Path,
    batch_rows: int,
    on_missing: Callable[[MissingUpload], None] | None,
) -> Report:
    report = Report(source=source.describe(), target=target.describe(), rows={})
    # The source's write lock for the whole read: one consistent picture, nothing changes it.
    async with source.transaction() as src, target.transaction() as dst:
        tables = await _source_tables(src)
        unknown = sorted(set(tables) - set(TABLES) - set(SKIPPED))
        if unknown:
            raise TransferError(f"tables this release cannot move yet: {', '.join(unknown)}")
        await _refuse_non_empty(dst)
        try:
            for table in TABLES:
                report.rows[table] = await _copy_table(src, dst, table, batch_rows)
            await _copy_uploads(src, dst, uploads_dir, report, on_missing)
        except (ConstraintError, psycopg.Error) as exc:
            raise TransferError(f"the target refused a row: {exc}") from exc
        await _check_counts(src, dst, report)
        report.tenants_checked = await _check_ledger(src, dst)
    return report


async def _source_tables(src: Tx) -> list[str]:
    async with src.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ) as cur:
        return [row[0] for row in await cur.fetchall()]


async def _count(tx: Tx, table: str) -> int:
    # Table names come from TABLES (or the source's own catalog), never from input.
    async with tx.execute(f"SELECT COUNT(*) FROM {table}") as cur:  # noqa: S608
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _refuse_non_empty(dst: Tx) -> None:
    held = {table: await _count(dst, table) for table in (*TABLES, "uploads")}
    held = {table: n for table, n in held.items() if n}
    if held:
        listed = ", ".join(f"{table} {n}" for table, n in held.items())
        raise TargetNotEmptyError(
            f"the target database is not empty ({listed} rows): moving merges nothing into "
            "existing data; give an empty database"
        )


async def _columns(src: Tx, dst: Tx, table: str) -> tuple[list[str], set[str], list[str]]:
    """(columns, those stored as bytea on the target, identity columns of the target)."""
    async with src.execute("SELECT name FROM pragma_table_info(?) ORDER BY cid", (table,)) as cur:
        source = [row[0] for row in await cur.fetchall()]
    async with dst.execute(
        "SELECT column_name, data_type, is_identity FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = ?",
        (table,),
    ) as cur:
        target = {row[0]: (row[1], row[2]) for row in await cur.fetchall()}
    if set(source) != set(target):
        raise TransferError(
            f"{table}: the source's columns {sorted(source)} differ from the target's "
            f"{sorted(target)}"
        )
    binary = {name for name, (kind, _) in target.items() if kind == "bytea"}
    identity = [name for name, (_, ident) in target.items() if ident == "YES"]
    return source, binary, identity


def _convert(values: Sequence[Any], binary: list[bool]) -> tuple[Any, ...]:
    # SQLite may keep text in a BLOB column (webhooks.attempts defaults to '[]'): bytes for bytea.
    return tuple(
        value.encode() if is_binary and isinstance(value, str) else value
        for value, is_binary in zip(values, binary, strict=True)
    )


async def _copy_table(src: Tx, dst: Tx, table: str, batch_rows: int) -> int:
    columns, binary, identity = await _columns(src, dst, table)
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    insert = f"INSERT INTO {table} ({names}) VALUES ({marks})"  # noqa: S608 - names from catalogs
    if identity:
        insert = f"INSERT INTO {table} ({names}) OVERRIDING SYSTEM VALUE VALUES ({marks})"  # noqa: S608
    select = f"SELECT rowid, {names} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?"  # noqa: S608
    is_binary = [name in binary for name in columns]
    copied, last = 0, -(2**63)
    while True:
        async with src.execute(select, (last, batch_rows)) as cur:
            rows = await cur.fetchall()
        if not rows:
            break
        last = rows[-1][0]
        await dst.executemany(insert, [_convert(list(row)[1:], is_binary) for row in rows])
        copied += len(rows)
    for column in identity:
        async with dst.execute(f"SELECT MAX({column}) FROM {table}") as cur:  # noqa: S608
            row = await cur.fetchone()
        if row is not None and row[0] is not None:
            await dst.execute(
                "SELECT setval(pg_get_serial_sequence(?, ?), ?)", (table, column, int(row[0]))
            )
    return copied


def _upload_file(recorded: str, uploads_dir: Path) -> Path | None:
    """The job's upload: where it was recorded, else under the same name in the uploads folder
    (a data folder moved since)."""
    for path in (Path(recorded), uploads_dir / Path(recorded).name):
        if path.is_file():
            return path
    return None


async def _copy_uploads(
    src: Tx,
    dst: Tx,
    uploads_dir: Path,
    report: Report,
    on_missing: Callable[[MissingUpload], None] | None,
) -> None:
    async with src.execute("SELECT id, file_path, created_at FROM jobs ORDER BY rowid") as cur:
        jobs = [(row[0], row[1], row[2]) for row in await cur.fetchall()]
    batch: list[tuple[str, bytes, int]] = []
    size = 0
    for job_id, recorded, created_at in jobs:
        path = await asyncio.to_thread(_upload_file, recorded, uploads_dir)
        if path is None:
            missing = MissingUpload(job_id, recorded)
            report.missing.append(missing)
            if on_missing is not None:
                on_missing(missing)
            continue
        data = await asyncio.to_thread(path.read_bytes)
        batch.append((job_id, data, created_at))
        size += len(data)
        report.uploads += 1
        report.upload_bytes += len(data)
        if size >= UPLOAD_BATCH_BYTES:
            await _insert_uploads(dst, batch)
            batch, size = [], 0
    await _insert_uploads(dst, batch)


async def _insert_uploads(dst: Tx, batch: list[tuple[str, bytes, int]]) -> None:
    if batch:
        await dst.executemany(
            "INSERT INTO uploads (job_id, data, created_at) VALUES (?, ?, ?)", batch
        )


async def _check_counts(src: Tx, dst: Tx, report: Report) -> None:
    for table, copied in report.rows.items():
        source, target = await _count(src, table), await _count(dst, table)
        if not source == target == copied:
            raise TransferError(
                f"{table}: {source} rows in the source, {copied} copied, {target} in the target"
            )
    if (held := await _count(dst, "uploads")) != report.uploads:
        raise TransferError(f"uploads: {report.uploads} copied, {held} in the target")


_BALANCES = (
    "SELECT t.id, t.credits_available, t.credits_reserved,"
    " COALESCE((SELECT SUM(amount) FROM ledger WHERE tenant_id = t.id AND kind = ?), 0),"
    " COALESCE((SELECT SUM(amount) FROM ledger WHERE tenant_id = t.id AND kind = ?), 0)"
    " FROM tenants t"
)


async def _balances(tx: Tx) -> dict[str, tuple[int, int, int, int]]:
    async with tx.execute(_BALANCES, (LedgerKind.GRANT.value, LedgerKind.CHARGE.value)) as cur:
        return {
            row[0]: (int(row[1]), int(row[2]), int(row[3]), int(row[4]))
            for row in await cur.fetchall()
        }


async def _check_ledger(src: Tx, dst: Tx) -> int:
    """Every tenant's (available, reserved, grants, charges) equal on both sides, and
    available + reserved == grants - charges. Returns the number of tenants checked."""
    source, target = await _balances(src), await _balances(dst)
    for tenant, sums in source.items():
        if target.get(tenant) != sums:
            raise TransferError(
                f"tenant {tenant}: balance and ledger sums {sums} in the source, "
                f"{target.get(tenant)} in the target"
            )
        available, reserved, grants, charges = sums
        if available + reserved != grants - charges:
            raise TransferError(
                f"tenant {tenant}: available {available} + reserved {reserved} != grants "
                f"{grants} - charges {charges} in the source: its ledger does not balance; "
                "nothing was moved"
            )
    return len(source)
