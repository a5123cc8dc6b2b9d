"""Read the real SQLite file to check the credit invariant."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.store.ledger import LedgerKind


def balances(db_path: Path) -> list[tuple[str, int, int, int, int]]:
    """Per tenant: (id, available, reserved, sum of grants, sum of charges)."""
    with sqlite3.connect(db_path) as db:
        return db.execute(
            "SELECT t.id, t.credits_available, t.credits_reserved,"
            " COALESCE((SELECT SUM(amount) FROM ledger WHERE tenant_id = t.id"
            "  AND kind = ?), 0),"
            " COALESCE((SELECT SUM(amount) FROM ledger WHERE tenant_id = t.id"
            "  AND kind = ?), 0)"
            " FROM tenants t",
            (LedgerKind.GRANT, LedgerKind.CHARGE),
        ).fetchall()


def assert_ledger_balanced(db_path: Path) -> None:
    for tenant, available, reserved, grants, charges in balances(db_path):
        assert available + reserved == grants - charges, tenant
        assert available >= 0
        assert reserved >= 0


def charges_by_page(db_path: Path, job_id: str) -> dict[int, int]:
    with sqlite3.connect(db_path) as db:
        rows = db.execute(
            "SELECT page_number, COUNT(*) FROM ledger WHERE job_id = ?"
            " AND kind = ? GROUP BY page_number",
            (job_id, LedgerKind.CHARGE),
        ).fetchall()
    return dict(rows)
