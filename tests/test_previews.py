"""Page previews over HTTP: a real gateway, real engines, real corpus pages. The PNG is the page
the result's geometry refers to: its size is `page_dimensions`, and the boxes of the JSON drawn
on it cover the ink of their text."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from gateway.config import load_settings
from gateway.work.documents import DocumentKind
from gateway.work.previews import PreviewRequest, render_preview
from tests.support.gateway_process import REPO, GatewayProcess, create_tenant, wait_for_job

Pixels = npt.NDArray[np.uint8]

PHOTOTEST = "a_clean_printed/tesseract/phototest.tif"
# name -> (corpus file, or a copy of PHOTOTEST turned counter-clockwise; the rotation_deg)
PAGES: dict[str, tuple[str, int]] = {
    "image": (PHOTOTEST, 0),
    "scanned_pdf": ("f_pdfs/ocrmypdf/ccitt.pdf", 0),
    "text_layer_pdf": ("f_pdfs/born_digital/crazyones.pdf", 0),
    "turned_180": ("a_clean_printed/tesseract/phototest-rotated-180.png", 180),
    "turned_90": ("turn:90", 90),
}
MIN_INK_COVERED = 0.97  # share of the page's dark pixels inside some line box (measured: 1.000)
MIN_BOX_INK = 0.05  # dark share inside the emptiest box (measured: 0.106 or more)
BOX_PAD_PX = 2  # boxes are rounded outwards to whole pixels, plus this margin


def headers(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def turned(path: Path, degrees_ccw: int) -> bytes:
    """A PNG copy of the page turned counter-clockwise (what a sideways scan looks like)."""
    out = io.BytesIO()
    Image.open(path).rotate(degrees_ccw, expand=True).save(out, "PNG")
    return out.getvalue()


def multipage_tiff(path: Path, frames: int, huge_last: bool = False) -> bytes:
    """`frames` copies of a page as one TIFF; with `huge_last`, a last frame that declares more
    pixels than `limits.max_pixels_per_page` (its page fails; the others are read)."""
    page = Image.open(path).convert("L")
    rest = [page.copy() for _ in range(frames - 1)]
    if huge_last:
        rest[-1] = Image.new("L", (7000, 7000), 255)
    out = io.BytesIO()
    page.save(out, "TIFF", save_all=True, append_images=rest, compression="tiff_deflate")
    return out.getvalue()


def submit(client: httpx.Client, key: str, content: bytes, **fields: str) -> str:
    response = client.post(
        "/v1/ocr", headers=headers(key), files={"file": ("doc", content)}, data=fields
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["jobId"]
    return job_id


def preview(client: httpx.Client, key: str, job_id: str, page: int) -> httpx.Response:
    return client.get(f"/v1/jobs/{job_id}/pages/{page}/preview", headers=headers(key))


def png_pixels(response: httpx.Response) -> Pixels:
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))


def boxes(result: dict[str, Any], level: str) -> list[dict[str, float]]:
    """The geometry of every line ("lines") or every word ("words") of a page result."""
    lines = [line for block in result["content_blocks"] for line in block["lines"]]
    if level == "lines":
        return [line["geometry"] for line in lines]
    return [word["geometry"] for line in lines for word in line.get("words", [])]


def ink_in_boxes(pixels: Pixels, geometries: list[dict[str, float]]) -> tuple[float, float]:
    """(share of the page's dark pixels inside some box, dark share inside the emptiest box)."""
    dark = pixels.mean(axis=2) < 128
    height, width = dark.shape
    inside = np.zeros_like(dark)
    emptiest = 1.0
    for g in geometries:
        x0 = max(0, math.floor(g["x"] * width) - BOX_PAD_PX)
        y0 = max(0, math.floor(g["y"] * height) - BOX_PAD_PX)
        x1 = min(width, math.ceil((g["x"] + g["width"]) * width) + BOX_PAD_PX)
        y1 = min(height, math.ceil((g["y"] + g["height"]) * height) + BOX_PAD_PX)
        inside[y0:y1, x0:x1] = True
        emptiest = min(emptiest, float(dark[y0:y1, x0:x1].mean()))
    return float(dark[inside].sum() / max(int(dark.sum()), 1)), emptiest


@pytest.fixture(scope="module")
def key(gateway: GatewayProcess) -> str:
    return create_tenant(gateway.config, name="previews", credits=10_000)


@pytest.fixture(scope="module")
def read_pages(
    gateway: GatewayProcess, key: str, corpus: Path
) -> Iterator[dict[str, tuple[str, dict[str, Any]]]]:
    """Every page of PAGES submitted at once and read: name -> (job id, its page result)."""
    with httpx.Client(base_url=gateway.url, timeout=120) as client:
        jobs = {}
        for name, (file, degrees) in PAGES.items():
            content = (
                turned(corpus / PHOTOTEST, degrees)
                if file.startswith("turn:")
                else (corpus / file).read_bytes()
            )
            jobs[name] = submit(client, key, content)
        done = {}
        for name, job_id in jobs.items():
            job = wait_for_job(client, job_id, key)
            assert job["status"] == "completed", job
            done[name] = (job_id, job["results"][0])
        yield done


@pytest.mark.parametrize("name", list(PAGES))
def test_preview_is_the_page_the_geometry_refers_to(
    client: httpx.Client,
    gateway: GatewayProcess,
    key: str,
    read_pages: dict[str, tuple[str, dict[str, Any]]],
    name: str,
) -> None:
    """Its size is page_dimensions, and the line (and word) boxes lie on the page's ink."""
    job_id, result = read_pages[name]
    meta = result["document_metadata"]
    assert meta["rotation_deg"] == PAGES[name][1]
    if name == "text_layer_pdf":  # never rendered by the pipeline: its frame was computed
        assert result["pipeline_metadata"]["provider_used"] == "pdf_text"
    response = preview(client, key, job_id, 1)
    assert response.status_code == 200, response.text
    pixels = png_pixels(response)
    size = meta["page_dimensions"]
    assert pixels.shape[:2] == (size["height"], size["width"])
    covered, emptiest = ink_in_boxes(pixels, boxes(result, "lines"))
    assert covered >= MIN_INK_COVERED, (covered, emptiest)
    assert emptiest >= MIN_BOX_INK, (covered, emptiest)
    words = boxes(result, "words")
    if words:
        assert ink_in_boxes(pixels, words)[1] >= MIN_BOX_INK
    if PAGES[name][1]:  # the page before it was turned upright does not fit the boxes
        unturned = np.rot90(pixels, PAGES[name][1] // 90)
        if unturned.shape == pixels.shape:
            assert ink_in_boxes(unturned, boxes(result, "lines"))[1] < MIN_BOX_INK
    assert "preview_scaled" not in gateway.logs()  # the render had that size: nothing scaled


def test_preview_headers_name_the_page(
    client: httpx.Client, key: str, read_pages: dict[str, tuple[str, dict[str, Any]]]
) -> None:
    response = preview(client, key, read_pages["image"][0], 1)
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"] == 'inline; filename="page_0001_preview.png"'
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")


def test_page_not_read_yet_is_202_then_its_preview(
    client: httpx.Client, key: str, corpus: Path
) -> None:
    """The last of six OCR pages is still queued right after the submit: 202 page_not_ready
    with Retry-After; once read, its preview is named for its page number."""
    job_id = submit(client, key, multipage_tiff(corpus / PHOTOTEST, 6), cache="false")
    waiting = preview(client, key, job_id, 6)
    assert waiting.status_code == 202, waiting.text
    assert waiting.json()["error"]["code"] == "page_not_ready"
    assert waiting.headers["retry-after"] == "1"
    assert wait_for_job(client, job_id, key)["status"] == "completed"
    done = preview(client, key, job_id, 6)
    assert done.status_code == 200
    assert done.headers["content-disposition"] == 'inline; filename="page_0006_preview.png"'


def test_failed_page_is_409_and_a_page_outside_the_job_404(
    client: httpx.Client, key: str, corpus: Path
) -> None:
    job_id = submit(client, key, multipage_tiff(corpus / PHOTOTEST, 2, huge_last=True))
    job = wait_for_job(client, job_id, key)
    assert [p["status"] for p in job["results"]] == ["completed", "failed"]
    assert preview(client, key, job_id, 1).status_code == 200
    failed = preview(client, key, job_id, 2)
    assert failed.status_code == 409
    error = failed.json()["error"]
    assert error["code"] == "page_failed"
    assert error["details"]["page_error"]["code"] == "page_render_failed"
    outside = preview(client, key, job_id, 3)
    assert outside.status_code == 404
    assert outside.json()["error"]["code"] == "page_not_found"


def test_page_outside_the_page_ranges_is_404(client: httpx.Client, key: str, corpus: Path) -> None:
    pdf = (corpus / "f_pdfs/born_digital/tracemonkey.pdf").read_bytes()
    job_id = submit(client, key, pdf, page_ranges='[{"start": 2, "end": 2}]')
    assert wait_for_job(client, job_id, key)["status"] == "completed"
    assert preview(client, key, job_id, 2).status_code == 200
    response = preview(client, key, job_id, 1)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "page_not_found"


def test_page_of_a_cancelled_job_never_read_is_409(
    client: httpx.Client, key: str, corpus: Path
) -> None:
    job_id = submit(client, key, multipage_tiff(corpus / PHOTOTEST, 6), cache="false")
    client.post(f"/v1/jobs/{job_id}/cancel", headers=headers(key)).raise_for_status()
    job = wait_for_job(client, job_id, key)
    read = {p["page_number"] for p in job["results"]}
    assert 6 not in read, "the last page was read before the cancel reached it"
    response = preview(client, key, job_id, 6)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "page_not_read"


def test_another_tenants_job_is_404_like_a_missing_one(
    client: httpx.Client,
    gateway: GatewayProcess,
    key: str,
    read_pages: dict[str, tuple[str, dict[str, Any]]],
) -> None:
    other = create_tenant(gateway.config, name="other", credits=10)
    theirs = preview(client, other, read_pages["image"][0], 1)
    missing = preview(client, key, "no-such-job", 1)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json()
    assert theirs.json()["error"]["code"] == "job_not_found"


def test_deleting_the_job_makes_its_preview_404(
    client: httpx.Client, key: str, corpus: Path
) -> None:
    job_id = submit(client, key, turned(corpus / PHOTOTEST, 180), cache="false")
    wait_for_job(client, job_id, key)
    assert preview(client, key, job_id, 1).status_code == 200
    assert client.delete(f"/v1/jobs/{job_id}", headers=headers(key)).status_code == 204
    response = preview(client, key, job_id, 1)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "job_not_found"


@pytest.mark.parametrize("page", ["0", "-1", "1000001"])
def test_page_number_out_of_bounds_is_400(client: httpx.Client, key: str, page: str) -> None:
    response = client.get(f"/v1/jobs/some-job/pages/{page}/preview", headers=headers(key))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


def test_preview_needs_an_api_key(client: httpx.Client) -> None:
    response = client.get("/v1/jobs/some-job/pages/1/preview")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_a_render_of_another_size_is_scaled_to_page_dimensions(corpus: Path) -> None:
    """Rendering settings changed since the page was read: the preview still has the result's
    size (relative geometry lands on the same ink), and says it was scaled."""
    settings = load_settings(REPO / "config.yaml")
    request = PreviewRequest(
        path=str(corpus / "f_pdfs/ocrmypdf/ccitt.pdf"),
        kind=DocumentKind.PDF,
        page_number=1,
        rotation_deg=0,
        width=850,  # read at 100 DPI
        height=1100,
    )
    made = render_preview(request, settings, lambda _: None)
    assert made.scaled
    assert Image.open(io.BytesIO(made.png)).size == (850, 1100)
    exact = render_preview(
        msgspec.structs.replace(request, width=1700, height=2200), settings, lambda _: None
    )
    assert not exact.scaled
    assert Image.open(io.BytesIO(exact.png)).size == (1700, 2200)
