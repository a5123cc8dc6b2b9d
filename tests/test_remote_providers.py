"""Remote providers over real HTTP on loopback: the fake VLM server (real Tesseract OCR of the
image it receives, faults on demand) and real upstream gateway processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from benchmarks.metrics import bag_of_words_f1
from providers.errors import (
    CircuitOpenError,
    ProviderConnectionError,
    ProviderError,
    ProviderOutputTruncatedError,
    ProviderRateLimitedError,
    ProviderRefusedError,
    ProviderRejectedError,
    ProviderResponseError,
    ProviderServerError,
    ProviderTimeoutError,
)
from providers.remote_gateway import GatewayProvider, GatewayProviderConfig
from providers.remote_openai import OpenAIVisionConfig, OpenAIVisionProvider
from providers.resilience import BreakerSettings, RetrySettings
from providers.tesseract import TesseractConfig, TesseractProvider
from providers.types import PageHints, PageImage, TextLine, quad_bounds
from tests.support.fake_vlm_server import FakeVLMServer
from tests.support.gateway_process import CORPUS, GatewayProcess, create_tenant, write_config

PHOTOTEST = "a_clean_printed/tesseract/phototest.tif"
FAST_RETRY = RetrySettings(
    attempts=3, budget_s=10.0, backoff_initial_s=0.05, backoff_max_s=0.2, retry_after_max_s=3.0
)


def load_page(relative: str) -> PageImage:
    with Image.open(CORPUS / relative) as image:
        return PageImage(pixels=np.asarray(image.convert("RGB")), dpi=200.0, page_number=1)


@pytest.fixture(scope="module")
def page() -> PageImage:
    return load_page(PHOTOTEST)


@pytest.fixture(scope="module")
def truth() -> str:
    return (CORPUS / PHOTOTEST.replace(".tif", ".gt.txt")).read_text()


@pytest.fixture(scope="module")
def detected(page: PageImage) -> list[TextLine]:
    """What a local engine finds on the page: the boxes a VLM's answer is located by."""
    return list(TesseractProvider("local", TesseractConfig()).recognize(page).lines)


@pytest.fixture(scope="module")
def vlm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeVLMServer]:
    with FakeVLMServer(tmp_path_factory.mktemp("vlm") / "server.log") as server:
        yield server


@pytest.fixture
def vlm(vlm_server: FakeVLMServer) -> FakeVLMServer:
    vlm_server.reset()
    return vlm_server


def vision(server: FakeVLMServer, **overrides: Any) -> OpenAIVisionProvider:
    settings: dict[str, Any] = {
        "base_url": server.base_url,
        "model": "fake-vlm",
        "read_timeout_s": 10.0,
        "retry": FAST_RETRY,
        **overrides,
    }
    return OpenAIVisionProvider("vlm", OpenAIVisionConfig(**settings))


def text_of(lines: tuple[TextLine, ...]) -> str:
    return "\n".join(line.text for line in lines)


# --- openai_vision ----------------------------------------------------------------------------


async def test_page_is_read_end_to_end_and_located_on_detected_lines(
    vlm: FakeVLMServer, page: PageImage, truth: str, detected: list[TextLine]
) -> None:
    async with vision(vlm) as provider:
        result = await provider.recognize(page, PageHints(line_boxes=tuple(detected)))
    assert bag_of_words_f1(truth, text_of(result.lines)) >= 0.8
    assert result.geometry == "detected"
    assert (result.width, result.height, result.model) == (page.width, page.height, "fake-vlm")
    first = quad_bounds(detected[0].quad)
    assert quad_bounds(result.lines[0].quad)[:2] == pytest.approx(first[:2])  # paragraph 1
    assert vlm.stats()["requests"] == 1


async def test_api_key_from_the_named_variable_is_sent_as_bearer_token(
    vlm: FakeVLMServer, page: PageImage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCR_TEST_VLM_KEY", "s3cret")
    async with vision(vlm, api_key_env="OCR_TEST_VLM_KEY") as provider:
        await provider.recognize(page)
    assert vlm.stats()["authorization"] == "Bearer s3cret"


async def test_code_fences_around_the_answer_are_stripped(
    vlm: FakeVLMServer, page: PageImage, truth: str
) -> None:
    vlm.control(fence=True)
    async with vision(vlm) as provider:
        result = await provider.recognize(page)
    assert "```" not in result.markdown
    assert "```" not in text_of(result.lines)
    assert bag_of_words_f1(truth, text_of(result.lines)) >= 0.8
    assert result.geometry == "page"


async def test_slow_server_times_out_after_retries(vlm: FakeVLMServer, page: PageImage) -> None:
    vlm.control(delay_s=1.0)
    retry = RetrySettings(attempts=2, backoff_initial_s=0.05, backoff_max_s=0.05)
    async with vision(vlm, read_timeout_s=0.3, retry=retry) as provider:
        with pytest.raises(ProviderTimeoutError, match="ReadTimeout"):
            await provider.recognize(page)
    assert vlm.stats()["requests"] == 2


async def test_total_timeout_caps_the_whole_call(vlm: FakeVLMServer, page: PageImage) -> None:
    vlm.control(delay_s=2.0)
    async with vision(vlm, total_timeout_s=0.5) as provider:
        started = time.monotonic()
        with pytest.raises(ProviderTimeoutError, match="total_timeout_s"):
            await provider.recognize(page)
    assert time.monotonic() - started < 1.5


async def test_failing_n_times_then_succeeding_is_retried(
    vlm: FakeVLMServer, page: PageImage, truth: str
) -> None:
    vlm.control(fail_next=2, status=503)
    async with vision(vlm) as provider:
        result = await provider.recognize(page)
        assert provider.state()["retries"] == 2
    assert bag_of_words_f1(truth, text_of(result.lines)) >= 0.8
    assert vlm.stats()["requests"] == 3


async def test_retries_give_up_after_the_attempts(vlm: FakeVLMServer, page: PageImage) -> None:
    vlm.control(fail_next=5, status=502)
    async with vision(vlm) as provider:
        with pytest.raises(ProviderServerError, match="HTTP 502"):
            await provider.recognize(page)
    assert vlm.stats()["requests"] == 3


async def test_rate_limit_is_retried_after_retry_after(vlm: FakeVLMServer, page: PageImage) -> None:
    vlm.control(rate_limit_next=1, retry_after_s=1)
    async with vision(vlm) as provider:
        started = time.monotonic()
        await provider.recognize(page)
        elapsed = time.monotonic() - started
    assert vlm.stats()["requests"] == 2
    assert 1.0 <= elapsed < 3.0


async def test_retry_after_beyond_the_cap_fails_at_once(
    vlm: FakeVLMServer, page: PageImage
) -> None:
    """Waiting longer than `retry_after_max_s` would stall the page: the next provider gets
    it instead."""
    vlm.control(rate_limit_next=1, retry_after_s=30)
    async with vision(vlm) as provider:
        started = time.monotonic()
        with pytest.raises(ProviderRateLimitedError, match="HTTP 429"):
            await provider.recognize(page)
    assert time.monotonic() - started < 1.0
    assert vlm.stats()["requests"] == 1


async def test_malformed_json_is_a_clear_error_and_not_retried(
    vlm: FakeVLMServer, page: PageImage
) -> None:
    vlm.control(malformed_next=1)
    async with vision(vlm) as provider:
        with pytest.raises(ProviderResponseError, match="not a chat completion"):
            await provider.recognize(page)
        assert provider.state()["breaker"]["consecutive_failures"] == 1  # type: ignore[index]
    assert vlm.stats()["requests"] == 1


async def test_dropped_connection_is_retried(vlm: FakeVLMServer, page: PageImage) -> None:
    vlm.control(drop_next=1)
    async with vision(vlm) as provider:
        result = await provider.recognize(page)
    assert result.lines
    assert vlm.stats()["requests"] == 2


async def test_bad_request_is_not_retried_nor_held_against_the_server(
    vlm: FakeVLMServer, page: PageImage
) -> None:
    vlm.control(fail_next=1, status=400)
    async with vision(vlm) as provider:
        with pytest.raises(ProviderRejectedError, match="HTTP 400"):
            await provider.recognize(page)
        assert provider.state()["breaker"] == {
            "state": "closed",
            "consecutive_failures": 0,
            "times_opened": 0,
            "retry_in_s": 0.0,
        }
    assert vlm.stats()["requests"] == 1


async def test_answer_cut_at_max_tokens_fails_the_page(vlm: FakeVLMServer, page: PageImage) -> None:
    vlm.control(truncate_next=1)
    async with vision(vlm) as provider:
        with pytest.raises(ProviderOutputTruncatedError, match="max_tokens"):
            await provider.recognize(page)
    assert vlm.stats()["requests"] == 1


async def test_breaker_opens_rejects_fast_then_one_probe_closes_it(
    vlm: FakeVLMServer, page: PageImage
) -> None:
    vlm.control(fail_next=2, status=503)
    breaker = BreakerSettings(failure_threshold=2, cooldown_s=0.5)
    async with vision(vlm, breaker=breaker, retry=RetrySettings(attempts=1)) as provider:
        for _ in range(2):
            with pytest.raises(ProviderServerError):
                await provider.recognize(page)
        assert provider.state()["breaker"]["state"] == "open"  # type: ignore[index]
        started = time.monotonic()
        with pytest.raises(CircuitOpenError):
            await provider.recognize(page)
        assert time.monotonic() - started < 0.1
        assert vlm.stats()["requests"] == 2  # the open breaker sent nothing

        await asyncio.sleep(0.6)  # the cooldown (asyncio may wake a hair early)
        vlm.control(delay_s=0.3)  # the probe is slow: a second page arrives meanwhile
        outcomes = await asyncio.gather(
            provider.recognize(page), provider.recognize(page), return_exceptions=True
        )
        assert sorted(type(o).__name__ for o in outcomes) == ["CircuitOpenError", "VisionPage"]
        assert provider.state()["breaker"]["state"] == "closed"  # type: ignore[index]
        assert provider.state()["refused_open"] == 2
    assert vlm.stats()["requests"] == 3


async def test_concurrency_limit_is_respected(vlm: FakeVLMServer, page: PageImage) -> None:
    vlm.control(delay_s=0.3)
    async with vision(vlm, concurrency=2) as provider:
        results = await asyncio.gather(*(provider.recognize(page) for _ in range(5)))
        assert provider.state()["in_flight"] == 0
    assert all(result.lines for result in results)
    stats = vlm.stats()
    assert (stats["requests"], stats["max_in_flight"]) == (5, 2)


# --- gateway ----------------------------------------------------------------------------------


def start_upstream(root: Path, name: str) -> tuple[GatewayProcess, str]:
    base = root / name
    base.mkdir()
    config = write_config(
        base / "config.yaml",
        base / "data",
        pipeline={"provider": "tesseract"},
        worker={"processes": 1},
    )
    server = GatewayProcess(config, base / "gateway.log").start()
    return server, create_tenant(config, credits=100)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, str]]:
    server, key = start_upstream(tmp_path_factory.mktemp("upstream"), "shared")
    yield server, key
    server.stop()


def via(
    server: GatewayProcess, monkeypatch: pytest.MonkeyPatch, key: str, **overrides: Any
) -> GatewayProvider:
    monkeypatch.setenv("OCR_TEST_UPSTREAM_KEY", key)
    settings: dict[str, Any] = {
        "base_url": server.url,
        "api_key_env": "OCR_TEST_UPSTREAM_KEY",
        "poll_wait_s": 5.0,
        "retry": FAST_RETRY,
        **overrides,
    }
    return GatewayProvider("upstream", GatewayProviderConfig(**settings))


@pytest.fixture
async def inspect(upstream: tuple[GatewayProcess, str]) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the shared upstream, as its tenant, to look at its jobs and balance."""
    server, key = upstream
    async with httpx.AsyncClient(
        base_url=server.url, headers={"X-API-Key": key}, timeout=10
    ) as client:
        yield client


async def test_gateway_kind_reads_a_page_through_a_real_upstream(
    upstream: tuple[GatewayProcess, str],
    inspect: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    page: PageImage,
    truth: str,
    detected: list[TextLine],
) -> None:
    server, key = upstream
    before = (await inspect.get("/v1/balance")).json()["credits_available"]
    async with via(server, monkeypatch, key) as provider:
        result = await provider.recognize(page)
    assert bag_of_words_f1(truth, text_of(result.lines)) >= 0.8
    assert result.model.startswith("tesseract")
    assert (result.width, result.height) == (page.width, page.height)
    # the same engine on the same pixels: the upstream's boxes land on the local ones
    for ours, local in zip(result.lines, detected, strict=True):
        assert quad_bounds(ours.quad) == pytest.approx(quad_bounds(local.quad), abs=1.0)
    assert (await inspect.get("/v1/balance")).json()["credits_available"] == before - 1
    assert (await inspect.get("/v1/jobs")).json()["total"] == 0  # read, then deleted upstream


async def test_gateway_kind_with_a_wrong_key_is_refused_without_retries(
    upstream: tuple[GatewayProcess, str], monkeypatch: pytest.MonkeyPatch, page: PageImage
) -> None:
    server, _ = upstream
    async with via(server, monkeypatch, "not-a-key") as provider:
        with pytest.raises(ProviderRefusedError, match="HTTP 401"):
            await provider.recognize(page)
        assert provider.state()["retries"] == 0


async def test_upstream_killed_mid_call_is_a_connection_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page: PageImage
) -> None:
    """The fallback chain can take over: the error is a ProviderError of the connection kind."""
    server, key = start_upstream(tmp_path, "doomed")
    try:
        async with httpx.AsyncClient(
            base_url=server.url, headers={"X-API-Key": key}, timeout=10
        ) as client:
            blocker = (CORPUS / "c_receipts/sroie/000.jpg").read_bytes()  # ~2 s of Tesseract
            submitted = await client.post("/v1/ocr", files={"file": ("blocker.jpg", blocker)})
            submitted.raise_for_status()
            async with via(server, monkeypatch, key) as provider:
                call = asyncio.create_task(provider.recognize(page))
                for _ in range(250):  # until ours is queued upstream, behind the blocker
                    if (await client.get("/v1/jobs")).json()["total"] == 2:
                        break
                    await asyncio.sleep(0.02)
                assert not call.done()
                server.kill()
                with pytest.raises(ProviderConnectionError) as raised:
                    await call
                assert isinstance(raised.value, ProviderError)
                assert provider.state()["failures"] == 1
    finally:
        server.stop()
