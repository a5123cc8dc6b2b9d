"""The versioned schema: a data folder written before versions existed is served and migrated,
a newer database is refused, and each migration is applied whole or not at all."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiosqlite
import httpx
import pytest

from gateway.errors import SchemaTooNewError
from gateway.store import tenants
from gateway.store.db_sqlite import SqliteDatabase as Database
from gateway.store.ledger import LedgerKind
from gateway.store.schema import (
    LATEST,
    MIGRATIONS,
    Migration,
    migrate,
    split_statements,
)
from tests.ledger_checks import assert_ledger_balanced, charges_by_page
from tests.support.gateway_process import GatewayProcess, wait_for_job, write_config

# The schema exactly as gateway/store/db.py created it at commit 9cecdd0, before the schema had
# a version: data folders written then have these tables and user_version 0.
FIRST_RELEASE_DDL = """
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

# Rows as the first release wrote them (msgspec JSON of PageRoute and PageResult).
_FEATURES = (
    '{"ink_ratio":0.08,"contrast":0.9,"noise":0.01,"edge_density":0.05,"skew_deg":0.0,'
    '"h_rules":0,"v_rules":0,"line_regularity":0.9,"component_height_cv":0.2,'
    '"connected_ratio":0.1,"axis_alignment":1.0,"color_saturation":0.0,"vertical_text":0.0,'
    '"dpi":300.0,"text_height_px":24.0}'
)
ROUTE = (
    '{"tier":"simple","credits":1,"providers":["tesseract"],"complexity_score":1.5,'
    '"reason":"complexity 1.5","escalate":true,"best_of_chain":false,"capped":false,'
    f'"features":{_FEATURES}}}'
).encode()
OLD_TEXT = "Text the first release read from this page."
RESULT = (
    '{"page_number":1,"status":"completed","document_metadata":{"source_model":'
    '"tesseract-5","page_dimensions":{"width":1700,"height":80},"global_confidence":0.93,'
    '"dpi":300.0,"rotation_deg":0},"content_blocks":[{"block_id":0,"type":"text","geometry":'
    '{"x":0.01,"y":0.1,"width":0.9,"height":0.7},"text":"' + OLD_TEXT + '","confidence":0.93,'
    '"lines":[{"text":"' + OLD_TEXT + '","confidence":0.93,"geometry":{"x":0.01,"y":0.1,'
    '"width":0.9,"height":0.7}}]}],"raw_markdown":"' + OLD_TEXT + '","pipeline_metadata":'
    '{"complexity_score":1.5,"tier":"simple","credits":1,"provider_used":"tesseract",'
    '"provider_reason":"complexity 1.5","timings":{"render_ms":9.4,"ocr_ms":411.0,'
    f'"layout_ms":0.2,"total_ms":420.6}},"features":{_FEATURES},"attempts":[{{"provider":'
    '"tesseract","confidence":0.93,"seconds":0.411,"error":null}],"escalation":null,'
    '"capped":false},"error":null}'
).encode()


class FirstReleaseFolder:
    """A data folder as the first release left it: a tenant with a key, a completed job and a
    pending job of two unread pages, the ledger balanced."""

    def __init__(self, root: Path, corpus: Path) -> None:
        self.data = root / "data"
        self.db = self.data / "gateway.sqlite3"
        uploads = self.data / "uploads"
        uploads.mkdir(parents=True)
        self.key = "ocrg_" + uuid.uuid4().hex * 2
        self.tenant_id, self.done_job, self.pending_job = (str(uuid.uuid4()) for _ in range(3))
        done_file = uploads / f"{self.done_job}.png"
        shutil.copy(corpus / "a_clean_printed/uw3_lines/010004.bin.png", done_file)
        pending_file = uploads / f"{self.pending_job}.pdf"
        shutil.copy(corpus / "d_tables/icdar2013/eu-006.pdf", pending_file)  # 3 pages
        now = time.time_ns() // 1_000_000 - 60_000
        with sqlite3.connect(self.db) as db:
            db.executescript(FIRST_RELEASE_DDL)
            db.execute(
                "INSERT INTO tenants (id, name, plan, email, allow_remote,"
                " credits_available, credits_reserved, created_at)"
                " VALUES (?, 'old tenant', 'starter', NULL, 1, 97, 2, ?)",
                (self.tenant_id, now),
            )
            # keys were stored as their plain SHA-256 hex digest
            db.execute(
                "INSERT INTO api_keys (id, tenant_id, key_hash, prefix, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    str(uuid.uuid4()),
                    self.tenant_id,
                    hashlib.sha256(self.key.encode()).hexdigest(),
                    self.key[:12],
                    now,
                ),
            )
            db.executemany(
                "INSERT INTO ledger (tenant_id, job_id, page_number, kind, amount, tier, note,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (self.tenant_id, None, None, "grant", 100, None, "opening balance", now),
                    (self.tenant_id, self.done_job, None, "reserve", 1, None, None, now + 1),
                    (self.tenant_id, self.done_job, 1, "charge", 1, "simple", None, now + 900),
                    (self.tenant_id, self.pending_job, None, "reserve", 2, None, None, now + 2),
                ],
            )
            db.execute(
                "INSERT INTO jobs (id, tenant_id, status, file_path, file_kind, file_name,"
                " page_count, credits_reserved, credits_used, error, created_at, started_at,"
                " completed_at, last_claimed_at)"
                " VALUES (?, ?, 'completed', ?, 'png', 'line.png', 1, 1, 1, NULL, ?, ?, ?, ?)",
                (
                    self.done_job,
                    self.tenant_id,
                    str(done_file),
                    now + 1,
                    now + 5,
                    now + 900,
                    now + 5,
                ),
            )
            db.execute(
                "INSERT INTO pages (job_id, page_number, status, attempts, credits_reserved,"
                " credits_charged, tier, route, result, error, seconds, updated_at)"
                " VALUES (?, 1, 'completed', 1, 1, 1, 'simple', ?, ?, NULL, 0.42, ?)",
                (self.done_job, ROUTE, RESULT, now + 900),
            )
            db.execute(
                "INSERT INTO jobs (id, tenant_id, status, file_path, file_kind, file_name,"
                " page_count, credits_reserved, created_at)"
                " VALUES (?, ?, 'pending', ?, 'pdf', 'eu-006.pdf', 2, 2, ?)",
                (self.pending_job, self.tenant_id, str(pending_file), now + 2),
            )
            db.executemany(
                "INSERT INTO pages (job_id, page_number, status, credits_reserved, tier, route,"
                " updated_at) VALUES (?, ?, 'pending', 1, 'simple', ?, ?)",
                [(self.pending_job, n, ROUTE, now + 2) for n in (1, 2)],
            )
        db.close()


@pytest.fixture
def first_release(tmp_path: Path, corpus: Path) -> FirstReleaseFolder:
    return FirstReleaseFolder(tmp_path, corpus)


@pytest.fixture
def server(tmp_path: Path, first_release: FirstReleaseFolder) -> Iterator[GatewayProcess]:
    config = write_config(
        tmp_path / "config.yaml",
        first_release.data,
        pipeline={"provider": "tesseract"},
        worker={"processes": 1},
    )
    process = GatewayProcess(config, tmp_path / "gateway.log").start()
    yield process
    process.stop()


def schema_of(path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
    db.close()
    return rows


def version_of(path: Path) -> int:
    with sqlite3.connect(path) as db:
        version: int = db.execute("PRAGMA user_version").fetchone()[0]
    db.close()
    return version


def test_first_release_folder_is_served_and_migrated(
    server: GatewayProcess, first_release: FirstReleaseFolder
) -> None:
    """A gateway started on a data folder of the first release serves its finished job, reads
    its pending pages, and leaves the database at the latest version, the ledger balanced."""
    headers = {"X-API-Key": first_release.key}
    with httpx.Client(base_url=server.url, timeout=60) as client:
        old = client.get(f"/v1/jobs/{first_release.done_job}", headers=headers)
        assert old.status_code == 200, old.text
        assert old.json()["status"] == "completed"
        assert [p["raw_markdown"] for p in old.json()["results"]] == [OLD_TEXT]
        job = wait_for_job(client, first_release.pending_job, first_release.key, timeout_s=240)
    assert job["status"] == "completed", job
    assert [p["page_number"] for p in job["results"]] == [1, 2]
    assert all(p["status"] == "completed" and p["raw_markdown"].strip() for p in job["results"])
    assert job["credits_used"] == 2
    server.stop()
    assert version_of(first_release.db) == LATEST
    assert charges_by_page(first_release.db, first_release.pending_job) == {1: 1, 2: 1}
    assert_ledger_balanced(first_release.db)


async def test_first_release_database_gets_every_migration(
    first_release: FirstReleaseFolder,
) -> None:
    """user_version 0 with the tables present is the first release: its rows stay, the later
    migrations' indexes are added."""
    db = Database(first_release.db)
    await db.open()
    await db.close()
    assert version_of(first_release.db) == LATEST
    names = {name for _, name, _ in schema_of(first_release.db)}
    assert {"pages_timed", "jobs_tenant_status"} <= names
    with sqlite3.connect(first_release.db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM pages").fetchone()[0] == 3
    conn.close()


async def test_version_1_is_the_first_release_schema(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "old.sqlite3") as old:
        old.executescript(FIRST_RELEASE_DDL)
    old.close()
    new = tmp_path / "new.sqlite3"
    async with _raw(new) as conn:
        await migrate(conn, new, MIGRATIONS[:1])
    assert schema_of(tmp_path / "new.sqlite3") == schema_of(tmp_path / "old.sqlite3")
    assert version_of(tmp_path / "new.sqlite3") == 1


def test_migrations_are_numbered_one_to_latest() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1))


async def test_opening_twice_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"
    db = Database(path)
    await db.open()
    tenant, _ = await tenants.create_tenant(db, "t", "starter", 10)
    await db.close()
    schema = schema_of(path)
    await db.open()
    assert (await tenants.get_tenant(db, tenant.id)).credits_available == 10
    await db.close()
    assert schema_of(path) == schema
    assert version_of(path) == LATEST


async def test_newer_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE from_the_future (x INTEGER)")
        conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    conn.close()
    with pytest.raises(SchemaTooNewError, match=f"schema version {LATEST + 1}"):
        await Database(path).open()
    assert version_of(path) == LATEST + 1
    assert [name for _, name, _ in schema_of(path)] == ["from_the_future"]


async def test_failed_migration_leaves_the_previous_version(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"
    db = Database(path)
    await db.open()
    await db.close()
    broken = (
        *MIGRATIONS,
        Migration(
            LATEST + 1,
            "fails half way",
            "CREATE TABLE half (x INTEGER); INSERT INTO nowhere VALUES (1)",
        ),
    )
    async with _raw(path) as conn:
        with pytest.raises(sqlite3.OperationalError, match="nowhere"):
            await migrate(conn, path, broken)
    assert version_of(path) == LATEST
    assert "half" not in {name for _, name, _ in schema_of(path)}


@pytest.mark.parametrize("kind", list(LedgerKind))
async def test_every_ledger_kind_passes_the_schema_check(tmp_path: Path, kind: LedgerKind) -> None:
    db = Database(tmp_path / "gateway.sqlite3")
    await db.open()
    tenant, _ = await tenants.create_tenant(db, "t", "starter", 0)
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO ledger (tenant_id, kind, amount, created_at) VALUES (?, ?, 1, 0)",
            (tenant.id, kind),
        )
    await db.close()


def test_statements_are_split_only_where_complete() -> None:
    script = "INSERT INTO t VALUES ('a;b'); CREATE INDEX i ON t(x);\n"
    assert split_statements(script) == ["INSERT INTO t VALUES ('a;b');", "CREATE INDEX i ON t(x);"]
    with pytest.raises(ValueError, match="incomplete"):
        split_statements("INSERT INTO t VALUES ('an unclosed string;)")


def _raw(path: Path) -> aiosqlite.Connection:
    """A bare connection in autocommit mode, as `Database` opens its writer."""
    return aiosqlite.connect(path, isolation_level=None)
