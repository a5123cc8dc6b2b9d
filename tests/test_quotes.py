"""Fair and cheap: a quote before reading, a cache that never charges twice, the same price for
a page however it was scanned. Against a real gateway (Tesseract on every tier) and real pages."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.support.gateway_process import (
    REPO,
    GatewayProcess,
    create_tenant,
    wait_for_job,
    write_config,
)

FORM = "b_forms/funsd/82250337_0338.png"
# Turned four ways in one PDF, before this was fixed: the first form billed 1/3/1/3 credits (the
# cardinal.pdf pattern), the receipt 3/5/3/5; the second form was a tier apart as a 200 DPI image.
# A lone text line is left out: its row and column profiles do not tell which way it runs.
TURNED_ONCE_PRICED_APART = [
    "b_forms/funsd/82254765.png",
    "b_forms/funsd/82252956_2958.png",
    "c_receipts/sroie/000.jpg",
]
FIVE = [  # one document of each kind: print, form, receipt, born-digital PDF, handwriting
    "a_clean_printed/tesseract/phototest.tif",
    FORM,
    "c_receipts/sroie/208.jpg",
    "f_pdfs/born_digital/crazyones.pdf",
    "e_handwriting/testaments_de_poilus/TestamentsDePoilus_will_AD78_0006-0.jpg",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    root = tmp_path_factory.mktemp("quotes")
    config = write_config(
        root / "config.yaml",
        root / "data",
        routing={
            "tiers": {
                tier: {"credits": credits, "providers": ["tesseract"]}
                for tier, credits in (("simple", 1), ("medium", 3), ("complex", 5))
            }
        },
        quotes={"hold_s": 600},
    )
    process = GatewayProcess(config, root / "gateway.log").start()
    yield process
    process.stop()


@pytest.fixture
def http(server: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c


def headers(server: GatewayProcess, credits: int = 500) -> dict[str, str]:
    return {"X-API-Key": create_tenant(server.config, credits=credits)}


def post(
    http: httpx.Client, route: str, key: dict[str, str], content: bytes, **form: str
) -> httpx.Response:
    return http.post(route, headers=key, files={"file": ("doc", content)}, data=form)


def balance(http: httpx.Client, key: dict[str, str]) -> int:
    available: int = http.get("/v1/balance", headers=key).json()["credits_available"]
    return available


def turned_copies_pdf(path: Path) -> bytes:
    """One page scanned four ways, as a PDF of images: upright, 90, 180 and 270 degrees."""
    page = Image.open(path).convert("RGB")
    turned = [page.rotate(degrees, expand=True) for degrees in (0, 90, 180, 270)]
    out = io.BytesIO()
    turned[0].save(out, format="PDF", save_all=True, append_images=turned[1:], resolution=150)
    return out.getvalue()


def test_a_page_costs_the_same_however_it_was_turned(
    http: httpx.Client, server: GatewayProcess, corpus: Path
) -> None:
    """Measured turned upright, a form scanned sideways is no longer billed as handwriting."""
    key = headers(server)
    for file in TURNED_ONCE_PRICED_APART:
        quote = post(http, "/v1/quote", key, turned_copies_pdf(corpus / file))
        assert quote.status_code == 200, quote.text
        pages = quote.json()["pages"]
        assert len({(p["tier"], p["credits"]) for p in pages}) == 1, (file, pages)
        for sideways in (pages[1], pages[3]):
            assert "lines run vertically" in sideways["reason"]
            assert "scored turned 90 degrees" in sideways["reason"]


def test_the_rotated_corpus_copy_bills_like_its_upright_original(
    http: httpx.Client, server: GatewayProcess, corpus: Path
) -> None:
    key = headers(server)
    prices = []
    for file in ("phototest.tif", "phototest-rotated-180.png"):
        content = (corpus / "a_clean_printed/tesseract" / file).read_bytes()
        quote = post(http, "/v1/quote", key, content).json()
        prices.append([(p["tier"], p["credits"]) for p in quote["pages"]])
    assert prices[0] == prices[1]


@pytest.mark.parametrize("file", FIVE)
def test_a_quote_equals_the_later_charge(
    http: httpx.Client, server: GatewayProcess, corpus: Path, file: str
) -> None:
    key = headers(server)
    content = (corpus / file).read_bytes()
    before = balance(http, key)
    quote = post(http, "/v1/quote", key, content)
    assert quote.status_code == 200, quote.text
    quoted = quote.json()
    assert quoted["credits"] == sum(p["credits"] for p in quoted["pages"])
    assert all(p["reason"] for p in quoted["pages"])
    assert balance(http, key) == before  # nothing reserved
    assert http.get("/v1/jobs", headers=key).json()["total"] == 0  # no job
    submitted = post(http, "/v1/ocr", key, content)
    assert submitted.status_code == 202, submitted.text
    assert submitted.json()["creditsReserved"] == quoted["credits"]
    job = wait_for_job(http, submitted.json()["jobId"], key["X-API-Key"])
    assert job["status"] == "completed"
    assert job["credits_used"] == quoted["credits"]
    assert [r["pipeline_metadata"]["tier"] for r in job["results"]] == [
        p["tier"] for p in quoted["pages"]
    ]
    assert balance(http, key) == before - quoted["credits"]


def test_a_quote_id_holds_its_price_for_the_same_file_and_options_only(
    http: httpx.Client, server: GatewayProcess, corpus: Path
) -> None:
    key, other = headers(server), headers(server)
    content = (corpus / FORM).read_bytes()
    quote_id = post(http, "/v1/quote", key, content, mode="fast").json()["quoteId"]
    mismatch = post(http, "/v1/ocr", key, content, quote_id=quote_id)  # mode differs
    assert mismatch.status_code == 409
    assert mismatch.json()["error"]["code"] == "quote_mismatch"
    foreign = post(http, "/v1/ocr", other, content, mode="fast", quote_id=quote_id)
    assert foreign.status_code == 404
    assert foreign.json()["error"]["code"] == "quote_not_found"
    held = post(http, "/v1/ocr", key, content, mode="fast", quote_id=quote_id)
    assert held.status_code == 202, held.text
    assert held.json()["creditsReserved"] == 1  # fast: one simple page
    assert balance(http, other) == 500  # the refusals reserved nothing


def result_text(job: dict[str, Any]) -> list[str]:
    return [r["raw_markdown"] for r in job["results"]]


def test_a_resubmit_is_answered_from_the_cache_and_never_charged_twice(
    http: httpx.Client, server: GatewayProcess, corpus: Path
) -> None:
    key, stranger = headers(server), headers(server)
    content = (corpus / "a_clean_printed/tesseract/phototest.tif").read_bytes()
    first = wait_for_job(
        http, post(http, "/v1/ocr", key, content).json()["jobId"], key["X-API-Key"]
    )
    paid = balance(http, key)

    again = post(http, "/v1/ocr", key, content)
    assert again.status_code == 202
    assert again.json()["cached"] is True
    assert again.json()["status"] == "completed"
    assert again.json()["creditsReserved"] == 0
    cached = http.get(f"/v1/jobs/{again.json()['jobId']}", headers=key).json()
    assert cached["status"] == "completed"
    assert cached["credits_used"] == 0
    assert result_text(cached) == result_text(first)
    meta = cached["results"][0]["pipeline_metadata"]
    assert meta["cached"] is True
    assert meta["credits"] == 0
    assert first["id"] in meta["provider_reason"]
    assert balance(http, key) == paid
    quote = post(http, "/v1/quote", key, content).json()
    assert quote["credits"] == 0
    assert all(p["cached"] for p in quote["pages"])

    fresh = post(http, "/v1/ocr", key, content, cache="false")
    assert fresh.json()["cached"] is False
    assert fresh.json()["creditsReserved"] == first["credits_reserved"]
    wait_for_job(http, fresh.json()["jobId"], key["X-API-Key"])
    assert balance(http, key) == paid - first["credits_used"]

    theirs = post(http, "/v1/ocr", stranger, content)  # another tenant: read and charged
    assert theirs.json()["cached"] is False
    assert theirs.json()["creditsReserved"] == first["credits_reserved"]
    wait_for_job(http, theirs.json()["jobId"], stranger["X-API-Key"])


def test_deleting_the_jobs_empties_the_cache(
    http: httpx.Client, server: GatewayProcess, corpus: Path
) -> None:
    key = headers(server)
    content = (corpus / "a_clean_printed/tesseract/eurotext.tif").read_bytes()
    job = wait_for_job(http, post(http, "/v1/ocr", key, content).json()["jobId"], key["X-API-Key"])
    cached = post(http, "/v1/ocr", key, content).json()
    assert cached["cached"] is True
    for job_id in (job["id"], cached["jobId"]):
        assert http.delete(f"/v1/jobs/{job_id}", headers=key).status_code == 204
    again = post(http, "/v1/ocr", key, content).json()
    assert again["cached"] is False
    assert again["creditsReserved"] == job["credits_reserved"]


def test_quote_refuses_what_submit_refuses(http: httpx.Client, server: GatewayProcess) -> None:
    key = headers(server)
    assert post(http, "/v1/quote", key, b"not a document").status_code == 415
    assert post(http, "/v1/quote", key, b"").status_code == 400
    assert http.post("/v1/quote", files={"file": ("doc", b"x")}).status_code == 401


def test_cli_quote_prints_each_page_and_the_total(corpus: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "quote", str(corpus / FORM)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    assert "page    1  medium  3 credits" in out
    assert out.strip().endswith("total: 3 credits for 1 pages")
