"""Corpus folders: manifests walked into documents, ground truth loaded per page.

A corpus is a folder holding a `manifest.jsonl` (the format of `../shared/corpus`, see its
README), or a folder of such folders, walked recursively. The category of a document is the name
of the folder its manifest sits in.

Which page a ground truth belongs to:

- a table ground truth listed as per-table CSVs named `*.pageN.csv` (`expected_csv` is a list,
  as for the ICDAR 2013 documents): page N gets the tables named for it;
- a CSV whose `notes` say `page N` (the tabula-java fixtures): page N, and when the notes give
  `area top,left,bottom,right` (PDF points), only text read inside that area is scored;
- a text with form feeds (pdftotext output): one page per form-feed-separated part;
- anything else: page 1 (for a multi-page document the other pages have no ground truth).

Pages with no (or an empty) ground truth count for speed and errors only. When the notes say to
strip `$...:` tags (the Spanish handwriting page), those tags are removed from the text.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import msgspec

from benchmarks.metrics import table_cells

MANIFEST = "manifest.jsonl"

_PAGE_IN_NAME = re.compile(r"\.page(\d+)\.csv$")
_PAGE_IN_NOTES = re.compile(r"\bpage (\d+)(?:, area (-?[\d.]+),(-?[\d.]+),(-?[\d.]+),(-?[\d.]+))?")
_STRIP_TAGS_NOTE = re.compile(r"\$\.\.\.:")
_TAG = re.compile(r"\$[^\s$:]*:")


class CorpusError(Exception):
    """A manifest or ground-truth file cannot be used; the message names it."""


class ManifestEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One line of a manifest; fields this runner does not use are ignored."""

    file: str
    ground_truth: str | None = None
    kind: str = ""
    notes: str = ""
    expected_csv: str | list[str] | None = None


class CorpusDocument(msgspec.Struct, frozen=True, kw_only=True):
    category: str
    folder: str  # the folder holding the manifest; entry paths are relative to it
    entry: ManifestEntry

    @property
    def path(self) -> Path:
        return Path(self.folder) / self.entry.file


class GroundTruth(msgspec.Struct, frozen=True, kw_only=True):
    """The expected reading of one page."""

    text: str
    cells: tuple[str, ...] | None = None  # table ground truth: every non-empty cell
    area_pt: tuple[float, float, float, float] | None = None  # top, left, bottom, right
    source: str  # ground-truth file(s), relative to the category folder
    page_rule: str  # how the page was chosen, for the report


def find_manifests(root: Path) -> list[Path]:
    """Folders holding a manifest: `root` itself, or every one below it, sorted."""
    if (root / MANIFEST).is_file():
        return [root]
    found = sorted(p.parent for p in root.rglob(MANIFEST))
    if not found:
        raise CorpusError(f"no {MANIFEST} in or below {root}")
    return found


def load_documents(roots: list[Path], limit: int | None = None) -> list[CorpusDocument]:
    """Every manifest entry under `roots`, in manifest order; at most `limit` per category."""
    documents = []
    for root in roots:
        for folder in find_manifests(root):
            manifest = folder / MANIFEST
            entries = []
            for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    entries.append(msgspec.json.decode(line, type=ManifestEntry))
                except msgspec.DecodeError as exc:
                    raise CorpusError(f"{manifest}:{number}: {exc}") from exc
            documents += [
                CorpusDocument(category=folder.name, folder=str(folder), entry=entry)
                for entry in entries[:limit]
            ]
    return documents


def load_ground_truth(document: CorpusDocument) -> dict[int, GroundTruth]:
    """Ground truth by 1-based page number; empty when the document has none."""
    entry = document.entry
    folder = Path(document.folder)
    if isinstance(entry.expected_csv, list):
        return _per_page_tables(folder, entry.expected_csv)
    if entry.ground_truth is None:
        return {}
    if entry.ground_truth.endswith(".csv"):
        rows = _read_csv(folder / entry.ground_truth)
        page, area, rule = 1, None, "page 1 (the notes name no page)"
        if match := _PAGE_IN_NOTES.search(entry.notes):
            page, rule = int(match[1]), f"page {match[1]} named in the notes"
            if match[2] is not None:
                area = (float(match[2]), float(match[3]), float(match[4]), float(match[5]))
                rule += ", scored inside the area the notes give"
        return _keep_nonempty({page: _table_truth(rows, entry.ground_truth, rule, area)})
    text = _read_text(folder / entry.ground_truth)
    if _STRIP_TAGS_NOTE.search(entry.notes):
        text = _TAG.sub("", text)
    if "\f" in text:
        parts = text.split("\f")
        return _keep_nonempty(
            {
                number: GroundTruth(
                    text=part,
                    source=entry.ground_truth,
                    page_rule="form-feed-separated page of the text",
                )
                for number, part in enumerate(parts, 1)
            }
        )
    return _keep_nonempty(
        {1: GroundTruth(text=text, source=entry.ground_truth, page_rule="page 1")}
    )


def _per_page_tables(folder: Path, files: list[str]) -> dict[int, GroundTruth]:
    by_page: dict[int, list[str]] = {}
    for name in files:
        match = _PAGE_IN_NAME.search(name)
        by_page.setdefault(int(match[1]) if match else 1, []).append(name)
    truths = {}
    for page, names in sorted(by_page.items()):
        rows = [row for name in names for row in _read_csv(folder / name)]
        truths[page] = _table_truth(rows, ", ".join(names), f"tables named for page {page}", None)
    return _keep_nonempty(truths)


def _table_truth(
    rows: list[list[str]], source: str, rule: str, area: tuple[float, float, float, float] | None
) -> GroundTruth:
    """Cells for cell-level scoring; the text is each row's non-empty cells joined by spaces."""
    text = "\n".join(" ".join(table_cells([row])) for row in rows)
    return GroundTruth(
        text=text, cells=tuple(table_cells(rows)), area_pt=area, source=source, page_rule=rule
    )


def _keep_nonempty(truths: dict[int, GroundTruth]) -> dict[int, GroundTruth]:
    return {page: truth for page, truth in truths.items() if truth.text.strip()}


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"cannot read ground truth {path}: {exc}") from exc


def _read_csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(_read_text(path), newline="")))
