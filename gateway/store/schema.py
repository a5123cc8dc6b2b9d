"""The schema and its migrations: the database says which version it is at, the code brings it
to the latest at open.

The version is SQLite's `PRAGMA user_version` (0 in a new file). `MIGRATIONS` is append-only:
migration N takes a database from version N-1 to N, and each one runs in its own transaction
(BEGIN IMMEDIATE ... PRAGMA user_version = N ... COMMIT), so a crash or an error leaves the
database at the last version that was applied whole. The version is read again under the write
lock, so two processes opening the same file at once (the server and a CLI command) apply each
migration once.

Version 1 is the schema of the first release, text unchanged: every statement is `IF NOT
EXISTS`, so a data folder that release wrote (its tables there, user_version still 0) is taken
to version 1 without a change and then migrated on like any other. A database at a version newer
than this code knows was written by a newer release: it is refused, never touched.

Never edit a migration once released; add the next one. Statuses and ledger kinds are spelled
in the DDL below as they were when it was written: it is history, not a copy of the enums.

PostgreSQL runs the same migrations (`migrate_postgres`), each script translated by
`to_postgres` (64-bit integers, BYTEA, identity keys) with its version in `schema_version`, under
an advisory lock so that nodes starting together apply each migration once.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any, NamedTuple

import aiosqlite
import psycopg

from gateway.errors import SchemaTooNewError


class Migration(NamedTuple):
    version: int
    summary: str
    script: str  # statements separated by `;`


_FIRST_RELEASE = """
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    plan TEXT NOT NULL,
    email TEXT UNIQUE,
    allow_remote INTEGER NOT NULL DEFAULT 1,
    credits_available INTEGER NOT NULL DEFAULT 0 CHECK (credits_available >= 0),
    credits_reserved INTEGER NOT NULL DEFAULT 0 CHECK (credits_reserved >= 0),
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    job_id TEXT,
    page_number INTEGER,
    kind TEXT NOT NULL CHECK (kind IN ('grant', 'reserve', 'charge', 'refund')),
    amount INTEGER NOT NULL CHECK (amount >= 0),
    tier TEXT,
    note TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_tenant ON ledger(tenant_id, kind, created_at);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    status TEXT NOT NULL,
    file_path TEXT NOT NULL,
    file_kind TEXT NOT NULL,
    file_name TEXT,
    page_count INTEGER NOT NULL,
    credits_reserved INTEGER NOT NULL,
    credits_used INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    completed_at INTEGER,
    last_claimed_at INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_tenant ON jobs(tenant_id, created_at);
CREATE TABLE IF NOT EXISTS pages (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    page_number INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    credits_reserved INTEGER NOT NULL,
    credits_charged INTEGER NOT NULL DEFAULT 0,
    tier TEXT NOT NULL DEFAULT 'simple',
    route BLOB,
    result BLOB,
    error TEXT,
    seconds REAL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, page_number)
);
CREATE INDEX IF NOT EXISTS pages_status ON pages(status);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    tenant_id TEXT NOT NULL,
    key TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    job_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
"""

# Both queries run on every submission and scanned what grows without bound: the page-time
# mean read every page ever stored and sorted it (200 ms at 400k pages); the plan's
# concurrent-job count, under the write lock, read every job the tenant ever had.
_SUBMIT_PATH_INDEXES = """
CREATE INDEX pages_timed ON pages(updated_at) WHERE seconds IS NOT NULL;
CREATE INDEX jobs_tenant_status ON jobs(tenant_id, status);
"""

# A job remembers what it read (the upload's digest and the options that shape the reading),
# so the same bytes with the same options can be answered from it; a quote holds the routes it
# priced until it expires.
_QUOTES_AND_CACHE = """
ALTER TABLE jobs ADD COLUMN file_sha256 TEXT;
ALTER TABLE jobs ADD COLUMN options_key TEXT;
ALTER TABLE jobs ADD COLUMN cached_from TEXT;
CREATE INDEX jobs_cache ON jobs(tenant_id, file_sha256, options_key)
    WHERE file_sha256 IS NOT NULL;
CREATE TABLE quotes (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    file_sha256 TEXT NOT NULL,
    options_key TEXT NOT NULL,
    routes BLOB NOT NULL,
    credits INTEGER NOT NULL CHECK (credits >= 0),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX quotes_expiry ON quotes(expires_at);
"""

# Jobs submitted through a compatible API surface (gateway/api/compat): which surface, so that
# surface's own rules apply to them (the solver deletes a task 30 s after it finishes); a row goes
# with its job, whoever deletes it (retention, another surface).
_COMPAT_JOBS = """
CREATE TABLE compat_jobs (
    job_id TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL,
    surface TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX compat_jobs_surface ON compat_jobs(surface);
"""

# Job webhooks (issue 16): a durable outbox, one row per job that asked for one, due once its
# job has finished (so completing a job and owing its webhook are one commit); each attempt is
# kept on the row. Signing secrets are per tenant (Standard Webhooks, `whsec_...`).
_WEBHOOKS = """
CREATE TABLE webhook_secrets (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants(id),
    secret TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE webhooks (
    job_id TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL,
    url TEXT NOT NULL,
    send_full INTEGER NOT NULL DEFAULT 1,
    message_id TEXT NOT NULL,
    attempts BLOB NOT NULL DEFAULT '[]',
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    delivered_at INTEGER,
    gave_up_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX webhooks_open ON webhooks(next_attempt_at)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;
"""

# What a compatible surface's request said that its webhook body echoes (the read-results
# API's fileId, metadata, subOrgId): kept on the webhook's row, for deliveries after a restart.
_WEBHOOK_CONTEXT = """
ALTER TABLE webhooks ADD COLUMN context BLOB;
"""

# Scale-out (issue 18). A page being read holds a lease its worker extends; one whose lease ran
# out (its node died) is read again. Claiming walks the active jobs in round-robin order and
# takes each one's first waiting page, by two partial indexes, so its cost does not grow with
# the queue. Uploads live in the database when several nodes share it; nodes say they are
# alive in `nodes`.
_SCALE_OUT = """
ALTER TABLE pages ADD COLUMN lease_until INTEGER;
CREATE INDEX pages_waiting ON pages(job_id, page_number) WHERE status = 'pending';
CREATE INDEX pages_leased ON pages(lease_until) WHERE status = 'processing';
CREATE INDEX jobs_claim ON jobs((COALESCE(last_claimed_at, 0)), created_at)
    WHERE status IN ('pending', 'processing');
CREATE TABLE uploads (
    job_id TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    data BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    workers INTEGER NOT NULL,
    version TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "the first release's tables", _FIRST_RELEASE),
    Migration(
        2,
        "indexes for the two queries of every submission that scanned all history",
        _SUBMIT_PATH_INDEXES,
    ),
    Migration(3, "quotes, and what each job read for the result cache", _QUOTES_AND_CACHE),
    Migration(4, "which compatible API surface a job came through", _COMPAT_JOBS),
    Migration(5, "job webhooks: the outbox and each tenant's signing secret", _WEBHOOKS),
    Migration(6, "what a surface's webhook body echoes of its request", _WEBHOOK_CONTEXT),
    Migration(7, "page leases, claiming indexes, uploads in the database, nodes", _SCALE_OUT),
)
LATEST = MIGRATIONS[-1].version


def split_statements(script: str) -> list[str]:
    """The statements of a script, cut only where SQLite says a statement is complete (a `;`
    inside a string or a trigger body does not end one)."""
    statements: list[str] = []
    current = ""
    for piece in script.split(";"):
        if not (current + piece).strip():
            continue
        current += piece + ";"
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current:
        raise ValueError(f"incomplete SQL statement: {current.strip()[:80]!r}")
    return statements


async def user_version(conn: aiosqlite.Connection) -> int:
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


def _check_known(found: int, latest: int, path: Path) -> None:
    if found > latest:
        raise SchemaTooNewError(
            f"{path} is at schema version {found}, newer than the {latest} this release of "
            "ocr-gateway knows: it was written by a newer release; run that release (or a "
            "later one), or restore a backup taken before the upgrade",
            found=found,
            known=latest,
        )


async def migrate(
    conn: aiosqlite.Connection, path: Path, migrations: tuple[Migration, ...] = MIGRATIONS
) -> int:
    """Bring the database on `conn` (autocommit mode) to the last of `migrations`; returns the
    version it was at. Raises SchemaTooNewError, before any change, if it is newer."""
    latest = migrations[-1].version
    found = await user_version(conn)
    _check_known(found, latest, path)
    for migration in migrations:
        if migration.version <= found:
            continue
        await conn.execute("BEGIN IMMEDIATE")
        try:
            current = await user_version(conn)  # another process may have got here first
            _check_known(current, latest, path)
            if current < migration.version:
                for statement in split_statements(migration.script):
                    await conn.execute(statement)
                # PRAGMA takes no parameters; the version is an int from the list above.
                await conn.execute(f"PRAGMA user_version = {int(migration.version)}")
        except BaseException:  # any failure, cancellation included: undo, then re-raise
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")
    return found


_PG_TYPES = (
    (
        re.compile(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b"),
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    ),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
)
PG_LOCK_KEY = 0x6F637267  # "ocrg": the advisory lock migrations run under


def to_postgres(script: str) -> str:
    """A migration's SQLite DDL in PostgreSQL's types (epoch milliseconds need 64 bits)."""
    for pattern, replacement in _PG_TYPES:
        script = pattern.sub(replacement, script)
    return script


async def migrate_postgres(
    conn: psycopg.AsyncConnection[Any], where: str, migrations: tuple[Migration, ...] = MIGRATIONS
) -> int:
    """PostgreSQL's `migrate`: same migrations, same refusal of a newer schema."""
    latest = migrations[-1].version
    await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
    found = -1
    for migration in migrations:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (PG_LOCK_KEY,))
            cur = await conn.execute("SELECT MAX(version) FROM schema_version")
            row = await cur.fetchone()
            current = int(row[0]) if row and row[0] is not None else 0
            found = current if found < 0 else found
            _check_known(current, latest, Path(where))
            if current < migration.version:
                for statement in split_statements(to_postgres(migration.script)):
                    await conn.execute(statement.encode())
                await conn.execute("DELETE FROM schema_version")
                await conn.execute(
                    "INSERT INTO schema_version (version) VALUES (%s)", (migration.version,)
                )
    return max(found, 0)
