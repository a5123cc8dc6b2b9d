"""Handwriting per line: recall, false positives and cost on the corpus, and the fit behind it.

Each page is read once by the pipeline (`PageEngine.read_page`, as the server reads it) and, with
`--all-engines`, by every other local engine on the same upright page; readings and page images
are kept in `--cache DIR` (so the classifier can be measured and refitted without reading the
corpus again). Then every reading's lines are classified (`scoring.handwriting_lines`) and the
classification is timed, side by side with the page's own reading time.

Which lines are handwritten:
- `e_handwriting`: lines that overlap the ALTO annotation's handwritten TextLines (>= 30% of the
  line's box); lines outside them (stamps, letterheads, show-through) are not counted;
- `b_forms`: lines over regions marked by eye in `FORM_HANDWRITING` (a line mostly inside one is
  handwritten, one partly inside is "mixed": a printed label and a written answer on one row,
  reported apart); every other line of the forms is printed;
- `a_clean_printed`, `c_receipts`, `d_tables`, `f_pdfs`: printed (false positives).

`--fit` refits the logistic regression on the cached lines of every engine, holding out one
document at a time (the numbers it prints for each category come from the models that did not
see that document), and prints the coefficients fitted on all of them.

    python -m benchmarks.handwriting --cache /tmp/hw-cache [--all-engines] [--fit] [--cached-only]
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import statistics
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from PIL import Image

from gateway.config import load_settings
from gateway.page_errors import PageError
from gateway.work.documents import detect_kind, inspect_document, render_page
from gateway.work.layout import build_blocks
from gateway.work.pipeline import PageEngine, PageTask
from providers.orientation import rotate_upright
from router.policy import TEXT_LAYER
from scoring import handwriting_lines as hl
from tests.support.gateway_process import CORPUS, REPO

CATEGORIES = ("e_handwriting", "b_forms", "a_clean_printed", "c_receipts", "d_tables", "f_pdfs")
PRINTED = ("a_clean_printed", "c_receipts", "d_tables", "f_pdfs")
PAGES = {"d_tables": 2, "f_pdfs": 2, "tracemonkey.pdf": 3, "Seige_of_Vicksburg_Sample_OCR.pdf": 3}
# Handwritten regions of the FUNSD forms, marked by eye (pixels of the form image): signatures,
# dates, numbers and notes written on the printed forms. Forms not listed have none.
FORM_HANDWRITING: dict[str, list[tuple[int, int, int, int]]] = {
    "funsd/82250337_0338.png": [(438, 308, 560, 335)],
    "funsd/82254765.png": [(400, 812, 468, 842)],
    "funsd/83573282.png": [
        (547, 67, 707, 90),
        (547, 123, 627, 160),
        (432, 277, 457, 297),
        (450, 307, 533, 330),
    ],
    "funsd/83772145.png": [(410, 470, 480, 495), (190, 490, 280, 530)],
    "funsd/83996357.png": [
        (265, 240, 355, 260),
        (375, 695, 535, 755),
        (545, 830, 605, 850),
        (320, 845, 370, 865),
        (315, 862, 355, 880),
        (330, 880, 370, 895),
    ],
    "funsd/87428306.png": [(140, 875, 340, 905), (495, 875, 660, 905)],
    "funsd/91814768_91814769.png": [(55, 590, 290, 625)],
}
Box = tuple[float, float, float, float]


def read_corpus(cache: Path, all_engines: bool, categories: list[str]) -> None:
    """Read every page not in the cache yet: the pipeline's result, the upright page image and
    (`all_engines`) the other local engines' readings of it."""
    settings = load_settings(REPO / "config.yaml")
    engine = PageEngine(settings)
    cache.mkdir(parents=True, exist_ok=True)
    for category in categories:
        for line in (CORPUS / category / "manifest.jsonl").read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                _read_document(engine, cache, all_engines, category, entry["file"])


def _read_document(
    engine: PageEngine, cache: Path, all_engines: bool, category: str, file: str
) -> None:
    settings = engine.settings
    path = CORPUS / category / file
    kind = detect_kind(path.read_bytes()[:2048])
    if kind is None:
        return
    try:
        count = inspect_document(path, kind, settings.limits.max_pixels_per_page).page_count
    except Exception as exc:  # noqa: BLE001 - a document that does not open is skipped
        print(f"skipped {path}: {exc}")
        return
    for number in range(1, min(count, PAGES.get(path.name, PAGES.get(category, 1))) + 1):
        key = f"{category}__{re.sub(r'[^A-Za-z0-9._-]', '_', file)}__p{number}"
        if (cache / f"{key}.json").exists():
            continue
        started = time.perf_counter()
        try:
            result = engine.read_page(PageTask(path=str(path), kind=kind, page_number=number))
            page = render_page(
                path, kind, number - 1, settings.rendering.dpi, settings.limits.max_pixels_per_page
            )
        except PageError as exc:
            print(f"skipped {key}: {exc.code}")
            continue
        metadata, pipeline = result.document_metadata, result.pipeline_metadata
        assert metadata is not None
        assert pipeline is not None
        page = rotate_upright(page, metadata.rotation_deg)
        other = {}
        for name in engine.engines():
            if all_engines and name != pipeline.provider_used:
                read = engine.provider(name).recognize(page)
                other[name] = build_blocks(read.lines, read.width, read.height)
        Image.fromarray(page.pixels).save(cache / f"{key}.png")
        reading = {"category": category, "file": file, "page": number}
        reading |= {"used": pipeline.provider_used, "result": result, "other": other}
        (cache / f"{key}.json").write_bytes(msgspec.json.encode(reading))
        print(f"read {key} ({time.perf_counter() - started:.1f} s)", flush=True)


def _alto_lines(category: str, file: str) -> list[Box]:
    xml = (CORPUS / category / file).with_suffix(".xml").read_text()
    pattern = r'<TextLine[^>]*HPOS="(\d+)"\s+VPOS="(\d+)"\s+WIDTH="(\d+)"\s+HEIGHT="(\d+)"'
    return [
        (x, y, x + w, y + h)
        for x, y, w, h in (map(int, m.groups()) for m in re.finditer(pattern, xml))
    ]


def _label(category: str, file: str, box: Box) -> str:
    """hw, printed, mixed, or other (e_handwriting outside its annotated lines)."""
    if category == "e_handwriting":
        area = max(1.0, (box[2] - box[0]) * (box[3] - box[1]))
        covered = sum(
            max(0.0, min(box[2], a[2]) - max(box[0], a[0]))
            * max(0.0, min(box[3], a[3]) - max(box[1], a[1]))
            for a in _alto_lines(category, file)
        )
        return "hw" if covered / area >= 0.3 else "other"
    share = 0.0
    for a in FORM_HANDWRITING.get(file, []) if category == "b_forms" else []:
        if min(box[3], a[3]) - max(box[1], a[1]) >= 0.3 * min(box[3] - box[1], a[3] - a[1]):
            share += max(0.0, min(box[2], a[2]) - max(box[0], a[0])) / max(1.0, box[2] - box[0])
    return "hw" if share >= 0.5 else "mixed" if share > 0.05 else "printed"


def _inputs(blocks: list[dict[str, Any]], width: int, height: int) -> list[hl.LineInput]:
    def box(g: dict[str, float]) -> Box:
        return (
            g["x"] * width,
            g["y"] * height,
            (g["x"] + g["width"]) * width,
            (g["y"] + g["height"]) * height,
        )

    return [
        hl.LineInput(
            box=box(line["geometry"]),
            text=line["text"],
            confidence=line["confidence"],
            words=tuple(
                hl.WordInput(box=box(w["geometry"]), text=w["text"], confidence=w["confidence"])
                for w in line.get("words", [])
            ),
        )
        for block in blocks
        for line in block["lines"]
    ]


class Page(msgspec.Struct, kw_only=True):
    category: str
    file: str
    used: str
    gray: Any
    readings: dict[str, list[hl.LineInput]]  # engine -> lines; the pipeline's is `used`
    labels: dict[str, list[str]]
    total_ms: float


def load_pages(cache: Path) -> list[Page]:
    pages = []
    for path in sorted(cache.glob("*.json")):
        data = json.loads(path.read_text())
        pixels = np.asarray(Image.open(path.with_suffix(".png")).convert("RGB"))
        height, width = pixels.shape[:2]
        sources = {data["used"]: data["result"]["content_blocks"], **data["other"]}
        readings = {name: _inputs(blocks, width, height) for name, blocks in sources.items()}
        labels = {
            name: [_label(data["category"], data["file"], line.box) for line in lines]
            for name, lines in readings.items()
        }
        timings = data["result"]["pipeline_metadata"]["timings"]
        pages.append(
            Page(
                category=data["category"],
                file=data["file"],
                used=data["used"],
                gray=hl.to_gray(pixels),
                readings=readings,
                labels=labels,
                total_ms=timings["total_ms"],
            )
        )
    return pages


def evaluate(pages: list[Page], settings: hl.HandwritingSettings) -> dict[str, Any]:
    """Flagged lines by category, engine and label; classification time against reading time."""
    counts: dict[tuple[str, str, str], list[int]] = collections.defaultdict(lambda: [0, 0])
    shares = []
    for page in pages:
        for name, lines in page.readings.items():
            started = time.perf_counter()
            if name == TEXT_LAYER:  # as the pipeline does: a PDF's own text is printed
                verdicts = [hl.LineVerdict(is_handwritten=False, probability=0.0)] * len(lines)
            else:
                verdicts = hl.classify_lines(page.gray, lines, settings)
            elapsed_ms = (time.perf_counter() - started) * 1000
            if name == page.used:
                shares.append((elapsed_ms, page.total_ms))
            for engine in {name, "pipeline"} if name == page.used else {name}:
                for verdict, label in zip(verdicts, page.labels[name], strict=True):
                    cell = counts[(page.category, engine, label)]
                    cell[0] += 1
                    cell[1] += verdict.is_handwritten
    return {"counts": counts, "timings": shares}


def report(result: dict[str, Any]) -> None:
    counts = result["counts"]
    print(f"{'category':16s} {'engine':10s} {'lines':>12s}  {'flagged':>8s}  share")
    for (category, engine, label), (total, flagged) in sorted(counts.items()):
        if label == "other":
            continue
        name = {"hw": "handwritten", "printed": "printed", "mixed": "mixed"}[label]
        what = "recall" if label == "hw" else "false pos." if label == "printed" else "marked"
        print(
            f"{category:16s} {engine:10s} {name:>12s}  {flagged:4d}/{total:<4d} "
            f"{what} {flagged / total:.3f}"
        )
    for engine in sorted({e for _, e, _ in counts}):
        total = sum(counts[(c, engine, "printed")][0] for c in PRINTED)
        flagged = sum(counts[(c, engine, "printed")][1] for c in PRINTED)
        if total:
            print(f"all printed categories, {engine}: false positives {flagged}/{total}")
    timings = result["timings"]
    ms = [t for t, _ in timings]
    ratio = [t / total for t, total in timings if total > 0]
    print(
        f"classification: median {statistics.median(ms):.1f} ms a page (max {max(ms):.1f}), "
        f"median {100 * statistics.median(ratio):.2f}% of the page's reading time "
        f"(max {100 * max(ratio):.2f}%), {len(ms)} pages"
    )


def fit(pages: list[Page], l2: float) -> None:
    """Refit on every engine's lines, one document held out at a time."""
    rows = []
    for page in pages:
        for name, lines in page.readings.items():
            for line, label in zip(lines, page.labels[name], strict=True):
                features = hl.line_features(page.gray, line)
                if features is not None and label in ("hw", "printed"):
                    rows.append((page.file, features, 1.0 if label == "hw" else 0.0))
    documents = sorted({file for file, _, _ in rows})
    held_out: dict[str, tuple[float, tuple[float, ...]]] = {}
    for document in documents:
        train = [(x, y) for file, x, y in rows if file != document]
        held_out[document] = _logistic([x for x, _ in train], [y for _, y in train], l2)
    intercept, coefficients = _logistic([x for _, x, _ in rows], [y for _, _, y in rows], l2)
    print(f"INTERCEPT = {intercept:.4f}")
    print("COEFFICIENTS = (" + ", ".join(f"{c:.4f}" for c in coefficients) + ")")
    original = hl.INTERCEPT, hl.COEFFICIENTS
    counts: dict[tuple[str, str, str], list[int]] = collections.defaultdict(lambda: [0, 0])
    settings = hl.HandwritingSettings()
    for page in pages:
        hl.INTERCEPT, hl.COEFFICIENTS = held_out.get(page.file, original)
        for name, lines in page.readings.items():
            verdicts = hl.classify_lines(page.gray, lines, settings)
            for engine in {name, "pipeline"} if name == page.used else {name}:
                for verdict, label in zip(verdicts, page.labels[name], strict=True):
                    cell = counts[(page.category, engine, label)]
                    cell[0] += 1
                    cell[1] += verdict.is_handwritten
    hl.INTERCEPT, hl.COEFFICIENTS = original
    print("held out (each document classified by the model fitted without it):")
    report({"counts": counts, "timings": [(0.0, 1.0)]})


def _logistic(
    x: list[tuple[float, ...]], y: list[float], l2: float
) -> tuple[float, tuple[float, ...]]:
    """Class-balanced L2-regularized logistic regression (Newton), on standardized features;
    returned in raw units."""
    features, labels = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    mean, scale = features.mean(axis=0), features.std(axis=0) + 1e-9
    design = np.c_[np.ones(len(features)), (features - mean) / scale]
    weights = np.where(labels == 1, 0.5 / labels.mean(), 0.5 / (1 - labels.mean()))
    penalty = l2 * np.diag(np.r_[0.0, np.ones(design.shape[1] - 1)])
    beta = np.zeros(design.shape[1])
    for _ in range(60):
        p = 1 / (1 + np.exp(-design @ beta))
        gradient = design.T @ (weights * (p - labels)) + penalty @ beta
        hessian = (design * (weights * p * (1 - p))[:, None]).T @ design + penalty
        beta -= np.linalg.solve(hessian, gradient)
    raw = beta[1:] / scale
    return float(beta[0] - raw @ mean), tuple(float(c) for c in raw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True, help="readings are kept here")
    parser.add_argument("--all-engines", action="store_true", help="every local engine reads")
    parser.add_argument("--categories", default=",".join(CATEGORIES))
    parser.add_argument("--fit", action="store_true", help="refit, one document held out")
    parser.add_argument("--l2", type=float, default=200.0)
    parser.add_argument("--cached-only", action="store_true", help="read no page: the cache's")
    args = parser.parse_args(argv)
    if not args.cached_only:
        read_corpus(args.cache, args.all_engines, args.categories.split(","))
    pages = load_pages(args.cache)
    if args.fit:
        fit(pages, args.l2)
    else:
        report(evaluate(pages, load_settings(REPO / "config.yaml").pipeline.handwriting))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
