"""The web console: static files (gateway/console/static) at `/console/`, no build step, nothing
fetched from elsewhere. The page talks to the native API with the key the user pastes; the
server knows nothing of it beyond serving the files.

A strict Content-Security-Policy keeps the page to its own scripts and styles, and its images to
its own origin and the blob: URLs it makes of previews.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Response
from litestar.router import Router
from litestar.static_files import create_static_files_router

STATIC = Path(__file__).resolve().parents[1] / "console" / "static"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def _secure(response: Response) -> Response:  # type: ignore[type-arg]
    response.headers.update(SECURITY_HEADERS)
    return response


def console_routes() -> list[Router]:
    """`/console` (index.html) and its files under `/console/`."""
    files = create_static_files_router(
        path="/console",
        directories=[STATIC],
        html_mode=True,
        name="console",
        after_request=_secure,
        include_in_schema=False,
    )
    return [files]
