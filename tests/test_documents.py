"""Type detection from bytes, page selection, render limits: pure functions on real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gateway.errors import (
    DocumentError,
    EncryptedDocumentError,
    ImageTooLargeError,
    InvalidPageRangesError,
)
from gateway.page_errors import (
    PageEncryptedError,
    PageError,
    PageImageTooLargeError,
    PageNotFoundError,
    PageRenderFailedError,
)
from gateway.work.documents import (
    DocumentKind,
    detect_kind,
    inspect_document,
    pdf_render_scale,
    render_page,
    render_thumbnail,
)
from gateway.work.inspection import parse_page_ranges


@pytest.mark.parametrize(
    ("file", "kind"),
    [
        ("a_clean_printed/tesseract/phototest.tif", DocumentKind.TIFF),
        ("a_clean_printed/tesseract/phototest-rotated-180.png", DocumentKind.PNG),
        ("c_receipts/sroie/000.jpg", DocumentKind.JPEG),
        ("f_pdfs/born_digital/crazyones.pdf", DocumentKind.PDF),
        ("g_malformed/image/pillow_bmp_b_reallybig.bmp", DocumentKind.BMP),
        ("g_malformed/image/pillow_decompression_bomb.gif", None),
        ("g_malformed/image/pillow_decompression_bomb.ico", None),
    ],
)
def test_kind_is_detected_from_the_bytes(
    corpus: Path, file: str, kind: DocumentKind | None
) -> None:
    assert detect_kind((corpus / file).read_bytes()[:2048]) == kind


def test_webp_is_detected() -> None:
    assert detect_kind(b"RIFF\x10\x00\x00\x00WEBPVP8 ") == DocumentKind.WEBP
    assert detect_kind(b"plain text") is None


@pytest.mark.parametrize(
    ("raw", "count", "pages"),
    [
        (None, 3, [1, 2, 3]),
        ("", 2, [1, 2]),
        ('[{"start":2,"end":3}]', 5, [2, 3]),
        ('[{"start":4,"end":5},{"start":1,"end":2},{"start":2,"end":2}]', 5, [1, 2, 4, 5]),
    ],
)
def test_page_ranges_select_sorted_unique_pages(
    raw: str | None, count: int, pages: list[int]
) -> None:
    assert parse_page_ranges(raw, count) == pages


@pytest.mark.parametrize(
    "raw",
    [
        '[{"start":0,"end":1}]',
        '[{"start":1,"end":4}]',
        "{}",
        '[{"start":1}]',
        '[{"start":1,"end":1,"x":2}]',
        "[]",
    ],
)
def test_bad_page_ranges_are_refused(raw: str) -> None:
    with pytest.raises(InvalidPageRangesError):
        parse_page_ranges(raw, 3)


def test_render_scale_keeps_pages_under_the_pixel_limit() -> None:
    assert pdf_render_scale(612, 792, 200, 40_000_000) == pytest.approx(200 / 72)
    poster = pdf_render_scale(2160, 2160, 200, 10_000_000)
    assert (2160 * poster) ** 2 == pytest.approx(10_000_000)


def test_huge_pdf_page_renders_within_the_limit(corpus: Path) -> None:
    page = render_page(
        corpus / "g_malformed/pdf/ocrmypdf_enormous.pdf", DocumentKind.PDF, 0, 200, 4_000_000
    )
    assert page.width * page.height <= 4_000_000
    assert page.dpi < 200


def test_declared_giant_image_is_refused_before_decoding(corpus: Path) -> None:
    with pytest.raises(ImageTooLargeError):
        inspect_document(
            corpus / "g_malformed/image/pillow_bmp_b_reallybig.bmp", DocumentKind.BMP, 40_000_000
        )


def test_user_password_pdf_is_reported_as_encrypted(corpus: Path) -> None:
    with pytest.raises(EncryptedDocumentError):
        inspect_document(
            corpus / "g_malformed/pdf/pdfjs_issue6010_1.pdf", DocumentKind.PDF, 40_000_000
        )


def test_rotated_pdf_page_renders_upright_dimensions(corpus: Path) -> None:
    info = inspect_document(
        corpus / "f_pdfs/born_digital/tracemonkey.pdf", DocumentKind.PDF, 40_000_000
    )
    assert info.page_count == 14
    page = render_page(
        corpus / "f_pdfs/born_digital/tracemonkey.pdf", DocumentKind.PDF, 0, 100, 40_000_000
    )
    assert page.height > page.width  # portrait letter page


@pytest.mark.parametrize(
    "file",
    [
        "c_receipts/sroie/000.jpg",
        "f_pdfs/ocrmypdf/linn.png",
        "a_clean_printed/tesseract/phototest.tif",
    ],
)
def test_inspection_keeps_the_first_page_thumbnail_from_its_one_decode(
    corpus: Path, file: str
) -> None:
    path = corpus / file
    kind = detect_kind(path.read_bytes()[:2048])
    assert kind is not None
    info = inspect_document(path, kind, 40_000_000, thumbnail_side=1000)
    thumbnail = render_thumbnail(path, kind, 0, 300, 40_000_000, 1000)
    assert info.first_page is not None
    assert max(info.first_page.image.pixels.shape[:2]) <= 1000
    assert np.array_equal(info.first_page.image.pixels, thumbnail.image.pixels)
    assert info.first_page.reading_scale == thumbnail.reading_scale
    assert info.first_page.image.dpi == thumbnail.image.dpi


def test_truncated_jpeg_is_refused_even_when_decoded_at_thumbnail_scale(
    corpus: Path, tmp_path: Path
) -> None:
    whole = (corpus / "c_receipts/sroie/000.jpg").read_bytes()
    truncated = tmp_path / "half.jpg"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DocumentError, match="truncated"):
        inspect_document(truncated, DocumentKind.JPEG, 40_000_000, thumbnail_side=1000)


def test_damaged_page_fails_with_page_render_failed(corpus: Path, tmp_path: Path) -> None:
    whole = (corpus / "c_receipts/sroie/000.jpg").read_bytes()
    truncated = tmp_path / "half.jpg"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(PageRenderFailedError, match="truncated") as caught:
        render_page(truncated, DocumentKind.JPEG, 0, 200, 40_000_000)
    assert caught.value.detail().code == "page_render_failed"


def test_page_past_the_end_fails_with_page_not_found(corpus: Path) -> None:
    with pytest.raises(PageNotFoundError, match="no page 21") as caught:
        render_page(
            corpus / "f_pdfs/born_digital/tracemonkey.pdf", DocumentKind.PDF, 20, 100, 40_000_000
        )
    assert caught.value.code == "page_not_found"


@pytest.mark.parametrize(
    ("file", "kind", "error", "code"),
    [
        (
            "g_malformed/pdf/pdfjs_issue6010_1.pdf",
            DocumentKind.PDF,
            PageEncryptedError,
            "encrypted_document",
        ),
        (
            "g_malformed/image/pillow_bmp_b_reallybig.bmp",
            DocumentKind.BMP,
            PageImageTooLargeError,
            "image_too_large",
        ),
    ],
)
def test_document_error_while_rendering_fails_the_page_with_its_code(
    corpus: Path, file: str, kind: DocumentKind, error: type[PageError], code: str
) -> None:
    """A document refused at inspection, met again when a page is read, fails that page (a
    PageError, never a DocumentError) with the document's code."""
    with pytest.raises(error) as caught:
        render_page(corpus / file, kind, 0, 100, 40_000_000)
    assert caught.value.code == code
