"""Plans, rate limits, keys, admin, signup, balance and usage, over HTTP on a real gateway."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.ledger_checks import assert_ledger_balanced
from tests.support.gateway_process import GatewayProcess, create_tenant, wait_for_job, write_config

ADMIN_TOKEN = "test-admin-token"
RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
PLAN_DEFAULTS = {"max_pages_per_document": 50, "max_upload_mb": 20, "max_concurrent_jobs": 50}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    root = tmp_path_factory.mktemp("accounts")
    config = write_config(
        root / "config.yaml",
        root / "data",
        routing={
            "tiers": {
                tier: {"credits": credits, "providers": ["tesseract"]}
                for tier, credits in (("simple", 1), ("medium", 3), ("complex", 5))
            }
        },
        plans={
            "free": {"submissions": ["5/hour", "100/day"], **PLAN_DEFAULTS},
            "starter": {"submissions": ["100/minute"], **PLAN_DEFAULTS, "max_concurrent_jobs": 1},
            "lite": {
                "submissions": ["100/minute"],
                **PLAN_DEFAULTS,
                "allowed_tiers": ["simple", "medium"],
            },
        },
        rate_limits={"reads": "40/minute"},
        signup={"enabled": True, "plan": "free", "free_credits": 25},
    )
    process = GatewayProcess(
        config, root / "gateway.log", env={"OCR_GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN}
    ).start()
    yield process
    process.stop()


@pytest.fixture
def http(server: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


@pytest.fixture
def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def line_png(corpus: Path) -> bytes:
    return (corpus / "a_clean_printed/uw3_lines/010004.bin.png").read_bytes()


def tenant(
    http: httpx.Client, admin: dict[str, str], plan: str = "free", credits: int = 100
) -> tuple[str, dict[str, str]]:
    created = http.post(
        "/admin/tenants",
        headers=admin,
        json={"name": f"t-{time.monotonic_ns()}", "plan": plan, "credits": credits},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    return body["tenant"]["id"], {"X-API-Key": body["api_key"]}


def submit(
    http: httpx.Client, headers: dict[str, str], content: bytes, **extra: str
) -> httpx.Response:
    return http.post("/v1/ocr", headers={**headers, **extra}, files={"file": ("f", content)})


async def test_submission_limit_is_exact_under_concurrency(
    server: GatewayProcess, http: httpx.Client, admin: dict[str, str], line_png: bytes
) -> None:
    _, key = tenant(http, admin)
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        responses = await asyncio.gather(
            *(
                client.post("/v1/ocr", headers=key, files={"file": ("f", line_png)})
                for _ in range(12)
            )
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [202] * 5 + [429] * 7
    for r in responses:
        assert r.headers["x-ratelimit-limit"] == "5"
        if r.status_code == 429:
            assert r.json()["error"]["code"] == "rate_limited"
            assert int(r.headers["retry-after"]) > 0
            assert r.headers["x-ratelimit-remaining"] == "0"
    remaining = sorted(
        int(r.headers["x-ratelimit-remaining"]) for r in responses if r.status_code == 202
    )
    assert remaining == [0, 1, 2, 3, 4]


def test_rate_limit_headers_on_every_authenticated_response(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    _, key = tenant(http, admin)
    for response in (
        http.get("/v1/jobs", headers=key),
        http.get("/v1/balance", headers=key),
        http.get("/v1/usage", headers=key),
        http.get("/v1/jobs/no-such-job", headers=key),
        http.get("/v1/usage?from=nonsense", headers=key),
        submit(http, key, b"not a document"),
    ):
        assert all(h in response.headers for h in RATE_HEADERS), response.request.url
    assert http.get("/v1/jobs", headers=key).headers["x-ratelimit-limit"] == "40"
    unauthenticated = http.get("/v1/jobs")
    assert unauthenticated.status_code == 401
    assert "x-ratelimit-limit" not in unauthenticated.headers


def test_polling_has_its_own_budget(
    http: httpx.Client, admin: dict[str, str], line_png: bytes
) -> None:
    _, key = tenant(http, admin)
    job_id = submit(http, key, line_png).json()["jobId"]
    while submit(http, key, line_png).status_code != 429:
        pass
    assert http.get(f"/v1/jobs/{job_id}", headers=key).status_code == 200


def test_plan_change_takes_effect_at_once(
    http: httpx.Client, admin: dict[str, str], line_png: bytes
) -> None:
    tenant_id, key = tenant(http, admin)
    while submit(http, key, line_png).status_code != 429:
        pass
    changed = http.patch(
        f"/admin/tenants/{tenant_id}", headers=admin, json={"plan": "professional"}
    )
    assert changed.json()["plan"] == "professional"
    accepted = submit(http, key, line_png)
    assert accepted.status_code == 202, accepted.text
    assert accepted.headers["x-ratelimit-limit"] == "500"
    assert http.get("/v1/balance", headers=key).json()["plan"] == "professional"


def test_plan_allowed_tiers_lower_pages_and_say_so(
    http: httpx.Client, admin: dict[str, str], corpus: Path
) -> None:
    """A handwritten page is complex (5 credits); a plan without the complex tier reads it at
    medium, reserves and charges 3, and the page's metadata says why."""
    will = (
        corpus / "e_handwriting/testaments_de_poilus" / "TestamentsDePoilus_will_AD78_0006-0.jpg"
    ).read_bytes()
    reserved = {}
    for plan in ("free", "lite"):
        _, key = tenant(http, admin, plan=plan, credits=20)
        accepted = submit(http, key, will)
        assert accepted.status_code == 202, accepted.text
        reserved[plan] = accepted.json()["creditsReserved"]
        if plan == "lite":
            job = wait_for_job(http, accepted.json()["jobId"], key["X-API-Key"])
            assert job["status"] == "completed", job
            assert job["credits_used"] == 3, job["results"][0]["pipeline_metadata"]
            meta = job["results"][0]["pipeline_metadata"]
            assert meta["tier"] == "medium"
            assert meta["capped"] is True
            assert (
                "lowered to medium by the lite plan, which allows simple, medium"
                in meta["provider_reason"]
            )
            assert http.get("/v1/balance", headers=key).json()["credits_available"] == 17
    assert reserved == {"free": 5, "lite": 3}


def test_revoked_key_is_rejected_at_once(http: httpx.Client, admin: dict[str, str]) -> None:
    tenant_id, first = tenant(http, admin)
    second = http.post(f"/admin/tenants/{tenant_id}/keys", headers=admin).json()
    second_key = {"X-API-Key": second["api_key"]}
    assert http.get("/v1/balance", headers=second_key).status_code == 200
    assert http.delete(f"/admin/keys/{second['key']['id']}", headers=admin).status_code == 204
    assert http.get("/v1/balance", headers=second_key).status_code == 401
    assert http.get("/v1/balance", headers=first).status_code == 200
    keys = http.get(f"/admin/tenants/{tenant_id}/keys", headers=admin).json()
    assert [k["revoked_at"] is not None for k in keys] == [False, True]
    assert all("api_key" not in k for k in keys)


def test_other_tenants_jobs_are_404_on_every_route(
    http: httpx.Client, admin: dict[str, str], line_png: bytes
) -> None:
    _, owner = tenant(http, admin)
    _, intruder = tenant(http, admin)
    job_id = submit(http, owner, line_png).json()["jobId"]
    missing = http.get("/v1/jobs/00000000-0000-0000-0000-000000000000", headers=intruder)
    for response in (
        http.get(f"/v1/jobs/{job_id}", headers=intruder),
        http.get(f"/v1/jobs/{job_id}?wait=1", headers=intruder),
        http.post(f"/v1/jobs/{job_id}/cancel", headers=intruder),
        http.delete(f"/v1/jobs/{job_id}", headers=intruder),
    ):
        assert response.status_code == 404
        assert response.json() == missing.json()
    assert http.get("/v1/jobs", headers=intruder).json()["total"] == 0
    assert http.get(f"/v1/jobs/{job_id}", headers=owner).status_code == 200


async def test_idempotent_retries_reserve_once(
    server: GatewayProcess, http: httpx.Client, admin: dict[str, str], line_png: bytes, corpus: Path
) -> None:
    _, key = tenant(http, admin, plan="business", credits=10)
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        results = await asyncio.gather(
            *(
                client.post(
                    "/v1/ocr",
                    headers={**key, "Idempotency-Key": "order-7"},
                    files={"file": ("f", line_png)},
                )
                for _ in range(6)
            )
        )
        balance = (await client.get("/v1/balance", headers=key)).json()
    assert {r.status_code for r in results} == {202}
    assert len({r.json()["jobId"] for r in results}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in results) == 5
    assert balance["credits_available"] == 9
    other = (corpus / "a_clean_printed/uw3_lines/010005.bin.png").read_bytes()
    reused = submit(http, key, other, **{"Idempotency-Key": "order-7"})
    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "idempotency_key_reused"


def test_cancel_refunds_unread_pages(
    server: GatewayProcess, http: httpx.Client, admin: dict[str, str], corpus: Path
) -> None:
    _, key = tenant(http, admin, plan="business", credits=20)
    pdf = (corpus / "f_pdfs/born_digital/tracemonkey.pdf").read_bytes()  # 14 pages
    job_id = submit(http, key, pdf).json()["jobId"]
    cancelled = http.post(f"/v1/jobs/{job_id}/cancel", headers=key)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    time.sleep(3)  # pages in flight at the cancel finish, and must not be charged
    job = http.get(f"/v1/jobs/{job_id}", headers=key).json()
    assert job["status"] == "cancelled"
    assert job["credits_used"] == job["pages_processed"] < 14
    balance = http.get("/v1/balance", headers=key).json()
    assert balance["credits_reserved"] == 0
    assert balance["credits_available"] == 20 - job["credits_used"]
    again = http.post(f"/v1/jobs/{job_id}/cancel", headers=key)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "job_not_cancellable"
    assert_ledger_balanced(server.config.parent / "data/gateway.sqlite3")


def test_delete_removes_record_upload_and_results(
    server: GatewayProcess, http: httpx.Client, admin: dict[str, str], line_png: bytes
) -> None:
    _, key = tenant(http, admin, plan="business", credits=5)
    job_id = submit(http, key, line_png).json()["jobId"]
    uploads = server.config.parent / "data/uploads"
    assert any(p.name.startswith(job_id) for p in uploads.iterdir())
    wait_for_job(http, job_id, key["X-API-Key"])
    assert http.delete(f"/v1/jobs/{job_id}", headers=key).status_code == 204
    assert http.get(f"/v1/jobs/{job_id}", headers=key).status_code == 404
    assert not any(p.name.startswith(job_id) for p in uploads.iterdir())
    assert http.delete(f"/v1/jobs/{job_id}", headers=key).status_code == 404
    assert http.get("/v1/balance", headers=key).json()["credits_available"] == 4


def test_concurrent_job_limit_of_the_plan(
    http: httpx.Client, admin: dict[str, str], corpus: Path
) -> None:
    _, key = tenant(http, admin, plan="starter", credits=100)  # one job at a time
    pdf = (corpus / "f_pdfs/pypdf/Seige_of_Vicksburg_Sample_OCR.pdf").read_bytes()  # 6 scans
    first = submit(http, key, pdf)
    assert first.status_code == 202
    second = submit(http, key, pdf)
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "too_many_concurrent_jobs"
    reserved = http.get("/v1/balance", headers=key).json()["credits_reserved"]
    assert reserved == first.json()["creditsReserved"] >= 6
    http.post(f"/v1/jobs/{first.json()['jobId']}/cancel", headers=key)
    assert submit(http, key, pdf).status_code == 202


def test_long_poll_returns_when_the_job_changes(
    http: httpx.Client, admin: dict[str, str], line_png: bytes
) -> None:
    _, key = tenant(http, admin, plan="business")
    job_id = submit(http, key, line_png).json()["jobId"]
    started = time.monotonic()
    job = http.get(f"/v1/jobs/{job_id}?wait=30", headers=key).json()
    assert time.monotonic() - started < 25
    while job["status"] not in ("completed", "failed"):
        job = http.get(f"/v1/jobs/{job_id}?wait=30", headers=key).json()
    assert job["status"] == "completed"
    assert http.get(f"/v1/jobs/{job_id}?wait=31", headers=key).status_code == 400


def test_list_jobs_newest_first_with_filters(
    http: httpx.Client, admin: dict[str, str], line_png: bytes
) -> None:
    _, key = tenant(http, admin, plan="business")
    ids = [submit(http, key, line_png).json()["jobId"] for _ in range(3)]
    for job_id in ids:
        wait_for_job(http, job_id, key["X-API-Key"])
    listing = http.get("/v1/jobs?limit=2", headers=key).json()
    assert [j["id"] for j in listing["jobs"]] == ids[::-1][:2]
    assert listing["total"] == 3
    assert http.get("/v1/jobs?limit=2&offset=2", headers=key).json()["jobs"][0]["id"] == ids[0]
    assert http.get("/v1/jobs?status=failed", headers=key).json()["total"] == 0
    assert set(listing["jobs"][0]) >= {"id", "status", "page_count", "credits_used"}
    assert "results" not in listing["jobs"][0]


def test_balance_and_usage_count_pages_and_credits(
    http: httpx.Client, admin: dict[str, str], line_png: bytes
) -> None:
    _, key = tenant(http, admin, plan="business", credits=10)
    for _ in range(2):  # read twice: `cache=false` asks not to be answered from the first
        fresh = http.post(
            "/v1/ocr", headers=key, files={"file": ("f", line_png)}, data={"cache": "false"}
        )
        wait_for_job(http, fresh.json()["jobId"], key["X-API-Key"])
    cached = submit(http, key, line_png).json()  # the same again: answered from the cache, free
    assert (cached["cached"], cached["creditsReserved"]) == (True, 0)
    balance = http.get("/v1/balance", headers=key).json()
    assert balance["credits_available"] == 8
    assert balance["credits_reserved"] == 0
    assert balance["usage_last_24h"] == {"pages": 3, "credits": 2}
    assert balance["usage_this_month"] == {"pages": 3, "credits": 2}
    usage = http.get("/v1/usage", headers=key).json()
    assert usage["total"] == {"pages": 3, "credits": 2}
    assert usage["days"][-1]["tiers"] == {"simple": {"pages": 3, "credits": 2}}
    assert http.get("/v1/usage?from=2026-02-01&to=2026-01-01", headers=key).status_code == 400


def test_admin_api_needs_the_token(http: httpx.Client, admin: dict[str, str]) -> None:
    """A missing or wrong credential is 401 (403 is kept for an admin API switched off)."""
    missing = http.get("/admin/tenants")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    assert http.get("/admin/tenants", headers={"Authorization": "Bearer wrong"}).status_code == 401
    tenant_id, key = tenant(http, admin, credits=1)
    granted = http.post(f"/admin/tenants/{tenant_id}/credits", headers=admin, json={"amount": 41})
    assert granted.json()["credits_available"] == 42
    assert http.get("/v1/balance", headers=key).json()["credits_available"] == 42
    assert (
        http.patch(
            f"/admin/tenants/{tenant_id}", headers=admin, json={"plan": "platinum"}
        ).status_code
        == 400
    )
    assert tenant_id in {t["id"] for t in http.get("/admin/tenants", headers=admin).json()}


def test_signup_gives_a_key_with_free_credits(http: httpx.Client) -> None:
    email = f"user{time.monotonic_ns()}@example.com"
    created = http.post("/api/signup", json={"email": email})
    assert created.status_code == 200
    body = created.json()
    assert body["credits"] == 25
    assert body["plan"] == "free"
    balance = http.get("/v1/balance", headers={"X-API-Key": body["api_key"]})
    assert balance.json()["credits_available"] == 25
    assert http.post("/api/signup", json={"email": email.upper()}).status_code == 409
    invalid = http.post("/api/signup", json={"email": "not-an-email"})
    assert invalid.status_code == 400


def test_signup_is_off_by_default(client: httpx.Client) -> None:
    assert client.post("/api/signup", json={"email": "a@example.com"}).status_code == 404


def test_retention_deletes_old_jobs_and_uploads(tmp_path: Path, corpus: Path) -> None:
    config = write_config(
        tmp_path / "config.yaml",
        tmp_path / "data",
        pipeline={"provider": "tesseract"},
        retention={"days": 2 / 86_400, "sweep_interval_s": 0.5},
    )
    key = create_tenant(config, credits=5)
    process = GatewayProcess(config, tmp_path / "gateway.log").start()
    try:
        with httpx.Client(base_url=process.url, timeout=60) as http:
            png = (corpus / "a_clean_printed/uw3_lines/010004.bin.png").read_bytes()
            job_id = submit(http, {"X-API-Key": key}, png).json()["jobId"]
            wait_for_job(http, job_id, key)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if http.get(f"/v1/jobs/{job_id}", headers={"X-API-Key": key}).status_code == 404:
                    break
                time.sleep(0.5)
            assert http.get(f"/v1/jobs/{job_id}", headers={"X-API-Key": key}).status_code == 404
        assert list((tmp_path / "data/uploads").iterdir()) == []
    finally:
        process.stop()
