"""Page previews: the PNG of a page exactly as its result's geometry refers to it.

The page is rendered the way the pipeline renders it (`pipeline.render`: PDF pages at
`rendering.dpi` under `limits.max_pixels_per_page`, images as sent after EXIF orientation), then
turned upright by the result's `rotation_deg` the way the pipeline turned it, so its pixel size is
the result's `page_dimensions`. Pages answered from their text layer were never rendered by the
pipeline; their frame (`pdf_page_frame`) is the size this render has. Should the rendering
settings have changed since the page was read, the render is scaled to `page_dimensions`: the
geometry is relative, so the boxes still land on the same ink.

Rendering decodes hostile input and PNG encoding is CPU-bound: both run in an engine worker
process (`preview_task`), never on the event loop. Previews are rendered on demand and never
stored, so deleting a job (or retention) leaves none behind.
"""

from __future__ import annotations

import io

import msgspec
from PIL import Image

from gateway.config import Settings
from gateway.work.documents import DocumentKind
from gateway.work.pipeline import PageEngine, PageTask, Phase, render
from gateway.work.procpool import WorkerPool
from providers.orientation import rotate_upright

PNG_COMPRESS_LEVEL = 3  # a letter page at 200 DPI: 0.13 s and 430 kB (level 6: 0.20 s, 370 kB)


class PreviewRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A finished page to preview: where it comes from and how its result framed it."""

    path: str
    kind: DocumentKind
    page_number: int  # 1-based
    rotation_deg: int  # the result's: the page was turned this much counter-clockwise
    width: int  # the result's page_dimensions
    height: int


class Preview(msgspec.Struct, frozen=True, kw_only=True):
    png: bytes
    scaled: bool  # the render's size differed from page_dimensions (the settings changed)


def render_preview(request: PreviewRequest, settings: Settings, phase: Phase) -> Preview:
    """Render, turn upright, fit to page_dimensions, encode; raises PageError subclasses."""
    phase("render")
    task = PageTask(path=request.path, kind=request.kind, page_number=request.page_number)
    page = rotate_upright(render(task, settings), request.rotation_deg)
    phase("encode")
    image = Image.fromarray(page.pixels)
    size = (request.width, request.height)
    scaled = image.size != size
    if scaled:
        image = image.resize(size, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    return Preview(png=out.getvalue(), scaled=scaled)


def preview_task(engine: PageEngine, request: PreviewRequest, *, phase: Phase) -> Preview:
    """Worker-process task (engine pool): the page's preview."""
    return render_preview(request, engine.settings, phase)


async def make_preview(pool: WorkerPool, request: PreviewRequest, settings: Settings) -> Preview:
    """The preview, rendered in a worker process of `pool` (an engine pool) under the page's
    render deadline; raises PageError or the pool's errors (TaskTimeoutError,
    WorkerCrashedError)."""
    limits = settings.limits
    preview: Preview = await pool.run(
        preview_task,
        request,
        deadlines={"render": limits.render_timeout_s},
        total_s=limits.page_timeout_s,
    )
    return preview


def preview_file_name(page_number: int) -> str:
    return f"page_{page_number:04d}_preview.png"
