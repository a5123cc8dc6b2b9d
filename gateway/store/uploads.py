"""Where a job's upload is: the file, its detected type and the name it was sent under.

Embedded (SQLite), the upload is a file in the data folder and nothing more. When several nodes
share the database (PostgreSQL), no disk is shared: the upload is also kept in the database with
its job (same transaction, deleted with it), and a node that reads it keeps a copy in its own
uploads folder under the same name.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import msgspec

from gateway.errors import JobNotFoundError
from gateway.store.db import Database, Tx


class Upload(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    kind: str  # a DocumentKind value
    file_name: str | None  # as the client named it
    job_id: str = ""


async def job_upload(db: Database, tenant_id: str, job_id: str) -> Upload:
    """The upload of the tenant's job; another tenant's job is not found."""
    row = await db.fetch_one(
        "SELECT file_path, file_kind, file_name FROM jobs WHERE id = ? AND tenant_id = ?",
        (job_id, tenant_id),
    )
    if row is None:
        raise JobNotFoundError()
    return Upload(
        path=row["file_path"], kind=row["file_kind"], file_name=row["file_name"], job_id=job_id
    )


async def read_for(db: Database, path: str) -> bytes | None:
    """The upload's bytes when the database keeps uploads (several nodes), else None."""
    if not db.shared:
        return None
    return await asyncio.to_thread(Path(path).read_bytes)


async def save(tx: Tx, job_id: str, content: bytes | None, now: int) -> None:
    """Keep the upload with its job (in the job's transaction); None: nothing to keep."""
    if content is not None:
        await tx.execute(
            "INSERT INTO uploads (job_id, data, created_at) VALUES (?, ?, ?)",
            (job_id, content, now),
        )


def node_path(db: Database, recorded: str, folder: Path) -> Path:
    """This node's file of an upload: the recorded one (embedded), or its copy in `folder`."""
    return folder / Path(recorded).name if db.shared else Path(recorded)


async def local_file(db: Database, job_id: str, recorded: str, folder: Path) -> str:
    """A path on this node to read the job's upload from: the recorded file (embedded), or this
    node's copy in `folder`, fetched from the database the first time. Raises JobNotFoundError
    when the job (and so its upload) is gone."""
    path = node_path(db, recorded, folder)
    if not db.shared or await asyncio.to_thread(path.exists):
        return str(path)
    row = await db.fetch_one("SELECT data FROM uploads WHERE job_id = ?", (job_id,))
    if row is None:
        raise JobNotFoundError()
    await asyncio.to_thread(_write_atomically, path, bytes(row["data"]))
    return str(path)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    part.write_bytes(data)
    part.replace(path)
