"""The local engines, tuned: real RapidOCR (PP-OCRv6, and PP-OCRv4) and Tesseract on real corpus
pages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from benchmarks.corpus import load_documents, load_ground_truth
from benchmarks.metrics import bag_of_words_f1
from gateway.work.documents import detect_kind, render_page
from providers.errors import ProviderUnavailableError
from providers.onnx_sessions import select_device
from providers.ppocr_geometry import content_bounds, respace
from providers.ppocr_models import MODEL_SETS, verified_path
from providers.rapidocr import RapidOCRConfig, RapidOCRProvider
from providers.tesseract import TesseractConfig, TesseractProvider, encode_pnm, parse_tsv
from providers.types import PageImage, turned_180


def _page(corpus: Path, relative: str) -> PageImage:
    path = corpus / relative
    kind = detect_kind(path.read_bytes()[:2048])
    assert kind is not None
    return render_page(path, kind, 0, 200, 40_000_000)


def _truth(corpus: Path, relative: str) -> str:
    category, file = relative.split("/", 1)
    [document] = [d for d in load_documents([corpus / category]) if d.entry.file == file]
    return load_ground_truth(document)[1].text


def _text(lines: Any) -> str:
    return "\n".join(line.text for line in lines)


@pytest.fixture(scope="module")
def rapidocr() -> RapidOCRProvider:
    return RapidOCRProvider("rapidocr", RapidOCRConfig())  # PP-OCRv6 small, the default


@pytest.fixture(scope="module")
def ppocrv4() -> RapidOCRProvider:
    return RapidOCRProvider("ppocrv4", RapidOCRConfig(models="PP-OCRv4"))


@pytest.fixture(scope="module")
def tesseract() -> TesseractProvider:
    return TesseractProvider("tesseract", TesseractConfig())


def _blank_page() -> PageImage:
    return PageImage(pixels=np.full((600, 400, 3), 255, dtype=np.uint8), dpi=200.0, page_number=1)


# --- RapidOCR ----------------------------------------------------------------------------------


def test_word_spacing_restored_on_receipt_line(ppocrv4: RapidOCRProvider, corpus: Path) -> None:
    """PP-OCRv4's recognizer reads "TAMANDAYA"; the blank gap in the crop puts the space back."""
    page = _page(corpus, "c_receipts/sroie/000.jpg")
    unspaced = RapidOCRProvider("plain", RapidOCRConfig(models="PP-OCRv4", restore_spaces=False))
    assert "TAMANDAYA" in _text(unspaced.recognize(page).lines)
    lines = [line.text for line in ppocrv4.recognize(page).lines]
    assert any(text.startswith("TAMAN DAYA") for text in lines)
    assert "CASH BILL" in lines


def test_word_spaces_of_pp_ocrv6_kept_once(rapidocr: RapidOCRProvider, corpus: Path) -> None:
    """PP-OCRv6 reads the spaces itself; restoring puts none beside them (no doubled spaces)."""
    lines = [
        line.text for line in rapidocr.recognize(_page(corpus, "c_receipts/sroie/000.jpg")).lines
    ]
    assert any(text.startswith("TAMAN DAYA") for text in lines)
    assert "CASH BILL" in lines
    assert not any("  " in text for text in lines)


def test_tuned_reading_matches_ground_truth_at_least_as_well_as_stock(
    rapidocr: RapidOCRProvider, corpus: Path
) -> None:
    """Our loop on the PP-OCRv6 models reads a form as well as stock rapidocr 3.10.0
    `RapidOCR()` (per category over many pages: `python -m benchmarks.engine_speed`)."""
    from rapidocr import RapidOCR

    relative = "b_forms/funsd/82491256.png"
    page, truth = _page(corpus, relative), _truth(corpus, relative)
    result: Any = RapidOCR(params={"Global.log_level": "warning"})(page.pixels[:, :, ::-1].copy())
    stock = bag_of_words_f1(truth, "\n".join(result.txts or ()))
    assert bag_of_words_f1(truth, _text(rapidocr.recognize(page).lines)) >= stock


def test_blank_page_gives_no_lines(rapidocr: RapidOCRProvider) -> None:
    reading = rapidocr.recognize(_blank_page())
    assert reading.lines == ()
    assert (reading.width, reading.height) == (400, 600)


def test_single_text_line_image_is_read_whole(rapidocr: RapidOCRProvider, corpus: Path) -> None:
    """A 43 x 1220 line: found thanks to the margin, and not turned over by a classifier."""
    page = _page(corpus, "a_clean_printed/uw3_lines/010019.bin.png")
    [line] = rapidocr.recognize(page).lines
    assert line.text == "higher than AHD (Tasmania) by that amount relative to the geoid surface."


def test_upside_down_page_is_read_upright(rapidocr: RapidOCRProvider, corpus: Path) -> None:
    page = _page(corpus, "a_clean_printed/tesseract/phototest-rotated-180.png")
    read = rapidocr.recognize(page)
    assert "The quick brown dog jumped over the" in _text(read.lines)
    assert read.upside_down
    assert not rapidocr.recognize(
        _page(corpus, "a_clean_printed/tesseract/phototest.tif")
    ).upside_down


def test_an_upside_down_reading_turned_lies_where_the_upright_page_reads(
    rapidocr: RapidOCRProvider, corpus: Path
) -> None:
    """turned_180 puts an upside-down reading on the upright page: lines in reading order from
    the top, each line's and word's corners where reading the upright original puts them."""
    upright = rapidocr.recognize(_page(corpus, "a_clean_printed/tesseract/phototest.tif"))
    turned = turned_180(
        rapidocr.recognize(_page(corpus, "a_clean_printed/tesseract/phototest-rotated-180.png"))
    )
    assert not turned.upside_down
    assert "upside down" in (turned.note or "")
    assert [line.text for line in turned.lines] == [line.text for line in upright.lines]
    for a, b in zip(upright.lines, turned.lines, strict=True):
        for (ax, ay), (bx, by) in zip(a.quad, b.quad, strict=True):
            assert abs(ax - bx) < 12, (a.text, a.quad, b.quad)
            assert abs(ay - by) < 12, (a.text, a.quad, b.quad)
        assert [w.text for w in a.words] == [w.text for w in b.words]
        for wa, wb in zip(a.words, b.words, strict=True):
            assert abs(wa.quad[0][0] - wb.quad[0][0]) < 12, (wa, wb)


def test_quads_are_in_page_pixels(rapidocr: RapidOCRProvider, corpus: Path) -> None:
    """Lines read on a trimmed, scaled-down copy of a sheet map back onto the sheet as given."""
    page = _page(corpus, "a_clean_printed/tesseract/phototest.tif")
    [alone] = [line for line in rapidocr.recognize(page).lines if line.text.startswith("This")]
    sheet = np.full((3600, 3000, 3), 255, dtype=np.uint8)
    offsets = [(400, 300), (2200, 2900)]  # (x, y): content spans 2240 x 3080, beyond 2000
    for x, y in offsets:
        sheet[y : y + page.height, x : x + page.width] = page.pixels
    big = PageImage(pixels=sheet, dpi=page.dpi, page_number=1)
    found = [line for line in rapidocr.recognize(big).lines if line.text.startswith("This")]
    assert len(found) == 2
    for (x, y), line in zip(offsets, sorted(found, key=lambda ln: ln.quad[0][1]), strict=True):
        for (px, py), (qx, qy) in zip(alone.quad, line.quad, strict=True):
            assert abs(qx - (px + x)) < 15
            assert abs(qy - (py + y)) < 15


def test_cpu_is_used_without_a_cuda_provider(rapidocr: RapidOCRProvider) -> None:
    """Without onnxruntime's CUDA provider the sessions run on the CPU, and say so."""
    import onnxruntime  # type: ignore[import-untyped]  # ships no type information

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        assert rapidocr.device in ("cuda", "cpu")  # cpu: the session fell back
    else:
        assert rapidocr.device == "cpu"
    assert rapidocr.recognize(_blank_page()).model == "rapidocr-3.10.0/PP-OCRv6-small"


NO_NETWORK = textwrap.dedent(
    """
    import json, socket, sys
    events = []
    def hook(event, args):
        if event.startswith("socket.") or event.startswith("urllib."):
            events.append(event)
            raise OSError(f"network use while loading: {event}")
    sys.addaudithook(hook)
    import numpy as np
    from providers.rapidocr import RapidOCRConfig, RapidOCRProvider
    from providers.types import PageImage
    page = PageImage(pixels=np.full((600, 400, 3), 255, np.uint8), dpi=200.0, page_number=1)
    for models in ("PP-OCRv6", "PP-OCRv4"):
        RapidOCRProvider(models, RapidOCRConfig(models=models)).recognize(page)
    loaded = list(events)
    try:
        socket.create_connection(("127.0.0.1", 9), timeout=1)  # the hook sees a real attempt
    except OSError:
        pass
    print(json.dumps({"loading": loaded, "probe": events[len(loaded):]}))
    """
)


def test_loading_the_engines_opens_no_network_connection() -> None:
    """Loading and running both model sets makes no socket at all (an audit hook in a fresh
    interpreter records every socket event; a probe connection shows that the hook sees one)."""
    proc = subprocess.run(
        [sys.executable, "-c", NO_NETWORK],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["loading"] == []
    assert seen["probe"]  # socket.__new__ (and connect) of the probe were recorded


def test_a_model_file_that_differs_from_its_pinned_digest_is_refused() -> None:
    """The SHA-256 of every model file is checked at start: a mismatch stops the engine."""
    v6 = MODEL_SETS["PP-OCRv6"]
    assert v6.path(v6.det).name == "PP-OCRv6_det_small.onnx"
    with pytest.raises(ProviderUnavailableError, match="SHA-256"):
        verified_path(v6.package, v6.det, "0" * 64)


@pytest.mark.parametrize(
    ("use_cuda", "available", "device"),
    [
        ("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda"),
        (True, ["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda"),
        (False, ["CUDAExecutionProvider", "CPUExecutionProvider"], "cpu"),
        ("auto", ["CPUExecutionProvider"], "cpu"),
        (True, ["AzureExecutionProvider", "CPUExecutionProvider"], "cpu"),
    ],
)
def test_device_selection(use_cuda: Any, available: list[str], device: str) -> None:
    assert select_device(use_cuda, available) == device


def test_use_cuda_takes_auto_or_a_boolean() -> None:
    assert msgspec.convert({"kind": "rapidocr", "use_cuda": True}, RapidOCRConfig).use_cuda
    with pytest.raises(msgspec.ValidationError, match="use_cuda"):
        msgspec.convert({"kind": "rapidocr", "use_cuda": "yes"}, RapidOCRConfig)


@pytest.mark.parametrize(
    ("gap_columns", "expected"),
    [
        (2, "AB"),  # letters of one word: a sliver of white
        (8, "AB"),  # 0.33 pitch, characters one pitch apart: still one word
        (15, "A B"),  # 0.62 pitch: a word space
    ],
)
def test_respace_by_blank_gap(gap_columns: int, expected: str) -> None:
    """Two characters three frames (24 columns) apart; blank columns centred between them."""
    blank = np.zeros(48, dtype=bool)
    start = 16 - gap_columns // 2
    blank[start : start + gap_columns] = True
    assert respace(["A", "B"], [(0, 0), (3, 3)], blank) == expected


def test_respace_keeps_the_recognizers_own_spaces() -> None:
    assert respace(["A", " ", "B"], [(0, 0), (2, 2), (4, 4)], np.zeros(48, dtype=bool)) == "A B"


def test_content_bounds_trim_a_small_page_on_a_large_sheet() -> None:
    sheet = np.full((4000, 3000, 3), 255, dtype=np.uint8)
    sheet[1000:1500, 800:1600] = 0
    top, left, bottom, right = content_bounds(sheet)
    assert 900 <= top <= 1000
    assert 700 <= left <= 800
    assert 1500 <= bottom <= 1600
    assert 1600 <= right <= 1700
    assert content_bounds(_blank_page().pixels) == (0, 0, 600, 400)


# --- Tesseract ---------------------------------------------------------------------------------


TSV = "\n".join(
    [
        "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext",
        "1\t1\t0\t0\t0\t0\t0\t0\t640\t480\t-1\t",
        "4\t1\t1\t1\t1\t0\t36\t92\t582\t28\t-1\t",
        "5\t1\t1\t1\t1\t1\t36\t92\t60\t24\t96.5\tThis",
        "5\t1\t1\t1\t1\t2\t109\t92\t20\t24\t90\tis",
        "5\t1\t1\t1\t2\t1\t36\t130\t40\t24\t80\tof",
        "5\t1\t2\t1\t1\t1\t300\t400\t50\t20\t-1\t ",
        "5\t1\t2\t1\t1\t2\t360\t400\t50\t20\t150\tend",
    ]
)


def test_tsv_words_grouped_into_lines() -> None:
    lines = parse_tsv(TSV)
    assert [line.text for line in lines] == ["This is", "of", "end"]
    first = lines[0]
    assert [w.text for w in first.words] == ["This", "is"]
    assert first.quad == ((36.0, 92.0), (129.0, 92.0), (129.0, 116.0), (36.0, 116.0))
    assert first.confidence == pytest.approx((0.965 + 0.90) / 2)
    assert lines[2].confidence == 1.0  # clamped to 0..1


def test_tesseract_one_thread_reads_what_stock_reads(
    tesseract: TesseractProvider, corpus: Path
) -> None:
    """OMP_THREAD_LIMIT=1 changes the speed, not the text: the same as the stock CLI."""
    page = _page(corpus, "b_forms/funsd/82491256.png")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")}
    stock = subprocess.run(
        [
            "tesseract",
            "stdin",
            "stdout",
            "-l",
            "eng",
            "--psm",
            "3",
            "--oem",
            "1",
            "--dpi",
            str(round(page.dpi)),
            "tsv",
        ],
        input=encode_pnm(page),
        capture_output=True,
        env=env,
        check=True,
        timeout=120,
    )
    expected = [line.text for line in parse_tsv(stock.stdout.decode())]
    assert [line.text for line in tesseract.recognize(page).lines] == expected
    assert expected


def test_tesseract_blank_page_gives_no_lines(tesseract: TesseractProvider) -> None:
    assert tesseract.recognize(_blank_page()).lines == ()
