"""The results.json schema (schema_version 1) and the aggregation of page rows.

`BenchResults` is the whole file: `run` (what ran, where, with which versions and config),
`pages` (one `PageRow` per provider per page) and `aggregates` (one `Aggregate` per provider per
category, plus one per provider over all categories, named `all`). `msgspec.json.schema`
of `BenchResults` is the machine-readable form; `--out` writes it beside the results as
`results.schema.json`.

Conventions:
- quality fields are None where a page has no ground truth;
- a failed page that has ground truth is scored as an empty reading (CER = WER = 1, F1 = 0):
  that is what a client would get;
- `seconds` is end-to-end for one page: rendering (done once per page, its time added to every
  provider) + recognition + layout; for `routed`, the wall time of `PageEngine.read_page`;
- means are page means (each page weighs the same).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

import msgspec
import numpy as np

SCHEMA_VERSION = 1
ALL = "all"  # the category name of the aggregates over every category
ROUTED = "routed"
ORACLE = "oracle"


class PageRow(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One provider on one page."""

    category: str
    file: str  # relative to the category folder
    page_number: int  # 1-based; 0 when the document itself could not be opened
    provider: str
    status: Literal["ok", "failed"]
    error_code: str | None = None
    error_message: str | None = None
    seconds: float | None = None  # None for failed pages
    peak_rss_mb: float | None = None  # the worker's high-water mark after it; None: oracle
    model: str | None = None
    provider_used: str | None = None  # routed: the provider the pipeline chose; oracle: its pick
    tier: str | None = None  # routed: from pipeline_metadata.tier when the pipeline reports it
    credits: float | None = None  # routed: pipeline_metadata.credits, else config credits_per_page
    text_sha1: str | None = None  # digest of the reading's markdown: two runs compare page by page
    ground_truth: str | None = None  # ground-truth file(s); None when the page has none
    page_rule: str | None = None  # how the ground truth was matched to this page
    cer: float | None = None
    wer: float | None = None
    f1: float | None = None  # bag-of-words F1
    table_f1: float | None = None  # cell-level F1 where the truth is a table (0: none read)
    oracle_providers: list[str] | None = None  # oracle: every provider tied for the best reading
    matches_oracle: bool | None = None  # routed: chose one of the oracle's providers
    f1_given_up: float | None = None  # routed: oracle F1 - routed F1
    cer_given_up: float | None = None  # routed: routed CER - oracle CER


class Aggregate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    provider: str
    category: str  # a category folder name, or `all`
    pages: int
    failed: int
    error_codes: dict[str, int]
    scored_pages: int  # pages with ground truth
    cer: float | None
    wer: float | None
    f1: float | None
    table_pages: int  # pages whose ground truth is a table (table F1 is their mean)
    table_f1: float | None
    seconds_median: float | None
    seconds_p90: float | None
    pages_per_second: float | None  # one page at a time: pages / total seconds
    peak_rss_mb: float | None
    credits: float | None  # total charged (routed)
    tiers: dict[str, int]  # routed pages per tier; `untiered` while the pipeline reports none
    oracle_pages: int  # routed: pages compared with the oracle
    oracle_agreement: float | None  # routed: share of those where it chose the oracle's provider
    f1_given_up: float | None  # routed: mean F1 below the oracle
    cer_given_up: float | None  # routed: mean CER above the oracle


class MachineInfo(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    platform: str
    machine: str
    processor: str
    cpu_count: int | None
    memory_gib: float | None
    python: str


class RunInfo(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    started_at: str  # ISO 8601, UTC
    finished_at: str
    interrupted: bool  # Ctrl-C: only pages every provider finished are kept
    argv: list[str]
    corpora: list[str]
    providers: list[str]
    limit: int | None  # documents per category
    config_path: str | None  # None: built-in defaults
    settings: dict[str, Any]  # the effective gateway settings
    versions: dict[str, str]  # packages and binaries
    models: dict[str, str]  # provider -> model string reported by the engine
    git_commit: str | None
    machine: MachineInfo


class BenchResults(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    schema_version: int
    run: RunInfo
    pages: list[PageRow]
    aggregates: list[Aggregate]


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _aggregate(provider: str, category: str, rows: Sequence[PageRow]) -> Aggregate:
    ok = [r for r in rows if r.status == "ok"]
    scored = [r for r in rows if r.f1 is not None]
    tables = [r.table_f1 for r in rows if r.table_f1 is not None]
    seconds = [r.seconds for r in ok if r.seconds is not None]
    memory = [r.peak_rss_mb for r in rows if r.peak_rss_mb is not None]
    credits = [r.credits for r in ok if r.credits is not None]
    compared = [r for r in rows if r.matches_oracle is not None]
    return Aggregate(
        provider=provider,
        category=category,
        pages=len(rows),
        failed=len(rows) - len(ok),
        error_codes=dict(Counter(r.error_code or "unknown" for r in rows if r.status != "ok")),
        scored_pages=len(scored),
        cer=_mean([r.cer for r in scored if r.cer is not None]),
        wer=_mean([r.wer for r in scored if r.wer is not None]),
        f1=_mean([r.f1 for r in scored if r.f1 is not None]),
        table_pages=len(tables),
        table_f1=_mean(tables),
        seconds_median=statistics.median(seconds) if seconds else None,
        seconds_p90=float(np.percentile(seconds, 90)) if seconds else None,
        pages_per_second=len(seconds) / sum(seconds) if seconds and sum(seconds) > 0 else None,
        peak_rss_mb=max(memory) if memory else None,
        credits=sum(credits) if credits else None,
        tiers=dict(Counter(r.tier or "untiered" for r in ok if r.tier or r.credits is not None)),
        oracle_pages=len(compared),
        oracle_agreement=_mean([1.0 if r.matches_oracle else 0.0 for r in compared]),
        f1_given_up=_mean([r.f1_given_up for r in compared if r.f1_given_up is not None]),
        cer_given_up=_mean([r.cer_given_up for r in compared if r.cer_given_up is not None]),
    )


def aggregate(rows: Sequence[PageRow], providers: Sequence[str]) -> list[Aggregate]:
    """Per provider (in the order given): each category in order of appearance, then `all`."""
    categories = list(dict.fromkeys(r.category for r in rows))
    out = []
    for provider in providers:
        mine = [r for r in rows if r.provider == provider]
        for category in categories:
            group = [r for r in mine if r.category == category]
            if group:
                out.append(_aggregate(provider, category, group))
        if mine:
            out.append(_aggregate(provider, ALL, mine))
    return out
