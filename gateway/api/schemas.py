"""Request and response shapes of the native API."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from litestar.datastructures import UploadFile


@dataclass
class SubmitForm:
    """multipart/form-data body of `POST /v1/ocr`."""

    file: UploadFile
    page_ranges: str | None = None  # JSON, e.g. [{"start":1,"end":3}], 1-based inclusive
    mode: str | None = None  # auto (default), fast, accurate
    max_credits: int | None = None  # cap on the credits of the whole document
    allow_remote: bool | None = None  # false: remote providers never see this document


class SubmitResponse(msgspec.Struct, frozen=True, kw_only=True):
    jobId: str  # noqa: N815 - the native API's field names
    status: str
    pageCount: int  # noqa: N815
    creditsReserved: int  # noqa: N815
    estimatedCompletionSeconds: int  # noqa: N815


class EngineHealth(msgspec.Struct, frozen=True, kw_only=True):
    providers: list[str]
    default_provider: str
    workers_ready: int
    workers_total: int
    workers_busy: int
    worker_crashes: int
    devices: dict[str, str]  # local engine -> "cpu" or "cuda", as the worker processes loaded them
    remote: dict[str, dict[str, object]]  # remote providers: breaker state, calls, failures


class HealthResponse(msgspec.Struct, frozen=True, kw_only=True):
    status: str  # "ok", or "degraded" while no worker process is ready
    version: str
    uptime_s: float
    queue_depth: int  # pages waiting or being read
    jobs_processed: int
    engines: EngineHealth
