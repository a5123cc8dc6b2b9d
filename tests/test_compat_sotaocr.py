"""The page-balance API (000) served under /compat/sotaocr: the document's own curl commands
against a real gateway reading corpus documents, every field they show, and its error body."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from PIL import Image

from gateway.api.compat.sotaocr_map import error_of, upstream_failed
from gateway.errors import ErrorDetail, InsufficientCreditsError, UpstreamUnavailableError
from gateway.results import failed_page
from gateway.store.models import JobResult, JobStatus
from tests.compat_support import ISO_UTC, doc_curls, new_key, poll, run_curl
from tests.ledger_checks import assert_ledger_balanced
from tests.support.gateway_process import GatewayProcess, create_tenant

SPEC = "000_e8ca831098c97201.txt"
PREFIX = "/compat/sotaocr"
PDF = "f_pdfs/born_digital/tracemonkey.pdf"  # 14 born-digital pages; the doc asks for 1-5
LINE = "a_clean_printed/uw3_lines/010004.bin.png"


@pytest.fixture(scope="module")
def gateway(compat_gateway: GatewayProcess) -> GatewayProcess:
    return compat_gateway


@pytest.fixture(scope="module")
def http(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url + PREFIX, timeout=60) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def wait_done(http: httpx.Client, job_id: str, key: str) -> dict[str, Any]:
    return poll(
        lambda: http.get(f"/v1/jobs/{job_id}", headers=bearer(key)),
        lambda job: job["status"] in ("completed", "failed", "cancelled"),
        timeout_s=240,
    )


def test_the_documents_curl_examples(gateway: GatewayProcess, corpus: Path, tmp_path: Path) -> None:
    """Balance, extract (pages 1-5), status, markdown result and preview, as the document
    prints them, answer every field it shows; the json result carries angle and page_preview,
    and the preview PNG is exactly that size."""
    key = create_tenant(gateway.config, name="doc", credits=100)  # a CLI key works here too
    (tmp_path / "document.pdf").write_bytes((corpus / PDF).read_bytes())
    curls = doc_curls(SPEC)
    assert len(curls) == 5
    balance_cmd, extract_cmd, status_cmd, result_cmd, preview_cmd = curls
    replace = {"https://sotaocr.com": gateway.url + PREFIX, "YOUR_API_KEY": key}

    status, body = run_curl(balance_cmd, replace, tmp_path)
    assert status == 200, body
    balance = json.loads(body)
    assert balance == {
        "entity_code": "scan_page",
        "remaining_pages": 100,
        "total_affordable_pages": 100,
        "monthly_pages": {"total": 0, "allocated": 0, "remaining": 0},
        "lifetime_pages": {"total": 100, "allocated": 0, "remaining": 100},
        "tokens": {"total": 0, "allocated": 0, "remaining": 0, "affordable_pages": 0},
        "token_price": 0,
    }

    status, body = run_curl(extract_cmd, replace, tmp_path)
    assert status == 202, body
    job = json.loads(body)
    assert set(job) == {
        "id",
        "account_id",
        "status",
        "page_count",
        "pages_completed",
        "model_profile",
        "upstream_job_id",
        "created_at",
        "updated_at",
    }
    assert job["status"] == "pending"
    assert job["page_count"] == 5
    assert job["pages_completed"] == 0
    assert job["model_profile"] == "balanced"
    assert job["upstream_job_id"] == job["id"]
    assert ISO_UTC.match(job["created_at"])
    assert ISO_UTC.match(job["updated_at"])
    job_id = job["id"]
    replace["job_123456789"] = job_id

    with httpx.Client(base_url=gateway.url + PREFIX, timeout=60) as http:
        wait_done(http, job_id, key)
    status, body = run_curl(status_cmd, replace, tmp_path)
    assert status == 200, body
    done = json.loads(body)
    assert done["id"] == job_id
    assert done["account_id"] == job["account_id"]
    assert done["status"] == "completed"
    assert done["page_count"] == done["pages_completed"] == 5
    assert done["upstream_job_id"] == job_id
    assert done["created_at"] == job["created_at"]
    assert ISO_UTC.match(done["updated_at"])

    status, body = run_curl(result_cmd, replace, tmp_path)
    assert status == 200, body
    markdown = json.loads(body)
    assert markdown["job_id"] == job_id
    assert markdown["format"] == "markdown"
    assert markdown["page_count"] == 5
    assert "Trace-based Just-in-Time" in markdown["content"]

    json_cmd = result_cmd.replace("format=markdown", "format=json")
    status, body = run_curl(json_cmd, replace, tmp_path)
    assert status == 200, body
    result = json.loads(body)
    assert result["format"] == "json"
    assert result["page_count"] == 5
    content = json.loads(result["content"])
    assert content["job_id"] == job_id
    assert content["page_count"] == 5
    first = content["pages"][0]
    assert first["page_number"] == 1
    assert first["status"] == "completed"
    assert "Trace-based" in first["text"]
    assert first["doc_preprocessor_res"]["angle"] == 0
    assert first["doc_preprocessor_res"]["model_settings"] == {
        "use_doc_orientation_classify": True,
        "use_doc_unwarping": False,
    }
    preview = first["page_preview"]
    assert preview["coordinate_space"] == "doc_preprocessed"
    assert preview["content_type"] == "image/png"
    assert first["raw_result"]["content_blocks"]

    status, _ = run_curl(preview_cmd, replace, tmp_path)
    assert status == 200
    image = Image.open(io.BytesIO((tmp_path / "page_0001_preview.png").read_bytes()))
    assert image.format == "PNG"
    assert image.size == (preview["width"], preview["height"])

    status, body = run_curl(balance_cmd, replace, tmp_path)
    after = json.loads(body)
    assert after["remaining_pages"] == 95  # five born-digital pages, one unit each
    assert after["lifetime_pages"] == {"total": 100, "allocated": 5, "remaining": 95}
    assert_ledger_balanced(Path(gateway.config).parent / "data" / "gateway.sqlite3")


def test_result_is_202_until_done_and_info_lists_the_profiles(
    http: httpx.Client, gateway: GatewayProcess, corpus: Path
) -> None:
    """`result_not_ready` (202, Retry-After) while the job runs; /api/v1/info names the
    configured profiles, and `fast` is billed one unit a page."""
    key = new_key(gateway, 20)
    info = http.get("/api/v1/info", headers=bearer(key)).json()
    assert sorted(info["model_profiles"]) == ["accurate", "balanced", "fast"]
    assert info["default_model_profile"] == "balanced"
    png = (corpus / LINE).read_bytes()
    submitted = http.post(
        "/v1/extract",
        headers=bearer(key),
        files={"file": ("line.png", png)},
        data={"model_profile": "fast"},
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    assert submitted.json()["model_profile"] == "fast"
    early = http.get(f"/v1/jobs/{job_id}/result", headers=bearer(key))
    assert early.status_code == 202
    assert early.json()["error"]["code"] == "result_not_ready"
    assert early.headers["retry-after"] == "1"
    wait_done(http, job_id, key)
    text = http.get(f"/v1/jobs/{job_id}/result", params={"format": "text"}, headers=bearer(key))
    assert text.status_code == 200
    assert text.json()["format"] == "text"
    assert text.json()["content"].strip()
    assert http.get("/v1/balance", headers=bearer(key)).json()["remaining_pages"] == 19


@pytest.mark.parametrize(
    ("headers", "files", "data", "status", "code"),
    [
        ({}, {"file": ("a.png", b"x")}, {}, 401, "unauthorized"),
        ({"Authorization": "Bearer ocrg_wrong"}, {"file": ("a.png", b"x")}, {}, 401, None),
        (None, {"file": ("a.txt", b"plain text, not a document")}, {}, 415, "unsupported_media"),
        (None, None, {"page_ranges": "[]"}, 400, "bad_request"),
        (None, {"file": "LINE"}, {"page_ranges": '[{"start":2,"end":3}]'}, 400, "bad_request"),
        (None, {"file": "LINE"}, {"model_profile": "turbo"}, 400, "bad_request"),
    ],
)
def test_errors_have_the_documents_shape(
    http: httpx.Client,
    gateway: GatewayProcess,
    corpus: Path,
    headers: dict[str, str] | None,
    files: dict[str, Any] | None,
    data: dict[str, str],
    status: int,
    code: str | None,
) -> None:
    """`{"error": {"code", "message"}}` with the document's codes (every 400 is bad_request,
    an unsupported type unsupported_media); nothing is reserved."""
    key = new_key(gateway, 5)
    if files and files.get("file") == "LINE":
        files = {"file": ("line.png", (corpus / LINE).read_bytes())}
    response = http.post(
        "/v1/extract", headers=bearer(key) if headers is None else headers, files=files, data=data
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message"}
    assert error["code"] == (code or "unauthorized")
    assert http.get("/v1/balance", headers=bearer(key)).json()["remaining_pages"] == 5


def test_insufficient_balance_and_other_accounts_jobs(
    http: httpx.Client, gateway: GatewayProcess, corpus: Path
) -> None:
    """403 insufficient_balance names the units asked for and available; another account's
    job is 404 job_not_found on every job route, as an unknown one."""
    poor = new_key(gateway, 2)
    pdf = (corpus / PDF).read_bytes()
    refused = http.post(
        "/v1/extract",
        headers=bearer(poor),
        files={"file": ("d.pdf", pdf)},
        data={"page_ranges": '[{"start":1,"end":3}]'},
    )
    assert refused.status_code == 403
    assert refused.json() == {
        "error": {
            "code": "insufficient_balance",
            "message": refused.json()["error"]["message"],
            "entity_code": "scan_page",
            "requested_units": 3,
            "available_units": 2,
        }
    }
    owner = new_key(gateway, 5)
    job = http.post(
        "/v1/extract",
        headers=bearer(owner),
        files={"file": ("d.pdf", pdf)},
        data={"page_ranges": '[{"start":1,"end":1}]'},
    ).json()
    for path in ("", "/result", "/pages/1/preview"):
        for job_id in (job["id"], "no-such-job"):
            response = http.get(f"/v1/jobs/{job_id}{path}", headers=bearer(poor))
            assert response.status_code == 404, (path, response.text)
            assert response.json()["error"]["code"] == "job_not_found"


def job_with_pages(status: JobStatus, *errors: str) -> JobResult:
    """A finished job whose pages failed with these page-error messages."""
    pages = [
        failed_page(n, ErrorDetail(code="ocr_failed", message=message))
        for n, message in enumerate(errors, start=1)
    ]
    return JobResult(
        id="j",
        status=status,
        pages_processed=len(pages),
        page_count=len(pages),
        credits_reserved=len(pages),
        credits_used=0,
        created_at=0,
        completed_at=1,
        error=None,
        results=pages,
    )


def test_an_unreachable_provider_is_502_upstream_unavailable() -> None:
    """A job none of whose pages was read because its remote provider could not be reached
    (the page errors the chain writes) is 502 upstream_unavailable on its result; a page the
    engines could not read is not; the 502 body is the document's."""
    down = "no provider could read the page (provider_connection_failed: connection refused)"
    assert upstream_failed(job_with_pages(JobStatus.FAILED, down, down))
    unreadable = "no provider could read the page (provider_rejected: 400 bad image)"
    assert not upstream_failed(job_with_pages(JobStatus.FAILED, down, unreadable))
    assert not upstream_failed(job_with_pages(JobStatus.COMPLETED))
    status, body = error_of(UpstreamUnavailableError())
    assert status == 502
    assert msgspec.to_builtins(body)["error"]["code"] == "upstream_unavailable"
    status, body = error_of(InsufficientCreditsError("short", required=7, available=2))
    assert status == 403
    assert msgspec.to_builtins(body) == {
        "error": {
            "code": "insufficient_balance",
            "message": "short",
            "entity_code": "scan_page",
            "requested_units": 7,
            "available_units": 2,
        }
    }
