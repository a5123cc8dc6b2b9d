"""Words of every line: real engines and text layers on real corpus pages, the approximate split
of the remote providers, and the words of the native result over HTTP."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import numpy as np
import pytest

from benchmarks.metrics import bag_of_words_f1
from gateway.work.documents import detect_kind, render_page
from gateway.work.layout import build_blocks
from gateway.work.textlayer import read_text_layer
from providers.ppocr_geometry import crop_words, space_after
from providers.rapidocr import RapidOCRConfig, RapidOCRProvider
from providers.remote_gateway import UpstreamJob, page_from_job
from providers.tesseract import TesseractConfig, TesseractProvider
from providers.types import PageImage, TextLine, TextWord, quad_bounds, quad_from_box
from providers.vision_lines import MarkdownLine, locate_lines
from tests.support.gateway_process import wait_for_job

TOLERANCE_PX = 1.0

Reader = Callable[[Path], list[TextLine]]


def _page(path: Path) -> PageImage:
    kind = detect_kind(path.read_bytes()[:2048])
    assert kind is not None
    return render_page(path, kind, 0, 200, 40_000_000)


@pytest.fixture(scope="module")
def rapidocr() -> RapidOCRProvider:
    return RapidOCRProvider("rapidocr", RapidOCRConfig())


@pytest.fixture(scope="module")
def readers(rapidocr: RapidOCRProvider) -> dict[str, Reader]:
    tesseract = TesseractProvider("tesseract", TesseractConfig())
    ppocrv4 = RapidOCRProvider("ppocrv4", RapidOCRConfig(models="PP-OCRv4"))

    def text_layer(path: Path) -> list[TextLine]:
        layer = read_text_layer(path, 0, 200.0)
        assert layer is not None
        return list(layer.lines)

    return {
        "rapidocr": lambda path: list(rapidocr.recognize(_page(path)).lines),
        "ppocrv4": lambda path: list(ppocrv4.recognize(_page(path)).lines),
        "tesseract": lambda path: list(tesseract.recognize(_page(path)).lines),
        "text_layer": text_layer,
    }


# (reader, page, its ground truth or None)
PAGES = [
    (
        "rapidocr",
        "a_clean_printed/tesseract/phototest.tif",
        "a_clean_printed/tesseract/phototest.gt.txt",
    ),
    ("rapidocr", "c_receipts/sroie/000.jpg", None),
    ("ppocrv4", "c_receipts/sroie/000.jpg", None),
    (
        "tesseract",
        "a_clean_printed/tesseract/phototest.tif",
        "a_clean_printed/tesseract/phototest.gt.txt",
    ),
    ("tesseract", "b_forms/funsd/82491256.png", None),
    (
        "text_layer",
        "f_pdfs/born_digital/crazyones.pdf",
        "f_pdfs/born_digital/crazyones.expected.txt",
    ),
    ("text_layer", "f_pdfs/born_digital/tracemonkey.pdf", None),
]
IDS = [f"{reader}-{Path(page).stem}" for reader, page, _ in PAGES]


@pytest.fixture(scope="module")
def read_lines(readers: dict[str, Reader], corpus: Path) -> Callable[[str, str], list[TextLine]]:
    """Each page read once per reader, for all the tests below."""
    cache: dict[tuple[str, str], list[TextLine]] = {}

    def read(reader: str, page: str) -> list[TextLine]:
        if (reader, page) not in cache:
            cache[reader, page] = readers[reader](corpus / page)
        return cache[reader, page]

    return read


def _spelled(words: tuple[TextWord, ...]) -> str:
    return " ".join(word.text for word in words)


@pytest.mark.parametrize(("reader", "page", "truth"), PAGES, ids=IDS)
def test_every_line_has_words_that_spell_it(
    read_lines: Callable[[str, str], list[TextLine]], reader: str, page: str, truth: str | None
) -> None:
    lines = read_lines(reader, page)
    assert lines
    for line in lines:
        assert line.words, line.text
        assert _spelled(line.words) == line.text
        assert all(word.text and not any(c.isspace() for c in word.text) for word in line.words)
        assert all(0.0 <= word.confidence <= 1.0 for word in line.words)


@pytest.mark.parametrize(("reader", "page", "truth"), PAGES, ids=IDS)
def test_word_boxes_lie_in_their_line_left_to_right(
    read_lines: Callable[[str, str], list[TextLine]], reader: str, page: str, truth: str | None
) -> None:
    for line in read_lines(reader, page):
        left, top, right, bottom = quad_bounds(line.quad)
        boxes = [quad_bounds(word.quad) for word in line.words]
        for x1, y1, x2, y2 in boxes:
            assert left - TOLERANCE_PX <= x1 < x2 <= right + TOLERANCE_PX, line.text
            assert top - TOLERANCE_PX <= y1 <= y2 <= bottom + TOLERANCE_PX, line.text
        for before, after in itertools.pairwise(boxes):
            if reader == "text_layer" and after[1] >= before[3] - TOLERANCE_PX:
                continue  # PDFium gives two rows joined by a hyphenated word as one line
            assert before[0] < after[0], line.text
            assert before[2] <= after[2] + TOLERANCE_PX, line.text


@pytest.mark.parametrize(
    ("reader", "page", "truth"),
    [p for p in PAGES if p[2]],
    ids=[i for i, p in zip(IDS, PAGES, strict=True) if p[2]],
)
def test_words_read_what_the_lines_read(
    read_lines: Callable[[str, str], list[TextLine]],
    corpus: Path,
    reader: str,
    page: str,
    truth: str,
) -> None:
    """Against the ground truth, the page's words score exactly as its lines do."""
    lines = read_lines(reader, page)
    reference = (corpus / truth).read_text()
    by_lines = "\n".join(line.text for line in lines)
    by_words = "\n".join(word.text for line in lines for word in line.words)
    assert bag_of_words_f1(by_lines, by_words) == 1.0
    assert bag_of_words_f1(reference, by_words) == bag_of_words_f1(reference, by_lines) >= 0.8


def test_words_of_a_vertical_line_run_up_it(rapidocr: RapidOCRProvider, corpus: Path) -> None:
    """A text line turned 90 degrees counter-clockwise reads bottom to top: so do its words."""
    page = _page(corpus / "a_clean_printed/uw3_lines/010003.bin.png")
    turned = PageImage(pixels=np.ascontiguousarray(np.rot90(page.pixels)), dpi=200.0, page_number=1)
    line = max(rapidocr.recognize(turned).lines, key=lambda line: len(line.words))
    assert _spelled(line.words) == line.text == "is further assumed that"
    bottoms = [quad_bounds(word.quad)[3] for word in line.words]
    assert bottoms == sorted(bottoms, reverse=True)
    left, top, right, bottom = quad_bounds(line.quad)
    for x1, y1, x2, y2 in (quad_bounds(word.quad) for word in line.words):
        assert left - TOLERANCE_PX <= x1 < x2 <= right + TOLERANCE_PX
        assert top - TOLERANCE_PX <= y1 < y2 <= bottom + TOLERANCE_PX


# --- RapidOCR's words in a crop ----------------------------------------------------------------


def test_crop_words_split_at_restored_and_emitted_spaces() -> None:
    """Spaces put back from blank gaps and spaces the recognizer read both end a word; a doubled
    one ends it once."""
    chars = ["A", "B", "C", " ", " ", "D"]
    spans = [(0, 0), (2, 2), (6, 6), (8, 8), (10, 10), (12, 12)]
    blank = np.zeros(120, dtype=bool)
    blank[24:48] = True  # three frames of blank paper between B and C
    breaks = space_after(chars, spans, blank)
    assert breaks == [False, True, False, False, False]
    words = crop_words(chars, spans, [0.9, 0.7, 0.8, 0.5, 0.5, 0.6], breaks, blank)
    assert [w.text for w in words] == ["AB", "C", "D"]
    assert words[0].confidence == pytest.approx(0.8)  # the mean of its characters
    assert all(0.0 <= w.start < w.end <= 1.0 for w in words)
    assert words[0].end <= 24 / 120 <= words[1].start  # the blank gap lies between them


# --- The approximate split of remote providers ----------------------------------------------


def test_a_vlm_line_is_split_by_character_counts() -> None:
    """Words share their line's box in proportion to characters, spaces counted."""
    detected = [TextLine(text="one three", confidence=0.8, quad=quad_from_box(100, 50, 190, 70))]
    line = MarkdownLine(text="one three", paragraph=0, row=0)
    [located], _ = locate_lines([line], detected, 600, 800, confidence=0.9)
    assert [w.text for w in located.words] == ["one", "three"]
    assert [quad_bounds(w.quad) for w in located.words] == [
        pytest.approx((100, 50, 130, 70)),
        pytest.approx((140, 50, 190, 70)),
    ]
    assert {w.confidence for w in located.words} == {0.9}


def _upstream(line: dict[str, object]) -> UpstreamJob:
    page = {
        "page_number": 1,
        "status": "completed",
        "document_metadata": {"source_model": "rapidocr"},
        "content_blocks": [{"lines": [line]}],
    }
    return msgspec.convert({"id": "j1", "status": "completed", "results": [page]}, UpstreamJob)


def test_upstream_words_are_kept_else_split() -> None:
    geometry = {"x": 0.1, "y": 0.2, "width": 0.5, "height": 0.1}
    words = [
        {
            "text": "Hello",
            "confidence": 0.7,
            "geometry": {"x": 0.1, "y": 0.2, "width": 0.2, "height": 0.1},
        },
        {
            "text": "world",
            "confidence": 0.8,
            "geometry": {"x": 0.4, "y": 0.2, "width": 0.2, "height": 0.1},
        },
    ]
    line = {"text": "Hello world", "confidence": 0.9, "geometry": geometry}
    [kept] = page_from_job(_upstream({**line, "words": words}), 1000, 500).lines
    assert [(w.text, w.confidence) for w in kept.words] == [("Hello", 0.7), ("world", 0.8)]
    assert quad_bounds(kept.words[1].quad) == pytest.approx((400, 100, 600, 150))
    [split] = page_from_job(_upstream(line), 1000, 500).lines
    assert [(w.text, w.confidence) for w in split.words] == [("Hello", 0.9), ("world", 0.9)]
    assert quad_bounds(split.words[0].quad) == pytest.approx((100, 100, 100 + 500 * 5 / 11, 150))


# --- Layout and the native result -----------------------------------------------------------


def test_layout_gives_each_line_its_words_in_relative_geometry() -> None:
    """Fragments of one row join with their words in reading order; geometry is clamped."""
    right = TextLine(
        text="world",
        confidence=0.8,
        quad=quad_from_box(600, 100, 1100, 140),
        words=(TextWord(text="world", confidence=0.8, quad=quad_from_box(600, 100, 1100, 140)),),
    )
    left = TextLine(text="Hello there", confidence=0.9, quad=quad_from_box(100, 100, 500, 140))
    [block] = build_blocks([right, left], 1000, 1000)
    [line] = block.lines
    assert line.text == "Hello there world"
    assert [w.text for w in line.words] == ["Hello", "there", "world"]
    assert line.words[2].geometry.x + line.words[2].geometry.width == 1.0  # clamped
    assert line.words[0].geometry.x == pytest.approx(0.1)


def _lines(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [line for block in job["results"][0]["content_blocks"] for line in block["lines"]]


@pytest.mark.parametrize(
    "file", ["a_clean_printed/tesseract/phototest.tif", "f_pdfs/born_digital/crazyones.pdf"]
)
def test_result_lines_carry_words_unless_asked_not_to(
    client: httpx.Client, api_key: str, corpus: Path, file: str
) -> None:
    """Over HTTP, an OCR page and a text-layer page: words in 0..1 that spell each line;
    `?words=false` leaves them out."""
    headers = {"X-API-Key": api_key}
    content = (corpus / file).read_bytes()
    submitted = client.post("/v1/ocr", headers=headers, files={"file": (Path(file).name, content)})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["jobId"]
    lines = _lines(wait_for_job(client, job_id, api_key))
    assert lines
    for line in lines:
        assert " ".join(w["text"] for w in line["words"]) == line["text"]
        for word in line["words"]:
            g = word["geometry"]
            assert all(0.0 <= v <= 1.0 for v in g.values())
            assert g["x"] + g["width"] <= 1.0 + 1e-6
            assert g["y"] + g["height"] <= 1.0 + 1e-6
    bare = client.get(f"/v1/jobs/{job_id}", headers=headers, params={"words": "false"})
    assert bare.status_code == 200
    assert [line["text"] for line in _lines(bare.json())] == [line["text"] for line in lines]
    assert not any(line.get("words") for line in _lines(bare.json()))
