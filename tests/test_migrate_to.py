"""`ocr-gateway migrate-to URL` moves a real embedded installation (made by a real gateway:
tenants, jobs read from the corpus, a delivered webhook, an idempotency key) into a real empty
PostgreSQL database: everything reads back equal through the store, the ledger balances, a
second move is refused, and a gateway on the PostgreSQL URL with a new empty data folder serves
the old jobs, their previews included (the uploads came through the database)."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from gateway.config import Settings, load_settings
from gateway.errors import JobNotFoundError
from gateway.store import tenants, transfer
from gateway.store.db import Database, open_database
from gateway.store.queue import JobStore
from tests.support.gateway_process import (
    REPO,
    GatewayProcess,
    create_tenant,
    wait_for_job,
    write_config,
)
from tests.support.webhook_receiver import WebhookReceiver

LINE = "a_clean_printed/uw3_lines/010004.bin.png"
PDF = "f_pdfs/born_digital/crazyones.pdf"
SETTINGS: dict[str, Any] = {
    "pipeline": {"provider": "tesseract"},
    "worker": {"processes": 1},
    "fetch": {"allow_hosts": ["localhost"]},
    "webhooks": {"poll_interval_s": 0.2},
}
BALANCES = (
    "SELECT t.id, t.credits_available, t.credits_reserved,"
    " (SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE tenant_id = t.id AND kind = 'grant'),"
    " (SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE tenant_id = t.id AND kind = 'charge')"
    " FROM tenants t"
)
LEDGER = (
    "SELECT id, tenant_id, job_id, page_number, kind, amount, tier, note, created_at"
    " FROM ledger ORDER BY id"
)


def migrate_to(config: Path, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "migrate-to", url, "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def submit(http: httpx.Client, key: str, corpus: Path, name: str, **fields: str) -> str:
    form: dict[str, Any] = {"file": (Path(name).name, (corpus / name).read_bytes())}
    form.update({field: (None, value) for field, value in fields.items()})
    headers = {"X-API-Key": key, "Idempotency-Key": f"move-{name}"}
    response = http.post("/v1/ocr", headers=headers, files=form)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["jobId"]
    return job_id


def embedded_installation(
    root: Path, corpus: Path, url: str
) -> tuple[Path, dict[str, str], dict[str, dict[str, Any]], str]:
    """A data folder written by a real gateway: (config, keys by tenant name, each job's JSON
    as served, its markdown). Checks that migrate-to refuses while that gateway runs."""
    config = write_config(root / "embedded.yaml", root / "data", **SETTINGS)
    server = GatewayProcess(config, root / "embedded.log").start()
    try:
        keys = {
            "acme": create_tenant(config, "acme", credits=50),
            "other": create_tenant(config, "other", credits=7, plan="free"),
        }
        with WebhookReceiver() as receiver, httpx.Client(base_url=server.url, timeout=60) as http:
            jobs = [
                submit(http, keys["acme"], corpus, LINE, callback_url=receiver.url()),
                submit(http, keys["acme"], corpus, PDF),
                submit(http, keys["other"], corpus, LINE, cache="false"),
            ]
            owners = [keys["acme"], keys["acme"], keys["other"]]
            for job_id, key in zip(jobs, owners, strict=True):
                assert wait_for_job(http, job_id, key, timeout_s=120)["status"] == "completed"
            receiver.wait_for(1)
            served: dict[str, dict[str, Any]] = {}
            for job_id, key in zip(jobs, owners, strict=True):
                for _ in range(100):  # until the webhook's delivery is recorded on the job
                    served[job_id] = http.get(
                        f"/v1/jobs/{job_id}", headers={"X-API-Key": key}
                    ).json()
                    hook = served[job_id].get("webhook")
                    if hook is None or hook["delivered_at"]:
                        break
            assert served[jobs[0]]["webhook"]["delivered_at"]
            markdown = http.get(
                f"/v1/jobs/{jobs[1]}/result",
                params={"format": "markdown"},
                headers={"X-API-Key": keys["acme"]},
            ).text

        running = migrate_to(config, url)
        assert running.returncode == 2, running.stdout + running.stderr
        assert "stop it first" in running.stderr
    finally:
        server.stop()
    return config, keys, served, markdown


def with_url(settings: Settings, url: str | None) -> Settings:
    return msgspec.structs.replace(
        settings, database=msgspec.structs.replace(settings.database, url=url)
    )


async def read_all(db: Database, keys: dict[str, str], job_ids: list[str]) -> dict[str, Any]:
    """What the store reads back: tenants by their keys, jobs, ledger rows."""
    store = JobStore(db)
    seen: dict[str, Any] = {"ledger": [tuple(row) for row in await db.fetch_all(LEDGER)]}
    for name, key in keys.items():
        auth = await tenants.authenticate(db, key)
        assert auth is not None, name
        seen[name] = auth
        seen[f"{name} keys"] = await tenants.list_keys(db, auth.tenant.id)
        for job_id in job_ids:
            try:
                seen[job_id] = await store.get_job(auth.tenant.id, job_id)
            except JobNotFoundError:  # another tenant's job
                continue
    return seen


async def store_reads_back_equal(
    config: Path, url: str, keys: dict[str, str], job_ids: list[str]
) -> None:
    """The store reads the same from both databases; new ledger rows fit after the move."""
    settings = load_settings(config)
    source, target = open_database(settings), open_database(with_url(settings, url))
    await source.open()
    await target.open()
    try:
        before = await read_all(source, keys, job_ids)
        after = await read_all(target, keys, job_ids)
        assert after == before
        assert set(job_ids) <= after.keys()
        assert len(after["ledger"]) >= 6  # 2 grants, 3 reserves, charges
        # The ledger's identity sequence was moved past the copied ids: new rows still fit.
        acme = after["acme"].tenant
        granted = await tenants.grant_credits(target, acme.id, 5, "after the move")
        assert granted.credits_available == acme.credits_available + 5
        for tenant_id, available, reserved, grants, charges in await target.fetch_all(BALANCES):
            assert available + reserved == grants - charges, tenant_id
    finally:
        await source.close()
        await target.close()


@pytest.mark.slow
def test_migrate_to_moves_an_embedded_installation_into_postgresql(
    tmp_path: Path, corpus: Path, postgres_url: str
) -> None:
    """Rows, balances and uploads arrive whole; the moved installation serves on PostgreSQL."""
    config, keys, served, markdown = embedded_installation(tmp_path, corpus, postgres_url)
    job_ids = list(served)
    gone = job_ids[2]
    (upload,) = (tmp_path / "data" / "uploads").glob(f"{gone}.*")
    upload.unlink()  # a lost upload: warned about and counted, the rest moves

    moved = migrate_to(config, postgres_url)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert f"job {gone}: its upload" in moved.stderr
    assert "2 copied" in moved.stdout
    assert "1 missing" in moved.stdout
    asyncio.run(store_reads_back_equal(config, postgres_url, keys, job_ids))

    again = migrate_to(config, postgres_url)
    assert again.returncode == 2
    assert "not empty" in again.stderr

    node = write_config(
        tmp_path / "node.yaml",
        tmp_path / "node-data",
        **SETTINGS,
        database={"url": postgres_url},
    )
    server = GatewayProcess(node, tmp_path / "node.log").start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            acme_key = {"X-API-Key": keys["acme"]}
            for job_id in job_ids[:2]:
                assert http.get(f"/v1/jobs/{job_id}", headers=acme_key).json() == served[job_id]
            result = http.get(
                f"/v1/jobs/{job_ids[1]}/result", params={"format": "markdown"}, headers=acme_key
            )
            assert result.text == markdown
            preview = http.get(f"/v1/jobs/{job_ids[0]}/pages/1/preview", headers=acme_key)
            assert preview.status_code == 200, preview.text
            assert preview.content.startswith(b"\x89PNG")
            assert list((tmp_path / "node-data" / "uploads").glob(f"{job_ids[0]}.*"))
            # The idempotency key came along: a retry answers with the old job.
            retry = http.post(
                "/v1/ocr",
                headers={**acme_key, "Idempotency-Key": f"move-{LINE}"},
                files={"file": (Path(LINE).name, (corpus / LINE).read_bytes())},
            )
            assert retry.status_code == 202, retry.text
            assert retry.json()["jobId"] == job_ids[0]
    finally:
        server.stop()


async def test_a_move_that_does_not_check_out_leaves_the_target_empty(
    tmp_path: Path, postgres_url: str
) -> None:
    """Every row is copied before the checks; a tenant whose ledger does not balance fails them,
    and the whole transaction goes: the target holds nothing."""
    settings = msgspec.convert({"data_dir": str(tmp_path / "data")}, Settings)
    source = open_database(settings)
    await source.open()
    try:
        for name in ("a", "b"):
            await tenants.create_tenant(source, name, "starter", 10)
    finally:
        await source.close()
    with sqlite3.connect(settings.database_path) as broken:
        broken.execute("UPDATE tenants SET credits_available = 11 WHERE name = 'b'")

    with pytest.raises(transfer.TransferError, match="does not balance"):
        await transfer.move(settings, postgres_url, batch_rows=1)

    target = open_database(with_url(settings, postgres_url))
    await target.open()
    try:
        for table in ("tenants", "api_keys", "ledger"):
            row = await target.fetch_one(f"SELECT COUNT(*) FROM {table}")
            assert row is not None
            assert row[0] == 0, table
    finally:
        await target.close()


async def test_a_data_folder_without_a_database_is_refused(
    tmp_path: Path, postgres_url: str
) -> None:
    """A wrong --config or data_dir is said so, rather than moving a new empty database."""
    settings = msgspec.convert({"data_dir": str(tmp_path / "nothing")}, Settings)
    with pytest.raises(transfer.TransferError, match="no embedded database"):
        await transfer.move(settings, postgres_url)
    assert not settings.database_path.exists()
