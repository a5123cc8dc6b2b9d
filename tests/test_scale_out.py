"""Scale out (issue 18): two API nodes and two worker nodes, real processes on loopback, each with
its own data folder, sharing one PostgreSQL database and one Redis for the rate limits.

The nodes are shared by the module; the tests that kill a node come last. Where a test needs no
job to move (a long-poll waiting, a burst against the active-job cap) the worker nodes are
SIGSTOPped for its duration and SIGCONTed after."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from gateway.store.ledger import LedgerKind
from tests.support.gateway_process import (
    REPO,
    GatewayProcess,
    create_tenant,
    wait_for_job,
    write_config,
)
from tests.support.servers import PostgresServer, RedisServer

PAGE = "a_clean_printed/tesseract/phototest.tif"  # one page of clean print
SCAN = "f_pdfs/pypdf/Seige_of_Vicksburg_Sample_OCR.pdf"  # six scanned pages, seconds each
CAP = 10  # what each limit below admits of BURST submissions
BURST = 16


@dataclass
class Cluster:
    api_a: GatewayProcess
    api_b: GatewayProcess
    worker_1: GatewayProcess
    worker_2: GatewayProcess
    database_url: str
    redis: RedisServer

    @property
    def nodes(self) -> list[GatewayProcess]:
        return [self.api_a, self.api_b, self.worker_1, self.worker_2]

    @property
    def config(self) -> Path:
        return self.api_a.config


def _plans() -> dict[str, Any]:
    """config.yaml's plans, with `free` admitting BURST jobs at once: its 10/hour rate limit is
    then what caps a burst (with its 2 jobs at once, 2 of 16 would pass). `starter` as it is:
    10 jobs at once is what caps a burst, its rate limit (100/minute) is far off."""
    plans: dict[str, Any] = yaml.safe_load((REPO / "config.yaml").read_text())["plans"]
    assert plans["free"]["submissions"][0] == f"{CAP}/hour"
    assert plans["starter"]["max_concurrent_jobs"] == CAP
    plans["free"] = {**plans["free"], "max_concurrent_jobs": BURST}
    return plans


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: PostgresServer,
    redis_server: RedisServer,
) -> Iterator[Cluster]:
    """API nodes A and B (`serve --workers 0`), worker nodes 1 and 2 (`worker --workers 1`)."""
    root = tmp_path_factory.mktemp("scale-out")
    database = postgres_server.create_database()
    url = postgres_server.url(database)
    env = {"OCR_GATEWAY_REDIS_URL": redis_server.url()}
    nodes: list[GatewayProcess] = []

    def node(name: str, args: tuple[str, ...]) -> GatewayProcess:
        config = write_config(
            root / f"{name}.yaml",
            root / name / "data",  # every node its own data folder: no shared disk
            database={"url": url},
            # a short lease, so a dead worker node's page is read again within seconds
            worker={"processes": 1, "lease_s": 3, "heartbeat_s": 2, "poll_interval_s": 0.5},
            pipeline={"provider": "tesseract"},  # every page OCRed: reads take a while
            plans=_plans(),
        )
        process = GatewayProcess(config, root / f"{name}.log", env=env, args=args)
        nodes.append(process)
        return process

    try:
        # all at once: the migrations run once, under PostgreSQL's advisory lock
        api_a = node("api-a", ("serve", "--workers", "0")).launch()
        api_b = node("api-b", ("serve", "--workers", "0")).launch()
        workers = [node(f"worker-{i}", ("worker", "--workers", "1")).launch() for i in (1, 2)]
        api_a.wait_ready()
        api_b.wait_ready()
        for worker in workers:
            worker.wait_ready(peer=api_a)
        yield Cluster(api_a, api_b, workers[0], workers[1], url, redis_server)
    finally:
        for process in nodes:
            with contextlib.suppress(Exception):
                _stop_all(process)
        postgres_server.drop_database(database)


def _stop_all(process: GatewayProcess) -> None:
    """SIGTERM (SIGKILL past 30 s); a node stopped by a test (SIGSTOP) is woken first."""
    for pid in process.pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    process.stop()


@contextlib.contextmanager
def paused(processes: list[GatewayProcess]) -> Iterator[None]:
    """SIGSTOP the nodes and their worker processes (no page is read meanwhile), SIGCONT after."""
    pids = [pid for process in processes for pid in process.pids()]
    assert len(pids) >= 2 * len(processes), "each node with its worker process"
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def _client(node: GatewayProcess) -> httpx.Client:
    return httpx.Client(base_url=node.url, timeout=60)


def _submit(client: httpx.Client, key: str, path: Path, **fields: str) -> dict[str, Any]:
    response = client.post(
        "/v1/ocr",
        headers={"X-API-Key": key},
        files={"file": (path.name, path.read_bytes())},
        data=fields,
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def _ledger_balanced(database_url: str) -> None:
    """available + reserved == grants - charges for every tenant, never negative."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT t.id, t.credits_available, t.credits_reserved,"
            " COALESCE((SELECT SUM(amount) FROM ledger WHERE tenant_id = t.id AND kind = %s), 0),"
            " COALESCE((SELECT SUM(amount) FROM ledger WHERE tenant_id = t.id AND kind = %s), 0)"
            " FROM tenants t",
            (LedgerKind.GRANT.value, LedgerKind.CHARGE.value),
        ).fetchall()
    assert rows
    for tenant, available, reserved, grants, charges in rows:
        assert available + reserved == grants - charges, tenant
        assert available >= 0, tenant
        assert reserved >= 0, tenant


def _charges_by_page(database_url: str, job_id: str) -> dict[int, int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT page_number, COUNT(*) FROM ledger WHERE job_id = %s AND kind = %s"
            " GROUP BY page_number",
            (job_id, LedgerKind.CHARGE.value),
        ).fetchall()
    return {int(page): int(count) for page, count in rows}


def test_health_on_either_api_node_lists_all_four_nodes(cluster: Cluster) -> None:
    """Each API node's /health shows the backend, itself, and the other three nodes."""
    roles = ["api", "api", "worker", "worker"]
    pids = {node.pids()[0]: role for node, role in zip(cluster.nodes, roles, strict=True)}
    for api in (cluster.api_a, cluster.api_b):
        health = httpx.get(f"{api.url}/health", timeout=10).json()
        assert health["role"] == "api"
        assert health["database"]["backend"] == "postgresql"
        assert {n["pid"]: n["role"] for n in health["nodes"]} == pids
        assert [n["pid"] for n in health["nodes"] if n["this_node"]] == api.pids()[:1]
        assert health["workers_seen"] == 2
        assert all(n["seen_s_ago"] < 6 for n in health["nodes"])  # 3 heartbeats


def test_submitted_on_one_api_node_polled_and_fetched_on_the_other(
    cluster: Cluster, corpus: Path
) -> None:
    """No shared disk: node B long-polls, and serves the result, a preview and the searchable
    PDF of a document uploaded to node A; B's long-poll wakes on the worker node's change."""
    key = create_tenant(cluster.config, name="roamer", credits=100)
    headers = {"X-API-Key": key}
    with _client(cluster.api_a) as a, _client(cluster.api_b) as b:
        with paused([cluster.worker_1, cluster.worker_2]):
            job_id = _submit(a, key, corpus / PAGE, cache="false")["jobId"]
            polled: dict[str, Any] = {}

            def long_poll() -> None:
                started = time.monotonic()
                response = b.get(f"/v1/jobs/{job_id}", headers=headers, params={"wait": 30})
                polled.update(response.json(), elapsed=time.monotonic() - started)

            poller = threading.Thread(target=long_poll)
            poller.start()
            time.sleep(1.0)  # the poll is waiting on B while no worker reads
            assert "status" not in polled
        poller.join(60)
        assert polled["status"] != "pending", polled  # woken by a worker node's change
        assert polled["elapsed"] < 25
        job = wait_for_job(b, job_id, key, timeout_s=120)
        assert job["status"] == "completed", job
        assert "quick brown" in job["results"][0]["raw_markdown"].lower()
        result = b.get(f"/v1/jobs/{job_id}/result", headers=headers)
        assert result.status_code == 200
        assert result.json()["id"] == job_id
        markdown = b.get(
            f"/v1/jobs/{job_id}/result", headers=headers, params={"format": "markdown"}
        )
        assert markdown.status_code == 200
        assert "quick brown" in markdown.text.lower()
        preview = b.get(f"/v1/jobs/{job_id}/pages/1/preview", headers=headers)
        assert preview.status_code == 200, preview.text
        assert preview.content.startswith(b"\x89PNG\r\n\x1a\n")
        pdf = b.get(f"/v1/jobs/{job_id}/result", headers=headers, params={"format": "pdf"})
        assert pdf.status_code == 200, pdf.text
        assert pdf.content.startswith(b"%PDF")
    root = cluster.config.parent
    assert list((root / "api-a/data/uploads").glob(f"{job_id}.*"))  # A's upload, as received
    assert list((root / "api-b/data/uploads").glob(f"{job_id}.*"))  # B's copy, from PostgreSQL


async def _burst(cluster: Cluster, key: str, content: bytes) -> list[httpx.Response]:
    """BURST submissions at once, alternating between the two API nodes."""
    async with (
        httpx.AsyncClient(base_url=cluster.api_a.url, timeout=120) as a,
        httpx.AsyncClient(base_url=cluster.api_b.url, timeout=120) as b,
    ):
        return await asyncio.gather(
            *(
                (a if i % 2 else b).post(
                    "/v1/ocr",
                    headers={"X-API-Key": key},
                    files={"file": ("page.tif", content)},
                    data={"cache": "false"},
                )
                for i in range(BURST)
            )
        )


def _cancel_admitted(cluster: Cluster, key: str, responses: list[httpx.Response]) -> None:
    with _client(cluster.api_a) as a:
        for response in responses:
            if response.status_code == 202:
                job_id = response.json()["jobId"]
                cancelled = a.post(f"/v1/jobs/{job_id}/cancel", headers={"X-API-Key": key})
                assert cancelled.status_code == 200, cancelled.text


def _outcomes(responses: list[httpx.Response]) -> dict[str, int]:
    """How many were admitted ("202") and refused, by error code."""
    codes = ["202" if r.status_code == 202 else r.json()["error"]["code"] for r in responses]
    return {code: codes.count(code) for code in sorted(set(codes))}


def test_free_plan_rate_limit_is_exact_across_api_nodes(cluster: Cluster, corpus: Path) -> None:
    """The free plan's 10/hour admits exactly 10 of 16 racing submissions spread over both API
    nodes (the limit lives in Redis); the ledger balances after."""
    cluster.redis.flushall()
    key = create_tenant(cluster.config, name="free", credits=1000, plan="free")
    with paused([cluster.worker_1, cluster.worker_2]):  # no job finishes during the burst
        responses = asyncio.run(_burst(cluster, key, (corpus / PAGE).read_bytes()))
        _cancel_admitted(cluster, key, responses)
    assert _outcomes(responses) == {"202": CAP, "rate_limited": BURST - CAP}
    assert {r.status_code for r in responses} == {202, 429}
    with _client(cluster.api_b) as b:
        balance = b.get("/v1/balance", headers={"X-API-Key": key}).json()
    assert balance["credits_reserved"] == 0  # every admitted job was cancelled, refunded
    _ledger_balanced(cluster.database_url)


def test_concurrent_job_limit_is_exact_across_api_nodes(cluster: Cluster, corpus: Path) -> None:
    """The starter plan's 10 jobs at once admits exactly 10 of 16 racing submissions spread over
    both API nodes, while none of them can finish; the ledger balances after."""
    key = create_tenant(cluster.config, name="capped", credits=1000, plan="starter")
    with paused([cluster.worker_1, cluster.worker_2]):  # every admitted job stays pending
        responses = asyncio.run(_burst(cluster, key, (corpus / PAGE).read_bytes()))
        _cancel_admitted(cluster, key, responses)
    assert _outcomes(responses) == {"202": CAP, "too_many_concurrent_jobs": BURST - CAP}
    assert {r.status_code for r in responses} == {202, 429}
    _ledger_balanced(cluster.database_url)


def test_worker_node_killed_mid_page_loses_nothing(cluster: Cluster, corpus: Path) -> None:
    """SIGKILL worker node 1 (and its worker process) while both nodes read pages of one job:
    its page's lease runs out, node 2 reads it again, and every page is charged exactly once."""
    key = create_tenant(cluster.config, name="survivor", credits=100)
    with _client(cluster.api_a) as a:
        job_id = _submit(
            a, key, corpus / SCAN, cache="false", page_ranges='[{"start": 1, "end": 3}]'
        )["jobId"]
        deadline = time.monotonic() + 120
        with psycopg.connect(cluster.database_url, autocommit=True) as conn:
            while time.monotonic() < deadline:
                (reading,) = conn.execute(  # type: ignore[misc]
                    "SELECT COUNT(*) FROM pages WHERE job_id = %s AND status = 'processing'",
                    (job_id,),
                ).fetchone()
                if reading == 2:  # one page in each worker node's hands
                    break
                time.sleep(0.05)
        assert reading == 2, "both worker nodes should be reading"
        cluster.worker_1.kill()
        job = wait_for_job(a, job_id, key, timeout_s=240)
    assert job["status"] == "completed", job
    assert [p["status"] for p in job["results"]] == ["completed"] * 3
    assert _charges_by_page(cluster.database_url, job_id) == dict.fromkeys(range(1, 4), 1)
    with psycopg.connect(cluster.database_url) as conn:
        attempts = [
            a
            for (a,) in conn.execute(
                "SELECT attempts FROM pages WHERE job_id = %s ORDER BY page_number", (job_id,)
            ).fetchall()
        ]
    assert max(attempts) == 2, attempts  # the killed node's page, read again after its lease
    assert "pages_requeued_after_lease" in cluster.worker_2.logs()
    _ledger_balanced(cluster.database_url)


def test_api_node_killed_leaves_the_other_serving(cluster: Cluster, corpus: Path) -> None:
    """SIGKILL API node B: a job submitted there, and a new one, are served by node A."""
    key = create_tenant(cluster.config, name="failover", credits=100)
    with _client(cluster.api_b) as b:
        on_b = _submit(b, key, corpus / PAGE, cache="false")["jobId"]
    cluster.api_b.kill()
    with _client(cluster.api_a) as a:
        on_a = _submit(a, key, corpus / PAGE, cache="false")["jobId"]
        for job_id in (on_b, on_a):
            job = wait_for_job(a, job_id, key, timeout_s=120)
            assert job["status"] == "completed", job
        assert a.get("/health").status_code == 200
    _ledger_balanced(cluster.database_url)
