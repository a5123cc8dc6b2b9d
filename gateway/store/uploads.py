"""Where a job's upload is: the file, its detected type and the name it was sent under."""

from __future__ import annotations

import msgspec

from gateway.errors import JobNotFoundError
from gateway.store.db import Database


class Upload(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    kind: str  # a DocumentKind value
    file_name: str | None  # as the client named it


async def job_upload(db: Database, tenant_id: str, job_id: str) -> Upload:
    """The upload of the tenant's job; another tenant's job is not found."""
    row = await db.fetch_one(
        "SELECT file_path, file_kind, file_name FROM jobs WHERE id = ? AND tenant_id = ?",
        (job_id, tenant_id),
    )
    if row is None:
        raise JobNotFoundError()
    return Upload(path=row["file_path"], kind=row["file_kind"], file_name=row["file_name"])
