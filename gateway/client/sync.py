"""`Client`: the native API over a synchronous httpx client (`aio.AsyncClient` is its twin)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from gateway.api.schemas import QuoteResponse, SubmitResponse
from gateway.client.base import (
    MAX_WAIT_S,
    TERMINAL,
    Format,
    Mode,
    Options,
    PageRanges,
    Request,
    Settings,
    Source,
    WaitTimeoutError,
    checked,
    decoded,
    document_request,
    job_request,
    jobs_request,
    submit_request,
    usage_request,
)
from gateway.store.models import JobList, JobResult, JobSummary
from gateway.store.usage import Balance, Usage


class Client:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        transport: httpx.BaseTransport | None = None,
        **settings: Any,
    ) -> None:
        self.settings = Settings(base_url=base_url.rstrip("/"), api_key=api_key, **settings)
        self.http = httpx.Client(base_url=self.settings.base_url, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def send(self, request: Request) -> httpx.Response:
        """Send `request`, retrying 429, 503 and connection failures as `settings` says."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.http.send(self.settings.build(self.http, request))
            except httpx.TransportError:
                pause = self.settings.pause(attempt, None)
                if pause is None:
                    raise
            else:
                pause = self.settings.pause(attempt, response)
                if pause is None:
                    return response
            time.sleep(pause)

    def submit(
        self,
        source: Source | None = None,
        *,
        url: str | None = None,
        filename: str | None = None,
        page_ranges: PageRanges | None = None,
        mode: Mode | None = None,
        max_credits: int | None = None,
        allow_remote: bool | None = None,
        cache: bool | None = None,
        language: str | None = None,
        quote_id: str | None = None,
        callback_url: str | None = None,
        callback_full: bool | None = None,
        idempotency_key: str | None = None,
    ) -> SubmitResponse:
        """`POST /v1/ocr` with a document (a path, bytes or a file object) or its `url`."""
        options = Options(
            page_ranges=page_ranges,
            mode=mode,
            max_credits=max_credits,
            allow_remote=allow_remote,
            cache=cache,
            language=language,
        )
        request = submit_request(
            source,
            url,
            filename,
            options,
            quote_id=quote_id,
            callback_url=callback_url,
            callback_full=callback_full,
            idempotency_key=idempotency_key,
        )
        return decoded(self.send(request), SubmitResponse, 202)

    def quote(
        self,
        source: Source | None = None,
        *,
        url: str | None = None,
        filename: str | None = None,
        page_ranges: PageRanges | None = None,
        mode: Mode | None = None,
        max_credits: int | None = None,
        allow_remote: bool | None = None,
        cache: bool | None = None,
        language: str | None = None,
    ) -> QuoteResponse:
        """`POST /v1/quote`: each page's tier, credits and reason; nothing is reserved."""
        options = Options(
            page_ranges=page_ranges,
            mode=mode,
            max_credits=max_credits,
            allow_remote=allow_remote,
            cache=cache,
            language=language,
        )
        request = document_request("/v1/quote", source, url, filename, options.form())
        return decoded(self.send(request), QuoteResponse)

    def job(self, job_id: str, *, wait_s: float = 0.0, words: bool = True) -> JobResult:
        """`GET /v1/jobs/{id}`; `wait_s` (<= 30) holds the answer until the job changes."""
        return decoded(self.send(job_request(job_id, wait_s, words)), JobResult)

    def wait(self, job_id: str, *, timeout_s: float | None = None) -> JobResult:
        """Long-poll until the job is completed, failed or cancelled."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            left = MAX_WAIT_S if deadline is None else deadline - time.monotonic()
            job = self.job(job_id, wait_s=max(0.0, min(MAX_WAIT_S, left)))
            if job.status in TERMINAL:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeoutError(f"job {job_id} is still {job.status} after {timeout_s} s")

    def result(self, job_id: str, fmt: Format = "json") -> bytes:
        """The finished job as one document (NotReadyError until it has finished)."""
        path = f"/v1/jobs/{job_id}/result"
        return checked(self.send(Request(method="GET", path=path, params={"format": fmt}))).content

    def preview(self, job_id: str, page_number: int) -> bytes:
        """The PNG the page's geometry refers to (NotReadyError until the page is read)."""
        path = f"/v1/jobs/{job_id}/pages/{page_number}/preview"
        return checked(self.send(Request(method="GET", path=path))).content

    def jobs(self, *, limit: int = 20, offset: int = 0, status: str | None = None) -> JobList:
        return decoded(self.send(jobs_request(limit, offset, status)), JobList)

    def cancel(self, job_id: str) -> JobSummary:
        request = Request(method="POST", path=f"/v1/jobs/{job_id}/cancel")
        return decoded(self.send(request), JobSummary)

    def delete(self, job_id: str) -> None:
        checked(self.send(Request(method="DELETE", path=f"/v1/jobs/{job_id}")), 204)

    def balance(self) -> Balance:
        return decoded(self.send(Request(method="GET", path="/v1/balance")), Balance)

    def usage(self, *, from_date: str | None = None, to_date: str | None = None) -> Usage:
        """Pages and credits per day (UTC dates, YYYY-MM-DD; default: the last 30 days)."""
        return decoded(self.send(usage_request(from_date, to_date)), Usage)
