"""Prometheus instrumentation: every metric the gateway exports, and the one-line calls that
move them.

prometheus-client runs in its multi-process mode: each process (the server and every engine
worker process) writes its counters and histograms to memory-mapped files in one folder, and a
scrape sums them. `start(folder)` empties that folder and sets `PROMETHEUS_MULTIPROC_DIR` for
this process and the worker processes it spawns afterwards; it must run before prometheus-client
is first imported (the library picks its mode at import), so nothing imports it at module level
here. In a process where the variable is unset (the CLI, a test) every call is a no-op.

    counted where it happens (any process)     read at scrape time (`Snapshot`)
    ocr_gateway_pages_read_total               ocr_gateway_queue_depth
    ocr_gateway_page_read_seconds              ocr_gateway_queue_oldest_waiting_seconds
    ocr_gateway_provider_attempts_total        ocr_gateway_engine_workers
    ocr_gateway_credits_total                  ocr_gateway_remote_calls_total (and failures,
    ocr_gateway_http_requests_total              retries, refusals, breaker state): the remote
    ocr_gateway_http_request_duration_seconds    providers' own counters, in the server process
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from gateway.results import PageResult

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4"  # Litestar adds "; charset=utf-8"
PREFIX = "ocr_gateway"
READ_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0, 300.0)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BREAKER_STATES = ("closed", "half_open", "open")


def start(folder: Path) -> None:
    """Empty `folder` (files of an earlier run would be summed in) and make it this process's
    and its future child processes' multi-process folder."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(folder)


class _Metrics:
    """The metric objects of this process (created on first use, once the folder is set)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.pages = Counter(
            f"{PREFIX}_pages_read",
            "Pages finished, by the provider that read them, tier and outcome "
            "(completed, or the page error's code)",
            ["provider", "tier", "outcome"],
        )
        self.read_seconds = Histogram(
            f"{PREFIX}_page_read_seconds",
            "Time to read one page (render, OCR, layout), by provider",
            ["provider"],
            buckets=READ_BUCKETS,
        )
        self.attempts = Counter(
            f"{PREFIX}_provider_attempts",
            "Provider calls on a page (local engines and remote providers), by outcome "
            "(ok, or the provider error's code)",
            ["provider", "outcome"],
        )
        self.credits = Counter(
            f"{PREFIX}_credits",
            "Credits moved by the ledger: grant, reserve, charge, refund",
            ["movement"],
        )
        self.requests = Counter(
            f"{PREFIX}_http_requests",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
        )
        self.latency = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "HTTP request latency by method and route template",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
        )


_metrics: _Metrics | None = None


def _get() -> _Metrics | None:
    global _metrics  # one set of metric objects per process, made on first use
    if _metrics is None and os.environ.get(MULTIPROC_ENV):
        _metrics = _Metrics()
    return _metrics


# --- The call sites' one-liners ----------------------------------------------------------------


def page_completed(result: PageResult, seconds: float) -> None:
    """A page was read, by the provider and at the tier its metadata names."""
    if (m := _get()) is not None:
        meta = result.pipeline_metadata
        provider = meta.provider_used if meta else "none"
        m.pages.labels(provider, meta.tier if meta else "none", "completed").inc()
        m.read_seconds.labels(provider).observe(seconds)


def page_failed(tier: str, error_code: str) -> None:
    """A page failed for good (its credit is refunded): counted under its error's code."""
    if (m := _get()) is not None:
        m.pages.labels("none", tier, error_code).inc()


def provider_attempt(provider: str, error_code: str | None) -> None:
    if (m := _get()) is not None:
        m.attempts.labels(provider, error_code or "ok").inc()


def credits_moved(movement: str, amount: int) -> None:
    if (m := _get()) is not None and amount > 0:
        m.credits.labels(movement).inc(amount)


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    if (m := _get()) is not None:
        m.requests.labels(method, route, str(status)).inc()
        m.latency.labels(method, route).observe(seconds)


# --- The scrape ----------------------------------------------------------------------------------


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """What the server reads at scrape time from the store and its own objects."""

    queue_depth: int
    oldest_waiting_s: float  # 0 when nothing waits
    workers_ready: int
    workers_busy: int
    worker_crashes: int
    remote: dict[str, dict[str, object]]  # provider -> its state() (counters, breaker)


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


class _SnapshotCollector:
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        s = self.snapshot
        yield GaugeMetricFamily(
            f"{PREFIX}_queue_depth", "Pages waiting or being read", value=s.queue_depth
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_queue_oldest_waiting_seconds",
            "Age of the oldest page waiting to be read (its job's submission); 0 when none waits",
            value=s.oldest_waiting_s,
        )
        workers = GaugeMetricFamily(
            f"{PREFIX}_engine_workers", "Engine worker processes", labels=["state"]
        )
        workers.add_metric(["ready"], s.workers_ready)
        workers.add_metric(["busy"], s.workers_busy)
        yield workers
        yield CounterMetricFamily(
            f"{PREFIX}_engine_worker_crashes",
            "Engine worker processes that died or were stopped past a deadline",
            value=s.worker_crashes,
        )
        counters = {
            "calls": "Calls to the remote provider (one per page, retries inside)",
            "failures": "Calls that failed after their retries",
            "retries": "Retries inside calls (429, 5xx, timeouts; Retry-After honoured)",
            "refused_open": "Calls refused at once because the breaker was open",
        }
        for key, about in counters.items():
            family = CounterMetricFamily(f"{PREFIX}_remote_{key}", about, labels=["provider"])
            for name, state in sorted(s.remote.items()):
                family.add_metric([name], _number(state.get(key)))
            yield family
        breaker = GaugeMetricFamily(
            f"{PREFIX}_remote_breaker_state",
            "1 for the state each remote provider's circuit breaker is in",
            labels=["provider", "state"],
        )
        for name, state in sorted(s.remote.items()):
            snap = state.get("breaker")
            current = snap.get("state") if isinstance(snap, dict) else None
            for value in BREAKER_STATES:
                breaker.add_metric([name, value], 1.0 if current == value else 0.0)
        yield breaker


def exposition(snapshot: Snapshot) -> bytes:
    """The Prometheus text of every process's metrics plus the snapshot."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry)
