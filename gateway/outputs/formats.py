"""The result formats by name: media type, file suffix, and the function that writes each text
format. JSON is the job's own shape (the caller encodes it); the PDF is written to a file by
`gateway.outputs.pdf`."""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence

from gateway.outputs.alto import to_alto
from gateway.outputs.hocr import to_hocr
from gateway.outputs.markdown import to_markdown
from gateway.outputs.text import to_text
from gateway.results import PageResult


class OutputFormat(enum.StrEnum):
    JSON = "json"
    MARKDOWN = "markdown"
    TEXT = "text"
    HOCR = "hocr"
    ALTO = "alto"
    PDF = "pdf"


MEDIA_TYPES = {
    OutputFormat.JSON: "application/json",
    OutputFormat.MARKDOWN: "text/markdown; charset=utf-8",
    OutputFormat.TEXT: "text/plain; charset=utf-8",
    OutputFormat.HOCR: "text/html; charset=utf-8",  # hOCR is XHTML
    OutputFormat.ALTO: "application/xml",
    OutputFormat.PDF: "application/pdf",
}
SUFFIXES = {
    OutputFormat.JSON: ".json",
    OutputFormat.MARKDOWN: ".md",
    OutputFormat.TEXT: ".txt",
    OutputFormat.HOCR: ".hocr",
    OutputFormat.ALTO: ".alto.xml",
    OutputFormat.PDF: ".pdf",
}


def write_text_format(
    fmt: OutputFormat,
    pages: Sequence[PageResult],
    source_name: str | None = None,
    software: tuple[str, str] = ("ocr-gateway", ""),
) -> str:
    """Markdown, text, hOCR or ALTO of the pages, in page order."""
    if fmt == OutputFormat.MARKDOWN:
        return to_markdown(pages)
    if fmt == OutputFormat.TEXT:
        return to_text(pages)
    if fmt == OutputFormat.HOCR:
        return to_hocr(pages, source_name, " ".join(part for part in software if part))
    if fmt == OutputFormat.ALTO:
        return to_alto(pages, source_name, software)
    raise ValueError(f"{fmt} is not a text format")


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def download_name(source_name: str | None, fallback: str, fmt: OutputFormat) -> str:
    """The file name a result is offered under: the upload's stem (ASCII letters, digits, dot,
    dash, underscore) with the format's suffix."""
    stem = source_name.rsplit(".", 1)[0] if source_name and "." in source_name else source_name
    safe = _UNSAFE.sub("_", stem or "").strip("._-")[:100]
    return (safe or fallback) + SUFFIXES[fmt]
