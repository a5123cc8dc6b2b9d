"""Born-digital pages answered from their text layer against OCR, side by side (issue 17).

    python -m benchmarks.text_layer [--limit N] [--repeat 5] [--out DIR]

Pages: every page of the born-digital PDFs of ../shared/corpus (`f_pdfs` entries whose kind
starts with `born_digital`, and the `born_digital_table_pdf` entries of `d_tables`), rendered
once as a worker renders them; `--limit N` keeps the first N such documents of each category.

For each page, timed one after the other on the same rendered page:
- text layer: what the pipeline does for a page routed to it, once the page is rendered:
  `read_text_layer`, then the layout (`build_blocks`, `to_markdown`); the median of `--repeat`;
- OCR: the default engine (the provider `rapidocr` built from `config.yaml`, loaded and warmed
  before any clock starts) reading the page, then the same layout.
The render both sides start from is timed apart (the `render` column).

Characters kept: the non-whitespace characters of each side's text (its blocks' text), after
NFKC (ligatures unfolded), compared as multisets with those of `pdftotext -enc UTF-8` (Debian's
`poppler-utils`) on the same page; the bidirectional marks poppler puts around right-to-left
runs are dropped first. `kept` is the share of the reference's characters found, `extra` the
characters found that the reference does not have. Targets: text layer >= 200x faster than OCR,
>= 99.5% of the characters kept.

The `route` column is the page's route at submit (`assess_page` + `plan_page`): `layer` when it
is answered from its text layer, else the engines (pages whose text layer PDFium decodes wrongly
go to OCR; their layer is measured all the same).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import time
import unicodedata
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import msgspec

from benchmarks.corpus import CorpusDocument, load_documents
from benchmarks.environment import git_commit
from gateway.config import Settings, load_settings
from gateway.work.assess import assess_page, plan_page
from gateway.work.documents import DocumentKind, inspect_document, render_page
from gateway.work.layout import build_blocks, to_markdown
from gateway.work.textlayer import TextLayer, read_text_layer
from providers.base import Provider
from providers.factory import build_provider, is_local
from providers.types import PageImage, TextLine
from router.policy import TEXT_LAYER
from tests.support.gateway_process import CORPUS, REPO

ENGINE = "rapidocr"
KINDS = {"f_pdfs": "born_digital", "d_tables": "born_digital_table_pdf"}  # category: kind prefix
BIDI_MARKS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class PageRow(msgspec.Struct, kw_only=True):
    category: str
    file: str
    page: int
    route: str  # "layer", or the engines that read it
    reason: str
    render_ms: float
    layer_ms: float
    ocr_ms: float
    reference_chars: int
    layer_kept: int
    layer_extra: int
    ocr_kept: int
    ocr_extra: int


def chars(text: str) -> Counter[str]:
    """Non-whitespace characters after NFKC, bidirectional marks dropped."""
    normal = unicodedata.normalize("NFKC", text)
    return Counter(c for c in normal if not c.isspace() and c not in BIDI_MARKS)


def pdftotext(path: Path, page: int) -> str:
    """The reference extractor's text of one page (1-based)."""
    argv = ["pdftotext", "-enc", "UTF-8", "-f", str(page), "-l", str(page), str(path), "-"]
    done = subprocess.run(argv, capture_output=True, check=True, timeout=60)
    return done.stdout.decode("utf-8")


def lines_text(lines: Sequence[TextLine], width: int, height: int) -> tuple[str, str]:
    """The layout of a page's lines, as the pipeline builds it: its blocks' text, its markdown."""
    blocks = build_blocks(lines, width, height)
    return "\n".join(b.text for b in blocks), to_markdown(blocks)


def answer_from_layer(path: Path, page: PageImage) -> str:
    layer: TextLayer | None = read_text_layer(path, page.page_number - 1, page.dpi)
    if layer is None:
        return ""
    return lines_text(layer.lines, page.width, page.height)[0]


def answer_by_ocr(engine: Provider, page: PageImage) -> str:
    recognized = engine.recognize(page)
    return lines_text(recognized.lines, recognized.width, recognized.height)[0]


def kept(reference: Counter[str], got: Counter[str]) -> tuple[int, int]:
    return sum((reference & got).values()), sum((got - reference).values())


def collect_documents(corpus: Path, limit: int | None) -> list[CorpusDocument]:
    documents = []
    for category, prefix in KINDS.items():
        found = [d for d in load_documents([corpus / category]) if d.entry.kind.startswith(prefix)]
        documents += found[:limit]
    return documents


def measure_document(
    document: CorpusDocument, settings: Settings, engine: Provider, repeat: int
) -> list[PageRow]:
    path = document.path
    max_pixels = settings.limits.max_pixels_per_page
    count = inspect_document(path, DocumentKind.PDF, max_pixels).page_count
    rows = []
    for number in range(1, count + 1):
        started = time.perf_counter()
        page = render_page(path, DocumentKind.PDF, number - 1, settings.rendering.dpi, max_pixels)
        render_s = time.perf_counter() - started
        layer_times = []
        for _ in range(repeat):
            started = time.perf_counter()
            layer_text = answer_from_layer(path, page)
            layer_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        ocr_text = answer_by_ocr(engine, page)
        ocr_s = time.perf_counter() - started
        route = plan_page(assess_page(path, DocumentKind.PDF, number, settings), settings)
        reference = chars(pdftotext(path, number))
        layer_kept, layer_extra = kept(reference, chars(layer_text))
        ocr_kept, ocr_extra = kept(reference, chars(ocr_text))
        rows.append(
            PageRow(
                category=document.category,
                file=document.entry.file,
                page=number,
                route="layer" if route.providers == [TEXT_LAYER] else ",".join(route.providers),
                reason=route.reason,
                render_ms=render_s * 1000,
                layer_ms=statistics.median(layer_times) * 1000,
                ocr_ms=ocr_s * 1000,
                reference_chars=sum(reference.values()),
                layer_kept=layer_kept,
                layer_extra=layer_extra,
                ocr_kept=ocr_kept,
                ocr_extra=ocr_extra,
            )
        )
    return rows


class Summary(msgspec.Struct, kw_only=True):
    document: str
    pages: int
    layer_route: int  # pages routed to the text layer at submit
    render_ms: float
    layer_ms: float
    ocr_ms: float
    ratio: float  # OCR time over text-layer time, render excluded from both
    ratio_with_render: float
    reference_chars: int
    layer_kept: float
    layer_extra: int
    ocr_kept: float
    ocr_extra: int


def summarize(label: str, rows: list[PageRow]) -> Summary:
    reference = sum(r.reference_chars for r in rows)
    layer_ms = sum(r.layer_ms for r in rows)
    ocr_ms = sum(r.ocr_ms for r in rows)
    render_ms = sum(r.render_ms for r in rows)
    return Summary(
        document=label,
        pages=len(rows),
        layer_route=sum(r.route == "layer" for r in rows),
        render_ms=render_ms,
        layer_ms=layer_ms,
        ocr_ms=ocr_ms,
        ratio=ocr_ms / layer_ms if layer_ms else float("nan"),
        ratio_with_render=(ocr_ms + render_ms) / (layer_ms + render_ms) if rows else float("nan"),
        reference_chars=reference,
        layer_kept=sum(r.layer_kept for r in rows) / reference if reference else 1.0,
        layer_extra=sum(r.layer_extra for r in rows),
        ocr_kept=sum(r.ocr_kept for r in rows) / reference if reference else 1.0,
        ocr_extra=sum(r.ocr_extra for r in rows),
    )


def table(summaries: list[Summary]) -> str:
    head = (
        "| document | pages | routed to layer | render ms | layer ms | OCR ms | OCR / layer "
        "| chars (pdftotext) | layer kept | layer extra | OCR kept | OCR extra |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    body = [
        f"| {s.document} | {s.pages} | {s.layer_route} | {s.render_ms:.0f} | {s.layer_ms:.1f} "
        f"| {s.ocr_ms:.0f} | {s.ratio:.0f}x | {s.reference_chars} | {s.layer_kept:.2%} "
        f"| {s.layer_extra} | {s.ocr_kept:.2%} | {s.ocr_extra} |"
        for s in summaries
    ]
    return "\n".join([head, *body])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--limit", type=int, help="the first N born-digital PDFs per category")
    parser.add_argument("--repeat", type=int, default=5, help="text-layer reads per page")
    parser.add_argument("--out", type=Path, help="folder for text_layer.json")
    args = parser.parse_args(argv)
    if shutil.which("pdftotext") is None:
        parser.error("pdftotext not found: install poppler-utils (scripts/setup does)")
    settings = load_settings(REPO / "config.yaml")
    config = settings.providers[ENGINE]
    if not is_local(config):
        parser.error(f"providers.{ENGINE} in config.yaml is not a local engine")
    engine = build_provider(ENGINE, config)
    documents = collect_documents(args.corpus, args.limit)
    if documents:  # load and warm the engine before any clock starts
        page = render_page(
            documents[0].path, DocumentKind.PDF, 0, 150, settings.limits.max_pixels_per_page
        )
        engine.recognize(page)
    rows: list[PageRow] = []
    summaries: list[Summary] = []
    for document in documents:
        found = measure_document(document, settings, engine, args.repeat)
        rows += found
        summary = summarize(f"{document.category}/{document.entry.file}", found)
        summaries.append(summary)
        print(
            f"{summary.document[-48:]:48s} {summary.pages:3d} p  layer {summary.layer_ms:8.1f} ms"
            f"  OCR {summary.ocr_ms:9.0f} ms  {summary.ratio:6.0f}x  kept {summary.layer_kept:.2%}",
            flush=True,
        )
    totals = [summarize(f"**{c}**", [r for r in rows if r.category == c]) for c in KINDS]
    totals.append(summarize("**all**", rows))
    totals = [t for t in totals if t.pages]
    print()
    print(table(summaries + totals))
    per_page = [r.ocr_ms / r.layer_ms for r in rows if r.layer_ms]
    below = [
        f"{r.category}/{r.file}#{r.page} ({r.layer_kept}/{r.reference_chars}; route {r.route})"
        for r in rows
        if r.layer_kept < 0.995 * r.reference_chars
    ]
    print()
    if per_page:
        print(
            f"per page OCR / layer: median {statistics.median(per_page):.0f}x, "
            f"min {min(per_page):.0f}x"
        )
    print(f"pages whose layer keeps < 99.5% of pdftotext's characters: {', '.join(below) or '-'}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        report = {
            "commit": git_commit(REPO),
            "engine": ENGINE,
            "documents": [msgspec.structs.asdict(s) for s in summaries],
            "totals": [msgspec.structs.asdict(t) for t in totals],
            "pages": [msgspec.structs.asdict(r) for r in rows],
        }
        (args.out / "text_layer.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
