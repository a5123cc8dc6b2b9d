"""The nodes that share the database, as each says it is alive (`/health`'s nodes).

Every node (an API node, a worker node, or both in one process) writes its row at start and
every `worker.heartbeat_s`; a node not seen for a while is shown as gone, and its row is dropped
after a day. A node's pages are not tied to its row: their leases say who still reads them.
"""

from __future__ import annotations

import msgspec

from gateway.clock import now_ms
from gateway.store.db import Database

FORGET_AFTER_MS = 86_400_000


class Node(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    role: str  # "api+worker" (serve), "api" (serve --workers 0), "worker"
    host: str
    pid: int
    workers: int  # page-reading processes
    version: str
    started_at: int  # epoch ms
    last_seen_at: int  # epoch ms


async def beat(db: Database, node: Node) -> None:
    """Say that `node` is alive now."""
    now = now_ms()
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO nodes (id, role, host, pid, workers, version, started_at, last_seen_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " last_seen_at = excluded.last_seen_at, workers = excluded.workers",
            (
                node.id,
                node.role,
                node.host,
                node.pid,
                node.workers,
                node.version,
                node.started_at,
                now,
            ),
        )
        await tx.execute("DELETE FROM nodes WHERE last_seen_at < ?", (now - FORGET_AFTER_MS,))


async def leave(db: Database, node_id: str) -> None:
    """A node stopping cleanly takes its row with it."""
    async with db.transaction() as tx:
        await tx.execute("DELETE FROM nodes WHERE id = ?", (node_id,))


async def seen_since(db: Database, since_ms: int) -> list[Node]:
    rows = await db.fetch_all(
        "SELECT id, role, host, pid, workers, version, started_at, last_seen_at FROM nodes"
        " WHERE last_seen_at >= ? ORDER BY started_at, id",
        (since_ms,),
    )
    return [Node(**dict(zip(r.keys(), r, strict=True))) for r in rows]
