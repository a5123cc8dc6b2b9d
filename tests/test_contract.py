"""The OpenAPI schema is the contract: schemathesis drives every operation of a real gateway with
schema-valid and schema-invalid requests under all of its checks and finds nothing; a few plain
tests pin the fixes it once found."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gateway_process import GatewayProcess, create_tenant, write_config

ADMIN_TOKEN = "contract-admin-token"
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
EXAMPLES_PER_OPERATION = 25  # the whole run takes about a minute on two shared cores
SEED = 20261201  # the same requests on every run; change it to explore further

# Allowances by operation, each for a reason the schema cannot state.
CONFIG = """
[cache]
enabled = false

# The file's bytes and the pages it has are not in the schema: a range outside the document, a
# max_credits below what its pages need, a file that is no document (400) or no supported
# type (415); nor which quotes exist (a quote_id of no quote: 404; of another file: 409).
[[operations]]
include-name = "POST /v1/ocr"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "400", "401", "404", "409", "415", "429"]

[[operations]]
include-name = "POST /v1/quote"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "415", "429"]

# A long poll holds the request until the job changes or `wait` (at most 30 s) passes.
[[operations]]
include-name = "GET /v1/jobs/{job_id}"
checks.max_response_time = 31.0

# Cross-field rules: `from` after `to`, a range over 366 days (400).
[[operations]]
include-name = "GET /v1/usage"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "429"]

# The compatible surfaces (issue 15): as for POST /v1/ocr, the file's bytes and pages are not
# in the schema; nor which model profiles (000) or languages (001) this gateway takes, nor
# whether the account's balance covers the document (000: 403, 002: 402).
[[operations]]
include-name = "POST /compat/sotaocr/v1/extract"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "415", "429"]

[[operations]]
include-name = "POST /compat/jobapi/api/ocr"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "415", "422", "429"]

[[operations]]
include-name = "POST /compat/jobapi/ocr"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "415", "422", "429"]

# An address the schema allows may still be refused (400); signups are limited per address.
[[operations]]
include-name = "POST /compat/jobapi/api/signup"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "409", "429"]

[[operations]]
include-name = "POST /compat/solver/api/ocr/solve"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "402", "415", "429"]
"""

# Each security scheme of the schema gets its credential (the surfaces send the same key their
# own way: Bearer, X-API-Key, ?api=).
AUTH = """
[auth.openapi.ApiKeyAuth]
api_key = "{key}"

[auth.openapi.AdminToken]
bearer = "{admin}"

[auth.openapi.SotaBearer]
bearer = "{key}"

[auth.openapi.JobApiKey]
api_key = "{key}"

[auth.openapi.SolverKey]
api_key = "{key}"
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A gateway with every surface on (admin API, signup) and budgets a fuzzer cannot exhaust."""
    root = tmp_path_factory.mktemp("contract")
    config = write_config(
        root / "config.yaml",
        root / "data",
        worker={"processes": 1},
        signup={"enabled": True},
        rate_limits={"reads": "100000/minute", "admin": "100000/minute"},
    )
    server = GatewayProcess(
        config, root / "gateway.log", env={"OCR_GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN}
    ).start()
    yield server
    server.stop()


@pytest.fixture
def api_key(gateway: GatewayProcess) -> str:
    """A tenant of its own for each test: schemathesis, holding the admin token, may change
    the plan of a tenant it was given (down to the free plan's 10 submissions an hour)."""
    return create_tenant(gateway.config, name="contract", credits=1_000_000, plan="business")


@pytest.fixture
def http(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=60) as client:
        yield client


def run_schemathesis(url: str, api_key: str, workdir: Path) -> tuple[int, str, dict[str, Any]]:
    """`schemathesis run` over the whole schema, all checks; (exit code, output, JSON report)."""
    assert SCHEMATHESIS.is_file(), "schemathesis is in the test extra: pip install -e '.[test]'"
    (workdir / "schemathesis.toml").write_text(CONFIG + AUTH.format(key=api_key, admin=ADMIN_TOKEN))
    report = workdir / "report.json"
    done = subprocess.run(
        [
            str(SCHEMATHESIS),
            "--config-file",
            str(workdir / "schemathesis.toml"),
            "--no-color",
            "run",
            f"{url}/schema/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(EXAMPLES_PER_OPERATION),
            "--seed",
            str(SEED),
            "--request-timeout",
            "60",
            "--report",
            "json",
            "--report-json-path",
            str(report),
        ],
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=600,
        check=False,
    )
    output = done.stdout + done.stderr
    summary = json.loads(report.read_text()) if report.is_file() else {}
    return done.returncode, output, summary


def test_schemathesis_finds_no_failure(
    gateway: GatewayProcess, api_key: str, tmp_path: Path
) -> None:
    code, output, report = run_schemathesis(gateway.url, api_key, tmp_path)
    failures = report.get("failures", [])
    summary = "\n".join(f"{f['code']} {f['title']}: {', '.join(f['operations'])}" for f in failures)
    if code != 0:
        print(output)  # shown with the failure: every case, with a curl line to reproduce it
    assert report, "schemathesis wrote no report (its output is above)"
    assert report["operations"]["tested"] == report["operations"]["total"]
    assert not report["errors"], "schemathesis met errors (its output is above)"
    assert not failures, f"schemathesis found (every case is in its output above):\n{summary}"
    assert code == 0, "schemathesis failed (its output is above)"


def test_huge_offset_is_a_bad_request(http: httpx.Client, api_key: str) -> None:
    """Past the documented maximum, not an overflow in SQLite (was 500)."""
    response = http.get(
        "/v1/jobs", params={"offset": "197019567850414536210251776"}, headers={"X-API-Key": api_key}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert "offset" in response.json()["error"]["message"]
    assert (
        http.get(
            "/v1/jobs", params={"offset": 1_000_000_000}, headers={"X-API-Key": api_key}
        ).status_code
        == 200
    )


@pytest.mark.parametrize(
    "query", ["to=0001-01-05", "from=9999-12-31&to=9999-12-31", "from=2026-02-30"]
)
def test_usage_dates_out_of_range_are_a_bad_request(
    http: httpx.Client, api_key: str, query: str
) -> None:
    """Dates at the ends of the calendar are refused, not overflowed (was 500)."""
    response = http.get(f"/v1/usage?{query}", headers={"X-API-Key": api_key})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"amount": 5}, 200),
        ({"amount": 5.0}, 200),  # a whole number is an integer in JSON Schema
        ({"amount": "5"}, 400),
        ({"amount": 0}, 400),
        ({"amount": 1_000_000_001}, 400),
        ({"amount": 5, "note": 7}, 400),
        ({"amount": 5, "extra": 1}, 400),
    ],
)
def test_json_body_values_must_have_their_schema_type(
    http: httpx.Client, gateway: GatewayProcess, body: dict[str, Any], status: int
) -> None:
    """No lax conversion of JSON bodies: a string is not a number, in or out of bounds."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    tenant = http.post("/admin/tenants", headers=admin, json={"name": "typed"}).json()
    response = http.post(
        f"/admin/tenants/{tenant['tenant']['id']}/credits", headers=admin, json=body
    )
    assert response.status_code == status, response.text


def test_json_booleans_are_not_numbers(http: httpx.Client) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    tenant = http.post("/admin/tenants", headers=admin, json={"name": "typed"}).json()
    path = f"/admin/tenants/{tenant['tenant']['id']}"
    assert http.patch(path, headers=admin, json={"allow_remote": 0}).status_code == 400
    changed = http.patch(path, headers=admin, json={"allow_remote": False})
    assert changed.status_code == 200
    assert changed.json()["allow_remote"] is False


@pytest.mark.parametrize(
    ("value", "status"),
    [("true", 202), ("false", 202), ("0", 400), ("1", 400), ("True", 400), ("yes", 400)],
)
def test_form_booleans_are_spelled_true_or_false(
    http: httpx.Client, api_key: str, corpus: Path, value: str, status: int
) -> None:
    png = (corpus / "a_clean_printed/uw3_lines/010004.bin.png").read_bytes()
    response = http.post(
        "/v1/ocr",
        headers={"X-API-Key": api_key},
        files={"file": ("a.png", png)},
        data={"allow_remote": value},
    )
    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Basic YWRtaW46YWRtaW4="}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": f"Bearer {ADMIN_TOKEN}"}, 200),
    ],
)
def test_admin_credential_missing_or_wrong_is_401(
    http: httpx.Client, headers: dict[str, str], status: int
) -> None:
    response = http.get("/admin/tenants", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.json()["error"]["code"] == "unauthorized"


def test_admin_401_and_403_are_documented(http: httpx.Client) -> None:
    """401 for a missing or wrong token; 403 only while the admin API is off."""
    paths = http.get("/schema/openapi.json").json()["paths"]
    admin = [op for path, ops in paths.items() if path.startswith("/admin/") for op in ops.values()]
    assert admin
    for op in admin:
        assert {"401", "403"} <= set(op["responses"])
        assert "admin token" in op["responses"]["401"]["description"]
        assert "disabled" in op["responses"]["403"]["description"]


@pytest.mark.parametrize(
    ("field", "code"),
    [
        ("mode", "bad_request"),
        ("max_credits", "bad_request"),
        ("allow_remote", "bad_request"),
        ("page_ranges", "invalid_page_ranges"),
    ],
)
def test_form_fields_are_not_nullable_so_null_is_an_ordinary_value(
    http: httpx.Client, api_key: str, corpus: Path, field: str, code: str
) -> None:
    """No form field is nullable in the schema, so the text `null` is just a value: no mode,
    number or boolean (refused in validation), and a string that is not page ranges."""
    form = http.get("/schema/openapi.json").json()["components"]["schemas"]["SubmitForm"]
    assert "null" not in json.dumps(form["properties"][field])
    assert field not in form["required"]
    png = (corpus / "a_clean_printed/uw3_lines/010004.bin.png").read_bytes()
    response = http.post(
        "/v1/ocr",
        headers={"X-API-Key": api_key},
        files={"file": ("a.png", png)},
        data={field: "null"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_form_fields_with_values_are_accepted(
    http: httpx.Client, api_key: str, corpus: Path
) -> None:
    png = (corpus / "a_clean_printed/uw3_lines/010004.bin.png").read_bytes()
    response = http.post(
        "/v1/ocr",
        headers={"X-API-Key": api_key},
        files={"file": ("a.png", png)},
        data={
            "mode": "fast",
            "max_credits": "5",
            "allow_remote": "false",
            "page_ranges": '[{"start": 1, "end": 1}]',
        },
    )
    assert response.status_code == 202, response.text
    assert response.json()["creditsReserved"] == 1


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/v1/jobs/some-job", {"GET", "DELETE"}),
        ("/admin/tenants", {"GET", "POST"}),
        ("/admin/tenants/some-tenant", {"GET", "PATCH"}),
        ("/admin/tenants/some-tenant/keys", {"GET", "POST"}),
        ("/v1/jobs", {"GET"}),
    ],
)
def test_options_allow_header_lists_the_schema_methods(
    http: httpx.Client, api_key: str, path: str, methods: set[str]
) -> None:
    headers = {"X-API-Key": api_key, "Authorization": f"Bearer {ADMIN_TOKEN}"}
    response = http.options(path, headers=headers)
    assert response.status_code == 204
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    template = path.replace("some-job", "{job_id}").replace("some-tenant", "{tenant_id}")
    documented = {m.upper() for m in http.get("/schema/openapi.json").json()["paths"][template]}
    assert documented == methods
    assert allowed == methods | {"OPTIONS"}
