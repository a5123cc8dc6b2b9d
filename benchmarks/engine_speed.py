"""Local engines against stock, side by side in one run, on the same pages (issue 5).

    python -m benchmarks.engine_speed [--limit N] [--rounds 2] [--parts rapidocr,tesseract,pipeline]
                                      [--workers N] [--out DIR]

Pages: every page of the scanned and printed categories of ../shared/corpus (a_clean_printed,
b_forms, c_receipts, and the scanned PDFs and images of f_pdfs), rendered once as the gateway
renders them; `--limit N` keeps the first N documents of each category.

- rapidocr: stock `rapidocr` 3.10.0 `RapidOCR()` (PP-OCRv6 small with its packaged defaults:
  every core on one page, per-line angle classifier, detection with the shortest side raised to
  736) reading one page at a time, against the configured `rapidocr` provider (our loop on the
  same PP-OCRv6 models) as the gateway runs it: N processes, one page each. The provider in one
  process is a third side, to tell the engine's gain from the scheduling's; the `ppocrv4`
  provider (our loop on rapidocr-onnxruntime 1.4.4's PP-OCRv4, the engine before issue 12) in N
  processes is the fourth. Bag-of-words F1 against the ground truth for each side.
- tesseract: the CLI with default OpenMP threading (no OMP_THREAD_LIMIT), same argv and image
  bytes, one page at a time, against the configured provider in N processes (and in one); each
  page's text compared with stock's.
- pipeline: `PageEngine.read_page` (render, recognize, layout; the gateway's per-page work) in N
  processes against one single-threaded worker process.
- lone: the `rapidocr` provider in N processes, given one page at a time (a lone request on an
  idle node), with `idle_cores` on (the page runs on its idle siblings' cores too) and off; the
  two pools take turns page by page. Reports seconds per page; the text must not change.

N is the gateway's default concurrency (`worker.processes`, 0 = one per core). Sides take turns
round by round, the order rotating, so drift in the machine's load hits them alike; engines are
loaded and warmed before any clock starts. A side's throughput is pages x rounds over the sum of
its wall times; ratios are of throughputs. Targets: rapidocr >= 2.4x stock with F1 >= stock in
every category;
tesseract >= 5x stock, same text; pipeline >= 1.8x one worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from benchmarks import engine_sides as sides
from benchmarks.corpus import load_documents, load_ground_truth
from benchmarks.environment import describe_machine, git_commit, package_versions
from benchmarks.metrics import bag_of_words_f1, cer
from benchmarks.workers import init_provider
from gateway.config import Settings, load_settings
from gateway.work.documents import DocumentKind, detect_kind, inspect_document, render_page
from gateway.work.procpool import WorkerPool
from providers.rapidocr import RapidOCRConfig
from providers.tesseract import TesseractConfig
from tests.support.gateway_process import CORPUS, REPO

CATEGORIES = ("a_clean_printed", "b_forms", "c_receipts", "f_pdfs")
SCANNED_KINDS = ("scanned", "image_pdf")  # the f_pdfs entries that are scans, by manifest kind
PARTS = ("rapidocr", "tesseract", "pipeline", "lone")
ENGINE, PREVIOUS = "rapidocr", "ppocrv4"  # configured names: PP-OCRv6 (default), PP-OCRv4
TASK_LIMIT_S = 900.0


class BenchPage(msgspec.Struct, frozen=True, kw_only=True):
    category: str
    file: str
    source: str  # the document, for the pipeline, which renders for itself
    kind: DocumentKind
    page: sides.PageFile
    truth: str | None


class Side(msgspec.Struct, frozen=True, kw_only=True):
    label: str
    processes: int
    init: Callable[..., Any]
    init_args: tuple[Any, ...]
    task: Callable[..., Any]
    args: list[tuple[Any, ...]]  # one per page


class SideResult(msgspec.Struct, kw_only=True):
    label: str
    processes: int
    round_seconds: list[float]
    texts: list[str]
    failures: int

    def pages_per_s(self, pages: int) -> float:
        return pages * len(self.round_seconds) / sum(self.round_seconds)


def collect_pages(
    corpus: Path, limit: int | None, settings: Settings, folder: Path
) -> list[BenchPage]:
    documents = [
        d
        for d in load_documents([corpus / c for c in CATEGORIES])
        if d.category != "f_pdfs" or d.entry.kind.startswith(SCANNED_KINDS)
    ]
    kept: dict[str, int] = {}
    pages: list[BenchPage] = []
    for document in documents:
        if limit is not None and kept.get(document.category, 0) >= limit:
            continue
        kept[document.category] = kept.get(document.category, 0) + 1
        kind = detect_kind(document.path.read_bytes()[:2048])
        if kind is None:
            continue
        max_pixels = settings.limits.max_pixels_per_page
        count = inspect_document(document.path, kind, max_pixels).page_count
        truths = load_ground_truth(document)
        for number in range(1, count + 1):
            image = render_page(document.path, kind, number - 1, settings.rendering.dpi, max_pixels)
            truth = truths.get(number)
            pages.append(
                BenchPage(
                    category=document.category,
                    file=document.entry.file,
                    source=str(document.path),
                    kind=kind,
                    page=sides.write_page(folder, len(pages), image),
                    truth=truth.text if truth is not None else None,
                )
            )
    return pages


async def run_sides(
    side_list: Sequence[Side], rounds: int, warm: tuple[Any, ...], log: Callable[[str], None]
) -> list[SideResult]:
    """Every side over every page, `rounds` times, the order of the sides rotating."""
    pools = [WorkerPool(f"bench-{s.label}", s.processes, s.init, s.init_args) for s in side_list]
    results = [
        SideResult(label=s.label, processes=s.processes, round_seconds=[], texts=[], failures=0)
        for s in side_list
    ]
    try:
        await asyncio.gather(*(pool.start() for pool in pools))
        for side, pool in zip(side_list, pools, strict=True):  # load models, first inference
            await asyncio.gather(
                *(
                    pool.run(side.task, *warm, deadlines={}, total_s=TASK_LIMIT_S)
                    for _ in range(pool.size)
                )
            )
        for number in range(rounds):
            shift = number % len(side_list)
            for index in [*range(shift, len(side_list)), *range(shift)]:
                side, pool, result = side_list[index], pools[index], results[index]
                started = time.perf_counter()
                outputs = await asyncio.gather(
                    *(
                        pool.run(side.task, *args, deadlines={}, total_s=TASK_LIMIT_S)
                        for args in side.args
                    ),
                    return_exceptions=True,
                )
                seconds = time.perf_counter() - started
                result.round_seconds.append(seconds)
                result.texts = [o if isinstance(o, str) else "" for o in outputs]
                result.failures = sum(not isinstance(o, str) for o in outputs)
                log(
                    f"  round {number + 1}: {side.label:<28} {seconds:8.1f} s "
                    f"({len(side.args) / seconds:.3f} pages/s)"
                )
    finally:
        for pool in pools:
            await pool.close()
    return results


def quality(pages: Sequence[BenchPage], texts: Sequence[str]) -> dict[str, Any]:
    """Mean bag-of-words F1 over the pages with ground truth, per category and over all."""
    scores: dict[str, list[float]] = {}
    for page, text in zip(pages, texts, strict=True):
        if page.truth is not None:
            scores.setdefault(page.category, []).append(bag_of_words_f1(page.truth, text))
    everything = [f for values in scores.values() for f in values]
    return {
        "pages": len(everything),
        "f1": statistics.fmean(everything) if everything else None,
        "f1_by_category": {c: statistics.fmean(v) for c, v in sorted(scores.items())},
    }


def side_summary(result: SideResult, pages: Sequence[BenchPage]) -> dict[str, Any]:
    return {
        "processes": result.processes,
        "round_seconds": result.round_seconds,
        "pages_per_s": result.pages_per_s(len(pages)),
        "failures": result.failures,
    }


def per_round_ratios(fast: SideResult, slow: SideResult) -> list[float]:
    return [s / f for f, s in zip(fast.round_seconds, slow.round_seconds, strict=True)]


def provider_side(
    label: str, name: str, processes: int, settings: Settings, args: list[tuple[Any, ...]]
) -> Side:
    """The configured provider `name` as the gateway runs it, in `processes` processes."""
    return Side(
        label=f"{label}, {processes} process{'es' if processes > 1 else ''}",
        processes=processes,
        init=init_provider,
        init_args=(name, settings),
        task=sides.provider_task,
        args=args,
    )


async def bench_rapidocr(
    pages: list[BenchPage],
    settings: Settings,
    workers: int,
    rounds: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    args = [(p.page,) for p in pages]
    warm = (min(pages, key=lambda p: Path(p.page.path).stat().st_size).page,)
    stock, tuned, single, previous = await run_sides(
        [
            Side(
                label="stock rapidocr 3.10.0 RapidOCR()",
                processes=1,
                init=sides.init_stock_rapidocr,
                init_args=(),
                task=sides.stock_rapidocr_task,
                args=args,
            ),
            provider_side(f"{ENGINE} (PP-OCRv6)", ENGINE, workers, settings, args),
            provider_side(f"{ENGINE} (PP-OCRv6)", ENGINE, 1, settings, args),
            provider_side(f"{PREVIOUS} (PP-OCRv4)", PREVIOUS, workers, settings, args),
        ],
        rounds,
        warm,
        log,
    )
    pps = len(pages)
    return {
        **compare_with_stock(pages, stock, tuned, single),
        "previous": {**side_summary(previous, pages), **quality(pages, previous.texts)},
        "speedup_previous": previous.pages_per_s(pps) / stock.pages_per_s(pps),
        "config": msgspec.to_builtins(settings.providers[ENGINE]),
        "config_previous": msgspec.to_builtins(settings.providers[PREVIOUS]),
    }


async def bench_tesseract(
    pages: list[BenchPage],
    settings: Settings,
    workers: int,
    rounds: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    config = settings.providers["tesseract"]
    assert isinstance(config, TesseractConfig)
    args = [(p.page,) for p in pages]
    warm = (min(pages, key=lambda p: Path(p.page.path).stat().st_size).page,)
    stock, tuned, single = await run_sides(
        [
            Side(
                label="stock tesseract CLI",
                processes=1,
                init=sides.init_stock_tesseract,
                init_args=(config,),
                task=sides.stock_tesseract_task,
                args=args,
            ),
            provider_side("tuned", "tesseract", workers, settings, args),
            provider_side("tuned", "tesseract", 1, settings, args),
        ],
        rounds,
        warm,
        log,
    )
    same = sum(a == b for a, b in zip(stock.texts, tuned.texts, strict=True))
    similarity = [max(0.0, 1.0 - cer(a, b)) for a, b in zip(stock.texts, tuned.texts, strict=True)]
    return {
        **compare_with_stock(pages, stock, tuned, single),
        "identical_pages": same,
        "mean_text_similarity": statistics.fmean(similarity),
        "config": msgspec.to_builtins(config),
    }


def compare_with_stock(
    pages: list[BenchPage], stock: SideResult, tuned: SideResult, single: SideResult
) -> dict[str, Any]:
    """Throughput and quality of each side, and the tuned sides' speedups over stock."""
    pps = len(pages)
    return {
        "stock": {**side_summary(stock, pages), **quality(pages, stock.texts)},
        "tuned": {**side_summary(tuned, pages), **quality(pages, tuned.texts)},
        "tuned_one_process": {**side_summary(single, pages), **quality(pages, single.texts)},
        "speedup": tuned.pages_per_s(pps) / stock.pages_per_s(pps),
        "speedup_per_round": per_round_ratios(tuned, stock),
        "speedup_one_process": single.pages_per_s(pps) / stock.pages_per_s(pps),
    }


async def bench_pipeline(
    pages: list[BenchPage],
    settings: Settings,
    workers: int,
    rounds: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    args = [(p.source, p.kind, p.page.page_number) for p in pages]
    warm = min(args, key=lambda a: Path(a[0]).stat().st_size)
    parallel, single = await run_sides(
        [
            Side(
                label=f"pipeline, {workers} processes",
                processes=workers,
                init=sides.init_pipeline,
                init_args=(settings,),
                task=sides.pipeline_task,
                args=args,
            ),
            Side(
                label="pipeline, 1 process",
                processes=1,
                init=sides.init_pipeline,
                init_args=(settings,),
                task=sides.pipeline_task,
                args=args,
            ),
        ],
        rounds,
        warm,
        log,
    )
    pps = len(pages)
    return {
        "parallel": side_summary(parallel, pages),
        "single": side_summary(single, pages),
        "speedup": parallel.pages_per_s(pps) / single.pages_per_s(pps),
        "speedup_per_round": per_round_ratios(parallel, single),
        "provider": settings.pipeline.provider,
        "same_output_pages": sum(a == b for a, b in zip(parallel.texts, single.texts, strict=True)),
    }


async def bench_lone(
    pages: list[BenchPage],
    settings: Settings,
    workers: int,
    rounds: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """One page at a time through N processes, lending idle cores or not, pages alternating."""
    config = settings.providers[ENGINE]
    assert isinstance(config, RapidOCRConfig)
    variants = {
        lend: msgspec.structs.replace(
            settings,
            providers={
                **settings.providers,
                ENGINE: msgspec.structs.replace(config, idle_cores=lend),
            },
        )
        for lend in (True, False)
    }
    pools = {
        lend: WorkerPool(f"bench-lone-{lend}", workers, init_provider, (ENGINE, changed))
        for lend, changed in variants.items()
    }
    seconds: dict[bool, float] = {True: 0.0, False: 0.0}
    texts: dict[bool, list[str]] = {True: [], False: []}
    try:
        await asyncio.gather(*(pool.start() for pool in pools.values()))
        for pool in pools.values():  # first inference of both session sets in every process
            await asyncio.gather(  # together: each process's one-thread sessions
                *(
                    pool.run(sides.provider_task, pages[0].page, deadlines={}, total_s=TASK_LIMIT_S)
                    for _ in range(pool.size)
                )
            )
            for _ in range(pool.size):  # one at a time: the lent sessions (idle slots rotate)
                await pool.run(
                    sides.provider_task, pages[0].page, deadlines={}, total_s=TASK_LIMIT_S
                )
        for number in range(rounds):
            texts = {True: [], False: []}
            for index, page in enumerate(pages):
                order = (True, False) if (index + number) % 2 == 0 else (False, True)
                for lend in order:
                    started = time.perf_counter()
                    text = await pools[lend].run(
                        sides.provider_task, page.page, deadlines={}, total_s=TASK_LIMIT_S
                    )
                    seconds[lend] += time.perf_counter() - started
                    texts[lend].append(text)
            log(
                f"  round {number + 1}: lent {seconds[True]:.1f} s, not lent {seconds[False]:.1f} s"
            )
    finally:
        for pool in pools.values():
            await pool.close()
    count = len(pages) * rounds
    return {
        "processes": workers,
        "lent_s_per_page": seconds[True] / count,
        "not_lent_s_per_page": seconds[False] / count,
        "speedup": seconds[False] / seconds[True],
        "same_text_pages": sum(a == b for a, b in zip(texts[True], texts[False], strict=True)),
    }


def render_markdown(summary: dict[str, Any]) -> str:
    out = [
        f"Pages: {summary['pages']} ({summary['pages_with_truth']} with ground truth), "
        f"{summary['rounds']} rounds, {summary['workers']} worker processes, "
        f"load average {summary['loadavg_start']} at start, {summary['loadavg_end']} at end.",
        "",
        "| comparison | stock / baseline pages/s | tuned pages/s | ratio | target |",
        "|---|---|---|---|---|",
    ]
    targets = {"rapidocr": ">= 2.4", "tesseract": ">= 5", "pipeline": ">= 1.8"}
    for part, result in summary["parts"].items():
        if part == "lone":
            continue
        base, tuned = (
            (result["single"], result["parallel"])
            if part == "pipeline"
            else (result["stock"], result["tuned"])
        )
        out.append(
            f"| {part}: {'1 worker' if part == 'pipeline' else 'stock'} vs "
            f"{tuned['processes']} processes | {base['pages_per_s']:.3f} | "
            f"{tuned['pages_per_s']:.3f} | **{result['speedup']:.2f}x** "
            f"(rounds: {', '.join(f'{r:.2f}' for r in result['speedup_per_round'])}) | "
            f"{targets[part]} |"
        )
        if part != "pipeline":
            one = result["tuned_one_process"]
            out.append(
                f"| {part}: stock vs tuned in 1 process | {base['pages_per_s']:.3f} | "
                f"{one['pages_per_s']:.3f} | {result['speedup_one_process']:.2f}x | |"
            )
        if part == "rapidocr":
            old = result["previous"]
            out.append(
                f"| {part}: stock vs {PREVIOUS} (PP-OCRv4) in {old['processes']} processes | "
                f"{base['pages_per_s']:.3f} | {old['pages_per_s']:.3f} | "
                f"{result['speedup_previous']:.2f}x | |"
            )
    for part in ("rapidocr", "tesseract"):
        if part not in summary["parts"]:
            continue
        result = summary["parts"][part]
        categories = sorted(result["stock"]["f1_by_category"])
        out += [
            "",
            f"{part}: mean bag-of-words F1 per page with ground truth",
            "",
            "| side | " + " | ".join(categories) + " | all |",
            "|---" * (len(categories) + 2) + "|",
        ]
        names = {"stock": "stock", "tuned": "ours", "previous": f"ours, {PREVIOUS} (PP-OCRv4)"}
        for side, name in names.items():
            if side not in result:
                continue
            q = result[side]
            out.append(
                f"| {name} | "
                + " | ".join(f"{q['f1_by_category'][c]:.3f}" for c in categories)
                + f" | {q['f1']:.3f} |"
            )
        if part == "tesseract":
            out.append(
                f"\nText identical to stock on {result['identical_pages']} of "
                f"{summary['pages']} pages; mean similarity (1 - CER) "
                f"{result['mean_text_similarity']:.4f}."
            )
    if "lone" in summary["parts"]:
        lone = summary["parts"]["lone"]
        out += [
            "",
            f"A page at a time through {lone['processes']} processes (`idle_cores` on / off): "
            f"{lone['lent_s_per_page']:.2f} / {lone['not_lent_s_per_page']:.2f} s per page, "
            f"**{lone['speedup']:.2f}x** sooner; same text on {lone['same_text_pages']} of "
            f"{summary['pages']} pages.",
        ]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--config", type=Path, default=REPO / "config.yaml")
    parser.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="first N documents of each category (all pages of each)",
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--workers", type=int, help="default: the gateway's worker.processes")
    parser.add_argument("--out", type=Path, default=REPO / "bench-out" / "engine_speed")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if unknown := set(parts) - set(PARTS):
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")

    settings = load_settings(args.config)
    workers = args.workers or settings.worker.process_count
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="engine-speed-") as folder:
        pages = collect_pages(args.corpus, args.limit, settings, Path(folder))
        print(f"{len(pages)} pages rendered; {workers} worker processes, {args.rounds} rounds")
        summary: dict[str, Any] = {
            "pages": len(pages),
            "pages_with_truth": sum(p.truth is not None for p in pages),
            "rounds": args.rounds,
            "workers": workers,
            "limit": args.limit,
            "loadavg_start": [round(v, 2) for v in os.getloadavg()],
            "machine": msgspec.to_builtins(describe_machine()),
            "packages": package_versions(),
            "commit": git_commit(REPO),
            "parts": {},
            "page_list": [f"{p.file}#{p.page.page_number}" for p in pages],
        }
        benches = {
            "rapidocr": bench_rapidocr,
            "tesseract": bench_tesseract,
            "pipeline": bench_pipeline,
            "lone": bench_lone,
        }
        for part in parts:
            print(f"{part}:")
            summary["parts"][part] = asyncio.run(
                benches[part](pages, settings, workers, args.rounds, print)
            )
    summary["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    markdown = render_markdown(summary)
    print("\n" + markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "engine_speed.json").write_text(json.dumps(summary, indent=2))
    (args.out / "engine_speed.md").write_text(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
