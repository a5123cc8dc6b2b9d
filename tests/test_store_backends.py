"""The store on both backends: a real SQLite file and a real PostgreSQL (started by the test
fixtures). Queue, leases, ledger, idempotency, admission limits, usage, the webhook outbox,
nodes and uploads behave the same on either; PostgreSQL is also driven from several `Database`
objects at once, as several nodes would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from gateway.config import Settings
from gateway.errors import (
    AccountExistsError,
    ErrorDetail,
    InsufficientCreditsError,
    TooManyJobsError,
)
from gateway.results import PageResult
from gateway.store import compat, nodes, outbox, tenants, uploads, usage
from gateway.store.db import ConstraintError, Database, open_database
from gateway.store.models import CacheKey, Idempotency, JobStatus, NewJob, PageStatus
from gateway.store.queue import JOB_CHANNEL, JobStore, new_job_id
from router.policy import PageRoute, Tier

BACKENDS = ["sqlite", "postgresql"]


def _settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    settings = msgspec.convert({"data_dir": str(tmp_path / "data")}, Settings)
    return msgspec.structs.replace(
        settings, database=msgspec.structs.replace(settings.database, url=url)
    )


@pytest.fixture(params=BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return _settings(request.param, tmp_path, request)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = open_database(settings)
    await database.open()
    yield database
    await database.close()


def route(credits: int = 1) -> PageRoute:
    return PageRoute(
        tier=Tier.SIMPLE,
        credits=credits,
        providers=["rapidocr"],
        complexity_score=0.1,
        reason="test",
        escalate=False,
        best_of_chain=False,
    )


def result(page_number: int) -> PageResult:
    return PageResult(
        page_number=page_number,
        status="completed",
        document_metadata=None,
        content_blocks=[],
        raw_markdown=f"page {page_number}",
        pipeline_metadata=None,
    )


async def new_job(
    store: JobStore,
    tenant_id: str,
    folder: Path,
    pages: int = 2,
    *,
    credits: int = 1,
    idem: str | None = None,
    max_active: int = 100,
) -> str:
    job_id = new_job_id()
    path = folder / f"{job_id}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG upload of " + job_id.encode())
    job = NewJob(
        job_id=job_id,
        tenant_id=tenant_id,
        file_path=str(path),
        kind="png",
        file_name="scan.png",
        key=CacheKey(file_sha256=job_id, options_key="o"),
        idempotency=Idempotency(key=idem, file_sha256="f" * 64) if idem else None,
    )
    routes = {n: route(credits) for n in range(1, pages + 1)}
    await store.create_job(job, routes, max_active_jobs=max_active)
    return job_id


async def totals(db: Database, tenant_id: str) -> compat.LedgerTotals:
    found = await compat.ledger_totals(db, tenant_id)
    assert found.available + found.reserved == found.granted - found.charged
    return found


async def test_job_flow_charges_each_page_once(db: Database, tmp_path: Path) -> None:
    store = JobStore(db)
    tenant, _ = await tenants.create_tenant(db, "t", "free", 10)
    job_id = await new_job(store, tenant.id, tmp_path, pages=2, credits=3)
    assert (await totals(db, tenant.id)).reserved == 6
    first = await store.claim_page(60)
    second = await store.claim_page(60)
    assert first is not None
    assert second is not None
    assert {first.page_number, second.page_number} == {1, 2}
    assert await store.claim_page(60) is None
    assert await store.complete_page(first, result(first.page_number), 0.1)
    assert not await store.complete_page(first, result(first.page_number), 0.1)  # once
    await store.fail_page(second, ErrorDetail(code="page_unreadable", message="no"))
    job = await store.get_job(tenant.id, job_id)
    assert job.status == JobStatus.COMPLETED
    assert job.credits_used == 3
    assert [r.status for r in job.results] == [PageStatus.COMPLETED, PageStatus.FAILED]
    final = await totals(db, tenant.id)
    assert (final.available, final.reserved, final.charged) == (7, 0, 3)
    listed = await store.list_jobs(tenant.id, limit=10, offset=0, status=None)
    assert listed.total == 1
    assert listed.jobs[0].pages_processed == 2
    assert (
        await store.list_jobs(tenant.id, limit=10, offset=0, status=JobStatus.FAILED)
    ).total == 0
    day = await usage.get_usage(db, tenant, None, None)
    assert (day.total.pages, day.total.credits) == (1, 3)
    assert day.days[0].tiers["simple"].credits == 3


async def test_every_page_failing_fails_the_job(db: Database, tmp_path: Path) -> None:
    store = JobStore(db)
    tenant, _ = await tenants.create_tenant(db, "t", "free", 10)
    job_id = await new_job(store, tenant.id, tmp_path, pages=1)
    claim = await store.claim_page(60)
    assert claim is not None
    await store.fail_page(claim, ErrorDetail(code="page_unreadable", message="blank"))
    job = await store.get_job(tenant.id, job_id)
    assert job.status == JobStatus.FAILED
    assert job.error is not None
    assert job.error.code == "all_pages_failed"
    assert (await totals(db, tenant.id)).available == 10


async def test_round_robin_across_jobs(db: Database, tmp_path: Path) -> None:
    store = JobStore(db)
    tenant, _ = await tenants.create_tenant(db, "t", "business", 100)
    big = await new_job(store, tenant.id, tmp_path, pages=4)
    small = await new_job(store, tenant.id, tmp_path, pages=1)
    order = []
    while (claim := await store.claim_page(60)) is not None:
        order.append(claim.job_id)
    assert order[:2] == [big, small]  # the second job does not wait for the first's 4 pages
    assert order.count(big) == 4


async def test_expired_lease_is_read_again_and_charged_once(db: Database, tmp_path: Path) -> None:
    store = JobStore(db)
    tenant, _ = await tenants.create_tenant(db, "t", "free", 10)
    job_id = await new_job(store, tenant.id, tmp_path, pages=1, credits=3)
    dead = await store.claim_page(0.001)  # a worker whose node dies: its lease runs out
    assert dead is not None
    await asyncio.sleep(0.01)
    assert await store.requeue_expired(max_attempts=3) == 1
    again = await store.claim_page(60)
    assert again is not None
    assert again.attempts == 2
    assert not await store.extend(dead, 60)  # the dead claim no longer holds the page
    assert await store.complete_page(again, result(1), 0.2)
    assert not await store.complete_page(dead, result(1), 0.2)  # a late result: not recorded
    assert (await store.get_job(tenant.id, job_id)).status == JobStatus.COMPLETED
    final = await totals(db, tenant.id)
    assert (final.charged, final.reserved, final.available) == (3, 0, 7)


async def test_lease_kept_alive_is_not_taken(db: Database, tmp_path: Path) -> None:
    store = JobStore(db)
    tenant, _ = await tenants.create_tenant(db, "t", "free", 10)
    await new_job(store, tenant.id, tmp_path, pages=1)
    claim = await store.claim_page(0.05)
    assert claim is not None
    assert await store.extend(claim, 60)
    await asyncio.sleep(0.1)
    assert await store.requeue_expired(max_attempts=3) == 0
    assert await store.complete_page(claim, result(1), 0.1)


async def test_exhausted_attempts_fail_and_refund(db: Database, tmp_path: Path) -> None:
    store = JobStore(db)
    tenant, _ = await tenants.create_tenant(db, "t", "free", 10)
    job_id = await new_job(store, tenant.id, tmp_path, pages=1, credits=3)
    for _ in range(2):
        assert await store.claim_page(0.001) is not None
        await asyncio.sleep(0.01)
        await store.requeue_expired(max_attempts=2)
    job = await store.get_job(tenant.id, job_id)
    assert job.status == JobStatus.FAILED
    assert job.results[0].error is not None
    assert job.results[0].error.code == "page_attempts_exhausted"
    assert (await totals(db, tenant.id)).available == 10


async def test_cancel_refunds_waiting_pages(db: Database, tmp_path: Path) -> None:
    store = JobStore(db)
    tenant, _ = await tenants.create_tenant(db, "t", "free", 10)
    job_id = await new_job(store, tenant.id, tmp_path, pages=3, credits=2)
    claim = await store.claim_page(60)
    assert claim is not None
    await store.cancel_job(tenant.id, job_id)
    assert not await store.complete_page(claim, result(1), 0.1)  # discarded, uncharged
    assert (await store.get_job(tenant.id, job_id)).status == JobStatus.CANCELLED
    assert (await totals(db, tenant.id)).available == 10
    await store.delete_job(tenant.id, job_id)
    assert (await totals(db, tenant.id)).available == 10


async def test_admission_limits_and_credits(db: Database, tmp_path: Path) -> None:
    store = JobStore(db)
    tenant, _ = await tenants.create_tenant(db, "t", "free", 5)
    await new_job(store, tenant.id, tmp_path, pages=1, max_active=1)
    with pytest.raises(TooManyJobsError):
        await new_job(store, tenant.id, tmp_path, pages=1, max_active=1)
    with pytest.raises(InsufficientCreditsError):
        await new_job(store, tenant.id, tmp_path, pages=5)
    assert (await totals(db, tenant.id)).available == 4


async def test_idempotency_key_is_unique(db: Database, tmp_path: Path) -> None:
    store = JobStore(db)
    tenant, _ = await tenants.create_tenant(db, "t", "free", 10)
    first = await new_job(store, tenant.id, tmp_path, pages=1, idem="k1")
    with pytest.raises(ConstraintError):
        await new_job(store, tenant.id, tmp_path, pages=1, idem="k1")
    found = await store.find_idempotent(tenant.id, Idempotency(key="k1", file_sha256="f" * 64))
    assert found == first
    assert (await totals(db, tenant.id)).reserved == 1  # the refused one reserved nothing


async def test_duplicate_email_is_refused(db: Database) -> None:
    await tenants.signup(db, "a@example.com", "free", 10)
    with pytest.raises(AccountExistsError):
        await tenants.signup(db, "A@example.com", "free", 10)


async def test_webhook_is_attempted_by_one_node(db: Database, tmp_path: Path) -> None:
    store = JobStore(db)
    tenant, _ = await tenants.create_tenant(db, "t", "free", 10)
    job_id = await new_job(store, tenant.id, tmp_path, pages=1)
    await outbox.add(db, job_id, tenant.id, "https://example.com/hook", True)
    claim = await store.claim_page(60)
    assert claim is not None
    await store.complete_page(claim, result(1), 0.1)
    (due,) = await outbox.due(db, 2**62, 10)
    assert await outbox.claim(db, due, hold_until=2**61)
    assert not await outbox.claim(db, due, hold_until=2**61)  # the other node's look
    attempt = outbox.WebhookAttempt(at=1, status_code=500, error="HTTP 500")
    await outbox.record_attempt(db, job_id, attempt, delivered=False, next_attempt_at=5)
    await outbox.record_attempt(db, job_id, attempt, delivered=True, next_attempt_at=None)
    state = await outbox.get(db, job_id)
    assert state is not None
    assert len(state.attempts) == 2
    assert state.delivered_at is not None


async def test_nodes_and_uploads(db: Database, settings: Settings, tmp_path: Path) -> None:
    store = JobStore(db)
    tenant, _ = await tenants.create_tenant(db, "t", "free", 10)
    job_id = await new_job(store, tenant.id, tmp_path / "api-node", pages=1)
    recorded = (await store.get_job_page(tenant.id, job_id, 1)).file_path
    here = await uploads.local_file(db, job_id, recorded, tmp_path / "worker-node")
    assert await asyncio.to_thread(Path(here).read_bytes) == b"\x89PNG upload of " + job_id.encode()
    assert (here != recorded) == db.shared  # a node with its own folder reads its own copy
    node = nodes.Node(
        id="n1",
        role="worker",
        host="h",
        pid=1,
        workers=2,
        version="v",
        started_at=1,
        last_seen_at=1,
    )
    await nodes.beat(db, node)
    await nodes.beat(db, node)
    (seen,) = await nodes.seen_since(db, 0)
    assert (seen.id, seen.workers) == ("n1", 2)
    assert seen.last_seen_at > 1
    await nodes.leave(db, "n1")
    assert await nodes.seen_since(db, 0) == []


# PostgreSQL only: several nodes at once.


@pytest.fixture
async def pg_nodes(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[list[Database]]:
    settings = _settings("postgresql", tmp_path, request)
    opened = []
    for _ in range(3):
        database = open_database(settings)
        await database.open()  # three nodes starting at once migrate once
        opened.append(database)
    yield opened
    for database in opened:
        await database.close()


async def test_concurrent_claims_never_share_a_page(
    pg_nodes: list[Database], tmp_path: Path
) -> None:
    stores = [JobStore(d) for d in pg_nodes]
    tenant, _ = await tenants.create_tenant(pg_nodes[0], "t", "business", 1000)
    for _ in range(6):
        await new_job(stores[0], tenant.id, tmp_path, pages=10)

    async def drain(store: JobStore) -> list[tuple[str, int]]:
        taken = []
        while (claim := await store.claim_page(60)) is not None:
            taken.append((claim.job_id, claim.page_number))
            assert await store.complete_page(claim, result(claim.page_number), 0.01)
        return taken

    taken = await asyncio.gather(*(drain(s) for s in stores for _ in range(3)))
    pages = [p for batch in taken for p in batch]
    assert len(pages) == 60 == len(set(pages))
    final = await totals(pg_nodes[0], tenant.id)
    assert (final.charged, final.reserved) == (60, 0)
    jobs = await stores[1].list_jobs(tenant.id, limit=10, offset=0, status=JobStatus.COMPLETED)
    assert jobs.total == 6


async def test_concurrent_admissions_respect_the_job_cap(
    pg_nodes: list[Database], tmp_path: Path
) -> None:
    stores = [JobStore(d) for d in pg_nodes]
    tenant, _ = await tenants.create_tenant(pg_nodes[0], "t", "free", 1000)
    outcomes = await asyncio.gather(
        *(new_job(stores[i % 3], tenant.id, tmp_path, pages=1, max_active=5) for i in range(16)),
        return_exceptions=True,
    )
    admitted = [o for o in outcomes if isinstance(o, str)]
    assert len(admitted) == 5
    assert all(isinstance(o, TooManyJobsError) for o in outcomes if not isinstance(o, str))
    assert (await totals(pg_nodes[0], tenant.id)).reserved == 5


async def test_a_change_on_one_node_wakes_another(pg_nodes: list[Database], tmp_path: Path) -> None:
    writer, reader = JobStore(pg_nodes[0]), JobStore(pg_nodes[1])
    await pg_nodes[1].listen(JOB_CHANNEL, reader.events.notify)
    tenant, _ = await tenants.create_tenant(pg_nodes[0], "t", "free", 10)
    job_id = await new_job(writer, tenant.id, tmp_path, pages=1)
    waiting = asyncio.create_task(reader.wait_for_change(tenant.id, job_id, 30))
    await asyncio.sleep(0.3)
    claim = await writer.claim_page(60)
    assert claim is not None
    started = asyncio.get_running_loop().time()
    job = await asyncio.wait_for(waiting, 10)
    assert job.status == JobStatus.PROCESSING
    assert asyncio.get_running_loop().time() - started < 5  # woken, not timed out
