"""Page previews (native API): `GET /v1/jobs/{jobId}/pages/{n}/preview`, the PNG of a finished
page in the pixels its result's geometry refers to (size = `page_dimensions`, after rotation).

Rendered on demand in an engine worker process (`gateway.work.previews`); nothing is stored.

    202 page_not_ready   the page is not read yet (the job is pending or processing)
    404 job_not_found    no such job, or another tenant's
    404 page_not_found   the job has no page n (outside the document or its page_ranges)
    409 page_failed      the page could not be read: no geometry to show (details: its error)
    409 page_not_read    the page was never read (the job was cancelled first)
"""

from __future__ import annotations

from typing import Annotated

import msgspec
import structlog
from litestar import Response, get
from litestar.datastructures import ResponseHeader
from litestar.params import Parameter

from gateway.api.errors import error_responses
from gateway.api.native import READ_ERRORS, TenantController
from gateway.errors import (
    InternalError,
    JobPageNotFoundError,
    PageFailedError,
    PageNotReadError,
    PageNotReadyError,
)
from gateway.page_errors import PageError, PoolError
from gateway.services import Services
from gateway.store.models import OPEN_PAGE, PageStatus
from gateway.store.reads import JobPage
from gateway.store.tenants import Tenant
from gateway.work.documents import DocumentKind
from gateway.work.previews import PreviewRequest, make_preview, preview_file_name

log = structlog.get_logger(__name__)

MAX_PAGE_NUMBER = 1_000_000  # bounds the path parameter before it reaches SQLite
RETRY_AFTER_S = 1  # a page takes seconds to read; poll about once a second


PREVIEW_ERRORS = {
    202: "The page is not read yet (`page_not_ready`, Retry-After): the job is pending or "
    "processing",
    404: "No such job (also another tenant's: `job_not_found`), or the job has no such page "
    "(`page_not_found`)",
    409: "The page failed (`page_failed`, details: its error) or was never read because the "
    "job was cancelled (`page_not_read`)",
}


async def local_preview_request(
    services: Services, page: JobPage, job_id: str, page_number: int
) -> PreviewRequest:
    """`preview_request`, reading the upload from where this node has it."""
    request = preview_request(page, page_number)
    path = await services.local_upload(job_id, request.path)
    return msgspec.structs.replace(request, path=path)


def preview_request(page: JobPage, page_number: int) -> PreviewRequest:
    """What to render for a finished page; raises the errors of a page that has no preview."""
    if page.page_status is None:
        raise JobPageNotFoundError(f"the job has no page {page_number}", page_number=page_number)
    if page.page_status in OPEN_PAGE:
        raise PageNotReadyError(f"page {page_number} is not read yet; try again shortly")
    if page.page_status == PageStatus.FAILED:
        error = page.error
        details = {"page_error": {"code": error.code, "message": error.message}} if error else {}
        raise PageFailedError(
            f"page {page_number} could not be read, so it has no preview", **details
        )
    if page.page_status == PageStatus.CANCELLED:
        raise PageNotReadError(f"page {page_number} was not read (the job was cancelled)")
    meta = page.result.document_metadata if page.result is not None else None
    if meta is None:  # a completed page always has its metadata
        raise InternalError(f"page {page_number} has no page dimensions")
    return PreviewRequest(
        path=page.file_path,
        kind=DocumentKind(page.file_kind),
        page_number=page_number,
        rotation_deg=meta.rotation_deg,
        width=meta.page_dimensions.width,
        height=meta.page_dimensions.height,
    )


class PreviewController(TenantController):
    path = "/v1/jobs"

    @get(
        "/{job_id:str}/pages/{page_number:int}/preview",
        media_type="image/png",
        content_media_type="image/png",
        summary="The page image the result's geometry refers to (PNG)",
        response_description="The PNG of the page; its size is the result's page_dimensions",
        response_headers=[
            ResponseHeader(
                name="Content-Disposition",
                value='inline; filename="page_0001_preview.png"',
                description="inline, named for the page number",
                required=True,
                documentation_only=True,
            )
        ],
        responses=error_responses(*READ_ERRORS, 202, 404, 409, described=PREVIEW_ERRORS),
    )
    async def preview(
        self,
        job_id: str,
        page_number: Annotated[
            int, Parameter(ge=1, le=MAX_PAGE_NUMBER, description="1-based, in the document")
        ],
        tenant: Tenant,
        services: Services,
    ) -> Response[bytes]:
        """The page rendered as the pipeline renders it and turned upright by its
        `rotation_deg`: its size is the result's `page_dimensions`, so relative geometry times
        that size lands on these pixels. Rendered on demand; nothing is stored."""
        page = await services.store.get_job_page(tenant.id, job_id, page_number)
        request = await local_preview_request(services, page, job_id, page_number)
        try:
            preview = await make_preview(services.engines, request, services.settings)
        except (PageError, PoolError) as exc:
            # the job may have been deleted meanwhile (its upload with it): that is a 404
            await services.store.get_job_page(tenant.id, job_id, page_number)
            log.warning("preview_failed", job_id=job_id, page_number=page_number, error=repr(exc))
            raise InternalError(
                f"page {page_number} could not be rendered for its preview"
            ) from exc
        if preview.scaled:
            log.warning("preview_scaled", job_id=job_id, page_number=page_number)
        return Response(
            preview.png,
            media_type="image/png",
            headers={"Content-Disposition": f'inline; filename="{preview_file_name(page_number)}"'},
        )
