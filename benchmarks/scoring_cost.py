"""Scoring cost against OCR cost, page by page, side by side in one run.

For the first page of each document, timed one after the other:
- scoring: features of the page's thumbnail, its text-layer check and its route
  (`gateway.work.assess.measure_page` and `plan_page`), the work the score itself costs;
- submit: the inspector's whole work for the page: open and check the document, decode its
  thumbnail (an image's first page comes from the decode that checks it), score and route;
- OCR: the page rendered as a worker renders it, read by each local engine (render excluded).
Reports the median scoring and submit times as shares of each engine's median OCR time
(target for scoring: at most 2%).

    python -m benchmarks.scoring_cost [--per-category 4] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from gateway.config import load_settings
from gateway.work.assess import assess_page, measure_page, plan_page
from gateway.work.documents import detect_kind, inspect_document, render_page, render_thumbnail
from providers.factory import build_provider, is_local
from scoring.features import SCORING_SIDE
from tests.support.gateway_process import CORPUS, REPO

CATEGORIES = ["a_clean_printed", "b_forms", "c_receipts", "d_tables", "e_handwriting", "f_pdfs"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-category", type=int, default=4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    settings = load_settings(REPO / "config.yaml")
    engines = {
        name: build_provider(name, cfg) for name, cfg in settings.providers.items() if is_local(cfg)
    }
    rows = []
    for category in CATEGORIES:
        lines = (CORPUS / category / "manifest.jsonl").read_text().splitlines()
        for line in [json.loads(x) for x in lines if x.strip()][: args.per_category]:
            path = CORPUS / category / line["file"]
            kind = detect_kind(path.read_bytes()[:2048])
            if kind is None:
                continue
            started = time.perf_counter()
            info = inspect_document(
                path, kind, settings.limits.max_pixels_per_page, thumbnail_side=SCORING_SIDE
            )
            route = plan_page(
                assess_page(path, kind, 1, settings, thumbnail=info.first_page), settings
            )
            submit_s = time.perf_counter() - started
            thumbnail = info.first_page or render_thumbnail(
                path,
                kind,
                0,
                settings.rendering.dpi,
                settings.limits.max_pixels_per_page,
                SCORING_SIDE,
            )
            started = time.perf_counter()
            plan_page(
                measure_page(
                    thumbnail.image,
                    settings=settings,
                    path=path,
                    kind=kind,
                    reading_scale=thumbnail.reading_scale,
                ),
                settings,
            )
            assess_s = time.perf_counter() - started
            page = render_page(
                path, kind, 0, settings.rendering.dpi, settings.limits.max_pixels_per_page
            )
            ocr = {}
            for name, engine in engines.items():
                started = time.perf_counter()
                engine.recognize(page)
                ocr[name] = time.perf_counter() - started
            rows.append(
                {
                    "category": category,
                    "file": line["file"],
                    "tier": route.tier.value,
                    "scoring_s": assess_s,
                    "submit_s": submit_s,
                    "ocr_s": ocr,
                }
            )
            print(
                f"{category:16s} {line['file'][-30:]:30s} scoring {assess_s * 1000:6.1f} ms  "
                f"submit {submit_s * 1000:6.1f} ms  "
                + "  ".join(f"{n} {s:6.2f} s" for n, s in ocr.items())
            )
    median_scoring = statistics.median(r["scoring_s"] for r in rows)
    median_submit = statistics.median(r["submit_s"] for r in rows)
    summary: dict[str, object] = {
        "pages": len(rows),
        "median_scoring_ms": median_scoring * 1000,
        "median_submit_ms": median_submit * 1000,
    }
    for name in engines:
        median_ocr = statistics.median(r["ocr_s"][name] for r in rows)
        summary[f"median_{name}_s"] = median_ocr
        summary[f"scoring_share_of_{name}"] = median_scoring / median_ocr
        summary[f"submit_share_of_{name}"] = median_submit / median_ocr
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "scoring_cost.json").write_text(
            json.dumps({"summary": summary, "rows": rows}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
