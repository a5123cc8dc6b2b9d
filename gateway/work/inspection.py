"""The inspector's part of accepting a document: open it, select its pages, measure each.

Runs in the one-process inspector pool, so a hostile file costs that process only: opening the
document has its own deadline, measuring gets a budget per page allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import structlog

from gateway.config import Settings
from gateway.errors import InvalidPageRangesError, TooManyPagesError
from gateway.page_errors import (
    PageError,
    TaskTimeoutError,
    WorkerCrashedError,
    document_error_for_pool,
)
from gateway.work.assess import assess_page
from gateway.work.documents import DocumentKind, Thumbnail, inspect_document
from gateway.work.procpool import WorkerPool
from router.plan import PageEvidence
from scoring.features import SCORING_SIDE

log = structlog.get_logger(__name__)

ASSESS_SECONDS_PER_PAGE = 2.0  # budget for scoring one page at submit, on top of the inspection


class PageRange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    start: int
    end: int


def parse_page_ranges(raw: str | None, page_count: int) -> list[int]:
    """1-based inclusive ranges as JSON, e.g. `[{"start":1,"end":3}]`; None means every page."""
    if raw is None or not raw.strip():
        return list(range(1, page_count + 1))
    try:
        ranges = msgspec.json.decode(raw, type=list[PageRange])
    except msgspec.DecodeError as exc:
        raise InvalidPageRangesError(
            f'page_ranges must be JSON like [{{"start": 1, "end": 3}}]: {exc}'
        ) from exc
    if not ranges:
        raise InvalidPageRangesError("page_ranges is empty")
    pages: set[int] = set()
    for r in ranges:
        if not 1 <= r.start <= r.end <= page_count:
            raise InvalidPageRangesError(
                f"page range {r.start}-{r.end} is outside the document's pages 1-{page_count}",
                page_count=page_count,
            )
        pages.update(range(r.start, r.end + 1))
    return sorted(pages)


def assess_in_worker(
    path: str,
    kind: DocumentKind,
    pages: list[int],
    settings: Settings,
    first_page: Thumbnail | None = None,
) -> list[PageEvidence]:
    evidence = []
    for number in pages:
        try:
            evidence.append(
                assess_page(Path(path), kind, number, settings, first_page if number == 1 else None)
            )
        except PageError as exc:  # read (and fail, refunded) by the worker like any page
            evidence.append(PageEvidence(unassessed=exc.message))
        except Exception as exc:  # a scoring defect must not refuse the upload: bill simple
            log.exception("page_assessment_failed", path=path, page=number)
            evidence.append(PageEvidence(unassessed=f"{type(exc).__name__}: {exc}"))
    return evidence


class Prepared(msgspec.Struct, frozen=True, kw_only=True):
    pages: list[int]  # the selected page numbers, in order
    evidence: list[PageEvidence]  # measured on each of them


def prepare_in_worker(
    _state: Any,
    path: str,
    kind: DocumentKind,
    page_ranges: str | None,
    max_pages: int,
    settings: Settings,
    *,
    phase: Any,
) -> Prepared:
    """Inspector-process task: open the document, select its pages, measure each one."""
    phase("inspect")
    info = inspect_document(
        Path(path), kind, settings.limits.max_pixels_per_page, thumbnail_side=SCORING_SIDE
    )
    phase("assess")
    pages = parse_page_ranges(page_ranges, info.page_count)
    if len(pages) > max_pages:
        raise TooManyPagesError(
            f"{len(pages)} pages selected; the limit is {max_pages} per document",
            pages=len(pages),
            max_pages=max_pages,
        )
    return Prepared(
        pages=pages, evidence=assess_in_worker(path, kind, pages, settings, info.first_page)
    )


async def inspect_and_measure(
    inspector: WorkerPool,
    path: Path,
    kind: DocumentKind,
    page_ranges: str | None,
    max_pages: int,
    settings: Settings,
) -> Prepared:
    """Inspect and score in the inspector process: a hostile file costs that process only.
    Opening the document has its own deadline; scoring gets a budget per page allowed."""
    limits = settings.limits
    timeout = limits.inspect_timeout_s + ASSESS_SECONDS_PER_PAGE * max_pages
    try:
        prepared: Prepared = await inspector.run(
            prepare_in_worker,
            str(path),
            kind,
            page_ranges,
            max_pages,
            settings,
            deadlines={"inspect": limits.inspect_timeout_s},
            total_s=timeout,
        )
    except (TaskTimeoutError, WorkerCrashedError) as exc:
        raise document_error_for_pool(exc) from exc
    return prepared
