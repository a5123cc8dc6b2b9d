"""API overhead: the same pages through the HTTP API and through the engine directly.

Both paths use every core (the direct path runs one engine process per core, like the gateway's
workers), alternate round by round so machine drift hits both alike, and exclude engine start-up.
While the API path runs, a poller reads `GET /v1/jobs/{id}` continuously to measure its latency
with the worker saturated.

    python -m benchmarks.api_overhead [--rounds 2] [--provider rapidocr] [--out DIR]

Targets (issue 2): API pages/s >= 90% of direct; p95 GET latency <= 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx

from gateway.config import Settings, load_settings
from gateway.work.assess import assess_page, plan_page
from gateway.work.documents import DocumentKind, detect_kind
from gateway.work.pipeline import PageEngine, PageTask
from tests.support.gateway_process import CORPUS, GatewayProcess, create_tenant, write_config

PAGES = [
    "a_clean_printed/tesseract/phototest.tif",
    "a_clean_printed/tesseract/eurotext.tif",
    "b_forms/funsd/82250337_0338.png",
    "b_forms/funsd/82252956_2958.png",
    "c_receipts/sroie/000.jpg",
    "c_receipts/sroie/013.jpg",
    "f_pdfs/born_digital/crazyones.pdf",
    "f_pdfs/born_digital/002-trivial-libre-office-writer.pdf",
]

REPEAT = 3  # each page three times per round: fixed costs (first submit, last poll) amortize
PROBE_INTERVAL_S = 0.05

_engine: PageEngine | None = None


def _init(settings: Settings) -> None:
    global _engine
    _engine = PageEngine(settings)


def _read(path: str, kind: DocumentKind) -> float:
    """The engine's work for one page as the API does it: assess (as at submit), then read by
    that route. What the API adds on top is HTTP, inspection, the queue and the store."""
    assert _engine is not None
    started = time.perf_counter()
    route = plan_page(assess_page(Path(path), kind, 1, _engine.settings), _engine.settings)
    _engine.read_page(PageTask(path=path, kind=kind, page_number=1, route=route))
    return time.perf_counter() - started


def _warm(_: int) -> None:
    return None


def run_direct(pool: ProcessPoolExecutor, pages: list[tuple[str, DocumentKind]]) -> float:
    """Wall seconds to read every page with one engine process per core."""
    started = time.perf_counter()
    list(pool.map(_read, [p for p, _ in pages], [k for _, k in pages]))
    return time.perf_counter() - started


async def run_api(
    url: str, key: str, pages: list[tuple[str, DocumentKind]], latencies: list[float]
) -> float:
    """Wall seconds from the first submit until every job is completed, polling meanwhile."""
    headers = {"X-API-Key": key}
    uploads = [(Path(path).name, Path(path).read_bytes()) for path, _ in pages]  # noqa: ASYNC240 - read before the clock starts
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        started = time.perf_counter()
        job_ids = []
        for upload in uploads:
            response = await client.post("/v1/ocr", headers=headers, files={"file": upload})
            response.raise_for_status()
            job_ids.append(response.json()["jobId"])
        pending = list(job_ids)
        while pending:  # one status read every PROBE_INTERVAL_S, round-robin over the jobs
            job_id = pending.pop(0)
            t0 = time.perf_counter()
            response = await client.get(f"/v1/jobs/{job_id}", headers=headers)
            latencies.append(time.perf_counter() - t0)
            response.raise_for_status()
            job = response.json()
            if job["status"] not in ("completed", "failed"):
                pending.append(job_id)
            elif job["status"] == "failed" or any(
                p["status"] != "completed" for p in job["results"]
            ):
                raise RuntimeError(f"job {job_id} has failed pages: {job['results'][0]}")
            await asyncio.sleep(PROBE_INTERVAL_S)
        return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--provider",
        default="auto",
        help="auto (routing, the default pipeline) or a provider for every page",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="api-overhead-"))
    config = write_config(
        root / "config.yaml",
        root / "data",
        pipeline={"provider": args.provider},
        rate_limits={"reads": "1000000/minute"},
    )  # it polls on purpose
    settings = load_settings(config)
    workers = settings.worker.process_count
    pages = [
        (str(CORPUS / p), detect_kind((CORPUS / p).read_bytes()[:2048])) for p in PAGES * REPEAT
    ]
    assert all(kind is not None for _, kind in pages)
    typed_pages: list[tuple[str, DocumentKind]] = [(p, k) for p, k in pages if k is not None]

    key = create_tenant(config, credits=100_000, plan="business")
    server = GatewayProcess(config, root / "gateway.log").start()
    rows = []
    latencies: list[float] = []
    try:
        with ProcessPoolExecutor(workers, initializer=_init, initargs=(settings,)) as pool:
            list(pool.map(_warm, range(workers)))
            for n in range(args.rounds):
                direct_s = run_direct(pool, typed_pages)
                api_s = asyncio.run(run_api(server.url, key, typed_pages, latencies))
                rows.append(
                    {
                        "round": n + 1,
                        "direct_s": direct_s,
                        "api_s": api_s,
                        "direct_pages_per_s": len(pages) / direct_s,
                        "api_pages_per_s": len(pages) / api_s,
                    }
                )
                print(
                    f"round {n + 1}: direct {direct_s:.2f} s, api {api_s:.2f} s, "
                    f"ratio {direct_s / api_s:.3f}"
                )
    finally:
        server.stop()

    direct_total = sum(r["direct_s"] for r in rows)
    api_total = sum(r["api_s"] for r in rows)
    summary = {
        "pages_per_round": len(pages),
        "rounds": args.rounds,
        "workers": workers,
        "provider": args.provider,
        "direct_pages_per_s": len(pages) * args.rounds / direct_total,
        "api_pages_per_s": len(pages) * args.rounds / api_total,
        "throughput_ratio": direct_total / api_total,
        "get_job_latency_ms": {
            "count": len(latencies),
            "p50": 1000 * statistics.median(latencies),
            "p95": 1000 * percentile(latencies, 0.95),
            "max": 1000 * max(latencies),
        },
        "rows": rows,
    }
    lat = summary["get_job_latency_ms"]
    print(
        f"\n| path | pages/s |\n|---|---|\n| direct engine ({workers} processes) | "
        f"{summary['direct_pages_per_s']:.3f} |\n| HTTP API | {summary['api_pages_per_s']:.3f} |"
    )
    print(f"\nthroughput ratio API/direct: {summary['throughput_ratio']:.3f} (target >= 0.90)")
    print(
        f"GET /v1/jobs latency while saturated: p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} "
        f"ms, max {lat['max']:.1f} ms over {lat['count']} requests (target p95 <= 100 ms)"
    )
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "api_overhead.json").write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
