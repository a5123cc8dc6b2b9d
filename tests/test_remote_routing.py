"""Remote providers inside the gateway: complex pages go to a VLM server or an upstream
gateway, fall back down the chain when those fail, and stay local when remote is forbidden."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from benchmarks.metrics import bag_of_words_f1
from tests.ledger_checks import assert_ledger_balanced, charges_by_page
from tests.support.fake_vlm_server import FakeVLMServer
from tests.support.gateway_process import GatewayProcess, create_tenant, wait_for_job, write_config

EVERYTHING_COMPLEX = {"medium_from": 0.0, "complex_from": 0.0}
FAST_RETRY = {
    "attempts": 2,
    "budget_s": 5,
    "backoff_initial_s": 0.05,
    "backoff_max_s": 0.1,
    "retry_after_max_s": 2,
}


@pytest.fixture(scope="module")
def vlm() -> Iterator[FakeVLMServer]:
    with FakeVLMServer() as server:
        yield server


@pytest.fixture(scope="module")
def gateway_with_vlm(
    tmp_path_factory: pytest.TempPathFactory, vlm: FakeVLMServer
) -> Iterator[GatewayProcess]:
    root = tmp_path_factory.mktemp("vlm-gateway")
    config = write_config(
        root / "config.yaml",
        root / "data",
        providers={
            "vlm": {
                "kind": "openai_vision",
                "base_url": vlm.base_url,
                "model": "fake",
                "retry": FAST_RETRY,
                "breaker": {"failure_threshold": 50, "cooldown_s": 1},
            }
        },
        routing={
            **EVERYTHING_COMPLEX,
            "tiers": {
                "simple": {"credits": 1, "providers": ["tesseract"]},
                "medium": {"credits": 3, "providers": ["tesseract"]},
                "complex": {"credits": 5, "providers": ["vlm", "tesseract"]},
            },
        },
    )
    process = GatewayProcess(config, root / "gateway.log").start()
    yield process
    process.stop()


def submit(url: str, key: str, content: bytes, **fields: str) -> str:
    response = httpx.post(
        f"{url}/v1/ocr",
        headers={"X-API-Key": key},
        files={"file": ("page", content)},
        data=fields,
        timeout=60,
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["jobId"]
    return job_id


def finished(url: str, key: str, job_id: str) -> dict[str, object]:
    with httpx.Client(base_url=url, timeout=60) as client:
        return wait_for_job(client, job_id, key)


def test_complex_page_is_read_by_the_vlm(
    gateway_with_vlm: GatewayProcess, vlm: FakeVLMServer, corpus: Path
) -> None:
    vlm.reset()
    key = create_tenant(gateway_with_vlm.config, credits=50)
    job = finished(
        gateway_with_vlm.url,
        key,
        submit(
            gateway_with_vlm.url,
            key,
            (corpus / "a_clean_printed/tesseract/phototest.tif").read_bytes(),
        ),
    )
    page = job["results"][0]  # type: ignore[index]
    meta = page["pipeline_metadata"]
    assert meta["provider_used"] == "vlm"
    assert (meta["tier"], meta["credits"], job["credits_used"]) == ("complex", 5, 5)
    assert "geometry from detected lines" in meta["provider_reason"]
    text = "\n".join(b["text"] for b in page["content_blocks"])
    truth = (corpus / "a_clean_printed/tesseract/phototest.gt.txt").read_text()
    assert bag_of_words_f1(truth, text) >= 0.8
    assert vlm.stats()["requests"] >= 1


def test_failing_vlm_falls_back_down_the_chain(
    gateway_with_vlm: GatewayProcess, vlm: FakeVLMServer, corpus: Path
) -> None:
    vlm.reset()
    vlm.control(fail_next=10, status=503)
    key = create_tenant(gateway_with_vlm.config, credits=50)
    job = finished(
        gateway_with_vlm.url,
        key,
        submit(
            gateway_with_vlm.url,
            key,
            (corpus / "a_clean_printed/tesseract/phototest.tif").read_bytes(),
        ),
    )
    meta = job["results"][0]["pipeline_metadata"]  # type: ignore[index]
    assert meta["provider_used"] == "tesseract"
    assert meta["attempts"][0]["provider"] == "vlm"
    assert meta["attempts"][0]["error"].startswith("provider_server_error")
    assert "vlm failed" in meta["escalation"]
    assert "tesseract read the page too" in meta["escalation"]
    assert job["credits_used"] == 5  # the complex tier's chain read it
    vlm.reset()


def test_allow_remote_false_keeps_pages_local(
    gateway_with_vlm: GatewayProcess, vlm: FakeVLMServer, corpus: Path
) -> None:
    vlm.reset()
    key = create_tenant(gateway_with_vlm.config, credits=50)
    job = finished(
        gateway_with_vlm.url,
        key,
        submit(
            gateway_with_vlm.url,
            key,
            (corpus / "a_clean_printed/tesseract/phototest.tif").read_bytes(),
            allow_remote="false",
        ),
    )
    meta = job["results"][0]["pipeline_metadata"]  # type: ignore[index]
    assert meta["provider_used"] == "tesseract"
    assert "allow_remote: false" in meta["provider_reason"]
    assert [a["provider"] for a in meta["attempts"]] == ["tesseract"]
    assert vlm.stats()["requests"] == 0


def test_health_shows_remote_breakers(gateway_with_vlm: GatewayProcess) -> None:
    health = httpx.get(f"{gateway_with_vlm.url}/health", timeout=10).json()
    assert health["engines"]["remote"]["vlm"]["breaker"]["state"] == "closed"


def multipage_tiff(corpus: Path, pages: int) -> bytes:
    frame = Image.open(corpus / "a_clean_printed/tesseract/phototest.tif").convert("L")
    buffer = io.BytesIO()
    frame.save(buffer, format="TIFF", save_all=True, append_images=[frame] * (pages - 1))
    return buffer.getvalue()


def test_upstream_gateway_killed_mid_job_falls_back(tmp_path: Path, corpus: Path) -> None:
    upstream_config = write_config(
        tmp_path / "up.yaml",
        tmp_path / "up-data",
        pipeline={"provider": "tesseract"},
        worker={"processes": 1},
    )
    upstream_key = create_tenant(upstream_config, credits=100, plan="business")
    upstream = GatewayProcess(upstream_config, tmp_path / "up.log").start()
    config = write_config(
        tmp_path / "down.yaml",
        tmp_path / "down-data",
        worker={"processes": 1},
        providers={
            "big": {
                "kind": "gateway",
                "base_url": upstream.url,
                "api_key_env": "BIG_GATEWAY_KEY",
                "poll_wait_s": 2,
                "retry": FAST_RETRY,
                "concurrency": 1,
                "breaker": {"failure_threshold": 2, "cooldown_s": 30},
            }
        },
        routing={
            **EVERYTHING_COMPLEX,
            "tiers": {
                "simple": {"credits": 1, "providers": ["tesseract"]},
                "medium": {"credits": 3, "providers": ["tesseract"]},
                "complex": {"credits": 5, "providers": ["big", "tesseract"]},
            },
        },
    )
    key = create_tenant(config, credits=100)
    downstream = GatewayProcess(
        config, tmp_path / "down.log", env={"BIG_GATEWAY_KEY": upstream_key}
    ).start()
    try:
        job_id = submit(downstream.url, key, multipage_tiff(corpus, 6))
        with httpx.Client(base_url=downstream.url, timeout=60) as client:
            while True:
                job = client.get(
                    f"/v1/jobs/{job_id}", headers={"X-API-Key": key}, params={"wait": 10}
                ).json()
                if job["pages_processed"] >= 1:
                    break
            upstream.kill()
            job = wait_for_job(client, job_id, key)
    finally:
        if upstream.proc is not None and upstream.proc.poll() is None:
            upstream.kill()
        downstream.stop()
    assert job["status"] == "completed"
    pages = job["results"]
    assert [p["page_number"] for p in pages] == [1, 2, 3, 4, 5, 6]
    used = [p["pipeline_metadata"]["provider_used"] for p in pages]
    assert used[0] == "big"
    assert "tesseract" in used  # the pages after the kill went down the chain
    assert all(p["status"] == "completed" for p in pages)
    db = tmp_path / "down-data/gateway.sqlite3"
    assert charges_by_page(db, job_id) == dict.fromkeys(range(1, 7), 1)
    assert job["credits_used"] == 30
    assert_ledger_balanced(db)
