"""Scale-out (issue 18): the store on SQLite against PostgreSQL, side by side in one run.

1. Throughput: two real gateways, one per backend, with the same worker processes, read the same
   documents; the sides alternate round by round so load drift hits both alike. Pages per second
   run from the first job's creation to the last job's completion (the server's own clocks).
   The round's client looks at its job list every LIST_INTERVAL_S, nothing more.
2. `GET /v1/jobs/{id}` while the workers are saturated: in latency rounds apart (the same
   documents, `--latency-rounds`), one client reads a finished one-page job (from the warm-up)
   every PROBE_INTERVAL_S and times each read. Apart, because 20 reads a second cost the server
   CPU that the 2-core machine's workers then lack, more on PostgreSQL (a network round trip
   per query) than on SQLite: inside the throughput rounds they took 3-4 points off its ratio.
   A one-page job, as the response grows with the job's pages: a 14-page born-digital PDF's
   results are 1.9 MB of JSON (its words' boxes), whose read takes ~140 ms with no page being read,
   on either backend (`?words=false` for large documents).
3. Claim growth, at the store level: `JobStore.claim_page` with a large queue against a small
   one of the same shape (1,000 jobs of 100 pages against one job of 100; 100,000 one-page jobs
   against 100), claims alternating between the two queues in blocks. Each claimed page is put
   back (`release_page`), so the queue keeps its size. Queues are inserted by bulk SQL, then
   analyzed (PostgreSQL, as autovacuum would); the claim query's plan on each backend is printed.

PostgreSQL is a real server started on a loopback port (tests/support/servers.py).

    python -m benchmarks.scale_out [--rounds 2] [--latency-rounds 2] [--workers 2] [--limit N]
        [--repeat 1] [--claims 1000] [--shapes pages,jobs] [--parts throughput,claims] [--out DIR]

Targets: PostgreSQL pages/s >= 95% of SQLite's; a claim with 100,000 pages queued <= 2x one with
100 queued (both backends); GET /v1/jobs/{id} p95 <= 100 ms with the workers saturated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import msgspec

from benchmarks.environment import describe_machine, git_commit, package_versions
from gateway.config import load_settings
from gateway.store import leases
from gateway.store.db import Database, open_database
from gateway.store.queue import JobStore
from tests.support.gateway_process import (
    CORPUS,
    REPO,
    GatewayProcess,
    create_tenant,
    write_config,
)
from tests.support.servers import PostgresServer

DOCUMENTS = [  # a born-digital PDF read from its text layer, and printed scans read by OCR
    "f_pdfs/born_digital/tracemonkey.pdf",  # 14 pages; first, so its inspection (seconds) ends
    "a_clean_printed/tesseract/phototest.tif",  # before the clock starts and the queue is full
    "a_clean_printed/tesseract/eurotext.tif",
    "a_clean_printed/uw3_lines/010003.bin.png",
    "f_pdfs/born_digital/crazyones.pdf",
]
WARM_UP = "a_clean_printed/tesseract/phototest.tif"  # one page: the job read during the rounds
BACKENDS = ("sqlite", "postgresql")
PROBE_INTERVAL_S = 0.05
LIST_INTERVAL_S = 0.5  # throughput rounds: how often the round's job list is looked at
SHAPES = {  # name: ((jobs, pages per job) small, (jobs, pages per job) large)
    "pages": ((1, 100), (1_000, 100)),
    "jobs": ((100, 1), (100_000, 1)),
}
BLOCK = 50  # claims in a row on one queue before switching to the other
LEASE_S = 60.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency_ms(values: list[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "p50": 1000 * statistics.median(values),
        "p95": 1000 * percentile(values, 0.95),
        "max": 1000 * max(values),
    }


# --- throughput and GET latency through real gateways ---------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu_s(root_pids: list[int]) -> float:
    """CPU seconds (user + system, reaped children included) of these processes and all their
    descendants, from /proc (Linux)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            pid = int(stat.parent.name)
            parents[pid] = int(fields[1])
            times[pid] = sum(int(f) for f in fields[11:15]) / _TICK  # utime stime cutime cstime
    total, todo = 0.0, list(root_pids)
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        todo += [child for child, parent in parents.items() if parent == pid]
    return total


async def read_job(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/jobs/{job_id}", params={"words": "false"})
    response.raise_for_status()
    job: dict[str, Any] = response.json()
    return job


async def run_round(
    url: str, key: str, uploads: list[tuple[str, bytes]], probe: str | None, latencies: list[float]
) -> tuple[int, float, float]:
    """Submit every document and wait until all are done, reading the `probe` job every
    PROBE_INTERVAL_S meanwhile; (pages, seconds from the first job's creation to the last one's
    completion by the server's clock, seconds the workers spent reading the pages)."""
    assert len(uploads) <= 100, "one page of the job list must show the whole round"
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=120) as client:
        job_ids = set()
        for upload in uploads:
            response = await client.post("/v1/ocr", files={"file": upload})
            response.raise_for_status()
            job_ids.add(response.json()["jobId"])
        for tick in itertools.count():
            if probe is not None:
                started = time.perf_counter()
                response = await client.get(f"/v1/jobs/{probe}")
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()
            if probe is None or tick % 10 == 0:  # the round's jobs, summary fields only
                response = await client.get("/v1/jobs", params={"limit": 100})
                response.raise_for_status()
                mine = [job for job in response.json()["jobs"] if job["id"] in job_ids]
                if all(job["status"] not in ("pending", "processing") for job in mine):
                    break
            await asyncio.sleep(PROBE_INTERVAL_S if probe is not None else LIST_INTERVAL_S)
        done = [await read_job(client, job_id) for job_id in job_ids]
    for job in done:
        if job["status"] != "completed" or any(p["status"] != "completed" for p in job["results"]):
            raise RuntimeError(f"job {job['id']} ended {job['status']}: {job.get('error')}")
    pages = sum(job["page_count"] for job in done)
    first = min(job["created_at"] for job in done)
    last = max(job["completed_at"] for job in done)
    read_ms = sum(
        page["pipeline_metadata"]["timings"]["total_ms"] for job in done for page in job["results"]
    )
    return pages, (last - first) / 1000, read_ms / 1000


async def newest_job(url: str, key: str) -> str:
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}) as client:
        response = await client.get("/v1/jobs", params={"limit": 1})
        response.raise_for_status()
        job_id: str = response.json()["jobs"][0]["id"]
        return job_id


def throughput(
    root: Path,
    pg: PostgresServer,
    workers: int,
    rounds: int,
    uploads: list[tuple[str, bytes]],
    latency_rounds: int = 2,
) -> dict[str, Any]:
    servers: dict[str, GatewayProcess] = {}
    keys: dict[str, str] = {}
    probes: dict[str, str] = {}  # a finished one-page job, read while the workers are busy
    for backend in BACKENDS:
        (root / backend).mkdir()
        database = {"url": pg.url(pg.create_database())} if backend == "postgresql" else {}
        config = write_config(
            root / backend / "config.yaml",
            root / backend / "data",
            worker={"processes": workers},
            cache={"enabled": False},  # every round reads its pages again
            rate_limits={"reads": "1000000/minute"},  # it polls on purpose
            **({"database": database} if database else {}),
        )
        keys[backend] = create_tenant(config, credits=10_000_000, plan="business")
        servers[backend] = GatewayProcess(config, root / backend / "gateway.log")
    rows: list[dict[str, Any]] = []
    latencies: dict[str, list[float]] = {backend: [] for backend in BACKENDS}
    try:
        for backend in BACKENDS:
            servers[backend].start()
            warm = [(Path(WARM_UP).name, (CORPUS / WARM_UP).read_bytes())] * workers
            asyncio.run(run_round(servers[backend].url, keys[backend], warm, None, []))
            probes[backend] = asyncio.run(newest_job(servers[backend].url, keys[backend]))
        for n in range(rounds):
            for backend in BACKENDS if n % 2 == 0 else BACKENDS[::-1]:
                server = servers[backend]
                assert server.proc is not None
                assert pg.proc is not None
                pids = [server.proc.pid] + ([pg.proc.pid] if backend == "postgresql" else [])
                cpu_before = [tree_cpu_s([pid]) for pid in pids]
                pages, seconds, read_s = asyncio.run(
                    run_round(server.url, keys[backend], uploads, None, [])
                )
                cpu = [tree_cpu_s([pid]) - b for pid, b in zip(pids, cpu_before, strict=True)]
                row = {"round": n + 1, "backend": backend, "pages": pages, "seconds": seconds}
                row |= {"read_s": read_s, "busy": read_s / (seconds * workers)}
                row |= {"gateway_cpu_s": cpu[0], "postgres_cpu_s": sum(cpu[1:])}
                rows.append(row)
                print(
                    f"round {n + 1} {backend}: {pages} pages in {seconds:.2f} s, "
                    f"{pages / seconds:.3f} pages/s; workers reading {read_s:.1f} s "
                    f"({row['busy']:.0%} of their time); CPU s: gateway {cpu[0]:.1f}, "
                    f"postgres {sum(cpu[1:]):.1f}",
                    flush=True,
                )
        # Latency apart from throughput: a client reading one job every 50 ms costs the
        # server CPU that the throughput rounds would otherwise count against the backend.
        for n in range(latency_rounds):
            for backend in BACKENDS if n % 2 == 0 else BACKENDS[::-1]:
                asyncio.run(
                    run_round(
                        servers[backend].url,
                        keys[backend],
                        uploads,
                        probes[backend],
                        latencies[backend],
                    )
                )
                lat = latency_ms(latencies[backend])
                print(f"latency round {n + 1} {backend}: GET p95 so far {lat['p95']:.1f} ms")
    finally:
        for server in servers.values():
            server.stop()
    summary: dict[str, Any] = {"workers": workers, "rounds": rounds, "rows": rows}
    for backend in BACKENDS:
        mine = [r for r in rows if r["backend"] == backend]
        summary[backend] = {
            "pages_per_s": sum(r["pages"] for r in mine) / sum(r["seconds"] for r in mine),
            "read_s_per_page": sum(r["read_s"] for r in mine) / sum(r["pages"] for r in mine),
            "busy": sum(r["read_s"] for r in mine) / sum(r["seconds"] * workers for r in mine),
            "cpu_s_per_page": sum(r["gateway_cpu_s"] + r["postgres_cpu_s"] for r in mine)
            / sum(r["pages"] for r in mine),
            "postgres_cpu_s_per_page": sum(r["postgres_cpu_s"] for r in mine)
            / sum(r["pages"] for r in mine),
            "get_job_latency_ms": latency_ms(latencies[backend]),
        }
    summary["ratio"] = summary["postgresql"]["pages_per_s"] / summary["sqlite"]["pages_per_s"]
    summary["round_ratios"] = [
        next(r for r in rows if r["round"] == n + 1 and r["backend"] == "sqlite")["seconds"]
        / next(r for r in rows if r["round"] == n + 1 and r["backend"] == "postgresql")["seconds"]
        for n in range(rounds)
    ]
    summary["median_round_ratio"] = statistics.median(summary["round_ratios"])
    return summary


# --- claim growth at the store level --------------------------------------------------------


async def fill(db: Database, jobs: int, pages_per_job: int) -> None:
    """One tenant, `jobs` pending jobs of `pages_per_job` pending pages, by bulk SQL."""
    now = int(time.time() * 1000)
    tenant = str(uuid.uuid4())
    job_ids = [str(uuid.uuid4()) for _ in range(jobs)]
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO tenants (id, name, plan, created_at) VALUES (?, ?, ?, ?)",
            (tenant, "bench", "business", now),
        )
        await tx.executemany(
            "INSERT INTO jobs (id, tenant_id, status, file_path, file_kind, page_count,"
            " credits_reserved, created_at) VALUES (?, ?, 'pending', 'bench', 'pdf', ?, ?, ?)",
            [
                (job_id, tenant, pages_per_job, pages_per_job, now + i)
                for i, job_id in enumerate(job_ids)
            ],
        )
        await tx.executemany(
            "INSERT INTO pages (job_id, page_number, status, credits_reserved, updated_at)"
            " VALUES (?, ?, 'pending', 1, ?)",
            [(job_id, n, now) for job_id in job_ids for n in range(1, pages_per_job + 1)],
        )


async def explain(db: Database) -> list[str]:
    sql = leases.claim_sql(db)
    if db.backend == "sqlite":
        return [str(row["detail"]) for row in await db.fetch_all(f"EXPLAIN QUERY PLAN {sql}")]
    async with (
        db.transaction() as tx,  # ANALYZE runs the claim: its row locks end with it
        tx.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}") as cur,
    ):
        rows = await cur.fetchall()
    return [str(row[0]) for row in rows]


async def claim_block(
    store: JobStore, count: int, claims: list[float], releases: list[float]
) -> None:
    for _ in range(count):
        started = time.perf_counter()
        claim = await store.claim_page(LEASE_S)
        claimed = time.perf_counter()
        assert claim is not None
        await store.release_page(claim, count_attempt=False)
        claims.append(claimed - started)
        releases.append(time.perf_counter() - claimed)


async def claim_growth(
    root: Path, pg: PostgresServer, backend: str, shape: str, claims: int
) -> dict[str, Any]:
    stores: list[JobStore] = []
    sizes = SHAPES[shape]
    try:
        for jobs, per_job in sizes:
            folder = root / f"claims-{backend}-{shape}-{jobs}"
            folder.mkdir(parents=True)
            overrides: dict[str, Any] = {}
            if backend == "postgresql":
                overrides["database"] = {"url": pg.url(pg.create_database())}
            settings = load_settings(write_config(folder / "c.yaml", folder / "data", **overrides))
            db = open_database(settings)
            await db.open()
            stores.append(JobStore(db))
            started = time.perf_counter()
            await fill(db, jobs, per_job)
            if backend == "postgresql":
                async with db.transaction() as tx:
                    await tx.execute("ANALYZE jobs")
                    await tx.execute("ANALYZE pages")
            print(f"  {backend} {jobs} x {per_job} queued in {time.perf_counter() - started:.1f} s")
        timings: list[tuple[list[float], list[float]]] = [([], []) for _ in stores]
        for store in stores:
            await claim_block(store, BLOCK, [], [])  # warm the caches and the connections
        for _ in range(max(1, claims // BLOCK)):
            for store, (c, r) in zip(stores, timings, strict=True):
                await claim_block(store, BLOCK, c, r)
        result: dict[str, Any] = {"backend": backend, "shape": shape}
        for label, (jobs, per_job), (c, r) in zip(("small", "large"), sizes, timings, strict=True):
            result[label] = {
                "jobs": jobs,
                "pages_per_job": per_job,
                "queued": jobs * per_job,
                "claim_ms": latency_ms(c),
                "release_ms": latency_ms(r),
            }
        result["median_ratio"] = (
            result["large"]["claim_ms"]["p50"] / result["small"]["claim_ms"]["p50"]
        )
        result["p95_ratio"] = (
            result["large"]["claim_ms"]["p95"] / result["small"]["claim_ms"]["p95"]
        )
        result["plan_large"] = await explain(stores[1].db)
        return result
    finally:
        for store in stores:
            await store.db.close()


# --- the run --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--latency-rounds", type=int, default=2, help="rounds timing GETs")
    parser.add_argument("--workers", type=int, default=2, help="worker processes per gateway")
    parser.add_argument("--limit", type=int, help="only the first N documents")
    parser.add_argument("--repeat", type=int, default=1, help="each document N times a round")
    parser.add_argument("--claims", type=int, default=1000, help="timed claims per queue")
    parser.add_argument("--shapes", default="pages,jobs", help="claim queues: pages, jobs")
    parser.add_argument("--parts", default="throughput,claims")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))

    root = Path(tempfile.mkdtemp(prefix="scale-out-"))
    pg = PostgresServer().start()
    summary: dict[str, Any] = {
        "machine": msgspec.to_builtins(describe_machine()),
        "packages": package_versions(),
        "commit": git_commit(REPO),
    }
    try:
        if "throughput" in parts:
            docs = DOCUMENTS[: args.limit] * args.repeat
            uploads = [(Path(p).name, (CORPUS / p).read_bytes()) for p in docs]
            summary["throughput"] = throughput(
                root, pg, args.workers, args.rounds, uploads, args.latency_rounds
            )
            summary["throughput"]["documents"] = docs
        if "claims" in parts:
            summary["claims"] = []
            for shape in args.shapes.split(","):
                for backend in BACKENDS:
                    result = asyncio.run(claim_growth(root, pg, backend, shape, args.claims))
                    summary["claims"].append(result)
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)
    report(summary)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "scale_out.json").write_text(json.dumps(summary, indent=2))
    return 0


def report(summary: dict[str, Any]) -> None:
    if tp := summary.get("throughput"):
        head = (
            "pages/s | CPU s/page (postgres) | read s/page | busy | GET p50 ms | p95 | max | GETs"
        )
        print(f"\n| backend ({tp['workers']} workers) | {head} |")
        print("|---|---|---|---|---|---|---|---|---|")
        for backend in BACKENDS:
            side, lat = tp[backend], tp[backend]["get_job_latency_ms"]
            print(
                f"| {backend} | {side['pages_per_s']:.3f} | {side['cpu_s_per_page']:.2f} "
                f"({side['postgres_cpu_s_per_page']:.2f}) | {side['read_s_per_page']:.2f} "
                f"| {side['busy']:.0%} | {lat['p50']:.1f} | {lat['p95']:.1f} "
                f"| {lat['max']:.1f} | {lat['count']} |"
            )
        rounds = ", ".join(f"{r:.3f}" for r in tp["round_ratios"])
        print(
            f"\nPostgreSQL/SQLite pages/s: {tp['ratio']:.3f}, median of rounds "
            f"{tp['median_round_ratio']:.3f} (rounds {rounds}; target >= 0.95)"
        )
    if claims := summary.get("claims"):
        print("\n| backend | queue | claim ms p50 | p95 | release ms p50 | ratio p50 | ratio p95 |")
        print("|---|---|---|---|---|---|---|")
        for result in claims:
            for label in ("small", "large"):
                q = result[label]
                ratios = (
                    f"{result['median_ratio']:.2f}x | {result['p95_ratio']:.2f}x"
                    if label == "large"
                    else " | "
                )
                print(
                    f"| {result['backend']} | {q['jobs']:,} x {q['pages_per_job']} "
                    f"| {q['claim_ms']['p50']:.2f} | {q['claim_ms']['p95']:.2f} "
                    f"| {q['release_ms']['p50']:.2f} | {ratios} |"
                )
        print("\n(target: large/small <= 2x)")
        for result in claims:
            print(f"\nclaim plan, {result['backend']}, {result['shape']} (large queue):")
            print("\n".join(f"  {line}" for line in result["plan_large"]))


if __name__ == "__main__":
    raise SystemExit(main())
