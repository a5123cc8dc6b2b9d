"""Job webhooks (`callback_url`): signed per Standard Webhooks with the tenant's secret from the
admin API, retried with backoff from a durable outbox, delivered after a SIGKILL between the
job's completion and the delivery, each attempt visible on the job, the address rules of URL
input applied at submit. A real gateway and a real loopback receiver."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gateway_process import GatewayProcess, wait_for_job
from tests.support.outbound import ADMIN_TOKEN, Outbound
from tests.support.webhook_receiver import WebhookReceiver, verify

LINE = "a_clean_printed/uw3_lines/010004.bin.png"
ADMIN = ADMIN_TOKEN


@pytest.fixture
def server(outbound: Outbound) -> GatewayProcess:
    """The shared outbound gateway (webhooks retried after 0.5 s, doubling, given up 4 s after
    the job finished)."""
    return outbound.current


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


def new_tenant(http: httpx.Client) -> tuple[str, str]:
    """(tenant id, API key) through the admin API."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    made = http.post("/admin/tenants", headers=admin, json={"name": "hooks", "credits": 100})
    assert made.status_code == 201, made.text
    return made.json()["tenant"]["id"], made.json()["api_key"]


def secret_of(http: httpx.Client, tenant_id: str, rotate: bool = False) -> str:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    path = f"/admin/tenants/{tenant_id}/webhook-secret"
    response = http.post(path, headers=admin) if rotate else http.get(path, headers=admin)
    assert response.status_code == (201 if rotate else 200), response.text
    secret: str = response.json()["secret"]
    assert secret.startswith("whsec_")
    return secret


def submit(http: httpx.Client, key: str, corpus: Path, **fields: str) -> httpx.Response:
    form: dict[str, Any] = {"file": ("line.png", (corpus / LINE).read_bytes())}
    form.update({name: (None, value) for name, value in fields.items()})
    return http.post("/v1/ocr", headers={"X-API-Key": key}, files=form)


def settled_webhook(http: httpx.Client, key: str, job_id: str) -> dict[str, Any]:
    """The job's webhook once it is delivered or given up."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        hook: dict[str, Any] = http.get(f"/v1/jobs/{job_id}", headers={"X-API-Key": key}).json()[
            "webhook"
        ]
        if hook["delivered_at"] or hook["gave_up_at"]:
            return hook
        time.sleep(0.1)
    raise TimeoutError("the webhook did not settle")


def test_signed_webhook_is_retried_with_backoff_after_two_500s(
    server: GatewayProcess, receiver: WebhookReceiver, corpus: Path
) -> None:
    """500, 500, then 200: three signed attempts with the same webhook-id, spaced by the
    doubling backoff, the whole job in the body, every attempt on the job."""
    with httpx.Client(base_url=server.url, timeout=60) as http:
        tenant_id, key = new_tenant(http)
        receiver.secret = secret_of(http, tenant_id)
        receiver.answers = [500, 500]
        response = submit(http, key, corpus, callback_url=receiver.url())
        assert response.status_code == 202, response.text
        job_id = response.json()["jobId"]
        deliveries = receiver.wait_for(3)
        hook = settled_webhook(http, key, job_id)
        job = wait_for_job(http, job_id, key)
    assert all(d.verified for d in deliveries)
    assert len({d.headers["webhook-id"] for d in deliveries}) == 1
    assert deliveries[1].at - deliveries[0].at >= 0.45  # first_retry_s
    assert deliveries[2].at - deliveries[1].at >= 0.95  # doubled
    body = json.loads(deliveries[2].body)
    assert body["type"] == "job.completed"
    assert body["data"]["id"] == job_id
    assert body["data"]["results"] == job["results"]
    assert [a["status_code"] for a in hook["attempts"]] == [500, 500, 200]
    assert hook["attempts"][0]["error"] == "answered 500"
    assert hook["delivered_at"]
    assert hook["next_attempt_at"] is None
    assert hook["full"] is True


def test_rotated_secret_signs_a_status_only_webhook(
    server: GatewayProcess, receiver: WebhookReceiver, corpus: Path
) -> None:
    """After a rotation only the new secret verifies; `callback_full=false` sends the status
    without the results."""
    with httpx.Client(base_url=server.url, timeout=60) as http:
        tenant_id, key = new_tenant(http)
        old = secret_of(http, tenant_id)
        receiver.secret = secret_of(http, tenant_id, rotate=True)
        assert receiver.secret != old
        assert secret_of(http, tenant_id) == receiver.secret
        response = submit(
            http, key, corpus, callback_url=receiver.url(), callback_full="false", cache="false"
        )
        (delivery,) = receiver.wait_for(1)
    assert delivery.verified
    assert not verify(old, delivery.headers, delivery.body)
    data = json.loads(delivery.body)["data"]
    assert data["id"] == response.json()["jobId"]
    assert data["status"] == "completed"
    assert "results" not in data


def test_a_receiver_that_never_accepts_is_given_up_after_the_retry_window(
    server: GatewayProcess, receiver: WebhookReceiver, corpus: Path
) -> None:
    """Always 500: retried until webhooks.retry_for_s (4 s here) after the job finished, then
    given up, every attempt recorded."""
    receiver.answers = [500] * 20
    with httpx.Client(base_url=server.url, timeout=60) as http:
        _, key = new_tenant(http)
        job_id = submit(http, key, corpus, callback_url=receiver.url()).json()["jobId"]
        hook = settled_webhook(http, key, job_id)
    assert hook["delivered_at"] is None
    assert hook["gave_up_at"]
    assert [a["status_code"] for a in hook["attempts"]] == [500] * len(hook["attempts"])
    assert len(hook["attempts"]) == len(receiver.deliveries) >= 3


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://127.0.0.1:9/hook", "url_address_not_allowed"),
        ("http://169.254.169.254/latest", "url_address_not_allowed"),
        ("file:///etc/passwd", "url_scheme_not_allowed"),
    ],
)
def test_callback_urls_follow_the_address_rules(
    server: GatewayProcess, corpus: Path, url: str, code: str
) -> None:
    """A callback_url the fetch rules refuse is a 400 at submit; nothing is reserved."""
    with httpx.Client(base_url=server.url, timeout=60) as http:
        _, key = new_tenant(http)
        response = submit(http, key, corpus, callback_url=url)
        balance = http.get("/v1/balance", headers={"X-API-Key": key}).json()
        plain = submit(http, key, corpus).json()["jobId"]
        job = http.get(f"/v1/jobs/{plain}", headers={"X-API-Key": key}).json()
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert balance["credits_reserved"] == 0
    assert balance["credits_available"] == 100
    assert job["webhook"] is None


def test_webhook_survives_a_sigkill_between_completion_and_delivery(
    outbound: Outbound, receiver: WebhookReceiver, corpus: Path
) -> None:
    """The gateway is killed while its first delivery is unanswered; after the restart the
    outbox delivers it again, with the same webhook-id, and records the delivery."""
    receiver.hold_first = True
    with httpx.Client(base_url=outbound.current.url, timeout=60) as http:
        tenant_id, key = new_tenant(http)
        receiver.secret = secret_of(http, tenant_id)
        job_id = submit(http, key, corpus, callback_url=receiver.url()).json()["jobId"]
        assert receiver.arrived.wait(60)
        job = http.get(f"/v1/jobs/{job_id}", headers={"X-API-Key": key}).json()
    assert job["status"] == "completed"
    assert job["webhook"]["attempts"] == []
    second = outbound.kill_and_restart()
    receiver.release.set()
    deliveries = receiver.wait_for(2)
    with httpx.Client(base_url=second.url, timeout=60) as http:
        hook = settled_webhook(http, key, job_id)
    assert all(d.verified for d in deliveries)
    assert deliveries[0].headers["webhook-id"] == deliveries[1].headers["webhook-id"]
    assert deliveries[0].body == deliveries[1].body
    assert hook["delivered_at"]
    assert [a["status_code"] for a in hook["attempts"]] == [200]
