"""The job API with signup (001) under /compat/jobapi: the document's curl commands and signup
example against a real gateway, FastAPI's error bodies, the synchronous read and its 504, the
queue bound on every surface, and a language hint that reads a French page's accents."""

from __future__ import annotations

import collections
import io
import json
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.compat_support import ISO_UTC, doc_curls, new_key, poll, run_curl
from tests.support.gateway_process import GatewayProcess

SPEC = "001_a721347960e19d2c.txt"
PREFIX = "/compat/jobapi"
INVOICE = "f_pdfs/born_digital/002-trivial-libre-office-writer.pdf"  # one text-layer page
SCAN = "a_clean_printed/tesseract/phototest.tif"
FRENCH = "f_pdfs/ocrmypdf/francais.pdf"
# What francais.pdf shows: the classic French pangram, as printed on the page.
PANGRAM = (
    "Portez ce vieux whisky au juge blond qui fume sur son île intérieure, à côté de l'alcôve "
    "ovoïde, où les bûches se consument dans l'âtre, ce qui lui permet de penser à la "
    "cænogénèse de l'être dont il est question dans la cause ambiguë entendue à Moÿ, dans un "
    "capharnaüm qui, pense-t-il, diminue çà et là la qualité de son œuvre."
)


@pytest.fixture(scope="module")
def gateway(compat_gateway: GatewayProcess) -> GatewayProcess:
    return compat_gateway


@pytest.fixture(scope="module")
def http(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url + PREFIX, timeout=60) as client:
        yield client


def wait_done(http: httpx.Client, job_id: str, key: str) -> dict[str, Any]:
    return poll(
        lambda: http.get(f"/api/jobs/{job_id}", headers={"X-API-Key": key}),
        lambda job: job["status"] in ("done", "error"),
        timeout_s=240,
    )


def test_the_documents_quick_start_and_signup(
    gateway: GatewayProcess, http: httpx.Client, corpus: Path, tmp_path: Path
) -> None:
    """Signup (200 with a key and the free pages; 409 again; 400 for a bad address), then the
    quick start's two curl commands with that key: 201 queued, then done with result_md,
    result_json and elapsed; the list and delete (204, upload gone, then 404)."""
    signed = http.post("/api/signup", json={"email": "you@company.com"})
    assert signed.status_code == 200, signed.text
    account = signed.json()
    assert account["email"] == "you@company.com"
    assert account["credits"] == 50
    key = account["api_key"]
    again = http.post("/api/signup", json={"email": "You@Company.com"})
    assert again.status_code == 409
    assert again.json() == {"detail": "an account with this email already exists"}
    bad = http.post("/api/signup", json={"email": "not-an-address"})
    assert bad.status_code == 400
    assert set(bad.json()) == {"detail"}

    (tmp_path / "invoice.pdf").write_bytes((corpus / INVOICE).read_bytes())
    submit_cmd, poll_cmd = doc_curls(SPEC)
    # the document's commands send no key; this gateway needs one, in X-API-Key
    auth = f' -H "X-API-Key: {key}"'
    replace = {"https://HOST": gateway.url + PREFIX}
    status, body = run_curl(submit_cmd + auth, replace, tmp_path)
    assert status == 201, body
    created = json.loads(body)
    assert created["status"] == "queued"
    assert created["filename"] == "invoice.pdf"
    assert created["format"] == "markdown"
    assert created["language"] == "auto"
    assert created["page_count"] == 1
    assert ISO_UTC.match(created["created_at"])
    wait_done(http, created["job_id"], key)
    status, body = run_curl(
        poll_cmd.replace("{job_id}", created["job_id"]) + auth, replace, tmp_path
    )
    assert status == 200, body
    job = json.loads(body)
    assert job["status"] == "done"
    assert "Lorem ipsum" in job["result_md"]
    assert job["result_json"]["pages"][0]["content_blocks"]
    assert isinstance(job["elapsed"], float)
    assert job["elapsed"] >= 0
    assert job["error"] is None

    listed = http.get("/api/jobs", params={"limit": 1}, headers={"X-API-Key": key}).json()
    assert listed["total"] == 1
    assert [j["job_id"] for j in listed["jobs"]] == [created["job_id"]]
    uploads = Path(gateway.config).parent / "data" / "uploads"
    assert [p for p in uploads.iterdir() if p.name.startswith(created["job_id"])]
    deleted = http.delete(f"/api/jobs/{created['job_id']}", headers={"X-API-Key": key})
    assert deleted.status_code == 204
    assert not [p for p in uploads.iterdir() if p.name.startswith(created["job_id"])]
    gone = http.get(f"/api/jobs/{created['job_id']}", headers={"X-API-Key": key})
    assert gone.status_code == 404
    assert gone.json() == {"detail": "job not found"}


@pytest.mark.parametrize(
    ("params", "files", "loc", "in_msg"),
    [
        ({"format": "xml"}, True, ["query", "format"], ""),
        ({}, False, ["body", "file"], "Field required"),
        ({"language": "klingon"}, True, ["query", "language"], "polish"),
    ],
)
def test_validation_errors_are_fastapi_422(
    http: httpx.Client,
    gateway: GatewayProcess,
    corpus: Path,
    params: dict[str, str],
    files: bool,
    loc: list[str],
    in_msg: str,
) -> None:
    """422 `{"detail": [{"type", "loc", "msg", "input"}]}`; an unknown language lists those
    accepted; nothing is reserved."""
    key = new_key(gateway, 3)
    scan = (corpus / SCAN).read_bytes()
    upload = {"file" if files else "document": ("a.tif", scan)}
    response = http.post("/api/ocr", params=params, files=upload, headers={"X-API-Key": key})
    assert response.status_code == 422, response.text
    [entry] = response.json()["detail"]
    assert set(entry) == {"type", "loc", "msg", "input"}
    assert entry["loc"] == loc
    assert in_msg in entry["msg"]
    assert http.get("/api/jobs", headers={"X-API-Key": key}).json()["total"] == 0


def test_other_accounts_jobs_and_bad_keys(
    http: httpx.Client, gateway: GatewayProcess, corpus: Path
) -> None:
    """Another account's job is 404 on every job route; no key or a wrong one is 401."""
    owner, other = new_key(gateway, 5), new_key(gateway, 5)
    job = http.post(
        "/api/ocr",
        files={"file": ("i.pdf", (corpus / INVOICE).read_bytes())},
        headers={"X-API-Key": owner},
    ).json()
    assert http.get(f"/api/jobs/{job['job_id']}", headers={"X-API-Key": other}).status_code == 404
    assert (
        http.delete(f"/api/jobs/{job['job_id']}", headers={"X-API-Key": other}).status_code == 404
    )
    assert http.get("/api/jobs", headers={"X-API-Key": other}).json()["total"] == 0
    for headers in ({}, {"X-API-Key": "ocrg_not-a-key"}):
        response = http.get("/api/jobs", headers=headers)
        assert response.status_code == 401
        assert set(response.json()) == {"detail"}
    health = http.get("/health").json()
    assert health["status"] == "ok"
    assert isinstance(health["queue_depth"], int)
    assert isinstance(health["jobs_processed"], int)
    assert health["uptime"] > 0


def test_synchronous_read_answers_markdown_or_json(
    http: httpx.Client, gateway: GatewayProcess, corpus: Path
) -> None:
    """`POST /ocr` blocks until done and answers the result itself."""
    key = new_key(gateway, 5)
    pdf = (corpus / INVOICE).read_bytes()
    md = http.post("/ocr", files={"file": ("i.pdf", pdf)}, headers={"X-API-Key": key})
    assert md.status_code == 200, md.text
    assert md.headers["content-type"].startswith("text/markdown")
    assert "Lorem ipsum" in md.text
    js = http.post(
        "/ocr",
        params={"format": "json"},
        files={"file": ("i.pdf", pdf)},
        headers={"X-API-Key": key},
    )
    assert js.status_code == 200
    assert js.json()["pages"][0]["status"] == "completed"


def scan_pdf(corpus: Path, pages: int) -> bytes:
    """A scanned PDF of `pages` copies of a corpus page (each read by OCR)."""
    image = Image.open(corpus / SCAN).convert("L")
    out = io.BytesIO()
    image.save(out, "PDF", save_all=True, append_images=[image] * (pages - 1), resolution=300)
    return out.getvalue()


def test_sync_timeout_is_504_and_a_full_queue_is_503_everywhere(
    http: httpx.Client, gateway: GatewayProcess, corpus: Path
) -> None:
    """A synchronous read of 12 OCR pages, behind 4 more, passes its 2 s (the queue is fair
    across jobs, so only its own pages can make it late): 504, its job cancelled and refunded.
    With more pages queued than the bound, every surface answers 503 with Retry-After in its
    own shape, and nothing is reserved."""
    key = new_key(gateway, 100)
    native = {"X-API-Key": key}
    ahead = httpx.post(
        f"{gateway.url}/v1/ocr",
        headers=native,
        files={"file": ("scan.pdf", scan_pdf(corpus, 4))},
        data={"cache": "false"},
    )
    assert ahead.status_code == 202, ahead.text
    slow = http.post("/ocr", files={"file": ("p.pdf", scan_pdf(corpus, 12))}, headers=native)
    assert slow.status_code == 504, slow.text
    assert set(slow.json()) == {"detail"}
    full = httpx.post(
        f"{gateway.url}/v1/ocr",
        headers=native,
        files={"file": ("scan.pdf", scan_pdf(corpus, 8))},
    )
    assert full.status_code == 202
    balance = httpx.get(f"{gateway.url}/v1/balance", headers=native).json()
    tif = {"file": ("p.tif", (corpus / SCAN).read_bytes())}
    refused = [
        http.post("/api/ocr", files=tif, headers=native),
        http.post("/ocr", files=tif, headers=native),
        httpx.post(f"{gateway.url}/v1/ocr", files=tif, headers=native),
        httpx.post(
            f"{gateway.url}/compat/sotaocr/v1/extract",
            files=tif,
            headers={"Authorization": f"Bearer {key}"},
        ),
        httpx.post(
            f"{gateway.url}/compat/solver/api/ocr/solve",
            files={"image": tif["file"]},
            params={"api": key},
        ),
    ]
    for response in refused:
        assert response.status_code == 503, response.text
        assert int(response.headers["retry-after"]) >= 1
    assert set(refused[0].json()) == {"detail"}
    assert refused[2].json()["error"]["code"] == "service_unavailable"
    assert refused[3].json()["error"]["code"] == "service_unavailable"
    assert set(refused[4].json()) == {"detail"}
    assert httpx.get(f"{gateway.url}/v1/balance", headers=native).json() == balance
    for job in (ahead.json()["jobId"], full.json()["jobId"]):
        httpx.post(f"{gateway.url}/v1/jobs/{job}/cancel", headers=native)
    after = httpx.get(f"{gateway.url}/v1/balance", headers=native).json()
    assert after["credits_reserved"] == 0
    used = 100 - after["credits_available"]
    assert used <= 4 + 8  # only pages actually read were charged


def accents_kept(reference: str, text: str) -> tuple[int, int]:
    """(accented letters of `reference` found in `text`, as a multiset; how many it has)."""

    def accented(s: str) -> collections.Counter[str]:
        return collections.Counter(
            c for c in unicodedata.normalize("NFC", s) if c.isalpha() and not c.isascii()
        )

    want, got = accented(reference), accented(text)
    return sum(min(n, got[c]) for c, n in want.items()), sum(want.values())


def test_a_language_hint_reads_the_accents_of_a_french_page(
    http: httpx.Client, gateway: GatewayProcess, corpus: Path
) -> None:
    """francais.pdf read with `language=french` keeps more of its accented letters than with
    `auto` (today's reading), at the same price."""
    key = new_key(gateway, 10)
    pdf = (corpus / FRENCH).read_bytes()
    kept = {}
    for language in ("auto", "french"):
        job = http.post(
            "/api/ocr",
            params={"language": language},
            files={"file": ("francais.pdf", pdf)},
            headers={"X-API-Key": key},
        )
        assert job.status_code == 201, job.text
        done = wait_done(http, job.json()["job_id"], key)
        kept[language] = accents_kept(PANGRAM, done["result_md"])
        provider = done["result_json"]["pages"][0]["pipeline_metadata"]["provider_used"]
        print(
            f"{language}: {kept[language][0]} of {kept[language][1]} accented letters ({provider})"
        )
    found, total = kept["french"]
    assert found > kept["auto"][0]
    assert found >= 0.9 * total


def test_signup_is_rate_limited_per_address(http: httpx.Client) -> None:
    """Ten signups an hour from one address (the native API's budget, shared): then 429 with
    Retry-After in FastAPI's shape."""
    statuses = [
        http.post("/api/signup", json={"email": f"user{n}@example.com"}).status_code
        for n in range(11)
    ]
    assert statuses[-1] == 429
    assert statuses.count(200) <= 10
    refused = http.post("/api/signup", json={"email": "late@example.com"})
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert set(refused.json()) == {"detail"}
