"""Uploaded documents: type detection from the bytes, inspection, page rendering.

`inspect_document` and `render_page` are synchronous and CPU-bound, and they touch hostile input
through PDFium and Pillow. They run only inside worker processes (see
`gateway.work.procpool`), where a crash or a hang costs one process, never the server.
"""

from __future__ import annotations

import contextlib
import enum
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from PIL import Image, ImageOps

from gateway.errors import (
    DocumentError,
    EmptyDocumentError,
    EncryptedDocumentError,
    ImageTooLargeError,
)
from gateway.page_errors import (
    PageError,
    PageNotFoundError,
    PageRenderFailedError,
    page_error_for_document,
)
from providers.types import PageImage

DEFAULT_IMAGE_DPI = 300.0  # assumed when an image does not state a plausible resolution


class DocumentKind(enum.StrEnum):
    PDF = "pdf"
    PNG = "png"
    JPEG = "jpeg"
    TIFF = "tiff"
    WEBP = "webp"
    BMP = "bmp"


class Thumbnail(msgspec.Struct, frozen=True, kw_only=True):
    image: PageImage  # the page with its long side at most the size asked for
    reading_scale: float  # how many times larger the page will be read


class DocumentInfo(msgspec.Struct, frozen=True, kw_only=True):
    kind: DocumentKind
    page_count: int
    first_page: Thumbnail | None = None  # an image's first page, from the decode that checked it


def detect_kind(head: bytes) -> DocumentKind | None:
    """The document type from its first bytes; None when it is not a supported type."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return DocumentKind.PNG
    if head.startswith(b"\xff\xd8\xff"):
        return DocumentKind.JPEG
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return DocumentKind.TIFF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return DocumentKind.WEBP
    if head.startswith(b"BM") and len(head) >= 26:
        return DocumentKind.BMP
    if b"%PDF-" in head[:1024]:  # readers accept leading junk before the header
        return DocumentKind.PDF
    return None


# --- PDF -----------------------------------------------------------------------------------


def open_pdf(path: Path):  # type: ignore[no-untyped-def]  # pypdfium2 ships no stubs
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise EncryptedDocumentError() from exc
        raise DocumentError(f"the PDF could not be opened ({_pdfium_reason(exc)})") from exc


def _pdfium_reason(exc: Exception) -> str:
    text = str(exc)
    start = text.find("(PDFium: ")
    return text[start + 9 : text.find(")", start)].strip(" .") if start >= 0 else "damaged file"


def _pdf_page_count(path: Path) -> int:
    pdf = open_pdf(path)
    try:
        return len(pdf)
    finally:
        pdf.close()


def pdf_render_scale(width_pt: float, height_pt: float, dpi: int, max_pixels: int) -> float:
    """Render scale (pixels per point) at `dpi`, lowered so the page stays under `max_pixels`."""
    scale = dpi / 72.0
    area = max(width_pt, 1.0) * max(height_pt, 1.0)
    if area * scale * scale > max_pixels:
        scale = math.sqrt(max_pixels / area)
    return scale


@contextlib.contextmanager
def _pdf_page_at(path: Path, index: int) -> Iterator[tuple[Any, float, float]]:
    """PDF page `index` and its size in points as it is shown (its /Rotate applied)."""
    import pypdfium2 as pdfium

    pdf = open_pdf(path)
    try:
        if not 0 <= index < len(pdf):
            raise PageNotFoundError(f"the document has no page {index + 1}")
        try:
            page = pdf[index]
            width_pt, height_pt = page.get_size()
            rotation = page.get_rotation()
        except pdfium.PdfiumError as exc:
            raise PageRenderFailedError(
                f"page {index + 1} could not be read ({_pdfium_reason(exc)})"
            ) from exc
        if rotation in (90, 270):
            width_pt, height_pt = height_pt, width_pt
        yield page, width_pt, height_pt
    finally:
        pdf.close()


def pdf_page_frame(path: Path, index: int, dpi: int, max_pixels: int) -> tuple[int, int, float]:
    """(width, height, dpi) of PDF page `index` as `render_page` renders it, without rendering:
    what the geometry of a page answered from its text layer refers to."""
    with _pdf_page_at(path, index) as (_, width_pt, height_pt):
        scale = pdf_render_scale(width_pt, height_pt, dpi, max_pixels)
        # as pypdfium2 sizes its bitmap: each side rounded up
        return math.ceil(width_pt * scale), math.ceil(height_pt * scale), scale * 72.0


def _render_pdf_page(
    path: Path, index: int, dpi: int, max_pixels: int, long_side: int | None = None
) -> PageImage:
    import pypdfium2 as pdfium

    with _pdf_page_at(path, index) as (page, width_pt, height_pt):
        scale = pdf_render_scale(width_pt, height_pt, dpi, max_pixels)
        if long_side is not None:
            scale = min(scale, long_side / max(width_pt, height_pt, 1.0))
        try:
            bitmap = page.render(scale=scale, rev_byteorder=True)
            pixels = np.array(bitmap.to_numpy()[:, :, :3], dtype=np.uint8, copy=True)
        except pdfium.PdfiumError as exc:
            raise PageRenderFailedError(
                f"page {index + 1} could not be rendered ({_pdfium_reason(exc)})"
            ) from exc
    if pixels.size == 0:
        raise PageRenderFailedError(f"page {index + 1} has no area")
    return PageImage(pixels=pixels, dpi=scale * 72.0, page_number=index + 1)


def to_pixels(page, scale: float):  # type: ignore[no-untyped-def]
    """Map PDF user-space points to rendered pixels, honouring the page's /Rotate."""
    left, bottom, right, top = page.get_cropbox()
    width, height = right - left, top - bottom
    rotation = page.get_rotation()

    def convert(x: float, y: float) -> tuple[float, float]:
        u, v = x - left, top - y  # unrotated, origin top-left
        if rotation == 90:
            u, v = height - v, u
        elif rotation == 180:
            u, v = width - u, height - v
        elif rotation == 270:
            u, v = v, width - u
        return u * scale, v * scale

    return convert


# --- Images --------------------------------------------------------------------------------


def _open_image(path: Path, max_pixels: int) -> Image.Image:
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(
            f"the image declares more than {max_pixels} pixels", max_pixels=max_pixels
        ) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise DocumentError(f"the image could not be read ({_pil_reason(exc)})") from exc
    return image


def _pil_reason(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__


def _check_frame(image: Image.Image, max_pixels: int) -> None:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise DocumentError("the image has zero size")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"the image is {width}x{height} pixels, more than the limit of {max_pixels}",
            width=width,
            height=height,
            max_pixels=max_pixels,
        )


def _image_page_count(
    path: Path, max_pixels: int, thumbnail_side: int | None = None
) -> tuple[int, Thumbnail | None]:
    """Frames of the image, after decoding the first one: a truncated file is a 400, not a
    failed job. With `thumbnail_side` that decode is the first page's thumbnail (a JPEG
    decodes at a reduced scale), returned with the count."""
    with _open_image(path, max_pixels) as image:
        try:
            count = int(getattr(image, "n_frames", 1))
            _check_frame(image, max_pixels)
            thumbnail = None
            if thumbnail_side is None:
                image.load()
            else:
                thumbnail = _image_thumbnail(image, 0, thumbnail_side)
        except (ImageTooLargeError, DocumentError):
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageTooLargeError(f"the image declares more than {max_pixels} pixels") from exc
        except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
            raise DocumentError(f"the image could not be decoded ({_pil_reason(exc)})") from exc
    return count, thumbnail


def _image_dpi(image: Image.Image) -> float:
    dpi = image.info.get("dpi")
    try:
        value = float(dpi[0]) if dpi else 0.0
    except (TypeError, ValueError, IndexError):
        value = 0.0
    return value if 70.0 <= value <= 1200.0 else DEFAULT_IMAGE_DPI


def _decode_frame(image: Image.Image, index: int, long_side: int | None) -> PageImage:
    """Decode frame `index` of an open image, upright, its long side at most `long_side`;
    raises Pillow's own errors."""
    image.seek(index)
    dpi = _image_dpi(image)
    full_side = max(image.size)
    if long_side is not None and full_side > long_side:
        image.draft("RGB", (long_side, long_side))  # JPEG decodes at 1/2..1/8 scale
    upright = ImageOps.exif_transpose(image).convert("RGB")
    if long_side is not None and max(upright.size) > long_side:
        ratio = long_side / max(upright.size)
        upright = upright.resize(
            (max(1, round(upright.width * ratio)), max(1, round(upright.height * ratio))),
            Image.Resampling.BOX,
        )
    dpi *= max(upright.size) / full_side
    return PageImage(pixels=np.asarray(upright, dtype=np.uint8), dpi=dpi, page_number=index + 1)


def _image_thumbnail(image: Image.Image, index: int, long_side: int) -> Thumbnail:
    image.seek(index)
    full_side = max(image.size)
    thumb = _decode_frame(image, index, long_side)
    return Thumbnail(image=thumb, reading_scale=full_side / max(thumb.width, thumb.height))


def _render_image_page(
    path: Path, index: int, max_pixels: int, long_side: int | None = None
) -> PageImage:
    with _open_image(path, max_pixels) as image:
        try:
            image.seek(index)
            _check_frame(image, max_pixels)
            return _decode_frame(image, index, long_side)
        except (DocumentError, EOFError) as exc:
            raise PageRenderFailedError(f"page {index + 1}: {exc}") from exc
        except (OSError, ValueError, SyntaxError, MemoryError, Image.DecompressionBombError) as exc:
            raise PageRenderFailedError(
                f"page {index + 1} could not be decoded ({_pil_reason(exc)})"
            ) from exc


# --- Entry points (worker processes) --------------------------------------------------------


def inspect_document(
    path: Path, kind: DocumentKind, max_pixels: int, thumbnail_side: int | None = None
) -> DocumentInfo:
    """Open the document and count its pages; raises DocumentError subclasses. For an image,
    `thumbnail_side` keeps its first page's thumbnail from the decode that checks it."""
    first_page = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Pillow's notes on damaged tags
            if kind == DocumentKind.PDF:
                count = _pdf_page_count(path)
            else:
                count, first_page = _image_page_count(path, max_pixels, thumbnail_side)
    except DocumentError:
        raise
    except Exception as exc:  # broad on purpose: any decoder failure on hostile input is a bad file
        raise DocumentError(f"the document could not be read ({_pil_reason(exc)})") from exc
    if count < 1:
        raise EmptyDocumentError()
    return DocumentInfo(kind=kind, page_count=count, first_page=first_page)


def render_thumbnail(
    path: Path, kind: DocumentKind, index: int, dpi: int, max_pixels: int, long_side: int
) -> Thumbnail:
    """A small copy of the page, and how many times larger it will be read."""
    thumb = render_page(path, kind, index, dpi, max_pixels, long_side)
    if kind == DocumentKind.PDF:
        width_pt, height_pt = thumb.width * 72 / thumb.dpi, thumb.height * 72 / thumb.dpi
        reading_dpi = 72.0 * pdf_render_scale(width_pt, height_pt, dpi, max_pixels)
        return Thumbnail(image=thumb, reading_scale=reading_dpi / thumb.dpi)
    with _open_image(path, max_pixels) as image:
        image.seek(index)
        return Thumbnail(
            image=thumb, reading_scale=max(image.size) / max(thumb.width, thumb.height)
        )


def render_page(
    path: Path,
    kind: DocumentKind,
    index: int,
    dpi: int,
    max_pixels: int,
    long_side: int | None = None,
) -> PageImage:
    """Render page `index` (0-based); raises PageError subclasses only. `long_side` caps the
    longer side in pixels (a thumbnail; JPEGs then decode at a reduced scale)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if kind == DocumentKind.PDF:
                return _render_pdf_page(path, index, dpi, max_pixels, long_side)
            return _render_image_page(path, index, max_pixels, long_side)
    except PageError:
        raise
    except DocumentError as exc:  # the file could not be opened again: same code, on the page
        raise page_error_for_document(exc) from exc
    except Exception as exc:  # broad on purpose: any decoder failure on hostile input: bad page
        raise PageRenderFailedError(
            f"page {index + 1} could not be rendered ({_pil_reason(exc)})"
        ) from exc
