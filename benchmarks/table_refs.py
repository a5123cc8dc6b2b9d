"""The table benchmark's cases (d_tables ground truth per table) and its reference points:
camelot (lattice, stream) and pdfplumber on born-digital pages, rapid-table alone on images.

Ground truth per page: the ICDAR 2013 documents list one CSV per table (`*.pageN.csv`); the
tabula fixtures one CSV whose notes name the page; PubTabNet images one HTML (TEDS) and its
CSV (adjacency). Each reference runs with one setting for every table.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

import msgspec

from benchmarks.corpus import CorpusDocument, load_documents
from benchmarks.table_metrics import Grid

_PAGE_IN_NAME = re.compile(r"\.page(\d+)\.csv$")
_PAGE_IN_NOTES = re.compile(r"\bpage (\d+)")


class PdfCase(msgspec.Struct, frozen=True, kw_only=True):
    """A born-digital page and the ground truth of the tables on it."""

    source: str  # tabula | icdar2013
    name: str  # file, relative to the category folder
    path: str
    page: int  # 1-based
    tables: list[list[list[str]]]


class ImageCase(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    path: str
    html: str
    grid: list[list[str]]


def _csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def pdf_cases(corpus: Path, limit: int | None = None) -> list[PdfCase]:
    """Every born-digital table page of d_tables, its tables' ground truth each a grid."""
    cases = []
    documents = [
        d for d in load_documents([corpus / "d_tables"]) if d.entry.kind == "born_digital_table_pdf"
    ]
    for document in documents[:limit]:
        entry, folder = document.entry, Path(document.folder)
        by_page: dict[int, list[list[list[str]]]] = {}
        if isinstance(entry.expected_csv, list):
            for name in entry.expected_csv:
                match = _PAGE_IN_NAME.search(name)
                by_page.setdefault(int(match[1]) if match else 1, []).append(_csv(folder / name))
        elif entry.expected_csv:
            match = _PAGE_IN_NOTES.search(entry.notes)
            page = int(match[1]) if match else 1
            by_page[page] = [_csv(folder / entry.expected_csv)]
        for page, tables in sorted(by_page.items()):
            cases.append(
                PdfCase(
                    source=entry.file.split("/")[0],
                    name=entry.file,
                    path=str(document.path),
                    page=page,
                    tables=tables,
                )
            )
    return cases


def image_cases(corpus: Path, limit: int | None = None) -> list[ImageCase]:
    documents: list[CorpusDocument] = [
        d for d in load_documents([corpus / "d_tables"]) if d.entry.kind == "table_image"
    ]
    cases = []
    for document in documents[:limit]:
        folder = Path(document.folder)
        stem = document.entry.file.removesuffix(".png")
        cases.append(
            ImageCase(
                name=document.entry.file,
                path=str(document.path),
                html=(folder / f"{stem}.expected.html").read_text(encoding="utf-8"),
                grid=_csv(folder / f"{stem}.expected.csv"),
            )
        )
    return cases


def _frames_to_grids(frames: Sequence[object]) -> list[Grid]:
    grids: list[Grid] = []
    for frame in frames:
        values = frame.values.tolist()  # type: ignore[attr-defined]
        grids.append([["" if v is None else str(v) for v in row] for row in values])
    return grids


def camelot_tables(path: str, page: int, flavor: str) -> list[Grid]:
    """camelot's tables of one page with its default settings for `flavor`."""
    import camelot

    try:
        found = camelot.read_pdf(path, pages=str(page), flavor=flavor)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001  # a reference that fails on a page scores 0 there
        return []
    return _frames_to_grids([table.df for table in found])


def pdfplumber_tables(path: str, page: int) -> list[Grid]:
    """pdfplumber's `extract_tables()` with its default settings (ruling lines)."""
    import pdfplumber

    with pdfplumber.open(path) as pdf:
        tables = pdf.pages[page - 1].extract_tables()
    return [[[cell or "" for cell in row] for row in table] for table in tables]


class RapidTableAlone:
    """rapid-table 0.3.0 as its README uses it: the whole image, its own OCR (rapidocr
    onnxruntime's, PP-OCRv4) and its own matcher."""

    def __init__(self) -> None:
        from rapid_table import RapidTable

        self.engine = RapidTable()

    def html(self, path: str) -> str:
        import cv2

        html, _, _ = self.engine(cv2.imread(path))
        return str(html)
