"""Memory of a real gateway under full load, over many pages (issue 5).

    python -m benchmarks.memory_soak [--pages 1000] [--pages-per-job 50] [--out DIR]

Starts the gateway with the repository's config.yaml (default worker count) on a free port and
feeds it multi-page PDFs made from small real corpus pages (a receipt, forms, printed pages and
a text line, in turn; built in a temporary folder, never in the repository), keeping a few jobs
queued so that every worker stays busy; the result cache is off, so every page is read. Every
`--interval` seconds it sums the resident memory (VmRSS from /proc/PID/status) of the gateway
process and all its descendants (worker processes and the tesseract binaries they start), and
notes how many pages are done. Shared pages count
once per process in that sum, so it overstates the machine's use; the PSS sum
(/proc/PID/smaps_rollup) is recorded beside it.

Reported: the peak of the sum, and the sum when page 100 and when the last page completed
(each also as the median over the preceding `--window` pages, which smooths out which pages
happen to be in flight). Targets: peak < 1.5 GB; after the last page within 10% of page 100.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
from PIL import Image

from tests.support.gateway_process import CORPUS, REPO, GatewayProcess, create_tenant, write_config

SOURCE_PAGES = (
    "c_receipts/sroie/000.jpg",
    "b_forms/funsd/82491256.png",
    "a_clean_printed/tesseract/phototest.tif",
    "b_forms/funsd/82504862.png",
    "a_clean_printed/uw3_lines/010016.bin.png",
    "c_receipts/sroie/611.jpg",
)
JOBS_IN_FLIGHT = 3
MIB = 1024 * 1024


class Sample(msgspec.Struct, frozen=True, kw_only=True):
    at_s: float
    pages_done: int
    rss_mib: float
    pss_mib: float
    processes: int


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (workers, and the tesseract binaries they run)."""
    found, frontier = [pid], [pid]
    while frontier:
        out = subprocess.run(
            ["/bin/ps", "-o", "pid=", "--ppid", ",".join(map(str, frontier))],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        frontier = [int(p) for p in out.split()]
        found += frontier
    return found


def _status_kib(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except (OSError, ValueError):  # the process ended between listing and reading
        pass
    return 0


def memory_mib(pid: int) -> tuple[float, float, int]:
    """(summed VmRSS, summed Pss, process count) of `pid` and its descendants."""
    pids = descendants(pid)
    rss = sum(_status_kib(Path(f"/proc/{p}/status"), "VmRSS:") for p in pids)
    pss = sum(_status_kib(Path(f"/proc/{p}/smaps_rollup"), "Pss:") for p in pids)
    return rss / 1024, pss / 1024, len(pids)


def build_document(path: Path, pages: int, offset: int) -> Path:
    """A PDF of `pages` pages cycling through SOURCE_PAGES, each at its own resolution."""
    images = []
    for n in range(pages):
        with Image.open(CORPUS / SOURCE_PAGES[(offset + n) % len(SOURCE_PAGES)]) as source:
            dpi = source.info.get("dpi", (300, 300))[0] or 300
            images.append((source.convert("RGB"), float(dpi)))
    first, rest = images[0], images[1:]
    # Pillow's PDF writer takes one resolution for all pages; each page keeps its pixel size,
    # so the gateway renders them at 200 dpi / resolution of their original size.
    first[0].save(
        path, "PDF", save_all=True, append_images=[im for im, _ in rest], resolution=first[1]
    )
    return path


def _jobs(client: httpx.Client, key: str) -> dict[str, dict[str, Any]]:
    response = client.get("/v1/jobs", params={"limit": 100}, headers={"X-API-Key": key})
    response.raise_for_status()
    return {job["id"]: job for job in response.json()["jobs"]}


def soak(
    pages: int, per_job: int, interval_s: float, root: Path, log: Any = print
) -> tuple[list[Sample], dict[str, Any]]:
    config = write_config(  # no result cache: the few documents cycle, and each is read again
        root / "config.yaml",
        root / "data",
        logging={"level": "warning", "json": True},
        cache={"enabled": False},
    )
    key = create_tenant(config, credits=pages * 5 + 100, plan="professional")
    documents = [
        build_document(root / f"doc-{i}.pdf", per_job, i * per_job)
        for i in range(min(JOBS_IN_FLIGHT + 1, -(-pages // per_job)))
    ]
    server = GatewayProcess(config, root / "gateway.log").start()
    assert server.proc is not None
    samples: list[Sample] = []
    submitted: list[str] = []
    failed_pages = 0
    started = time.monotonic()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            samples.append(_sample(server.proc.pid, started, 0))
            done = 0
            while done < pages:
                jobs = _jobs(client, key)
                finished = [j for j in submitted if jobs[j]["status"] in ("completed", "failed")]
                done = sum(jobs[j]["pages_processed"] for j in submitted)
                in_flight = len(submitted) - len(finished)
                while in_flight < JOBS_IN_FLIGHT and len(submitted) * per_job < pages:
                    document = documents[len(submitted) % len(documents)]
                    response = client.post(
                        "/v1/ocr",
                        headers={"X-API-Key": key},
                        files={"file": (document.name, document.read_bytes(), "application/pdf")},
                    )
                    response.raise_for_status()
                    submitted.append(response.json()["jobId"])
                    in_flight += 1
                samples.append(_sample(server.proc.pid, started, done))
                if len(samples) % 20 == 0:
                    last = samples[-1]
                    log(
                        f"  {last.at_s:7.0f} s  {done:5d} pages  RSS {last.rss_mib:7.1f} MiB  "
                        f"PSS {last.pss_mib:7.1f} MiB  {last.processes} processes"
                    )
                time.sleep(interval_s)
            for job_id in submitted:
                job = client.get(f"/v1/jobs/{job_id}", headers={"X-API-Key": key}).json()
                failed_pages += sum(p["status"] == "failed" for p in job["results"])
    finally:
        server.stop()
    return samples, {
        "jobs": len(submitted),
        "failed_pages": failed_pages,
        "wall_s": round(time.monotonic() - started, 1),
    }


def _sample(pid: int, started: float, done: int) -> Sample:
    rss, pss, count = memory_mib(pid)
    return Sample(
        at_s=round(time.monotonic() - started, 2),
        pages_done=done,
        rss_mib=round(rss, 1),
        pss_mib=round(pss, 1),
        processes=count,
    )


def at_page(samples: list[Sample], page: int, window: int) -> dict[str, float]:
    """The first sample with `page` pages done, and the median over the `window` pages before."""
    first = next((s for s in samples if s.pages_done >= page), samples[-1])
    recent = [s.rss_mib for s in samples if page - window <= s.pages_done <= first.pages_done]
    return {
        "pages_done": first.pages_done,
        "rss_mib": first.rss_mib,
        "rss_median_window_mib": statistics.median(recent),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--pages-per-job", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("--window", type=int, default=50, help="pages in the median windows")
    parser.add_argument("--out", type=Path, default=REPO / "bench-out" / "memory_soak")
    args = parser.parse_args(argv)
    early = min(100, args.pages)
    with tempfile.TemporaryDirectory(prefix="memory-soak-") as folder:
        samples, run = soak(args.pages, args.pages_per_job, args.interval, Path(folder))
    peak = max(samples, key=lambda s: s.rss_mib)
    first, last = at_page(samples, early, args.window), at_page(samples, args.pages, args.window)
    summary = {
        **run,
        "pages": args.pages,
        "peak_rss_mib": peak.rss_mib,
        "peak_at_pages_done": peak.pages_done,
        "peak_pss_mib": max(s.pss_mib for s in samples),
        f"after_page_{early}": first,
        f"after_page_{args.pages}": last,
        "growth": last["rss_mib"] / first["rss_mib"] - 1,
        "growth_median_window": last["rss_median_window_mib"] / first["rss_median_window_mib"] - 1,
        "samples": [msgspec.to_builtins(s) for s in samples],
    }
    markdown = (
        f"Memory soak: {args.pages} pages in {run['jobs']} jobs, {run['wall_s']} s, "
        f"{run['failed_pages']} failed pages\n\n"
        "| measure | value | target |\n|---|---|---|\n"
        f"| peak RSS (gateway + descendants) | {peak.rss_mib:.0f} MiB at page "
        f"{peak.pages_done} | < 1.5 GB (1430 MiB) |\n"
        f"| peak PSS | {summary['peak_pss_mib']:.0f} MiB | |\n"
        f"| RSS after page {first['pages_done']} | {first['rss_mib']:.0f} MiB "
        f"(median of {args.window} pages before: {first['rss_median_window_mib']:.0f}) | |\n"
        f"| RSS after page {last['pages_done']} | {last['rss_mib']:.0f} MiB "
        f"(median: {last['rss_median_window_mib']:.0f}) | |\n"
        f"| growth | {100 * summary['growth']:+.1f}% (medians: "
        f"{100 * summary['growth_median_window']:+.1f}%) | within 10% |\n"
    )
    print("\n" + markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "memory_soak.json").write_text(json.dumps(summary, indent=2))
    (args.out / "memory_soak.md").write_text(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
