"""GET /metrics: Prometheus text from a real gateway, its engine worker processes included."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from tests.support.fake_vlm_server import FakeVLMServer
from tests.support.gateway_process import GatewayProcess, create_tenant, wait_for_job, write_config

TOKEN = "metrics-token-for-tests"
LINES = ["010003", "010004"]  # uw3 line strips: quick to read


@pytest.fixture(scope="module")
def vlm() -> Iterator[FakeVLMServer]:
    with FakeVLMServer() as server:
        yield server


@pytest.fixture(scope="module")
def guarded(
    tmp_path_factory: pytest.TempPathFactory, vlm: FakeVLMServer
) -> Iterator[GatewayProcess]:
    """A gateway whose /metrics wants the token even on loopback, with one engine process and
    a remote provider (a fake VLM) first in the simple tier's chain."""
    root = tmp_path_factory.mktemp("metrics")
    config = write_config(
        root / "config.yaml",
        root / "data",
        worker={"processes": 1},
        metrics={"open_on_loopback": False, "token_env": "TEST_METRICS_TOKEN"},
        providers={"vlm": {"kind": "openai_vision", "base_url": vlm.base_url, "model": "fake"}},
        routing={
            "tiers": {
                "simple": {"credits": 1, "providers": ["vlm", "rapidocr"]},
                "medium": {"credits": 3, "providers": ["rapidocr", "tesseract"]},
                "complex": {"credits": 5, "providers": ["rapidocr", "tesseract"]},
            }
        },
    )
    server = GatewayProcess(config, root / "gateway.log", env={"TEST_METRICS_TOKEN": TOKEN})
    server.start()
    yield server
    server.stop()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return sum(
        value
        for (sample, sample_labels), value in found.items()
        if sample == name and set(labels.items()) <= set(sample_labels)
    )


def scrape(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return samples(response.text)


def tiff_of_lines(corpus: Path) -> bytes:
    frames = [
        Image.open(corpus / f"a_clean_printed/uw3_lines/{n}.bin.png").convert("L") for n in LINES
    ]
    out = io.BytesIO()
    frames[0].save(out, format="TIFF", save_all=True, append_images=frames[1:])
    return out.getvalue()


def test_metrics_need_the_token_where_loopback_is_not_open(guarded: GatewayProcess) -> None:
    """open_on_loopback: false: no token or a wrong one is 401 in the API's error shape."""
    with httpx.Client(base_url=guarded.url, timeout=30) as client:
        assert client.get("/metrics").json()["error"]["code"] == "unauthorized"
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401


def test_counters_move_by_the_pages_read(
    guarded: GatewayProcess, vlm: FakeVLMServer, corpus: Path
) -> None:
    """Scraped while two jobs run and after: one read by the remote provider (its first call
    answered 429, retried after Retry-After), one kept local (allow_remote=false) and read in
    the engine worker process. Pages read by provider, read times, provider attempts (local ones
    counted in the worker process), the remote calls and retries, credits reserved and charged
    and HTTP requests move by exactly what the jobs did; the breaker is closed; queue gauges."""
    key = create_tenant(guarded.config, name="metrics", credits=100)
    document = tiff_of_lines(corpus)
    vlm.control(rate_limit_next=1, retry_after_s=0.2)
    with httpx.Client(base_url=guarded.url, timeout=60) as client:
        before = scrape(client)
        submitted = [
            client.post(
                "/v1/ocr",
                headers={"X-API-Key": key},
                files={"file": ("lines.tif", document)},
                data={"allow_remote": remote, "cache": "false"},
            )
            for remote in ("true", "false")
        ]
        assert [s.status_code for s in submitted] == [202, 202], submitted[0].text
        during = scrape(client)  # four pages to read: the jobs are running now
        assert total(during, "ocr_gateway_queue_depth") >= 1
        assert total(during, "ocr_gateway_queue_oldest_waiting_seconds") >= 0
        jobs = [wait_for_job(client, s.json()["jobId"], key) for s in submitted]
        assert [job["status"] for job in jobs] == ["completed", "completed"]
        after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    pages = len(LINES)
    assert moved("ocr_gateway_pages_read_total") == 2 * pages
    assert moved("ocr_gateway_pages_read_total", outcome="completed", provider="vlm") == pages
    assert moved("ocr_gateway_pages_read_total", outcome="completed", provider="rapidocr") == pages
    assert moved("ocr_gateway_page_read_seconds_count") == 2 * pages
    assert moved("ocr_gateway_page_read_seconds_sum") > 0
    assert moved("ocr_gateway_provider_attempts_total", provider="rapidocr") >= pages  # worker
    assert moved("ocr_gateway_provider_attempts_total", provider="vlm", outcome="ok") == pages
    assert moved("ocr_gateway_remote_calls_total", provider="vlm") == pages
    assert moved("ocr_gateway_remote_retries_total", provider="vlm") == 1
    assert moved("ocr_gateway_remote_failures_total", provider="vlm") == 0
    assert total(after, "ocr_gateway_remote_breaker_state", provider="vlm", state="closed") == 1
    reserved = sum(s.json()["creditsReserved"] for s in submitted)
    assert moved("ocr_gateway_credits_total", movement="reserve") == reserved
    assert moved("ocr_gateway_credits_total", movement="charge") == sum(
        job["credits_used"] for job in jobs
    )
    assert moved("ocr_gateway_http_requests_total", route="/v1/ocr", status="202") == 2
    assert moved("ocr_gateway_http_request_duration_seconds_count", route="/v1/ocr") == 2
    assert total(after, "ocr_gateway_queue_depth") == 0
    assert total(after, "ocr_gateway_engine_workers", state="ready") == 1
