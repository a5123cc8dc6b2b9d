"""`GET /metrics`: the Prometheus text exposition of every process of the gateway.

Open to clients on the loopback interface (`metrics.open_on_loopback`); any other client sends
the token held in `metrics.token_env` as a Bearer token (401 without it or with a wrong one,
403 while the variable is unset). Not rate-limited and not in the OpenAPI document: it is for
the operator's scraper, not for API clients.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os

from litestar import Request, Response, get

from gateway import metrics
from gateway.clock import now_ms
from gateway.errors import ForbiddenError, UnauthorizedError
from gateway.services import Services
from gateway.store import stats


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_access(request: Request, services: Services) -> None:  # type: ignore[type-arg]
    config = services.settings.metrics
    if config.open_on_loopback and _is_loopback(request.client.host if request.client else None):
        return
    expected = os.environ.get(config.token_env, "")
    if not expected:
        raise ForbiddenError(f"/metrics is open on loopback only: set {config.token_env}")
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise UnauthorizedError("missing or wrong metrics token (Authorization: Bearer <token>)")


@get("/metrics", include_in_schema=False, media_type=metrics.CONTENT_TYPE)
async def scrape(request: Request, services: Services) -> Response[bytes]:  # type: ignore[type-arg]
    check_access(request, services)
    oldest = await stats.oldest_waiting_ms(services.db)
    engines = services.engines
    snapshot = metrics.Snapshot(
        queue_depth=await services.store.queue_depth(),
        oldest_waiting_s=max(0.0, (now_ms() - oldest) / 1000) if oldest is not None else 0.0,
        workers_ready=engines.ready,
        workers_busy=engines.busy,
        worker_crashes=engines.crashes,
        remote={name: provider.state() for name, provider in services.remote.items()},
    )
    body = await asyncio.to_thread(metrics.exposition, snapshot)  # reads every process's files
    return Response(body, media_type=metrics.CONTENT_TYPE)
