"""The searchable PDF: each page's image with the invisible text layer of its words.

For a PDF upload each page is the document's own page, copied with qpdf (its images are not
decoded or re-encoded); a page answered from its own text layer passes through unchanged, and
a page the OCR turned upright gets a /Rotate that shows it upright, so the text layer, the
page and the JSON geometry agree. For an image upload each page is the image as the pipeline
decodes it (EXIF orientation applied): JPEG again for JPEG uploads, lossless otherwise (one bit
per pixel for black and white). Pages are made one at a time: one decoded image in memory.

A page that was not read keeps its image, without text, and carries a note (a PDF text
annotation) saying why. Where the upload cannot give a page (qpdf refuses the file, the page
does not render), the page is rendered instead, or else left blank with a visible note, so a
hostile file still yields a document. Opening and rendering the upload touch hostile input:
`write_searchable_pdf` runs in a worker process (`searchable_pdf_task`).
"""

from __future__ import annotations

import dataclasses
import io
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pikepdf
import structlog
from PIL import Image

from gateway.outputs.pages import failure_note
from gateway.outputs.pdffont import add_glyphless_font
from gateway.outputs.pdflayer import page_frame, text_layer
from gateway.results import PageResult
from providers.types import PageImage

log = structlog.get_logger(__name__)

TEXT_LAYER_PROVIDER = "pdf_text"  # router.policy.TEXT_LAYER: the page's own text was the answer
LETTER = (612.0, 792.0)  # points: a page whose size nothing tells
MIN_SIDE, MAX_SIDE = 3.0, 14_400.0  # the page sides PDF readers accept, in points
JPEG_QUALITY = 90

Render = Callable[[int], PageImage]
"""Render page `index` (0-based) of the upload as the pipeline does, before any OCR turn."""


@dataclasses.dataclass(frozen=True)
class Source:
    """Where the pages' images come from."""

    pdf_path: str | None = None  # a PDF upload: its pages are copied
    render: Render | None = None  # renders a page (an image upload, or a PDF qpdf refuses)
    lossy: bool = False  # the upload was JPEG: its pages are embedded as JPEG again


def write_searchable_pdf(
    pages: Sequence[PageResult], out_path: str, source: Source, producer: str = "ocr-gateway"
) -> None:
    """Write the searchable PDF of `pages` (in order) to `out_path`."""
    if source.pdf_path is not None:
        try:
            _write(pages, out_path, source, producer)
            return
        except Exception as exc:  # noqa: BLE001 - qpdf failing on a hostile file in any way
            log.warning("pdf_pages_rendered_instead", error=repr(exc)[:500])
    _write(pages, out_path, dataclasses.replace(source, pdf_path=None), producer)


def searchable_pdf_task(
    _state: Any, pages: list[PageResult], out_path: str, source: Source, *, phase: Any
) -> None:
    """Worker-process task (`WorkerPool.run`): the PDF written to `out_path`."""
    phase("render")
    write_searchable_pdf(pages, out_path, source)


def _write(pages: Sequence[PageResult], out_path: str, source: Source, producer: str) -> None:
    original = pikepdf.open(source.pdf_path) if source.pdf_path is not None else None
    try:
        with pikepdf.new() as pdf:
            font = add_glyphless_font(pdf)
            for result in pages:
                _add_page(pdf, font, result, original, source)
            pdf.docinfo[pikepdf.Name.Producer] = producer
            pdf.save(
                out_path,
                compress_streams=True,
                stream_decode_level=pikepdf.StreamDecodeLevel.none,  # copy images as they are
                object_stream_mode=pikepdf.ObjectStreamMode.generate,
            )
    finally:
        if original is not None:
            original.close()


def _add_page(
    pdf: pikepdf.Pdf,
    font: pikepdf.Object,
    result: PageResult,
    original: pikepdf.Pdf | None,
    source: Source,
) -> None:
    index = result.page_number - 1
    placed = _copied_page(pdf, original, index) if original is not None else None
    if placed is not None and _passes_through(result):
        return
    if placed is None and source.render is not None:
        placed = _rendered_page(pdf, source, index)
    if placed is None:
        placed = _blank_page(pdf, result)
    page, box, rotate = placed
    if result.status == "failed" or result.document_metadata is None:
        _annotate(pdf, page, box, failure_note(result))
        return
    rotate = (rotate + result.document_metadata.rotation_deg) % 360
    page.obj.Rotate = rotate
    name = page.add_resource(font, pikepdf.Name.Font, prefix="OcrText")
    page.contents_add(pikepdf.Stream(pdf, b"q\n"), prepend=True)
    layer = text_layer(result, page_frame(box, rotate), str(name)[1:])
    page.contents_add(pikepdf.Stream(pdf, b"\nQ\n" + layer))


Placed = tuple[pikepdf.Page, tuple[float, float, float, float], int]  # page, visible box, /Rotate


def _passes_through(result: PageResult) -> bool:
    meta = result.pipeline_metadata
    return (
        result.status == "completed"
        and meta is not None
        and meta.provider_used == TEXT_LAYER_PROVIDER
    )


def _copied_page(pdf: pikepdf.Pdf, original: pikepdf.Pdf, index: int) -> Placed | None:
    """The upload's own page, its visible box and rotation as PDFium renders them."""
    try:
        pdf.pages.append(original.pages[index])
    except Exception:  # noqa: BLE001 - a page qpdf cannot copy is rendered instead
        return None
    page = pdf.pages[-1]
    try:
        media = _rect(page.obj.get("/MediaBox")) or (0.0, 0.0, *LETTER)
        crop = _rect(page.obj.get("/CropBox"))
        box = _intersect(crop, media) if crop else media
        rotate = int(int(page.obj.get("/Rotate", 0)) / 90) % 4 * 90
    except Exception:  # noqa: BLE001 - boxes or rotation qpdf cannot read: render the page
        del pdf.pages[-1]
        return None
    return page, box, rotate


def _rect(value: Any) -> tuple[float, float, float, float] | None:
    """A rectangle array, normalized; None when missing or of no area (as PDFium reads it)."""
    if not isinstance(value, pikepdf.Array) or len(value) != 4:
        return None
    x0, y0, x1, y1 = (float(v) for v in value)
    rect = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    return rect if rect[2] > rect[0] and rect[3] > rect[1] else None


def _intersect(
    a: tuple[float, float, float, float], b: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    rect = (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    return rect if rect[2] > rect[0] and rect[3] > rect[1] else b


def _rendered_page(pdf: pikepdf.Pdf, source: Source, index: int) -> Placed | None:
    assert source.render is not None
    try:
        image = source.render(index)
    except Exception:  # noqa: BLE001 - a page that does not render is left blank with a note
        return None
    width, height = _page_size(image.width * 72 / image.dpi, image.height * 72 / image.dpi)
    xobject = _image_xobject(pdf, image, source.lossy)
    page = _new_page(pdf, width, height)
    name = page.add_resource(xobject, pikepdf.Name.XObject, prefix="Im")
    draw = f"q {width:.3f} 0 0 {height:.3f} 0 0 cm {name} Do Q\n".encode("ascii")
    page.contents_add(pikepdf.Stream(pdf, draw))
    return page, (0.0, 0.0, width, height), 0


def _image_xobject(pdf: pikepdf.Pdf, image: PageImage, lossy: bool) -> pikepdf.Stream:
    pixels = image.pixels
    gray = bool(
        (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    )
    channel = pixels[..., 0]
    bilevel = gray and bool(((channel == 0) | (channel == 255)).all())
    if bilevel:
        picture = Image.fromarray(channel).convert("1")  # 1 = white, as DeviceGray reads it
        data, filt, bits = zlib.compress(picture.tobytes(), 6), pikepdf.Name.FlateDecode, 1
    elif lossy:
        picture = Image.fromarray(np.ascontiguousarray(channel) if gray else pixels)
        out = _jpeg(picture)
        data, filt, bits = out, pikepdf.Name.DCTDecode, 8
    else:
        raw = np.ascontiguousarray(channel if gray else pixels).tobytes()
        data, filt, bits = zlib.compress(raw, 6), pikepdf.Name.FlateDecode, 8
    stream = pikepdf.Stream(pdf, data)
    stream.Type = pikepdf.Name.XObject
    stream.Subtype = pikepdf.Name.Image
    stream.Width, stream.Height = image.width, image.height
    stream.ColorSpace = pikepdf.Name.DeviceGray if gray else pikepdf.Name.DeviceRGB
    stream.BitsPerComponent = bits
    stream.Filter = filt
    return stream


def _jpeg(picture: Image.Image) -> bytes:
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def _page_size(width: float, height: float) -> tuple[float, float]:
    """The size scaled (keeping its shape where it can) into what PDF readers accept: 3 to
    14,400 units a side. The text layer is placed relative to the page, so scale is free."""
    scale = 1.0
    if min(width, height) < MIN_SIDE:
        scale = MIN_SIDE / max(min(width, height), 1e-6)
    if max(width, height) * scale > MAX_SIDE:
        scale = MAX_SIDE / max(width, height)
    return (
        min(max(width * scale, MIN_SIDE), MAX_SIDE),
        min(max(height * scale, MIN_SIDE), MAX_SIDE),
    )


def _new_page(pdf: pikepdf.Pdf, width: float, height: float) -> pikepdf.Page:
    pdf.add_blank_page(page_size=(width, height))
    return pdf.pages[-1]


def _blank_page(pdf: pikepdf.Pdf, result: PageResult) -> Placed:
    """A page whose image could not be made: the page's size, a visible note at the top."""
    meta = result.document_metadata
    if meta is not None and meta.dpi > 0:
        size = meta.page_dimensions
        width, height = _page_size(size.width * 72 / meta.dpi, size.height * 72 / meta.dpi)
        # the size is the upright page's; drawn unturned, so no OCR turn is added below
        result_rotation = meta.rotation_deg
    else:
        (width, height), result_rotation = LETTER, 0
    page = _new_page(pdf, width, height)
    helvetica = pikepdf.Dictionary(
        Type=pikepdf.Name.Font,
        Subtype=pikepdf.Name.Type1,
        BaseFont=pikepdf.Name.Helvetica,
        Encoding=pikepdf.Name.WinAnsiEncoding,
    )
    name = page.add_resource(helvetica, pikepdf.Name.Font, prefix="Note")
    note = f"Page {result.page_number}: the page image could not be reproduced."
    text = note.encode("cp1252", "replace").hex()
    draw = f"BT {name} 10 Tf 36 {height - 36:.3f} Td <{text}> Tj ET\n".encode("ascii")
    page.contents_add(pikepdf.Stream(pdf, draw))
    return page, (0.0, 0.0, width, height), -result_rotation % 360


def _annotate(pdf: pikepdf.Pdf, page: pikepdf.Page, box: tuple[float, ...], note: str) -> None:
    """A text annotation (a note icon at the top left) saying why the page has no text."""
    left, top = box[0] + 8, box[3] - 8
    annotation = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Annot,
            Subtype=pikepdf.Name.Text,
            Rect=[left, top - 20, left + 20, top],
            Contents=pikepdf.String(note),
            Name=pikepdf.Name.Note,
            F=4,  # printed
        )
    )
    annotations = page.obj.get("/Annots")
    if isinstance(annotations, pikepdf.Array):
        annotations.append(annotation)
    else:
        page.obj.Annots = pikepdf.Array([annotation])
