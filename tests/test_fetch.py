"""Documents by URL (`url` on POST /v1/ocr and /v1/quote): fetched from a real loopback file
server the test config allows by host name, and every unsafe or oversized URL refused with its
own clear 4xx before anything is reserved."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.config import ConfigError, FetchSettings, load_settings
from gateway.work.fetch import AddressPolicy, address_kind
from tests.support.file_server import FileServer
from tests.support.gateway_process import wait_for_job, write_config
from tests.support.outbound import Outbound

LINE = "a_clean_printed/uw3_lines/010004.bin.png"
PDF = "f_pdfs/born_digital/002-trivial-libre-office-writer.pdf"


@pytest.fixture(scope="module")
def files(corpus: Path) -> Iterator[FileServer]:
    with FileServer(corpus) as server:
        yield server


@pytest.fixture(scope="module")
def key(outbound: Outbound) -> str:
    return outbound.new_tenant(plan="starter", credits=100)[1]


@pytest.fixture
def http(outbound: Outbound) -> Iterator[httpx.Client]:
    """The shared outbound gateway: it may fetch from `localhost` (allowed by name), not from
    127.0.0.1; fetches time out after 3 s and 2 redirects."""
    with httpx.Client(base_url=outbound.current.url, timeout=60) as client:
        yield client


def submit(http: httpx.Client, key: str, url: str, path: str = "/v1/ocr") -> httpx.Response:
    return http.post(path, headers={"X-API-Key": key}, files={"url": (None, url)})


def test_a_document_by_url_is_read_like_its_upload(
    http: httpx.Client, key: str, files: FileServer, corpus: Path
) -> None:
    """The fetched bytes are the file's: the upload of the same file is answered from the
    URL job's result (same digest), and the job is named after the URL's last segment. The
    connection went to the checked address with the URL's host kept in the Host header."""
    response = submit(http, key, files.url(f"files/{LINE}", host="localhost"))
    assert response.status_code == 202, response.text
    assert files.hosts[files.requests.index(f"/files/{LINE}")] == f"localhost:{files.port}"
    job = wait_for_job(http, response.json()["jobId"], key)
    assert job["status"] == "completed"
    assert "".join(b["text"] for b in job["results"][0]["content_blocks"]).strip()
    upload = http.post(
        "/v1/ocr",
        headers={"X-API-Key": key},
        files={"file": ("line.png", (corpus / LINE).read_bytes())},
    )
    assert upload.json()["cached"] is True
    listed = http.get("/v1/jobs", headers={"X-API-Key": key}).json()["jobs"]
    assert response.json()["jobId"] in {
        j["id"] for j in listed if j["file_name"] == "010004.bin.png"
    }


def test_a_pdf_by_url_through_a_redirect_is_quoted_and_read(
    http: httpx.Client, key: str, files: FileServer
) -> None:
    """A redirect to an allowed host is followed; `url` works for quotes as for submits."""
    url = files.url(f"redirect?to={files.url(f'files/{PDF}', host='localhost')}", "localhost")
    quote = submit(http, key, url, "/v1/quote")
    assert quote.status_code == 200, quote.text
    assert quote.json()["pageCount"] == 1
    response = submit(http, key, url)
    assert response.status_code == 202, response.text
    assert wait_for_job(http, response.json()["jobId"], key)["status"] == "completed"


@pytest.mark.parametrize(
    ("path", "status", "code", "says"),
    [
        ("127.0.0.1", 400, "url_address_not_allowed", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", 400, "url_address_not_allowed", "metadata"),
        ("http://[::ffff:10.1.2.3]/x.pdf", 400, "url_address_not_allowed", "private"),
        ("redirect-private", 400, "url_address_not_allowed", "127.0.0.1"),
        ("file:///etc/passwd", 400, "url_scheme_not_allowed", "http and https"),
        ("ftp://localhost/x.pdf", 400, "url_scheme_not_allowed", "'ftp'"),
        ("not a url", 400, "url_scheme_not_allowed", "missing"),
        ("declares-10gb", 413, "url_file_too_large", "10737418240 bytes"),
        ("endless", 413, "url_file_too_large", "over the limit"),
        ("loop/0", 400, "too_many_redirects", "more than 2 times"),
        ("status/404", 400, "fetch_failed", "404"),
        ("slow", 400, "fetch_timeout", "3 s"),
        ("files/a_clean_printed/uw3_lines/010004.gt.txt", 415, "unsupported_media_type", "bytes"),
    ],
)
def test_unsafe_or_unusable_urls_are_refused_with_their_reason(
    http: httpx.Client, key: str, files: FileServer, path: str, status: int, code: str, says: str
) -> None:
    """Each refusal is its own 4xx in the native error shape, naming the reason, and reserves
    nothing."""
    url = {
        "127.0.0.1": files.url(f"files/{LINE}"),  # the server itself, but not allowed by address
        "redirect-private": files.url(f"redirect?to={files.url(f'files/{LINE}')}", "localhost"),
    }.get(path) or (path if ":" in path or " " in path else files.url(path, "localhost"))
    before = http.get("/v1/balance", headers={"X-API-Key": key}).json()
    response = submit(http, key, url)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert says in error["message"]
    after = http.get("/v1/balance", headers={"X-API-Key": key}).json()
    assert after["credits_available"] == before["credits_available"]


@pytest.mark.parametrize("form", [{}, {"both": True}])
def test_exactly_one_of_file_and_url(
    http: httpx.Client, key: str, files: FileServer, corpus: Path, form: dict[str, bool]
) -> None:
    """Neither a file nor a URL, or both, is a 400 that says to send one of them."""
    fields: dict[str, tuple[str | None, bytes | str]] = {"mode": (None, "fast")}
    if form:
        fields["file"] = ("line.png", (corpus / LINE).read_bytes())
        fields["url"] = (None, files.url(f"files/{LINE}", "localhost"))
    response = http.post("/v1/ocr", headers={"X-API-Key": key}, files=fields)
    assert response.status_code == 400
    assert "`file` or its address as `url`" in response.json()["error"]["message"]


def test_address_kinds_and_allowances() -> None:
    """Non-public addresses are named by kind; an allowed host or network lifts the refusal."""
    from ipaddress import ip_address

    assert address_kind(ip_address("8.8.8.8")) is None
    assert address_kind(ip_address("127.0.0.1")) == "a loopback address"
    assert address_kind(ip_address("::1")) == "a loopback address"
    assert address_kind(ip_address("10.0.0.1")) == "a private address"
    assert address_kind(ip_address("fe80::1")) == "a link-local address"
    assert address_kind(ip_address("224.0.0.1")) == "a multicast address"
    assert address_kind(ip_address("0.0.0.0")) == "the unspecified address"
    assert address_kind(ip_address("240.0.0.1")) is not None
    assert address_kind(ip_address("100.100.100.200")) == "a cloud metadata address"
    policy = AddressPolicy(FetchSettings(allow_hosts=["files.lan"], allow_networks=["10.0.0.0/8"]))
    assert policy.refusal("files.lan", ip_address("192.168.1.1")) is None
    assert policy.refusal("other", ip_address("10.9.9.9")) is None
    assert policy.refusal("other", ip_address("192.168.1.1")) == "a private address"


@pytest.mark.parametrize(
    ("fetch", "says"),
    [({"allow_networks": ["10.0.0.0/33"]}, "not a network"), ({"allow_hosts": ["a:80"]}, "host")],
)
def test_bad_allowances_fail_at_start(
    tmp_path: Path, fetch: dict[str, list[str]], says: str
) -> None:
    """An allowance that is not a network or a host name stops the start, naming it."""
    config = write_config(tmp_path / "config.yaml", tmp_path / "data", fetch=fetch)
    with pytest.raises(ConfigError, match=says):
        load_settings(config)
