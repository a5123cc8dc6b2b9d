"""The read-results API's (004, "OCR v2") shapes, and the pure mapping of a finished job onto
them: the JSON response (`readResults`, `readStyles`, `rawText` with spans into it), the CSV
of its lines and the ZIP of CSV, JSON, TXT and the original file.

`rawText` is every line's content in reading order, lines separated by one `\\n`, pages too.
Every span is `{offset, length}` in characters (code points) of `rawText`: a line's `spans`
and its style's cover exactly its content, a word's `span` exactly its content (a line's words
joined by single spaces are its content), a page's `spans` its lines from the first to the
last. Polygons are 8 numbers, clockwise from the top-left corner, in pixels of the page as
read (`unit: "pixel"`, `width`/`height` its pixel size).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from typing import Any

import msgspec

from gateway.results import BlockLine, Geometry, PageResult, Word
from gateway.store.models import JobResult, JobStatus

MODEL_TYPE = "ocr"
OCR_VERSION = "2"
DOCUMENT_EXTENSIONS = (".pdf", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".txt")
CSV_HEADER = ("page", "line", "text", "confidence", "box", "handwritten")


class Span(msgspec.Struct, frozen=True, kw_only=True):
    offset: int
    length: int


class ReadLine(msgspec.Struct, frozen=True, kw_only=True):
    content: str
    polygon: list[float]
    spans: list[Span]


class ReadWord(msgspec.Struct, frozen=True, kw_only=True):
    content: str
    polygon: list[float]
    confidence: float
    span: Span


class ReadResult(msgspec.Struct, frozen=True, kw_only=True):
    pageNumber: int  # noqa: N815 - the document's field names
    angle: int  # the page was turned this much (degrees, counter-clockwise) to be read upright
    width: int
    height: int
    unit: str
    lines: list[ReadLine]
    words: list[ReadWord]
    spans: list[Span]
    kind: str


class ReadStyle(msgspec.Struct, frozen=True, kw_only=True):
    confidence: float  # how sure the handwritten-or-printed verdict is
    spans: list[Span]
    isHandwritten: bool  # noqa: N815


class OcrResults(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    modelVersion: str  # noqa: N815
    readResults: list[ReadResult]  # noqa: N815
    readStyles: list[ReadStyle]  # noqa: N815
    rawText: str  # noqa: N815


class OcrResponse(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    status: str
    documentId: str  # noqa: N815
    modelType: str  # noqa: N815
    id: str
    requestDateTime: str  # noqa: N815
    startTime: int  # noqa: N815 - epoch ms: the job was accepted
    endTime: int  # noqa: N815 - epoch ms: the job finished
    pages: int
    ocrResults: OcrResults  # noqa: N815
    resultUrl: str  # noqa: N815
    metadata: dict[str, Any]
    ocrVersion: str  # noqa: N815
    subOrgId: str | None = None  # noqa: N815 - echoed when the request sent one


class Failure(msgspec.Struct, frozen=True, kw_only=True):
    """Every error body of the surface."""

    status: str = "FAILURE"
    message: str


class StatusBody(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A webhook's body with `webhookSendFull: false`: the request's status only."""

    status: str
    id: str
    documentId: str  # noqa: N815
    message: str | None = None
    subOrgId: str | None = None  # noqa: N815


class Context(msgspec.Struct, frozen=True, kw_only=True):
    """What a response echoes of its request (kept with a webhook for later deliveries)."""

    document_id: str
    metadata: dict[str, Any]
    sub_org_id: str | None
    version: int
    requested_at: int  # epoch ms
    result_url: str


def _polygon(geometry: Geometry, width: int, height: int) -> list[float]:
    left, top = geometry.x * width, geometry.y * height
    right, bottom = left + geometry.width * width, top + geometry.height * height
    return [round(v, 1) for v in (left, top, right, top, right, bottom, left, bottom)]


def _line_words(line: BlockLine) -> tuple[str, list[Word]]:
    """The line's content and its words; where the words do not spell the text exactly (an
    engine that gave none), the words alone."""
    words = [w for w in line.words if w.text]
    joined = " ".join(w.text for w in words)
    return (joined if words else line.text.strip()), words


class _Text:
    """rawText as it is built: each appended line's span."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0

    def add(self, content: str) -> Span:
        if self.parts:
            self.parts.append("\n")
            self.length += 1
        span = Span(offset=self.length, length=len(content))
        self.parts.append(content)
        self.length += len(content)
        return span

    def text(self) -> str:
        return "".join(self.parts)


def _page(page: PageResult, raw: _Text, styles: list[ReadStyle]) -> ReadResult:
    meta = page.document_metadata
    width, height = (meta.page_dimensions.width, meta.page_dimensions.height) if meta else (0, 0)
    lines: list[ReadLine] = []
    words: list[ReadWord] = []
    start = None
    for block in page.content_blocks:
        for line in block.lines:
            content, line_words = _line_words(line)
            if not content:
                continue
            span = raw.add(content)
            start = span.offset if start is None else start
            lines.append(
                ReadLine(
                    content=content, polygon=_polygon(line.geometry, width, height), spans=[span]
                )
            )
            offset = span.offset
            for word in line_words:
                words.append(
                    ReadWord(
                        content=word.text,
                        polygon=_polygon(word.geometry, width, height),
                        confidence=round(word.confidence, 4),
                        span=Span(offset=offset, length=len(word.text)),
                    )
                )
                offset += len(word.text) + 1
            confidence = line.handwriting_confidence
            styles.append(
                ReadStyle(
                    confidence=round(confidence, 4) if confidence is not None else 0.0,
                    spans=[span],
                    isHandwritten=bool(line.is_handwritten),
                )
            )
    # a page without lines: an empty span where its text would have been
    first = raw.length if start is None else start
    page_span = Span(offset=first, length=raw.length - first)
    return ReadResult(
        pageNumber=page.page_number,
        angle=meta.rotation_deg if meta else 0,
        width=width,
        height=height,
        unit="pixel",
        lines=lines,
        words=words,
        spans=[page_span],
        kind="document",
    )


def ocr_results(pages: list[PageResult], model_version: str) -> OcrResults:
    raw = _Text()
    styles: list[ReadStyle] = []
    read = [_page(page, raw, styles) for page in pages]
    return OcrResults(
        version=OCR_VERSION,
        modelVersion=model_version,
        readResults=read,
        readStyles=styles,
        rawText=raw.text(),
    )


def iso_ms(epoch_ms: int) -> str:
    moment = dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def model_version(job: JobResult) -> str:
    """The engines that read the job's pages, e.g. `tesseract-5.3.0`."""
    models = sorted(
        {p.document_metadata.source_model for p in job.results if p.document_metadata is not None}
    )
    return ", ".join(models) or "none"


def response_of(job: JobResult, context: Context) -> OcrResponse:
    return OcrResponse(
        status="SUCCESS" if job.status == JobStatus.COMPLETED else "FAILURE",
        documentId=context.document_id,
        modelType=MODEL_TYPE,
        id=job.id,
        requestDateTime=iso_ms(context.requested_at),
        startTime=job.created_at,
        endTime=job.completed_at or job.created_at,
        pages=job.page_count,
        ocrResults=ocr_results(job.results, model_version(job)),
        resultUrl=context.result_url,
        metadata=context.metadata,
        ocrVersion=str(context.version),
        subOrgId=context.sub_org_id,
    )


def status_of(job: JobResult, context: Context) -> StatusBody:
    failed = job.status != JobStatus.COMPLETED
    return StatusBody(
        status="FAILURE" if failed else "SUCCESS",
        id=job.id,
        documentId=context.document_id,
        message=job.error.message if failed and job.error else None,
        subOrgId=context.sub_org_id,
    )


def lines_csv(response: OcrResponse) -> str:
    """One row per line: page, line (1-based on its page), text, confidence (the mean of its
    words'), box (its polygon), handwritten."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    styles = iter(response.ocrResults.readStyles)
    for page in response.ocrResults.readResults:
        for number, line in enumerate(page.lines, 1):
            style = next(styles)
            span = line.spans[0]
            inside = [
                w.confidence
                for w in page.words
                if span.offset <= w.span.offset < span.offset + span.length
            ]
            confidence = round(sum(inside) / len(inside), 4) if inside else ""
            box = " ".join(f"{v:g}" for v in line.polygon)
            writer.writerow(
                (page.pageNumber, number, line.content, confidence, box, style.isHandwritten)
            )
    return out.getvalue()


def file_stem(file_id: str | None, now_ms: int) -> str:
    """The ZIP's file names: the fileId (a document extension dropped, any character but
    letters, digits, `.`, `-` and `_` made `_`), or the epoch time (seconds) when there is
    none."""
    if not file_id:
        return str(now_ms // 1000)
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", file_id)[:200].strip(".") or str(now_ms // 1000)
    lowered = stem.lower()
    for extension in DOCUMENT_EXTENSIONS:
        if lowered.endswith(extension) and len(stem) > len(extension):
            return stem[: -len(extension)]
    return stem


def zip_of(response: OcrResponse, stem: str, original: bytes, extension: str) -> bytes:
    """`<stem>.csv`, `<stem>.json`, `<stem>.txt` (the JSON response as text) and the original
    file `<stem>.<extension>`."""
    as_json = msgspec.json.format(msgspec.json.encode(response), indent=2)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{stem}.csv", lines_csv(response))
        archive.writestr(f"{stem}.json", as_json)
        archive.writestr(f"{stem}.txt", as_json)
        archive.writestr(f"{stem}.{extension}", original)
    return buffer.getvalue()
