"""Whole-document result formats against the read they come from, side by side (issue 13).

    python -m benchmarks.output_formats [--pages 100] [--workers N] [--out DIR]

A scanned PDF of `--pages` pages is built from the corpus's scans (TIFF, PNG and JPEG pages of
`a_clean_printed`, `b_forms`, `c_receipts` and the OCRmyPDF brochure, in turn, each embedded as
an office scanner would: one grey JPEG per page at the scan's resolution). A real gateway
(default config; `--workers` engine processes) reads it as one job; the read time is the job's
`completed_at - created_at`. Then `GET /v1/jobs/{id}/result` is asked for in every format, one
after the other, each timed from request to last byte; meanwhile the resident memory of the
gateway and its worker processes is sampled every 10 ms. Reported per format: seconds, share
of the read time (target: < 5%), size, and the peak resident memory of the server process and
of the largest worker during that request; plus the peak of the whole run.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pikepdf
from PIL import Image

from benchmarks.environment import git_commit
from tests.support.gateway_process import (
    CORPUS,
    REPO,
    GatewayProcess,
    create_tenant,
    write_config,
)

SCANS = [
    "a_clean_printed/tesseract/phototest.tif",
    "a_clean_printed/tesseract/eurotext.tif",
    "f_pdfs/ocrmypdf/linn.png",
    "f_pdfs/ocrmypdf/typewriter.png",
    *(f"b_forms/funsd/{p.name}" for p in sorted((CORPUS / "b_forms/funsd").glob("*.png"))[:6]),
    *(
        f"c_receipts/sroie/{p.name}"
        for p in sorted((CORPUS / "c_receipts/sroie").glob("*.jpg"))[:6]
    ),
]
FORMATS = ["json", "markdown", "text", "hocr", "alto", "pdf"]
TARGET_SHARE = 0.05
SAMPLE_S = 0.01
JPEG_QUALITY = 50  # grey JPEG, as office scanners save: 100 pages fit the 20 MB upload limit


def scanned_pdf(pages: int) -> bytes:
    """`pages` corpus scans in turn, one grey JPEG image per page at its resolution."""
    out = pikepdf.new()
    for i in range(pages):
        image = Image.open(CORPUS / SCANS[i % len(SCANS)])
        dpi = float((image.info.get("dpi") or (300, 300))[0]) or 300.0
        page = io.BytesIO()
        image.convert("L").save(
            page, "PDF", resolution=dpi if 70 <= dpi <= 1200 else 300.0, quality=JPEG_QUALITY
        )
        with pikepdf.open(io.BytesIO(page.getvalue())) as single:
            out.pages.extend(single.pages)
    data = io.BytesIO()
    out.save(data)
    return data.getvalue()


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return [int(c) for t in tasks for c in (t / "children").read_text().split()]
    except OSError:
        return []


class MemorySampler:
    """Peak resident memory of a process and of its largest child, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.server_kb = self.worker_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.server_kb = max(self.server_kb, _rss_kb(self.pid))
            workers = [_rss_kb(child) for child in _children(self.pid)]
            self.worker_kb = max([self.worker_kb, *workers])
            time.sleep(SAMPLE_S)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def run(pages: int, workers: int | None, out_dir: Path | None) -> dict[str, object]:
    document = scanned_pdf(pages)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        overrides = {"worker": {"processes": workers}} if workers else {}
        config = write_config(root / "config.yaml", root / "data", **overrides)
        gateway = GatewayProcess(config, root / "gateway.log").start()
        try:
            assert gateway.proc is not None
            key = create_tenant(config, name="bench", credits=10 * pages, plan="business")
            headers = {"X-API-Key": key}
            with httpx.Client(base_url=gateway.url, timeout=600) as client:
                job_id = client.post(
                    "/v1/ocr", headers=headers, files={"file": ("scan.pdf", document)}
                ).json()["jobId"]
                while True:
                    job = client.get(
                        f"/v1/jobs/{job_id}", headers=headers, params={"wait": 30}
                    ).json()
                    if job["status"] in ("completed", "failed", "cancelled"):
                        break
                read_s = (job["completed_at"] - job["created_at"]) / 1000
                rows = []
                with MemorySampler(gateway.proc.pid) as whole:
                    for fmt in FORMATS:
                        with MemorySampler(gateway.proc.pid) as memory:
                            started = time.perf_counter()
                            response = client.get(
                                f"/v1/jobs/{job_id}/result",
                                headers=headers,
                                params={"format": fmt},
                            )
                            seconds = time.perf_counter() - started
                        response.raise_for_status()
                        rows.append(
                            {
                                "format": fmt,
                                "seconds": round(seconds, 3),
                                "share_of_read": round(seconds / read_s, 4),
                                "bytes": len(response.content),
                                "server_peak_mb": round(memory.server_kb / 1024),
                                "worker_peak_mb": round(memory.worker_kb / 1024),
                            }
                        )
        finally:
            gateway.stop()
    report: dict[str, object] = {
        "commit": git_commit(REPO),
        "pages": pages,
        "pages_read": job["pages_processed"],
        "pages_failed": sum(1 for p in job["results"] if p["status"] == "failed"),
        "document_bytes": len(document),
        "read_s": round(read_s, 1),
        "formats": rows,
        "server_peak_mb": round(whole.server_kb / 1024),
        "worker_peak_mb": round(whole.worker_kb / 1024),
    }
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "output_formats.json").write_text(json.dumps(report, indent=2))
    return report


def table(report: dict[str, object]) -> str:
    rows = report["formats"]
    assert isinstance(rows, list)
    lines = [
        f"{report['pages']}-page scanned PDF ({int(report['document_bytes']) / 1e6:.1f} MB), "  # type: ignore[call-overload]
        f"read in {report['read_s']} s; server peak {report['server_peak_mb']} MB, "
        f"largest worker peak {report['worker_peak_mb']} MB while the formats were made",
        "",
        "| format | seconds | share of read | size | server peak | worker peak |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        mark = "" if row["share_of_read"] < TARGET_SHARE else " (over 5%)"
        lines.append(
            f"| {row['format']} | {row['seconds']:.2f} | {100 * row['share_of_read']:.2f}%{mark} "
            f"| {row['bytes'] / 1e6:.2f} MB | {row['server_peak_mb']} MB "
            f"| {row['worker_peak_mb']} MB |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.output_formats")
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--workers", type=int, help="engine processes (default: config)")
    parser.add_argument("--out", type=Path, help="write output_formats.json here")
    args = parser.parse_args(argv)
    print(table(run(args.pages, args.workers, args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
