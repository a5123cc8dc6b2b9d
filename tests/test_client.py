"""The Python client (gateway.client) and `ocr-gateway submit` against a real gateway."""

from __future__ import annotations

import io
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from gateway.cli import main
from gateway.client import ApiError, AsyncClient, Client, NotReadyError
from tests.support.gateway_process import GatewayProcess, create_tenant, free_port

PHOTOTEST = "a_clean_printed/tesseract/phototest.tif"
LINE = "a_clean_printed/uw3_lines/010004.bin.png"


@pytest.fixture(scope="module")
def api_key(gateway: GatewayProcess) -> str:
    """One tenant for the module's tests (creating one through the CLI takes seconds)."""
    return create_tenant(gateway.config, name="client", credits=1000)


def lines_tiff(corpus: Path, pages: int) -> bytes:
    """A multi-page TIFF of uw3 line strips (quick pages)."""
    names = ["010003", "010004", "010005", "010008"]
    frames = [
        Image.open(corpus / f"a_clean_printed/uw3_lines/{names[i % 4]}.bin.png").convert("L")
        for i in range(pages)
    ]
    out = io.BytesIO()
    frames[0].save(out, format="TIFF", save_all=True, append_images=frames[1:])
    return out.getvalue()


def test_sync_client_submits_waits_and_fetches_every_format(
    gateway: GatewayProcess, api_key: str, corpus: Path
) -> None:
    """A path with options in; the job long-polled to its end; markdown and PDF results, a
    preview, the jobs list, balance and usage out; deleted, the job is a 404 job_not_found; a
    url submit reaches the server (a loopback one is refused with its code)."""
    with Client(gateway.url, api_key) as ocr:
        quote = ocr.quote(corpus / PHOTOTEST, mode="fast")
        assert quote.credits == quote.pageCount == 1
        job = ocr.submit(corpus / PHOTOTEST, mode="fast", max_credits=5, page_ranges=[(1, 1)])
        assert (job.status, job.creditsReserved) == ("pending", 1)
        done = ocr.wait(job.jobId, timeout_s=120)
        assert done.status == "completed"
        assert done.results[0].pipeline_metadata is not None
        assert done.results[0].pipeline_metadata.tier == "simple"
        markdown = ocr.result(job.jobId, "markdown").decode()
        assert markdown.startswith("<!-- page 1 -->")
        assert "quick brown" in markdown.lower()
        assert ocr.result(job.jobId, "pdf").startswith(b"%PDF-")
        assert ocr.preview(job.jobId, 1).startswith(b"\x89PNG")
        listed = ocr.jobs(limit=5, status="completed")
        assert job.jobId in [j.id for j in listed.jobs]
        balance = ocr.balance()
        assert balance.usage_last_24h.pages >= 1
        assert ocr.usage().total.credits >= 1
        ocr.delete(job.jobId)
        with pytest.raises(ApiError) as missing:
            ocr.job(job.jobId)
        with pytest.raises(ApiError) as private:  # the url reaches the server's address rules
            ocr.submit(url="http://127.0.0.1:9/scan.pdf", mode="fast")
    assert (missing.value.status, missing.value.code) == (404, "job_not_found")
    assert (private.value.status, private.value.code) == (400, "url_address_not_allowed")


async def test_async_client_reads_bytes_and_maps_errors(
    gateway: GatewayProcess, api_key: str, corpus: Path
) -> None:
    """Bytes in, awaited; a finished job cannot be cancelled (409 job_not_cancellable); an
    unknown key is 401 unauthorized; a result before the job finished is NotReadyError."""
    async with AsyncClient(gateway.url, api_key) as ocr:
        job = await ocr.submit((corpus / LINE).read_bytes(), filename="line.png", cache=False)
        with pytest.raises(NotReadyError) as early:
            await ocr.result(job.jobId, "text")
        assert early.value.code == "result_not_ready"
        done = await ocr.wait(job.jobId, timeout_s=120)
        assert done.status == "completed"
        text = (await ocr.result(job.jobId, "text")).decode()
        assert text.strip()
        with pytest.raises(ApiError) as finished:
            await ocr.cancel(job.jobId)
        assert (finished.value.status, finished.value.code) == (409, "job_not_cancellable")
    async with AsyncClient(gateway.url, "not-a-key") as stranger:
        with pytest.raises(ApiError) as refused:
            await stranger.balance()
    assert refused.value.code == "unauthorized"


def test_a_429_is_retried_after_its_retry_after_with_one_idempotency_key(
    gateway: GatewayProcess, corpus: Path
) -> None:
    """A free tenant (2 jobs at once) with two jobs running: the third submit is answered 429
    too_many_concurrent_jobs (Retry-After: 5); the client waits that long, submits again with the
    same Idempotency-Key, and gets exactly one more job."""
    key = create_tenant(gateway.config, name="client-429", credits=100, plan="free")
    document = lines_tiff(corpus, 3)
    with Client(gateway.url, key, retries=6) as ocr:
        first = [ocr.submit(document, filename=f"busy-{n}.tif", cache=False) for n in range(2)]
        started = time.monotonic()
        third = ocr.submit((corpus / LINE).read_bytes(), filename="third.png", cache=False)
        elapsed = time.monotonic() - started
        assert elapsed >= 5.0, "the first answer was a 429 with Retry-After: 5"
        jobs = ocr.jobs(limit=10).jobs
        assert sorted(j.id for j in jobs) == sorted([third.jobId, *(j.jobId for j in first)])
        for job in [*first, third]:
            assert ocr.wait(job.jobId, timeout_s=120).status == "completed"
    with Client(gateway.url, key, retries=0) as impatient:
        for n in range(2):
            impatient.submit(document, filename=f"again-{n}.tif", cache=False)
        with pytest.raises(ApiError) as busy:
            impatient.submit(document, filename="again-2.tif", cache=False)
    assert (busy.value.status, busy.value.code) == (429, "too_many_concurrent_jobs")
    assert busy.value.retry_after_s == 5


def test_submit_command_waits_and_prints_markdown(
    gateway: GatewayProcess, api_key: str, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ocr-gateway submit FILE --url URL --key KEY --wait --format markdown` prints the
    document's markdown; a wrong key exits 2 with the API's error code."""
    argv = ["submit", str(corpus / PHOTOTEST), "--url", gateway.url, "--key", api_key]
    assert main([*argv, "--wait", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("<!-- page 1 -->")
    assert "quick brown" in out.lower()
    assert main(["submit", str(corpus / PHOTOTEST), "--url", gateway.url, "--key", "nope"]) == 2
    assert "unauthorized" in capsys.readouterr().err


def test_connection_failures_are_retried_then_raised() -> None:
    """Nothing listens: the client retries with backoff, then raises the transport error."""
    with Client(f"http://127.0.0.1:{free_port()}", "key", retries=2, backoff_s=0.05) as ocr:
        started = time.monotonic()
        with pytest.raises(httpx.ConnectError):
            ocr.balance()
    assert time.monotonic() - started >= 0.05 + 0.1
