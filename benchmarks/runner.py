"""Run every provider on every page of the corpus and score what each read.

Each page is rendered once (in its own worker process) and handed to each provider's worker in
turn; `routed` runs `PageEngine.read_page`, the server's own pipeline, which renders for itself.
Providers take turns page by page, the order rotating, so machine drift hits all alike. One page
runs at a time: timings never compete for the CPU.

`oracle` is computed, not run: per page with ground truth, the best reading among the listed
providers (highest bag-of-words F1, then lowest CER, then fastest). It is the ceiling that
routing between those providers can reach; `routed` rows record whether routing chose one of the
oracle's providers and what quality it gave up.

Table F1 compares like with like: `routed` holds the tables its pipeline found; a provider's
reading is the engine's alone (text scores, seconds and memory unchanged), and on a page with
table ground truth the product's table stage is run on that reading in a second worker of the
provider (`workers.tables_task`), its markdown scored for table F1 only, its time counted
nowhere.

Rows are appended to the caller's list a whole page at a time, so after Ctrl-C the list holds
exactly the pages that every provider finished.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from benchmarks import workers
from benchmarks.corpus import CorpusDocument, GroundTruth
from benchmarks.metrics import cell_f1, parse_markdown_tables, score_text, table_cells
from benchmarks.progress import Progress
from benchmarks.results import ORACLE, ROUTED, PageRow
from benchmarks.table_metrics import html_tables
from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.page_errors import PageError, TaskTimeoutError, WorkerCrashedError
from gateway.work.documents import DocumentInfo
from gateway.work.procpool import WorkerPool
from providers.errors import ProviderError


class BenchPlan(msgspec.Struct, frozen=True, kw_only=True):
    settings: Settings
    providers: tuple[str, ...]  # as listed: configured names, `routed`, `oracle`
    documents: tuple[CorpusDocument, ...]
    truths: tuple[dict[int, GroundTruth], ...]  # per document: ground truth by page number

    @property
    def engines(self) -> list[str]:
        """The configured providers that run on rendered pages."""
        return [p for p in self.providers if p not in (ROUTED, ORACLE)]


class Failure(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    message: str


def _failure(exc: Exception, timeout_code: str) -> Failure:
    match exc:
        case PageError() | ProviderError() | GatewayError():
            return Failure(code=exc.code, message=exc.message)
        case TaskTimeoutError():
            return Failure(code=timeout_code, message=str(exc))
        case WorkerCrashedError():
            return Failure(code="worker_crashed", message=str(exc))
        case _:
            return Failure(code="internal_error", message=f"{type(exc).__name__}: {exc}"[:300])


async def _call(
    pool: WorkerPool,
    func: Callable[..., Any],
    *args: Any,
    total_s: float,
    timeout_code: str,
    deadlines: dict[str, float] | None = None,
) -> Any:
    """The task's result, or a Failure: no input, however broken, stops the run."""
    try:
        return await pool.run(func, *args, deadlines=deadlines or {}, total_s=total_s)
    except Exception as exc:  # noqa: BLE001 - every page failure becomes a row with its code
        return _failure(exc, timeout_code)


class _Pools:
    def __init__(self, plan: BenchPlan) -> None:
        settings = plan.settings
        self.page_timeout_s = settings.limits.page_timeout_s
        self.renderer = WorkerPool("bench-render", 1, workers.init_renderer)
        self.engines = {
            name: WorkerPool(f"bench-{name}", 1, workers.init_provider, (name, settings))
            for name in plan.engines
        }
        has_tables = any(t.cells is not None for truths in plan.truths for t in truths.values())
        self.tables = {  # the table stage on a provider's reading, kept out of its figures
            name: WorkerPool(f"bench-{name}-tables", 1, workers.init_provider, (name, settings))
            for name in (plan.engines if has_tables else [])
        }
        self.routed = (
            WorkerPool("bench-routed", 1, workers.init_routed, (settings,))
            if ROUTED in plan.providers
            else None
        )

    def all(self) -> list[WorkerPool]:
        return [
            self.renderer,
            *self.engines.values(),
            *self.tables.values(),
            *([self.routed] if self.routed else []),
        ]


def _scored(row: PageRow, truth: GroundTruth, reading: workers.Reading | None) -> PageRow:
    """The row with its quality fields; a failed page is scored as an empty reading."""
    lines = reading.lines if reading is not None else ()
    if truth.area_pt is not None and reading is not None:
        top, left, bottom, right = truth.area_pt
        width, height = reading.page_size_pt
        lines = tuple(
            line
            for line in lines
            if left <= line.x * width <= right and top <= line.y * height <= bottom
        )
    scores = score_text(truth.text, "\n".join(line.text for line in lines))
    table_f1 = None
    if truth.cells is not None:  # a table the reading does not hold is a table missed: 0
        markdown = "" if reading is None else reading.table_markdown or reading.markdown
        tables = parse_markdown_tables(markdown) + html_tables(markdown)
        table_f1 = cell_f1(truth.cells, table_cells(row for t in tables for row in t))
    return msgspec.structs.replace(
        row,
        ground_truth=truth.source,
        page_rule=truth.page_rule,
        cer=scores.cer,
        wer=scores.wer,
        f1=scores.f1,
        table_f1=table_f1,
    )


def _row(
    document: CorpusDocument,
    page_number: int,
    provider: str,
    outcome: workers.Reading | Failure,
    truth: GroundTruth | None,
) -> PageRow:
    if isinstance(outcome, Failure):
        row = PageRow(
            category=document.category,
            file=document.entry.file,
            page_number=page_number,
            provider=provider,
            status="failed",
            error_code=outcome.code,
            error_message=outcome.message,
        )
        return _scored(row, truth, None) if truth is not None else row
    row = PageRow(
        category=document.category,
        file=document.entry.file,
        page_number=page_number,
        provider=provider,
        status="ok",
        seconds=round(outcome.seconds, 4),
        peak_rss_mb=outcome.peak_rss_mb,
        model=outcome.model,
        provider_used=outcome.provider_used,
        tier=outcome.tier,
        credits=outcome.credits,
        text_sha1=_digest(outcome.markdown),
    )
    return _scored(row, truth, outcome) if truth is not None else row


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]


def _with_oracle(rows: dict[str, PageRow], engines: Sequence[str]) -> dict[str, PageRow]:
    """Add the oracle's row for a page with ground truth, and compare `routed` with it."""
    candidates = [rows[name] for name in engines if rows[name].status == "ok"]
    if not candidates:
        first = rows[engines[0]]
        rows[ORACLE] = msgspec.structs.replace(first, provider=ORACLE)
        return rows
    best = min(candidates, key=lambda r: (-(r.f1 or 0.0), r.cer or 0.0, r.seconds or 0.0))
    tied = [r.provider for r in candidates if (r.f1, r.cer) == (best.f1, best.cer)]
    oracle = msgspec.structs.replace(
        best, provider=ORACLE, provider_used=best.provider, oracle_providers=tied, peak_rss_mb=None
    )
    rows[ORACLE] = oracle
    routed = rows.get(ROUTED)
    if routed is not None and routed.f1 is not None and routed.cer is not None:
        rows[ROUTED] = msgspec.structs.replace(
            routed,
            matches_oracle=routed.provider_used in tied,
            f1_given_up=(oracle.f1 or 0.0) - routed.f1,
            cer_given_up=routed.cer - (oracle.cer or 0.0),
        )
    return rows


async def _with_tables(
    pools: _Pools,
    name: str,
    path: str,
    info: DocumentInfo,
    page_number: int,
    rendered: workers.Rendered,
    reading: workers.Reading,
) -> workers.Reading:
    """The reading with the markdown the product's table stage makes of it (untimed); as it
    was when that stage fails (its tables then count as none found)."""
    assert reading.page is not None
    markdown = await _call(
        pools.tables[name],
        workers.tables_task,
        path,
        info.kind,
        page_number,
        rendered.image,
        reading.page,
        total_s=pools.page_timeout_s,
        timeout_code="table_timeout",
    )
    table_markdown = markdown if isinstance(markdown, str) else None
    return msgspec.structs.replace(reading, page=None, table_markdown=table_markdown)


async def _bench_page(
    plan: BenchPlan,
    pools: _Pools,
    document: CorpusDocument,
    info: DocumentInfo,
    page_number: int,
    truth: GroundTruth | None,
    turn: int,
) -> list[PageRow]:
    limits, path = plan.settings.limits, str(document.path)
    rendered: workers.Rendered | Failure | None = None
    if plan.engines:
        rendered = await _call(
            pools.renderer,
            workers.render_task,
            path,
            info.kind,
            page_number,
            plan.settings.rendering.dpi,
            limits.max_pixels_per_page,
            total_s=limits.render_timeout_s,
            timeout_code="render_timeout",
        )
    runs = [p for p in plan.providers if p != ORACLE]
    order = runs[turn % len(runs) :] + runs[: turn % len(runs)]
    outcomes: dict[str, workers.Reading | Failure] = {}
    for name in order:
        if name == ROUTED and pools.routed is not None:
            outcomes[name] = await _call(
                pools.routed,
                workers.routed_task,
                path,
                info.kind,
                page_number,
                deadlines={"render": limits.render_timeout_s},
                total_s=limits.page_timeout_s,
                timeout_code="page_timeout",
            )
        elif isinstance(rendered, workers.Rendered):
            with_tables = truth is not None and truth.cells is not None
            outcome = await _call(
                pools.engines[name],
                workers.recognize_task,
                rendered.image,
                with_tables,
                total_s=limits.page_timeout_s,
                timeout_code="ocr_timeout",
            )
            if isinstance(outcome, workers.Reading):  # rendering is part of reading a page
                outcome = msgspec.structs.replace(
                    outcome, seconds=outcome.seconds + rendered.seconds
                )
                if with_tables:
                    outcome = await _with_tables(
                        pools, name, path, info, page_number, rendered, outcome
                    )
            outcomes[name] = outcome
        else:
            assert isinstance(rendered, Failure)
            outcomes[name] = rendered
    rows = {name: _row(document, page_number, name, outcomes[name], truth) for name in runs}
    if ORACLE in plan.providers and truth is not None and plan.engines:
        rows = _with_oracle(rows, plan.engines)
    return [rows[name] for name in plan.providers if name in rows]


async def _inspect(
    plan: BenchPlan, pools: _Pools, document: CorpusDocument
) -> DocumentInfo | Failure:
    """Detect the type and count the pages, as the server does at upload."""
    if not document.path.is_file():
        return Failure(code="file_not_found", message=f"{document.path} is not a file")
    result: DocumentInfo | Failure = await _call(
        pools.renderer,
        workers.inspect_task,
        str(document.path),
        plan.settings.limits.max_pixels_per_page,
        total_s=plan.settings.limits.inspect_timeout_s,
        timeout_code="document_timeout",
    )
    return result


async def run_bench(plan: BenchPlan, rows: list[PageRow], progress: Progress) -> None:
    """Run the plan, appending rows to `rows` one whole page at a time."""
    pools = _Pools(plan)
    try:
        await asyncio.gather(*(pool.start() for pool in pools.all()))
        progress.note(f"inspecting {len(plan.documents)} documents")
        inspected = [await _inspect(plan, pools, doc) for doc in plan.documents]
        progress.start(sum(i.page_count if isinstance(i, DocumentInfo) else 1 for i in inspected))
        turn = 0
        for document, truths, info in zip(plan.documents, plan.truths, inspected, strict=True):
            label = f"{document.category}/{document.entry.file}"
            if isinstance(info, Failure):
                rows += [
                    _row(document, 0, name, info, None) for name in plan.providers if name != ORACLE
                ]
                progress.advance(label)
                continue
            for page_number in range(1, info.page_count + 1):
                rows += await _bench_page(
                    plan, pools, document, info, page_number, truths.get(page_number), turn
                )
                turn += 1
                progress.advance(f"{label} p{page_number}")
    finally:
        progress.close()
        await asyncio.gather(*(pool.close() for pool in pools.all()), return_exceptions=True)
