"""The image solver API (002) under /compat/solver against a real gateway: the document's
requests and every field it lists, one solve per read image, tasks gone after their time, its
error details, no key in any log line; and one key used on every surface against one ledger."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compat_support import TASK_TTL_S, new_key, poll
from tests.ledger_checks import assert_ledger_balanced, charges_by_page
from tests.support.gateway_process import GatewayProcess

PREFIX = "/compat/solver"
LINE = "a_clean_printed/uw3_lines/010004.bin.png"
LINE_TEXT = "(actually potential differences from the datum) are scaled by the mean value of"
PDF = "f_pdfs/born_digital/tracemonkey.pdf"
HOSTILE = "g_malformed/image/pillow_truncated_end_chunk.png"  # refused at submit


@pytest.fixture(scope="module")
def gateway(compat_gateway: GatewayProcess) -> GatewayProcess:
    return compat_gateway


@pytest.fixture(scope="module")
def http(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url + PREFIX, timeout=60) as client:
        yield client


def database(gateway: GatewayProcess) -> Path:
    return Path(gateway.config).parent / "data" / "gateway.sqlite3"


def poll_task(http: httpx.Client, task_id: str, key: str) -> dict[str, Any]:
    return poll(
        lambda: http.get(f"/api/ocr/result/{task_id}", params={"api": key}),
        lambda task: task["result"] != "in_process",
        timeout_s=120,
    )


def wait_native(url: str, job_id: str, key: str) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        poll(
            lambda: client.get(f"/v1/jobs/{job_id}", headers={"X-API-Key": key}),
            lambda job: job["status"] in ("completed", "failed"),
            timeout_s=120,
        )


def test_the_documents_flow(http: httpx.Client, gateway: GatewayProcess, corpus: Path) -> None:
    """Balance, submit, poll, as the document's quick start: every field it lists; one solve
    charged for the read image; the task and its image deleted after the TTL, then 404."""
    key = new_key(gateway, 10)
    balance = http.get(f"/api/balance?api={key}")  # `GET /api/balance?api=YOUR_API_KEY`
    assert balance.status_code == 200
    assert balance.json() == {"status": "ok", "solves": 10, "24h": 0}

    png = (corpus / LINE).read_bytes()
    submitted = http.post(f"/api/ocr/solve?api={key}", files={"image": ("line.png", png)})
    assert submitted.status_code == 200, submitted.text
    task = submitted.json()
    assert set(task) == {"status", "result", "task_id", "solves"}
    assert task["status"] == "ok"
    assert task["result"] == "in_process"
    assert task["solves"] == 9  # remaining after this submission (reserved)

    done = poll_task(http, task["task_id"], key)
    assert set(done) == {"status", "result", "task_id", "time", "solves"}
    assert done["status"] == "ok"
    assert done["task_id"] == task["task_id"]
    assert "differences from the datum" in done["result"]
    assert isinstance(done["time"], float)
    assert done["time"] > 0
    assert done["solves"] == 9
    assert http.get("/api/balance", params={"api": key}).json() == {
        "status": "ok",
        "solves": 9,
        "24h": 1,
    }
    assert sum(charges_by_page(database(gateway), task["task_id"]).values()) == 1

    uploads = Path(gateway.config).parent / "data" / "uploads"
    time.sleep(TASK_TTL_S + 1.5)  # the sweep deletes it (every 0.5 s here)
    assert not [p for p in uploads.iterdir() if task["task_id"] in p.name]
    gone = http.get(f"/api/ocr/result/{task['task_id']}", params={"api": key})
    assert gone.status_code == 404
    assert gone.json() == {"detail": "Task not found or expired"}
    assert http.get("/api/balance", params={"api": key}).json()["solves"] == 9


def test_the_documents_errors(http: httpx.Client, gateway: GatewayProcess, corpus: Path) -> None:
    """401 Invalid API key, 402 No solves remaining (nothing reserved), 404 for an unknown or
    another account's task, 422 without `image`, 400 for a hostile image (nothing charged);
    all `{"detail": ...}`."""
    png = (corpus / LINE).read_bytes()
    for params in ({}, {"api": "ocrg_wrong"}):
        response = http.get("/api/balance", params=params)
        assert response.status_code == 401
        assert response.json() == {"detail": "Invalid API key"}
    broke = new_key(gateway, 0)
    refused = http.post("/api/ocr/solve", params={"api": broke}, files={"image": ("l.png", png)})
    assert refused.status_code == 402
    assert refused.json() == {"detail": "No solves remaining"}
    owner, other = new_key(gateway, 2), new_key(gateway, 2)
    task = http.post(
        "/api/ocr/solve", params={"api": owner}, files={"image": ("l.png", png)}
    ).json()
    for task_id in (task["task_id"], "no-such-task"):
        response = http.get(f"/api/ocr/result/{task_id}", params={"api": other})
        assert response.status_code == 404
        assert response.json() == {"detail": "Task not found or expired"}
    missing = http.post("/api/ocr/solve", params={"api": owner}, files={"file": ("l.png", png)})
    assert missing.status_code == 422
    assert set(missing.json()) == {"detail"}
    hostile = (corpus / HOSTILE).read_bytes()
    broken = http.post("/api/ocr/solve", params={"api": owner}, files={"image": ("h.png", hostile)})
    assert broken.status_code == 400
    assert set(broken.json()) == {"detail"}
    assert http.get("/api/balance", params={"api": owner}).json()["solves"] == 1  # one reserved
    poll_task(http, task["task_id"], owner)


def test_no_key_reaches_the_logs(http: httpx.Client, gateway: GatewayProcess) -> None:
    """After requests that pass `?api=` (good, wrong, refused), no line of the gateway's log
    (request lines included) holds either key; the request lines are there, by path."""
    key = new_key(gateway, 1)
    wrong = "ocrg_" + "W" * 43
    http.get("/api/balance", params={"api": key})
    http.get("/api/balance", params={"api": wrong})
    http.get("/api/ocr/result/nope", params={"api": key})
    http.post("/api/ocr/solve", params={"api": key}, files={"file": ("x.png", b"x")})
    http.get("/api/does-not-exist", params={"api": key})
    time.sleep(0.5)
    logs = gateway.logs()
    assert f"{PREFIX}/api/balance" in logs
    for secret in (key, wrong, key[5:25], wrong[5:25]):
        assert secret not in logs


def test_one_key_one_ledger_on_every_surface(gateway: GatewayProcess, corpus: Path) -> None:
    """One key submits a page on the native API and on each surface: one balance, which every
    surface reports in its own units, each page charged once."""
    key = new_key(gateway, 20)
    url = gateway.url
    png = (corpus / LINE).read_bytes()
    pdf = (corpus / PDF).read_bytes()
    one_page = '[{"start":1,"end":1}]'
    jobs = [
        httpx.post(
            f"{url}/v1/ocr",
            headers={"X-API-Key": key},
            files={"file": ("p.pdf", pdf)},
            data={"page_ranges": one_page},
        ).json()["jobId"],
        httpx.post(
            f"{url}/compat/sotaocr/v1/extract",
            headers={"Authorization": f"Bearer {key}"},
            files={"file": ("p.pdf", pdf)},
            data={"page_ranges": '[{"start":2,"end":2}]'},
        ).json()["id"],
        httpx.post(
            f"{url}/compat/jobapi/api/ocr",
            headers={"X-API-Key": key},
            files={"file": ("l.png", png)},
        ).json()["job_id"],
        httpx.post(
            f"{url}/compat/solver/api/ocr/solve",
            params={"api": key},
            files={"image": ("l.png", png)},
        ).json()["task_id"],
    ]
    with httpx.Client(base_url=url + PREFIX, timeout=60) as http:
        poll_task(http, jobs[-1], key)  # the solver's task, before its TTL deletes it
    for job_id in jobs[:-1]:
        wait_native(url, job_id, key)
    native = httpx.get(f"{url}/v1/balance", headers={"X-API-Key": key}).json()
    used = 20 - native["credits_available"]
    assert native["credits_reserved"] == 0
    assert used == 4  # four simple pages
    sota = httpx.get(
        f"{url}/compat/sotaocr/v1/balance", headers={"Authorization": f"Bearer {key}"}
    ).json()
    assert sota["remaining_pages"] == native["credits_available"]
    assert sota["lifetime_pages"] == {"total": 20, "allocated": used, "remaining": 16}
    solver = httpx.get(f"{url}/compat/solver/api/balance", params={"api": key}).json()
    assert solver == {"status": "ok", "solves": 16, "24h": used}
    for job_id in jobs:
        assert set(charges_by_page(database(gateway), job_id).values()) == {1}
    with sqlite3.connect(database(gateway)) as db:
        surfaces = dict(db.execute("SELECT job_id, surface FROM compat_jobs").fetchall())
    assert [surfaces.get(j) for j in jobs[:-1]] == [None, "sotaocr", "jobapi"]
    assert_ledger_balanced(database(gateway))
    print(json.dumps({"native": native, "sotaocr": sota, "solver": solver}))
