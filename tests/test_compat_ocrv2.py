"""The read-results API (004) under /compat/ocrv2: the document's own request samples (parsed
from the spec file) sent with real values where the sample has placeholders, every field of its
response sample present with the sample's type, every span consistent with rawText, the ZIP's
files, the orgId/authKey pairing, and the FAILURE error body. A real gateway, a loopback file
server for inputUrl and a loopback receiver for webhooks and the async ZIP upload."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.support.file_server import FileServer
from tests.support.outbound import Outbound
from tests.support.webhook_receiver import WebhookReceiver

SPEC = Path(__file__).resolve().parents[2] / "shared" / "specs" / "004_278fd9867044631d.txt"
PAGE = "a_clean_printed/tesseract/phototest.tif"  # several lines of print
LINE = "a_clean_printed/uw3_lines/010004.bin.png"


def doc_samples() -> list[dict[str, Any]]:
    """The document's JSON samples in order: the OCR request, its response, the ZIP request,
    the error (its `- ` list markers dropped)."""
    text = SPEC.read_text()
    samples = []
    for match in re.finditer(r"\n\{- ", text):
        start, depth = match.start() + 1, 0
        for end in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                break
        samples.append(json.loads(re.sub(r"(\{|\[|\n)\s*- ", r"\1", text[start : end + 1])))
    return samples


OCR_REQUEST, OCR_RESPONSE, ZIP_REQUEST, ERROR = doc_samples()


@pytest.fixture(scope="module")
def files(corpus: Path) -> Iterator[FileServer]:
    with FileServer(corpus) as server:
        yield server


@pytest.fixture(scope="module")
def org(outbound: Outbound) -> dict[str, str]:
    """The headers of a tenant: orgId (its id) and authKey (its key), and its webhook secret."""
    tenant_id, key = outbound.new_tenant()
    return {"orgId": tenant_id, "authKey": key, "secret": outbound.secret(tenant_id)}


@pytest.fixture
def http(outbound: Outbound) -> Iterator[httpx.Client]:
    """The shared outbound gateway (it may fetch from and call `localhost`)."""
    base = f"{outbound.current.url}/compat/ocrv2"
    with httpx.Client(base_url=base, timeout=120) as client:
        yield client


def headers(org: dict[str, str], **extra: str) -> dict[str, str]:
    return {"orgId": org["orgId"], "authKey": org["authKey"], **extra}


def same_types(sample: Any, given: Any, path: str = "$") -> list[str]:
    """Where `given` lacks a field of `sample` or has it with another JSON type (numbers are
    one type; a list's items are held to the sample's first item)."""
    kinds = {
        bool: "boolean",
        int: "number",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
        type(None): "null",
    }
    if kinds[type(sample)] != kinds[type(given)]:
        return [f"{path}: {kinds[type(given)]}, the sample has {kinds[type(sample)]}"]
    if isinstance(sample, dict):
        return [
            problem
            for key, value in sample.items()
            for problem in (
                same_types(value, given[key], f"{path}.{key}")
                if key in given
                else [f"{path}.{key}: missing"]
            )
        ]
    if isinstance(sample, list) and sample:
        return [
            p for i, item in enumerate(given) for p in same_types(sample[0], item, f"{path}[{i}]")
        ]
    return []


def span_problems(response: dict[str, Any]) -> list[str]:
    """Every span checked against rawText: lines, words (inside their line), styles, pages."""
    results = response["ocrResults"]
    raw = results["rawText"]

    def text(span: dict[str, int]) -> str:
        start, end = span["offset"], span["offset"] + span["length"]
        assert 0 <= start <= end <= len(raw)
        return str(raw[start:end])

    problems = []
    line_spans = []
    for page in results["readResults"]:
        for line in page["lines"]:
            (span,) = line["spans"]
            line_spans.append(span)
            if text(span) != line["content"]:
                problems.append(f"line {line['content']!r} != {text(span)!r}")
        for word in page["words"]:
            if text(word["span"]) != word["content"]:
                problems.append(f"word {word['content']!r} != {text(word['span'])!r}")
        (page_span,) = page["spans"]
        lines = [line["content"] for line in page["lines"]]
        if text(page_span) != "\n".join(lines):
            problems.append(f"page {page['pageNumber']} span does not hold its lines")
    if [s["spans"] for s in results["readStyles"]] != [[s] for s in line_spans]:
        problems.append("readStyles do not follow the lines")
    if raw != "\n".join(line["content"] for p in results["readResults"] for line in p["lines"]):
        problems.append("rawText is not the lines in order")
    return problems


def test_the_documents_ocr_sample_answers_with_every_sample_field(
    http: httpx.Client, org: dict[str, str], files: FileServer
) -> None:
    """The request sample with its placeholders filled (inputUrl, webhook) reads the page; the
    response has every field of the response sample with its type, spans hold, the metadata and
    fileId come back, and the webhook gets the same response, signed."""
    with WebhookReceiver() as receiver:
        receiver.secret = org["secret"]
        payload = {
            **OCR_REQUEST,
            "inputUrl": files.url(f"files/{PAGE}", "localhost"),
            "webhook": receiver.url(),
            "metadata": {"batch": 7, "tags": ["a"]},
        }
        response = http.post("/ocr", headers=headers(org, subOrgId="team-1"), json=payload)
        assert response.status_code == 200, response.text
        body = response.json()
        (delivery,) = receiver.wait_for(1)
    assert same_types(OCR_RESPONSE, body) == []
    assert span_problems(body) == []
    assert body["status"] == "SUCCESS"
    assert body["documentId"] == "file1.pdf"
    assert body["metadata"] == {"batch": 7, "tags": ["a"]}
    assert body["subOrgId"] == "team-1"
    assert body["ocrVersion"] == "1"
    assert body["pages"] == 1
    page = body["ocrResults"]["readResults"][0]
    assert len(page["lines"]) >= 5
    assert all(len(line["polygon"]) == 8 for line in page["lines"])
    assert "quick brown dog" in body["ocrResults"]["rawText"]
    assert delivery.verified
    assert json.loads(delivery.body)["ocrResults"] == body["ocrResults"]


def test_the_sample_as_printed_is_a_failure_naming_the_url(
    http: httpx.Client, org: dict[str, str]
) -> None:
    """The request sample verbatim ("string" for the URLs) is a 400 in the document's error
    shape, naming what is wrong."""
    response = http.post("/ocr", headers=headers(org), json=OCR_REQUEST)
    assert response.status_code == 400
    assert response.json().keys() == ERROR.keys()
    assert response.json()["status"] == "FAILURE"
    assert "http and https" in response.json()["message"]


def test_base64_and_multipart_inputs_with_version_two(
    http: httpx.Client, org: dict[str, str], corpus: Path
) -> None:
    """`base64` in JSON and a multipart `file` read the same line; version 2 is accepted."""
    png = (corpus / LINE).read_bytes()
    by_json = http.post(
        "/ocr",
        headers=headers(org, version="2"),
        json={"base64": base64.b64encode(png).decode(), "fileId": "line-7"},
    )
    by_form = http.post(
        "/ocr",
        headers=headers(org),
        files={"file": ("line.png", png)},
        data={"metadata": '{"k": "v"}'},
    )
    assert by_json.status_code == 200, by_json.text
    assert by_form.status_code == 200, by_form.text
    assert by_json.json()["documentId"] == "line-7"
    assert by_json.json()["ocrVersion"] == "2"
    assert by_form.json()["metadata"] == {"k": "v"}
    assert by_json.json()["ocrResults"]["rawText"] == by_form.json()["ocrResults"]["rawText"]
    assert span_problems(by_form.json()) == []


@pytest.mark.parametrize(
    ("change", "status", "says"),
    [
        ({"orgId": "someone-else"}, 403, "one organization"),
        ({"authKey": "ocrg_wrong"}, 403, "one organization"),
        ({"authKey": ""}, 403, "required"),
        ({"apiVersion": "yesterday"}, 400, "YYYY-MM-DD"),
    ],
)
def test_org_and_key_must_belong_together(
    http: httpx.Client, org: dict[str, str], change: dict[str, str], status: int, says: str
) -> None:
    """A key with another orgId, a wrong or missing key: 403 FAILURE; a bad apiVersion: 400."""
    response = http.post("/ocr", headers={**headers(org), **change}, json={"base64": "AAAA"})
    assert response.status_code == status
    assert response.json()["status"] == "FAILURE"
    assert says in response.json()["message"]


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ({}, "missing required field(s): inputUrl"),
        ({"base64": "not base64!"}, "not valid base64"),
        ({"base64": "AAAA"}, "not a supported document type"),
        ({"inputUrl": "http://169.254.169.254/"}, "metadata"),
        ({"inputUrl": "x", "version": "1"}, "Invalid request body"),
        ({"base64": "AAAA", "version": 3}, "version must be one of 1, 2"),
    ],
)
def test_bad_requests_are_failures_naming_the_reason(
    http: httpx.Client, org: dict[str, str], payload: dict[str, Any], says: str
) -> None:
    """Each wrong request is a 400 {"status": "FAILURE", "message"} that says why."""
    response = http.post("/ocr", headers=headers(org), json=payload)
    assert response.status_code == 400, response.text
    assert response.json()["status"] == "FAILURE"
    assert says in response.json()["message"]


def test_the_documents_zip_sample_gives_csv_json_txt_and_the_original(
    http: httpx.Client, org: dict[str, str], files: FileServer, corpus: Path
) -> None:
    """The ZIP request sample with its URLs filled answers a ZIP named by fileId: a CSV row per
    line, the JSON response (and the same as TXT) and the original file's bytes."""
    with WebhookReceiver() as receiver:
        payload = {
            **ZIP_REQUEST,
            "inputURL": files.url(f"files/{LINE}", "localhost"),
            "webhook": receiver.url(),
            "outputURL": receiver.url("/out"),
        }
        response = http.post("/ocr/zip", headers=headers(org), json=payload)
        assert response.status_code == 200, response.text
        receiver.wait_for(1)
    assert response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == ["string.csv", "string.json", "string.png", "string.txt"]
    answer = json.loads(archive.read("string.json"))
    assert same_types(OCR_RESPONSE, answer) == []
    assert json.loads(archive.read("string.txt")) == answer
    assert archive.read("string.png") == (corpus / LINE).read_bytes()
    rows = list(csv.DictReader(io.StringIO(archive.read("string.csv").decode())))
    lines = answer["ocrResults"]["readResults"][0]["lines"]
    assert [r["text"] for r in rows] == [line["content"] for line in lines]
    assert list(rows[0]) == ["page", "line", "text", "confidence", "box", "handwritten"]


def test_zip_needs_a_webhook_and_async_puts_to_output_url(
    http: httpx.Client, org: dict[str, str], files: FileServer
) -> None:
    """Without `webhook` the document's own error; with ?async=true the answer is immediate and
    the ZIP is PUT to outputURL with outputURLHeaders."""
    inputs = {"inputURL": files.url(f"files/{LINE}", "localhost")}
    refused = http.post("/ocr/zip", headers=headers(org), json=inputs)
    assert refused.status_code == 400
    assert refused.json() == {
        "status": "FAILURE",
        "message": "Request body is missing required field(s): webhook",
    }
    with WebhookReceiver() as receiver:
        payload = {
            **inputs,
            "webhook": receiver.url(),
            "webhookSendFull": False,
            "outputURL": receiver.url("/out"),
            "outputURLHeaders": {"x-up": "yes"},
        }
        started = http.post(
            "/ocr/zip", headers=headers(org), params={"async": "true"}, json=payload
        )
        assert started.status_code == 200, started.text
        deliveries = receiver.wait_for(2)
    assert started.json()["status"] == "SUCCESS"
    put = next(d for d in deliveries if d.headers.get("x-up") == "yes")
    assert zipfile.ZipFile(io.BytesIO(put.body)).namelist()
    hook = next(d for d in deliveries if "webhook-id" in d.headers)
    assert json.loads(hook.body)["id"] == started.json()["id"]
    assert "ocrResults" not in json.loads(hook.body)


def test_a_form_field_that_is_not_text_is_a_failure(
    http: httpx.Client, org: dict[str, str], corpus: Path
) -> None:
    """A multipart text field that is not UTF-8 is a 400 FAILURE, not a server error."""
    png = (corpus / LINE).read_bytes()
    form = {"file": ("line.png", png), "fileId": (None, b"\xff\xfe")}
    response = http.post("/ocr", headers=headers(org), files=form)
    assert response.status_code == 400
    assert "UTF-8" in response.json()["message"]


def test_spans_hold_across_pages_failed_pages_and_lines_without_words() -> None:
    """The mapping alone, on results of several pages: a failed page has no lines and an empty
    span, a line whose words do not spell its text takes the words' spelling, a line without
    words keeps its text; every span holds and the CSV has a row per line."""
    from gateway.api.compat import ocrv2_map as m
    from gateway.errors import ErrorDetail
    from gateway.results import (
        BlockLine,
        ContentBlock,
        DocumentMetadata,
        Geometry,
        PageDimensions,
        PageResult,
        Word,
        failed_page,
    )

    box = Geometry(x=0.1, y=0.1, width=0.5, height=0.1)

    def line(text: str, *words: str) -> BlockLine:
        return BlockLine(
            text=text,
            confidence=0.9,
            geometry=box,
            words=[Word(text=w, confidence=0.8, geometry=box) for w in words],
            is_handwritten=text.startswith("hand"),
            handwriting_confidence=0.7,
        )

    def page(number: int, *lines: BlockLine) -> PageResult:
        meta = DocumentMetadata(
            source_model="test",
            page_dimensions=PageDimensions(width=1000, height=2000),
            global_confidence=0.9,
            dpi=200.0,
        )
        block = ContentBlock(
            block_id=1, type="text", geometry=box, text="", confidence=0.9, lines=list(lines)
        )
        return PageResult(
            page_number=number,
            status="completed",
            document_metadata=meta,
            content_blocks=[block],
            raw_markdown="",
            pipeline_metadata=None,
        )

    pages = [
        page(1, line("Hello world", "Hello", "world"), line("no words here")),
        failed_page(2, ErrorDetail(code="ocr_failed", message="x")),
        page(3, line("Total:  12.50", "Total:", "12.50"), line("handwritten note", "handwritten")),
    ]
    results = m.ocr_results(pages, "test")
    response = {"ocrResults": msgspec.to_builtins(results)}
    assert span_problems(response) == []
    assert results.rawText == "Hello world\nno words here\nTotal: 12.50\nhandwritten"
    assert results.readResults[1].lines == []
    assert results.readResults[1].spans == [m.Span(offset=25, length=0)]  # where page 1 ends
    assert results.readResults[0].lines[0].polygon == [100, 200, 600, 200, 600, 400, 100, 400]
    assert [s.isHandwritten for s in results.readStyles] == [False, False, False, True]
    rows = list(csv.reader(io.StringIO(m.lines_csv(_response_of(results)))))
    assert [r[:3] for r in rows[1:]] == [
        ["1", "1", "Hello world"],
        ["1", "2", "no words here"],
        ["3", "1", "Total: 12.50"],
        ["3", "2", "handwritten"],
    ]


def _response_of(results: Any) -> Any:
    from gateway.api.compat import ocrv2_map as m

    return m.OcrResponse(
        status="SUCCESS",
        documentId="d",
        modelType=m.MODEL_TYPE,
        id="j",
        requestDateTime="t",
        startTime=0,
        endTime=0,
        pages=len(results.readResults),
        ocrResults=results,
        resultUrl="",
        metadata={},
        ocrVersion="1",
    )


def test_handwritten_lines_are_flagged_in_read_styles(
    http: httpx.Client, org: dict[str, str], corpus: Path
) -> None:
    """A handwritten will is read with most of its lines' styles `isHandwritten: true`, each
    with a confidence, from the lines' own handwriting flags."""
    from PIL import Image

    will = "e_handwriting/testaments_de_poilus/TestamentsDePoilus_will_AD78_0006-0.jpg"
    with Image.open(corpus / will) as image:  # a band of a few lines: read in seconds
        top = image.crop((0, image.height // 4, image.width, image.height // 4 + 260))
        buffer = io.BytesIO()
        top.save(buffer, "PNG")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    response = http.post("/ocr", headers=headers(org), json={"base64": encoded})
    assert response.status_code == 200, response.text
    styles = response.json()["ocrResults"]["readStyles"]
    assert len(styles) >= 2
    assert sum(s["isHandwritten"] for s in styles) > len(styles) / 2
    assert all(0 < s["confidence"] <= 1 for s in styles)
    assert span_problems(response.json()) == []
