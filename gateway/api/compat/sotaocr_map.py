"""The page-balance API (000, "SotaOCR"): its shapes, and pure functions from the core's records
onto them. Units: one `scan_page` unit is one credit, so a simple page costs 1, a medium page 3
and a complex page 5 (README, "Compatible API surfaces").
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import msgspec

from gateway.api.compat.base import iso_time
from gateway.errors import GatewayError, InsufficientCreditsError
from gateway.outputs.formats import OutputFormat, write_text_format
from gateway.outputs.text import page_text
from gateway.results import PageResult
from gateway.store.compat import LedgerTotals
from gateway.store.models import JobResult, JobStatus

ENTITY_CODE = "scan_page"
RESULT_FORMATS = (OutputFormat.JSON, OutputFormat.MARKDOWN, OutputFormat.TEXT)
COORDINATE_SPACE = "doc_preprocessed"
# A page that failed because its remote provider could not be reached: the job's upstream is
# unavailable (502), not the document at fault.
UPSTREAM_ERRORS = (
    "provider_connection_failed",
    "provider_circuit_open",
    "provider_server_error",
    "provider_rate_limited",
    "provider_refused",
    "ocr_timeout",
)

# The doc's error codes where they differ from the gateway's (its 400 is always bad_request).
_CODES = {
    402: "insufficient_balance",
    415: "unsupported_media",
}


class SotaError(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    code: str
    message: str
    # insufficient_balance only: the units asked for and those available
    entity_code: str | None = None
    requested_units: int | None = None
    available_units: int | None = None


class SotaErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    error: SotaError


class PagePool(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    allocated: int
    remaining: int


class TokenPool(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    allocated: int
    remaining: int
    affordable_pages: int


class SotaBalance(msgspec.Struct, frozen=True, kw_only=True):
    entity_code: str
    remaining_pages: int
    total_affordable_pages: int
    monthly_pages: PagePool
    lifetime_pages: PagePool
    tokens: TokenPool
    token_price: int


class SotaJob(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: str
    account_id: str
    status: str
    page_count: int
    pages_completed: int
    upstream_job_id: str
    created_at: str
    updated_at: str
    model_profile: str | None = None  # in the answer to POST /v1/extract


class SotaResult(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str
    format: str
    page_count: int
    content: str  # the document; for format=json a JSON text (pages, angle, page_preview)


class SotaInfo(msgspec.Struct, frozen=True, kw_only=True):
    service: str
    version: str
    entity_code: str
    model_profiles: list[str]
    default_model_profile: str
    result_formats: list[str]


def error_of(exc: GatewayError) -> tuple[int, SotaErrorBody]:
    """The document's status and `{"error": {"code", "message"}}` for a gateway error: every
    400 is `bad_request`; 402 is `403 insufficient_balance` with the units."""
    status = exc.status_code
    if isinstance(exc, InsufficientCreditsError):
        details = exc.details or {}
        return 403, SotaErrorBody(
            error=SotaError(
                code="insufficient_balance",
                message=exc.message,
                entity_code=ENTITY_CODE,
                requested_units=int(details.get("required", 0)),
                available_units=int(details.get("available", 0)),
            )
        )
    code = "bad_request" if status == 400 else _CODES.get(status, exc.code)
    message = exc.message or HTTPStatus(status).phrase
    return status, SotaErrorBody(error=SotaError(code=code, message=message))


def balance_of(totals: LedgerTotals, page_credits: int) -> SotaBalance:
    """Every credit is a lifetime page unit (credits never expire); the gateway has no monthly
    allowance and sells no tokens, so those pools are empty. Pages are counted at the simple
    tier's price (`page_credits`)."""
    pages = totals.available // max(page_credits, 1)
    return SotaBalance(
        entity_code=ENTITY_CODE,
        remaining_pages=pages,
        total_affordable_pages=pages,
        monthly_pages=PagePool(total=0, allocated=0, remaining=0),
        lifetime_pages=PagePool(
            total=totals.granted,
            allocated=totals.charged + totals.reserved,
            remaining=totals.available,
        ),
        tokens=TokenPool(total=0, allocated=0, remaining=0, affordable_pages=0),
        token_price=0,
    )


def status_of(status: JobStatus) -> str:
    return status.value  # pending, processing, completed, failed, cancelled: the doc's words


def job_of(job: JobResult, tenant_id: str, model_profile: str | None = None) -> SotaJob:
    """`upstream_job_id` is the gateway's own job (it is its own upstream); `updated_at` is the
    last change the job records: its completion, else its creation."""
    return SotaJob(
        id=job.id,
        account_id=tenant_id,
        status=status_of(job.status),
        page_count=job.page_count,
        pages_completed=job.pages_processed,
        upstream_job_id=job.id,
        created_at=iso_time(job.created_at) or "",
        updated_at=iso_time(job.completed_at or job.created_at) or "",
        model_profile=model_profile,
    )


def upstream_failed(job: JobResult) -> bool:
    """A failed job none of whose pages was read because a remote provider was unreachable."""
    failed = [p for p in job.results if p.status == "failed"]
    return (
        job.status == JobStatus.FAILED
        and bool(failed)
        and all(
            p.error is not None and any(code in p.error.message for code in UPSTREAM_ERRORS)
            for p in failed
        )
    )


def _page(page: PageResult, orientation: bool) -> dict[str, Any]:
    meta = page.document_metadata
    if page.status != "completed" or meta is None:
        error = msgspec.to_builtins(page.error) if page.error is not None else None
        return {
            "page_number": page.page_number,
            "status": page.status,
            "text": "",
            "raw_result": {"error": error},
        }
    return {
        "page_number": page.page_number,
        "status": page.status,
        "text": page_text(page),
        "doc_preprocessor_res": {
            "angle": meta.rotation_deg,
            "model_settings": {
                "use_doc_orientation_classify": orientation,
                "use_doc_unwarping": False,
            },
        },
        "page_preview": {
            "coordinate_space": COORDINATE_SPACE,
            "content_type": "image/png",
            "width": meta.page_dimensions.width,
            "height": meta.page_dimensions.height,
        },
        "raw_result": msgspec.to_builtins(page),
    }


def result_of(job: JobResult, fmt: OutputFormat, orientation: bool) -> SotaResult:
    """The finished job in `fmt`: json (pages with text, angle, the preview's coordinate space
    and size, and the gateway's page result as `raw_result`), markdown or text."""
    if fmt == OutputFormat.JSON:
        pages = [_page(page, orientation) for page in job.results]
        document = {"job_id": job.id, "page_count": job.page_count, "pages": pages}
        content = msgspec.json.encode(document).decode()
    else:
        content = write_text_format(fmt, job.results)
    return SotaResult(job_id=job.id, format=fmt.value, page_count=job.page_count, content=content)
