"""Whole-document results (`GET /v1/jobs/{jobId}/result`, `ocr-gateway ocr --format`), each
checked by a tool that is not ours: the searchable PDF by poppler's `pdftotext` (`-bbox` for
where each word lands), ALTO by the official ALTO v4.4 schema (tests/data), hOCR by an HTML
parser and the hOCR spec's validator; markdown and text by what they must contain."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pikepdf
import pytest
from lxml import etree, html
from PIL import Image

from benchmarks.metrics import multiset_f1
from gateway.errors import ErrorDetail
from gateway.outputs.formats import OutputFormat, write_text_format
from gateway.outputs.pages import line_words, page_lines
from gateway.outputs.pdf import Source, write_searchable_pdf
from gateway.outputs.pdflayer import page_frame
from gateway.results import BlockLine, Geometry, PageDimensions, PageResult, failed_page
from tests.support.gateway_process import CORPUS, REPO, GatewayProcess, create_tenant, wait_for_job

DATA = Path(__file__).parent / "data"
HOCR_SPEC = Path(sys.executable).with_name("hocr-spec")
TOLERANCE = 0.01  # of the page's width or height
SCANS = {  # real scans: a PDF, one turned by /Rotate, TIFF, JPEG, PNG; print, form, table, hand
    "skew.pdf": "f_pdfs/ocrmypdf/skew.pdf",
    "rotated_skew.pdf": "f_pdfs/ocrmypdf/rotated_skew.pdf",
    "phototest.tif": "a_clean_printed/tesseract/phototest.tif",
    "receipt.jpg": "c_receipts/sroie/000.jpg",
    "form.png": "b_forms/funsd/82250337_0338.png",
    "table.png": "d_tables/pubtabnet/PMC2753619_002_00.png",
    "will.jpg": "e_handwriting/testaments_de_poilus/TestamentsDePoilus_will_AD78_0006-0.jpg",
}
BORN_DIGITAL = "f_pdfs/born_digital/crazyones.pdf"  # answered from its own text layer
MALFORMED = [
    json.loads(line)["file"]
    for line in (CORPUS / "g_malformed/manifest.jsonl").read_text().splitlines()
    if line.strip()
]


def three_page_scan() -> bytes:
    """A scanned PDF of corpus scans; its third page is shown upside down (/Rotate 180), which
    the OCR turns upright again (rotation_deg 180)."""
    text = Image.open(CORPUS / "a_clean_printed/tesseract/phototest.tif").convert("L")
    form = Image.open(CORPUS / "b_forms/funsd/82250337_0338.png").convert("L")
    out = io.BytesIO()
    text.save(out, "PDF", resolution=200, save_all=True, append_images=[form, text])
    pdf = pikepdf.open(io.BytesIO(out.getvalue()))
    pdf.pages[2].obj.Rotate = 180
    turned = io.BytesIO()
    pdf.save(turned)
    return turned.getvalue()


@pytest.fixture(scope="module")
def key(gateway: GatewayProcess) -> str:
    return create_tenant(gateway.config, name="outputs", credits=100_000)


@pytest.fixture(scope="module")
def jobs(gateway: GatewayProcess, key: str) -> dict[str, dict[str, Any]]:
    """The finished jobs of the scans, the born-digital PDF and the three-page scan, by name."""
    uploads = {name: (CORPUS / path).read_bytes() for name, path in SCANS.items()}
    uploads["crazyones.pdf"] = (CORPUS / BORN_DIGITAL).read_bytes()
    uploads["three_pages.pdf"] = three_page_scan()
    with httpx.Client(base_url=gateway.url, timeout=60) as client:
        ids = {
            name: client.post(
                "/v1/ocr", headers={"X-API-Key": key}, files={"file": (name, content)}
            ).json()["jobId"]
            for name, content in uploads.items()
        }
        return {name: wait_for_job(client, job_id, key) for name, job_id in ids.items()}


def get_result(client: httpx.Client, key: str, job_id: str, fmt: str) -> httpx.Response:
    return client.get(
        f"/v1/jobs/{job_id}/result", params={"format": fmt}, headers={"X-API-Key": key}
    )


def json_words(page: dict[str, Any]) -> list[tuple[str, float, float, float, float]]:
    """(text, left, top, right, bottom) of each word of a page result, relative to the page."""
    result = msgspec.convert(page, PageResult)
    return [
        (w.text, w.geometry.x, w.geometry.y, w.geometry.x + w.geometry.width,
         w.geometry.y + w.geometry.height)
        for _, _, words in page_lines(result) for w in words
    ]  # fmt: skip


def pdftotext_words(
    pdf: bytes, tmp_path: Path
) -> list[list[tuple[str, float, float, float, float]]]:
    """Each page's words as `pdftotext -bbox` places them, relative to the page as shown."""
    path = tmp_path / "result.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(
        ["pdftotext", "-bbox", str(path), "-"], capture_output=True, check=True
    ).stdout
    document = pikepdf.open(path)
    pages = []
    for element, page in zip(
        etree.fromstring(out, etree.HTMLParser(encoding="utf-8")).iter("page"),
        document.pages,
        strict=True,
    ):
        width, height = float(element.get("width")), float(element.get("height"))
        if int(page.obj.get("/Rotate", 0)) % 180:  # poppler gives the unturned size
            width, height = height, width
        pages.append([
            (w.text, float(w.get("xmin")) / width, float(w.get("ymin")) / height,
             float(w.get("xmax")) / width, float(w.get("ymax")) / height)
            for w in element.iter("word")
        ])  # fmt: skip
    return pages


def assert_words_placed(
    expected: list[tuple[str, float, float, float, float]],
    found: list[tuple[str, float, float, float, float]],
) -> None:
    """The same bag of words (F1 >= 0.99), and each word within 1% of the page of its box."""
    assert expected
    f1 = multiset_f1([w[0] for w in found], [w[0] for w in expected])
    assert f1 >= 0.99, f"pdftotext words F1 {f1:.4f}"
    unplaced = list(found)
    for word in expected:
        same = [f for f in unplaced if f[0] == word[0]]
        if not same:
            continue
        nearest = min(
            same, key=lambda f: sum(abs(a - b) for a, b in zip(f[1:], word[1:], strict=True))
        )
        unplaced.remove(nearest)
        off = max(abs(a - b) for a, b in zip(nearest[1:], word[1:], strict=True))
        assert off <= TOLERANCE, f"{word[0]!r} is {off:.4f} of the page away from its box"


@pytest.mark.parametrize("name", [*SCANS, "three_pages.pdf"])
def test_searchable_pdf_has_the_json_words_where_the_json_puts_them(
    client: httpx.Client, key: str, jobs: dict[str, dict[str, Any]], name: str, tmp_path: Path
) -> None:
    job = jobs[name]
    assert job["status"] == "completed"
    response = get_result(client, key, job["id"], "pdf")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    pages = pdftotext_words(response.content, tmp_path)
    assert len(pages) == len(job["results"])
    if name == "three_pages.pdf":  # shown upside down, read upright: both turns are undone
        assert job["results"][2]["document_metadata"]["rotation_deg"] == 180
    for page, found in zip(job["results"], pages, strict=True):
        assert_words_placed(json_words(page), found)


def content(page: pikepdf.Page) -> bytes:
    streams = page.obj.Contents
    parts = streams if isinstance(streams, pikepdf.Array) else [streams]
    return b"".join(part.read_bytes() for part in parts)


def test_text_layer_pages_pass_through_unchanged(
    client: httpx.Client, key: str, jobs: dict[str, dict[str, Any]]
) -> None:
    job = jobs["crazyones.pdf"]
    assert job["results"][0]["pipeline_metadata"]["provider_used"] == "pdf_text"
    response = get_result(client, key, job["id"], "pdf")
    original, copy = pikepdf.open(CORPUS / BORN_DIGITAL), pikepdf.open(io.BytesIO(response.content))
    page, copied = original.pages[0], copy.pages[0]  # the documents stay open while read
    assert content(copied) == content(page)
    fonts = [str(name) for name in copied.resources.Font.keys()]  # noqa: SIM118 - an Object
    assert fonts
    assert not any(name.startswith("/OcrText") for name in fonts)


def alto_schema() -> etree.XMLSchema:
    """ALTO 4.4 with its xlink import resolved to a local stand-in: no network."""

    class Local(etree.Resolver):  # type: ignore[misc]  # lxml ships no type information
        def resolve(self, url: str, pubid: str, context: Any) -> Any:
            if url.endswith("/xlink.xsd"):
                return self.resolve_filename(str(DATA / "xlink.xsd"), context)
            return None

    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(Local())
    return etree.XMLSchema(etree.parse(str(DATA / "alto-4-4.xsd"), parser))


@pytest.mark.parametrize("name", ["skew.pdf", "receipt.jpg", "three_pages.pdf", "crazyones.pdf"])
def test_alto_is_valid_and_holds_the_json_words(
    client: httpx.Client, key: str, jobs: dict[str, dict[str, Any]], name: str
) -> None:
    job = jobs[name]
    response = get_result(client, key, job["id"], "alto")
    assert response.headers["content-type"].startswith("application/xml")
    document = etree.fromstring(response.content)
    schema = alto_schema()
    assert schema.validate(document), schema.error_log
    ns = {"a": "http://www.loc.gov/standards/alto/ns-v4#"}
    for page, element in zip(job["results"], document.iterfind(".//a:Page", ns), strict=True):
        size = page["document_metadata"]["page_dimensions"]
        assert (element.get("WIDTH"), element.get("HEIGHT")) == (
            str(size["width"]),
            str(size["height"]),
        )
        strings = element.findall(".//a:String", ns)
        assert [s.get("CONTENT") for s in strings] == [w[0] for w in json_words(page)]


def test_the_alto_schema_check_is_not_vacuous() -> None:
    """A String without its required CONTENT fails the same validation."""
    pages = [msgspec.json.decode((DATA / "page.json").read_bytes(), type=PageResult)]
    text = write_text_format(OutputFormat.ALTO, pages, "page.png")
    schema = alto_schema()
    assert schema.validate(etree.fromstring(text.encode()))
    broken = etree.fromstring(text.replace(' CONTENT="', ' TITLE="', 1).encode())
    assert not schema.validate(broken)


@pytest.mark.parametrize("name", ["phototest.tif", "form.png", "three_pages.pdf"])
def test_hocr_words_and_boxes_match_the_json(
    client: httpx.Client, key: str, jobs: dict[str, dict[str, Any]], name: str, tmp_path: Path
) -> None:
    job = jobs[name]
    response = get_result(client, key, job["id"], "hocr")
    assert response.headers["content-type"].startswith("text/html")
    document = html.fromstring(response.content)
    pages = document.find_class("ocr_page")
    assert len(pages) == len(job["results"])
    for page, element in zip(job["results"], pages, strict=True):
        size = page["document_metadata"]["page_dimensions"]
        props = dict(p.strip().split(" ", 1) for p in element.get("title").split(";"))
        assert props["bbox"] == f"0 0 {size['width']} {size['height']}"
        assert int(props["ppageno"]) == page["page_number"] - 1
        words = element.find_class("ocrx_word")
        expected = json_words(page)
        assert [w.text_content() for w in words] == [w[0] for w in expected]
        for word, (_, left, top, right, bottom) in zip(words, expected, strict=True):
            title = dict(p.strip().split(" ", 1) for p in word.get("title").split(";"))
            box = [int(v) for v in title["bbox"].split()]
            want = [left * size["width"], top * size["height"], right * size["width"],
                    bottom * size["height"]]  # fmt: skip
            assert max(abs(a - b) for a, b in zip(box, want, strict=True)) <= 1
            assert 0 <= int(title["x_wconf"]) <= 100
    if HOCR_SPEC.is_file():  # the hOCR spec's own validator, when installed
        path = tmp_path / "result.hocr"
        path.write_bytes(response.content)
        report = subprocess.run(
            [str(HOCR_SPEC), "-p", "standard", str(path)], capture_output=True, text=True
        )
        assert "Document is valid" in report.stdout, report.stdout


def test_markdown_and_text_hold_every_page_with_separators(
    client: httpx.Client, key: str, jobs: dict[str, dict[str, Any]]
) -> None:
    job = jobs["three_pages.pdf"]
    markdown = get_result(client, key, job["id"], "markdown")
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.headers["content-disposition"] == 'attachment; filename="three_pages.md"'
    text = get_result(client, key, job["id"], "text").text
    assert text.count("\f") == len(job["results"]) - 1
    for number, (page, page_text) in enumerate(
        zip(job["results"], text.split("\f"), strict=True), 1
    ):
        assert markdown.text.count(f"<!-- page {number} -->") == 1
        words = [w[0] for w in json_words(page)]
        assert words
        assert Counter(page_text.split()) == Counter(words)
    assert markdown.text.index("<!-- page 1 -->") < markdown.text.index("\n---\n")
    assert markdown.text.index("\n---\n") < markdown.text.index("<!-- page 2 -->")


def test_json_result_is_the_finished_job(
    client: httpx.Client, key: str, jobs: dict[str, dict[str, Any]]
) -> None:
    job = jobs["phototest.tif"]
    response = get_result(client, key, job["id"], "json")
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-disposition"] == 'attachment; filename="phototest.json"'
    assert response.json()["results"] == job["results"]


def test_result_is_not_ready_until_the_job_finishes(
    client: httpx.Client, key: str, corpus: Path
) -> None:
    """202 result_not_ready while pending or processing; then the result."""
    page = (corpus / SCANS["form.png"]).read_bytes()
    job_id = client.post(
        "/v1/ocr", headers={"X-API-Key": key}, files={"file": ("form.png", page)},
        data={"cache": "false"},
    ).json()["jobId"]  # fmt: skip
    early = get_result(client, key, job_id, "markdown")
    assert early.status_code == 202
    assert early.json()["error"]["code"] == "result_not_ready"
    assert early.headers["retry-after"] == "1"
    wait_for_job(client, job_id, key)
    assert get_result(client, key, job_id, "markdown").status_code == 200


def test_another_tenants_job_is_not_found(
    client: httpx.Client, gateway: GatewayProcess, jobs: dict[str, dict[str, Any]]
) -> None:
    stranger = create_tenant(gateway.config, name="stranger", credits=1)
    for fmt in OutputFormat:
        response = get_result(client, stranger, jobs["skew.pdf"]["id"], fmt)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "job_not_found"


def test_unknown_format_is_a_bad_request(
    client: httpx.Client, key: str, jobs: dict[str, dict[str, Any]]
) -> None:
    response = get_result(client, key, jobs["skew.pdf"]["id"], "docx")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


@pytest.fixture(scope="module")
def malformed_jobs(gateway: GatewayProcess, key: str) -> Iterator[dict[str, dict[str, Any]]]:
    """Every g_malformed file that the gateway accepts as a job, finished."""
    with httpx.Client(base_url=gateway.url, timeout=120) as client:
        ids = {}
        for name in MALFORMED:
            content = (CORPUS / "g_malformed" / name).read_bytes()
            response = client.post(
                "/v1/ocr", headers={"X-API-Key": key}, files={"file": (Path(name).name, content)}
            )
            if response.status_code == 202:
                ids[name] = response.json()["jobId"]
        yield {name: wait_for_job(client, job_id, key) for name, job_id in ids.items()}


FAILURE_MARKS = {  # how each text format marks a page that was not read
    OutputFormat.MARKDOWN: "was not read (",
    OutputFormat.TEXT: "was not read (",
    OutputFormat.HOCR: 'data-status="failed"',
    OutputFormat.ALTO: 'PAGECLASS="not-read"',
}


def test_every_malformed_job_yields_every_format(
    gateway: GatewayProcess, key: str, malformed_jobs: dict[str, dict[str, Any]]
) -> None:
    """No 500 on hostile files: every format answers, and a failed page is marked in each."""
    assert malformed_jobs
    marked = 0
    with httpx.Client(base_url=gateway.url, timeout=300) as client:
        for name, job in malformed_jobs.items():
            failed = [p["page_number"] for p in job["results"] if p["status"] == "failed"]
            for fmt in OutputFormat:
                response = get_result(client, key, job["id"], fmt)
                assert response.status_code == 200, (name, fmt, response.text[:300])
                if failed and fmt in FAILURE_MARKS:
                    assert response.text.count(FAILURE_MARKS[fmt]) == len(failed), (name, fmt)
                    marked += 1
            pdf = pikepdf.open(io.BytesIO(response.content))  # the last format: the PDF
            assert len(pdf.pages) == len(job["results"])
            for number in failed:
                page = pdf.pages[[p["page_number"] for p in job["results"]].index(number)]
                notes = [str(a.get("/Contents", "")) for a in page.obj.get("/Annots", [])]
                assert any("was not read" in note for note in notes), (name, number)
    assert marked  # some hostile file has a page that failed


# --- Pure functions: no gateway ------------------------------------------------------------


def completed_and_failed() -> list[PageResult]:
    page = msgspec.json.decode((DATA / "page.json").read_bytes(), type=PageResult)
    error = ErrorDetail(code="page_render_failed", message="page 2 could not be rendered")
    return [page, failed_page(2, error)]


@pytest.mark.parametrize("fmt", [f for f in OutputFormat if f not in ("json", "pdf")])
def test_a_failed_page_is_marked_in_every_text_format(fmt: OutputFormat, tmp_path: Path) -> None:
    text = write_text_format(fmt, completed_and_failed(), "scan.pdf")
    assert "page_render_failed" in text
    if fmt in (OutputFormat.MARKDOWN, OutputFormat.TEXT):
        assert "page 2 was not read" in text
    if fmt == OutputFormat.HOCR and HOCR_SPEC.is_file():
        path = tmp_path / "failed.hocr"
        path.write_text(text)
        report = subprocess.run([str(HOCR_SPEC), "-p", "standard", str(path)], capture_output=True)
        assert b"Document is valid" in report.stdout, report.stdout
    if fmt == OutputFormat.ALTO:
        page = etree.fromstring(text.encode()).findall(
            ".//{http://www.loc.gov/standards/alto/ns-v4#}Page"
        )[1]
        assert page.get("PAGECLASS") == "not-read"
        assert alto_schema().validate(etree.fromstring(text.encode()))


def test_a_failed_page_is_kept_with_a_note_in_the_pdf(tmp_path: Path) -> None:
    out = tmp_path / "out.pdf"
    write_searchable_pdf(completed_and_failed(), str(out), Source())
    pdf = pikepdf.open(out)
    assert len(pdf.pages) == 2
    notes = [str(a.Contents) for a in pdf.pages[1].obj.get("/Annots", [])]
    assert any("page 2 was not read (page_render_failed" in note for note in notes)


def test_a_line_without_words_is_split_by_character_counts() -> None:
    line = BlockLine(
        text="ab  cdef", confidence=0.9, geometry=Geometry(x=0.1, y=0.2, width=0.8, height=0.05)
    )
    words = line_words(line)
    assert [w.text for w in words] == ["ab", "cdef"]
    assert words[0].geometry.x == pytest.approx(0.1)
    assert words[0].geometry.width == pytest.approx(0.2)  # 2 of 8 characters
    assert words[1].geometry.x == pytest.approx(0.1 + 0.8 * 4 / 8)
    assert words[1].geometry.width == pytest.approx(0.4)
    assert {w.confidence for w in words} == {0.9}


@pytest.mark.parametrize(
    ("rotate", "top_left", "shown"),
    [
        (0, (10, 220), (100, 200)),  # box (10, 20)-(110, 220): shown as it is
        (90, (10, 20), (200, 100)),  # turned clockwise: the bottom-left corner is at the top
        (180, (110, 20), (100, 200)),
        (270, (110, 220), (200, 100)),
    ],
)
def test_the_upright_frame_maps_the_shown_top_left_corner(
    rotate: int, top_left: tuple[float, float], shown: tuple[float, float]
) -> None:
    frame = page_frame((10, 20, 110, 220), rotate)
    a, b, c, d, e, f = frame.matrix
    x, y = 0.0, frame.height  # the top-left corner of the page as shown
    assert (a * x + c * y + e, b * x + d * y + f) == top_left
    assert (frame.width, frame.height) == shown


def test_cli_writes_a_searchable_pdf_only_to_a_file(tmp_path: Path, corpus: Path) -> None:
    scan = corpus / SCANS["phototest.tif"]
    base = [sys.executable, "-m", "gateway", "ocr", str(scan), "--provider", "tesseract"]
    refused = subprocess.run([*base, "--format", "pdf"], capture_output=True, text=True, cwd=REPO)
    assert refused.returncode == 2
    assert "--out" in refused.stderr
    out = tmp_path / "scan.pdf"
    subprocess.run([*base, "--format", "pdf", "--out", str(out)], check=True, cwd=REPO)
    hocr = subprocess.run(
        [*base, "--format", "hocr"], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    words = [w.text_content() for w in html.fromstring(hocr.encode()).find_class("ocrx_word")]
    assert shutil.which("pdftotext")
    text = subprocess.run(
        ["pdftotext", str(out), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert multiset_f1(text.split(), words) >= 0.99


@pytest.mark.parametrize("size", [(1, 1), (200_000, 40)])
def test_a_page_of_any_size_makes_a_pdf_page_readers_accept(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    """A 1-pixel image, a very long strip: the page is scaled into 3..14,400 points a side."""
    page = msgspec.json.decode((DATA / "page.json").read_bytes(), type=PageResult)
    assert page.document_metadata is not None
    meta = msgspec.structs.replace(
        page.document_metadata, page_dimensions=PageDimensions(width=size[0], height=size[1])
    )
    out = tmp_path / "out.pdf"
    write_searchable_pdf(
        [msgspec.structs.replace(page, document_metadata=meta)], str(out), Source()
    )
    with pikepdf.open(out) as pdf:
        box = [float(v) for v in pdf.pages[0].mediabox]
    assert all(3 <= side <= 14_400 for side in (box[2] - box[0], box[3] - box[1]))
