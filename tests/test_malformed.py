"""Every hostile file in g_malformed gets a clear error, and the service stays up for others."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.gateway_process import CORPUS, GatewayProcess, create_tenant, wait_for_job

MALFORMED = CORPUS / "g_malformed"
ENTRIES = [
    json.loads(line)
    for line in (MALFORMED / "manifest.jsonl").read_text().splitlines()
    if line.strip()
]
CLEAR_SUBMIT_ERRORS = {
    "invalid_document",
    "encrypted_document",
    "image_too_large",
    "unsupported_media_type",
    "empty_document",
    "document_timeout",
}
CLEAR_PAGE_ERRORS = {
    "page_render_failed",
    "render_timeout",
    "page_timeout",
    "page_crashed",
    "image_too_large",
    "ocr_failed",
    "ocr_timeout",
}


@pytest.fixture(scope="module")
def hostile_key(gateway: GatewayProcess) -> str:
    return create_tenant(gateway.config, name="hostile", credits=10_000)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
def test_malformed_file_gets_a_clear_answer(
    client: httpx.Client, hostile_key: str, entry: dict[str, str]
) -> None:
    content = (MALFORMED / entry["file"]).read_bytes()
    response = client.post(
        "/v1/ocr",
        headers={"X-API-Key": hostile_key},
        files={"file": (Path(entry["file"]).name, content)},
    )
    if response.status_code != 202:
        assert response.status_code in (400, 415), response.text
        error = response.json()["error"]
        assert error["code"] in CLEAR_SUBMIT_ERRORS
        assert error["message"]
        assert "Traceback" not in error["message"]
        return
    job = wait_for_job(client, response.json()["jobId"], hostile_key)
    assert job["pages_processed"] == job["page_count"]
    for page in job["results"]:
        if page["status"] == "failed":
            assert page["error"]["code"] in CLEAR_PAGE_ERRORS, page["error"]
        else:
            assert page["document_metadata"]["page_dimensions"]["width"] > 0
    charged = sum(
        p["pipeline_metadata"]["credits"] for p in job["results"] if p["status"] == "completed"
    )
    assert job["credits_used"] == charged  # failed pages are refunded
    if job["status"] == "failed":
        assert job["error"]["code"] == "all_pages_failed"


def test_service_stays_up_for_other_tenants(
    client: httpx.Client, gateway: GatewayProcess, corpus: Path
) -> None:
    """Runs after the hostile files (same module): another tenant's job completes normally."""
    key = create_tenant(gateway.config, name="bystander", credits=10)
    page = (corpus / "a_clean_printed/tesseract/phototest.tif").read_bytes()
    response = client.post(
        "/v1/ocr", headers={"X-API-Key": key}, files={"file": ("phototest.tif", page)}
    )
    job = wait_for_job(client, response.json()["jobId"], key)
    assert job["status"] == "completed"
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["engines"]["workers_ready"] == health["engines"]["workers_total"]
