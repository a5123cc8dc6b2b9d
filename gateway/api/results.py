"""A finished job's whole document: `GET /v1/jobs/{jobId}/result?format=...`.

    200                   json (the job, as GET /v1/jobs/{jobId} once finished), markdown,
                          text, hocr, alto or pdf, named in Content-Disposition
    202 result_not_ready  the job is pending or processing (Retry-After)
    404 job_not_found     no such job, or another tenant's

A cancelled job is finished too: its result has the pages read before the cancel. Text formats
are written in a thread from the stored results (`gateway.outputs`); the searchable PDF also
reads the upload, so it is made in an engine worker process, one page at a time, into a file
streamed back and deleted once sent. Should that process fail on a hostile file, the PDF is
made again here from the results alone (blank pages carrying the text layer and a note).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import uuid
from pathlib import Path
from typing import Annotated, Any

import msgspec
import structlog
from litestar import Response, get
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import ResponseHeader
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Operation, Reference, Schema
from litestar.params import Parameter
from litestar.response import File

from gateway.api.errors import error_responses
from gateway.api.native import READ_ERRORS, TenantController
from gateway.errors import ResultNotReadyError
from gateway.outputs.formats import MEDIA_TYPES, OutputFormat, download_name, write_text_format
from gateway.outputs.pdf import Source, searchable_pdf_task, write_searchable_pdf
from gateway.results import PageResult
from gateway.services import VERSION, Services
from gateway.store.models import TERMINAL_JOB
from gateway.store.tenants import Tenant
from gateway.store.uploads import Upload, job_upload
from gateway.work.documents import DocumentKind, render_page

log = structlog.get_logger(__name__)

PDF_SECONDS_PER_PAGE = 5.0  # budget per page for the searchable PDF, beyond one render's limit
SOFTWARE = ("ocr-gateway", VERSION)
RESULT_ERRORS = {
    202: "The job has not finished (`result_not_ready`, Retry-After): poll again",
    404: "No such job (also another tenant's: `job_not_found`)",
}


@dataclasses.dataclass
class ResultOperation(Operation):
    """The 200 response in every format's media type (a handler declares one of its own)."""

    def __post_init__(self) -> None:
        text = Schema(type="string")  # type: ignore[arg-type]
        content = {
            media.split(";")[0]: OpenAPIMediaType(schema=text)
            for fmt, media in MEDIA_TYPES.items()
            if fmt not in (OutputFormat.JSON, OutputFormat.PDF)
        }
        content["application/json"] = OpenAPIMediaType(
            schema=Reference(ref="#/components/schemas/JobResult")
        )
        content["application/pdf"] = OpenAPIMediaType(
            schema=Schema(type="string", format="binary")  # type: ignore[arg-type]
        )
        if self.responses is not None and "200" in self.responses:
            described = self.responses["200"]
            assert isinstance(described, OpenAPIResponse)
            described.content = content


class ResultController(TenantController):
    path = "/v1/jobs"

    @get(
        "/{job_id:str}/result",
        summary="The finished job as one document: JSON, markdown, text, hOCR, ALTO or PDF",
        operation_class=ResultOperation,
        response_description="The whole document in the format asked for, pages in order; "
        "pages that were not read are marked in it",
        response_headers=[
            ResponseHeader(
                name="Content-Disposition",
                value='attachment; filename="scan.md"',
                description="attachment, named for the upload with the format's suffix",
                required=True,
                documentation_only=True,
            )
        ],
        responses=error_responses(*READ_ERRORS, 202, 404, described=RESULT_ERRORS),
    )
    async def result(
        self,
        job_id: str,
        tenant: Tenant,
        services: Services,
        fmt: Annotated[
            OutputFormat,
            Parameter(
                query="format", description="json (default), markdown, text, hocr, alto or pdf"
            ),
        ] = OutputFormat.JSON,
    ) -> Response[Any]:
        """`202 result_not_ready` until the job has finished; then the whole document, pages
        in page order, a page that was not read marked where its text would be. Another
        tenant's job is 404, exactly like a missing one."""
        job = await services.store.get_job(tenant.id, job_id)
        if job.status not in TERMINAL_JOB:
            raise ResultNotReadyError()
        upload = await job_upload(services.db, tenant.id, job_id)
        upload = msgspec.structs.replace(
            upload, path=await services.local_upload(job_id, upload.path)
        )
        name = download_name(upload.file_name, f"job-{job_id[:8]}", fmt)
        if fmt == OutputFormat.PDF:
            path = await searchable_pdf(services, upload, job.results, job_id)
            return File(
                path,
                filename=name,
                media_type=MEDIA_TYPES[fmt],
                background=BackgroundTask(path.unlink, missing_ok=True),
            )
        if fmt == OutputFormat.JSON:
            body = await asyncio.to_thread(msgspec.json.encode, job)
        else:
            text = await asyncio.to_thread(
                write_text_format, fmt, job.results, upload.file_name, SOFTWARE
            )
            body = text.encode()
        return Response(
            body,
            media_type=MEDIA_TYPES[fmt],
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )


async def searchable_pdf(
    services: Services, upload: Upload, pages: list[PageResult], job_id: str
) -> Path:
    """The searchable PDF, written in an engine process to a file under the uploads folder
    (where retention sweeps any a crash leaves behind); its path."""
    settings = services.settings
    path = settings.uploads_dir / f"result-{uuid.uuid4().hex}.pdf"
    kind = DocumentKind(upload.kind)
    render = functools.partial(
        render_page,
        Path(upload.path),
        kind,
        dpi=settings.rendering.dpi,
        max_pixels=settings.limits.max_pixels_per_page,
    )
    source = Source(
        pdf_path=upload.path if kind == DocumentKind.PDF else None,
        render=render,
        lossy=kind == DocumentKind.JPEG,
    )
    try:
        await services.engines.run(
            searchable_pdf_task,
            pages,
            str(path),
            source,
            deadlines={},
            total_s=settings.limits.render_timeout_s + PDF_SECONDS_PER_PAGE * len(pages),
        )
    except Exception as exc:  # noqa: BLE001 - any failure on the upload: the PDF from results
        log.warning("result_pdf_without_images", job_id=job_id, error=repr(exc)[:500])
        await asyncio.to_thread(write_searchable_pdf, pages, str(path), Source())
    return path
