"""Scoring cost against OCR cost, page by page, side by side in one run.

For each page: the submit-time assessment (thumbnail render, features, text-layer check,
route) and the OCR of the same page by each local engine. Reports the median assessment time
as a share of the median OCR time (target: at most 2%).

    python -m benchmarks.scoring_cost [--per-category 4] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from benchmarks.gateway_process import CORPUS, REPO
from gateway.assess import assess_page
from gateway.config import load_settings
from gateway.documents import detect_kind, render_page
from providers.factory import build_provider, is_local

CATEGORIES = ["a_clean_printed", "b_forms", "c_receipts", "d_tables", "e_handwriting",
              "f_pdfs"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-category", type=int, default=4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    settings = load_settings(REPO / "config.yaml")
    engines = {name: build_provider(name, cfg) for name, cfg in settings.providers.items()
               if is_local(cfg)}
    rows = []
    for category in CATEGORIES:
        lines = (CORPUS / category / "manifest.jsonl").read_text().splitlines()
        for line in [json.loads(x) for x in lines if x.strip()][: args.per_category]:
            path = CORPUS / category / line["file"]
            kind = detect_kind(path.read_bytes()[:2048])
            if kind is None:
                continue
            started = time.perf_counter()
            route = assess_page(path, kind, 1, settings)
            assess_s = time.perf_counter() - started
            page = render_page(path, kind, 0, settings.rendering.dpi,
                               settings.limits.max_pixels_per_page)
            ocr = {}
            for name, engine in engines.items():
                started = time.perf_counter()
                engine.recognize(page)
                ocr[name] = time.perf_counter() - started
            rows.append({"category": category, "file": line["file"], "tier": route.tier.value,
                         "assess_s": assess_s, "ocr_s": ocr})
            print(f"{category:16s} {line['file'][-30:]:30s} assess {assess_s * 1000:6.1f} ms  "
                  + "  ".join(f"{n} {s:6.2f} s" for n, s in ocr.items()))
    median_assess = statistics.median(r["assess_s"] for r in rows)
    summary: dict[str, object] = {"pages": len(rows), "median_assess_ms": median_assess * 1000}
    for name in engines:
        median_ocr = statistics.median(r["ocr_s"][name] for r in rows)
        summary[f"median_{name}_s"] = median_ocr
        summary[f"assess_share_of_{name}"] = median_assess / median_ocr
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "scoring_cost.json").write_text(json.dumps({"summary": summary,
                                                                "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
