"""Tables as cells against ground truth and reference points, side by side (issue 14).

    python -m benchmarks.tables [--limit N] [--repeat 3] [--no-false] [--no-images] [--out DIR]

Born-digital (`d_tables`, tabula-java and ICDAR 2013 PDFs): per ground-truth table, the
adjacency-relation F1 (ICDAR 2013: each non-empty cell related to its nearest non-empty
neighbour right and below, normalized text, multisets; `benchmarks.table_metrics`) of the
read table that scores best on it (each read table used once; none: 0). Read by:
- `gateway`: the pipeline's way for a page answered from its text layer (`read_text_layer`
  with the page's drawing, `pdf_tables`, `blocks_with_tables`);
- `camelot-lattice`, `camelot-stream`: camelot with its defaults, one flavor for every table;
- `pdfplumber`: `extract_tables()` with its defaults.
Cost: the page with and without tables (text layer read + layout + markdown, the median of
`--repeat` each, alternating), as a ratio.

PubTabNet images: TEDS (APTED, as PubTabNet's code) of the table's HTML against the ground
truth's, and the adjacency F1 against its CSV, for `gateway` (the page pipeline: render, the
route's OCR, tables from the image) and `rapid-table` alone on the whole image (its own OCR and
matcher). Cost: the same OCR reading laid out with and without tables (`page_result` with and
without the image), render and OCR counted on both sides.

False tables: table blocks the pipeline finds on every page of `a_clean_printed`, `b_forms`,
`c_receipts` and `f_pdfs` (no tables there).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.corpus import load_documents
from benchmarks.environment import git_commit
from benchmarks.table_metrics import Grid, adjacency_f1, match_tables, teds
from benchmarks.table_refs import (
    ImageCase,
    PdfCase,
    RapidTableAlone,
    camelot_tables,
    image_cases,
    pdf_cases,
    pdfplumber_tables,
)
from gateway.config import Settings, load_settings
from gateway.results import PageResult
from gateway.tables.grid import table_rows
from gateway.work.chain import read_chain
from gateway.work.documents import DocumentKind, inspect_document
from gateway.work.layout import build_blocks, to_markdown
from gateway.work.pagetables import blocks_with_tables, find_tables
from gateway.work.pdftables import pdf_tables
from gateway.work.pipeline import (
    LocalReaders,
    PageEngine,
    PageTask,
    chain_settings,
    page_result,
    render,
    run_local,
)
from gateway.work.textlayer import read_text_layer
from tests.support.gateway_process import CORPUS, REPO

PDF_READERS = ("gateway", "camelot-lattice", "camelot-stream", "pdfplumber")
FALSE_CATEGORIES = ("a_clean_printed", "b_forms", "c_receipts", "f_pdfs")


def _median_ms(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _scores(truths: Sequence[Grid], readings: Sequence[Grid]) -> list[float]:
    return [score for _, _, score in match_tables(truths, readings, adjacency_f1)]


def gateway_pdf_tables(case: PdfCase, dpi: float) -> list[Grid]:
    layer = read_text_layer(Path(case.path), case.page - 1, dpi, drawing=True)
    if layer is None:
        return []
    found = pdf_tables(Path(case.path), case.page - 1, dpi, layer.lines, layer.drawing)
    return [t.grid() for t in found]


def pdf_cost(case: PdfCase, dpi: float, repeat: int) -> tuple[float, float]:
    """(ms without tables, ms with tables) of a page answered from its text layer."""
    path, index = Path(case.path), case.page - 1

    def plain() -> str:
        layer = read_text_layer(path, index, dpi)
        assert layer is not None
        return to_markdown(build_blocks(layer.lines, 1000, 1000))

    def with_tables() -> str:  # as the pipeline: the rules read with the text layer
        layer = read_text_layer(path, index, dpi, drawing=True)
        assert layer is not None
        found = pdf_tables(path, index, dpi, layer.lines, layer.drawing)
        return to_markdown(blocks_with_tables(layer.lines, found, 1000, 1000))

    plain_ms, tables_ms = [], []
    for _ in range(repeat):
        plain_ms.append(_median_ms(plain, 1))
        tables_ms.append(_median_ms(with_tables, 1))
    return statistics.median(plain_ms), statistics.median(tables_ms)


def run_pdfs(cases: Sequence[PdfCase], dpi: float, repeat: int) -> list[dict[str, Any]]:
    rows = []
    for case in cases:
        readings = {
            "gateway": gateway_pdf_tables(case, dpi),
            "camelot-lattice": camelot_tables(case.path, case.page, "lattice"),
            "camelot-stream": camelot_tables(case.path, case.page, "stream"),
            "pdfplumber": pdfplumber_tables(case.path, case.page),
        }
        plain_ms, tables_ms = pdf_cost(case, dpi, repeat)
        scores = {name: _scores(case.tables, grids) for name, grids in readings.items()}
        for i in range(len(case.tables)):
            rows.append(
                {
                    "source": case.source,
                    "document": case.name,
                    "page": case.page,
                    "table": i + 1,
                    **{name: round(scores[name][i], 4) for name in PDF_READERS},
                    "found": {name: len(grids) for name, grids in readings.items()},
                    "plain_ms": round(plain_ms, 2),
                    "tables_ms": round(tables_ms, 2),
                }
            )
        print(case.name, case.page, {n: [round(s, 3) for s in v] for n, v in scores.items()})
    return rows


def _best_table(result: PageResult) -> list[tuple[str, Grid]]:
    return [(b.table.html, table_rows(b.table)) for b in result.content_blocks if b.table]


def image_reading(engine: PageEngine, case: ImageCase) -> tuple[PageResult, float, float]:
    """The page with tables, and (ms without tables, ms with): render + OCR (once: both sides
    start from it) + layout and markdown, without tables or with them (found, empty cells read
    again, laid out); the rest of page_result (handwriting marks) is the same on both sides
    and left out of both."""
    task = PageTask(path=case.path, kind=DocumentKind.PNG, page_number=1)
    started = time.perf_counter()
    page = render(task, engine.settings)
    rendered = time.perf_counter()
    route = engine.plan(task, page)
    outcome = run_local(
        read_chain(page, route, chain_settings(engine.settings), LocalReaders(engine))
    )
    base = (time.perf_counter() - started) * 1000
    recognized = outcome.reading.page
    reader = engine.cell_reader(outcome.reading.provider)

    def plain() -> str:
        return to_markdown(build_blocks(recognized.lines, recognized.width, recognized.height))

    def with_tables() -> str:
        tables, lines = find_tables(
            Path(case.path), task.kind, 0, recognized, page.dpi, False, page, reader
        )
        blocks = blocks_with_tables(lines, tables, recognized.width, recognized.height)
        return to_markdown(blocks)

    plain_ms = _median_ms(plain, 1)
    tables_ms = _median_ms(with_tables, 1)
    result = page_result(
        task, route, page.dpi, outcome, started, rendered, image=page, reader=reader
    )
    return result, base + plain_ms, base + tables_ms


def run_images(engine: PageEngine, cases: Sequence[ImageCase]) -> list[dict[str, Any]]:
    alone = RapidTableAlone()
    rows = []
    for case in cases:
        result, plain_ms, tables_ms = image_reading(engine, case)
        tables = _best_table(result)
        ours_teds = max((teds(case.html, html) for html, _ in tables), default=0.0)
        ours_adj = max((adjacency_f1(case.grid, grid) for _, grid in tables), default=0.0)
        start = time.perf_counter()
        html = alone.html(case.path)
        alone_ms = (time.perf_counter() - start) * 1000
        row = {
            "image": case.name,
            "tables": len(tables),
            "gateway_teds": round(ours_teds, 4),
            "rapid_table_teds": round(teds(case.html, html), 4),
            "gateway_adjacency": round(ours_adj, 4),
            "plain_ms": round(plain_ms, 1),
            "tables_ms": round(tables_ms, 1),
            "rapid_table_ms": round(alone_ms, 1),
        }
        print(row)
        rows.append(row)
    return rows


def count_false_tables(engine: PageEngine, limit: int | None) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    settings = engine.settings
    for document in load_documents([CORPUS / c for c in FALSE_CATEGORIES], limit):
        suffix = document.path.suffix.lower().lstrip(".")
        kind = DocumentKind.PDF if suffix == "pdf" else DocumentKind.PNG
        if suffix in ("jpg", "jpeg"):
            kind = DocumentKind.JPEG
        elif suffix in ("tif", "tiff"):
            kind = DocumentKind.TIFF
        info = inspect_document(document.path, kind, settings.limits.max_pixels_per_page)
        tally = counts.setdefault(document.category, {"pages": 0, "tables": 0, "pages_with": 0})
        for number in range(1, info.page_count + 1):
            task = PageTask(path=str(document.path), kind=kind, page_number=number)
            try:
                result = engine.read_page(task)
            except Exception as exc:  # noqa: BLE001  # a page that fails has no tables to count
                print(f"{document.entry.file} p{number}: {exc}")
                continue
            found = sum(1 for b in result.content_blocks if b.table is not None)
            tally["pages"] += 1
            tally["tables"] += found
            tally["pages_with"] += found > 0
            if found:
                print(f"table on {document.category}/{document.entry.file} page {number}")
    return counts


def _sum(rows: Sequence[dict[str, Any]], key: str) -> float:
    return sum(float(r[key]) for r in rows)


def summary(pdf_rows: Sequence[dict[str, Any]], image_rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| source | tables | " + " | ".join(PDF_READERS) + " | cost (with / without) |"]
    lines.append("|---" * (len(PDF_READERS) + 3) + "|")
    for source in ("tabula", "icdar2013", None):
        rows = [r for r in pdf_rows if source is None or r["source"] == source]
        if not rows:
            continue
        means = [_sum(rows, name) / len(rows) for name in PDF_READERS]
        pages = list({(r["document"], r["page"]): r for r in rows}.values())
        cost = _sum(pages, "tables_ms") / _sum(pages, "plain_ms")
        lines.append(
            f"| {source or 'all born-digital'} | {len(rows)} | "
            + " | ".join(f"{m:.3f}" for m in means)
            + f" | {cost:.2f}x |"
        )
    if image_rows:
        n = len(image_rows)
        cost = _sum(image_rows, "tables_ms") / _sum(image_rows, "plain_ms")
        lines += [
            "",
            "| PubTabNet images | gateway TEDS | rapid-table alone TEDS | gateway adjacency F1 "
            "| cost (with / without) |",
            "|---|---|---|---|---|",
            f"| {n} | {_sum(image_rows, 'gateway_teds') / n:.3f} "
            f"| {_sum(image_rows, 'rapid_table_teds') / n:.3f} "
            f"| {_sum(image_rows, 'gateway_adjacency') / n:.3f} | {cost:.2f}x |",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="documents per category")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-false", action="store_true", help="skip the false-table count")
    parser.add_argument("--no-images", action="store_true", help="born-digital tables only")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    settings: Settings = load_settings(REPO / "config.yaml", env={})
    dpi = float(settings.rendering.dpi)
    pdf_rows = run_pdfs(pdf_cases(CORPUS, args.limit), dpi, args.repeat)
    engine = PageEngine(settings)
    image_rows = [] if args.no_images else run_images(engine, image_cases(CORPUS, args.limit))
    false = {} if args.no_false else count_false_tables(engine, args.limit)
    report = summary(pdf_rows, image_rows)
    if false:
        report += "\n\n| category | pages | pages with a table | tables |\n|---|---|---|---|\n"
        report += "\n".join(
            f"| {c} | {t['pages']} | {t['pages_with']} | {t['tables']} |" for c, t in false.items()
        )
    print(f"\ncommit {git_commit(REPO)}\n{report}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "tables.json").write_text(
            json.dumps({"pdf": pdf_rows, "images": image_rows, "false_tables": false}, indent=1)
        )
        (args.out / "tables.md").write_text(report + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
