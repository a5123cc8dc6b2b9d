"""Where a RapidOCR page's time goes, ours against stock, one thread each (issue 12).

    python -m benchmarks.engine_profile [--limit 5] [--set FIELD=VALUE ...] [--out DIR]

The pages of `engine_speed` (the first `--limit` documents of each scanned and printed
category), read in this one process, one page at a time, by:

- the configured `rapidocr` provider (our loop on PP-OCRv6 small), and once more per `--set`
  (a provider field changed, e.g. `--set det_limit_side_len=960`), to weigh an option's time
  against its F1 on the same pages;
- stock `rapidocr` 3.10.0 `RapidOCR()` with one ONNX thread, and with its default threads.

For each side: seconds in the detection model, in the recognition model and elsewhere (ours:
ONNX `run` calls timed; stock: its own `elapse_list`, det / cls / rec), the recognizer's input
columns (a crop 48 px high is `48 x width / height` columns wide; its cost is linear in them;
stock's are counted from its boxes, without the padding its batches of 6 add),
microseconds per column, and bag-of-words F1 by category. Since pages run one at a time in one
process, the one-thread sides compare the engines' work, not their scheduling: `engine_speed`
measures that.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from benchmarks.engine_sides import load_page
from benchmarks.engine_speed import ENGINE, BenchPage, collect_pages, quality
from benchmarks.environment import describe_machine, git_commit, package_versions
from gateway.config import load_settings
from providers.rapidocr import RapidOCRConfig, RapidOCRProvider
from tests.support.gateway_process import CORPUS, REPO

REC_HEIGHT = 48


class Profile(msgspec.Struct, kw_only=True):
    label: str
    seconds: float = 0.0
    det_s: float = 0.0
    cls_s: float = 0.0
    rec_s: float = 0.0
    columns: int = 0
    texts: list[str] = msgspec.field(default_factory=list)

    def summary(self, pages: Sequence[BenchPage]) -> dict[str, Any]:
        return {
            "label": self.label,
            "seconds": self.seconds,
            "det_s": self.det_s,
            "cls_s": self.cls_s,
            "rec_s": self.rec_s,
            "other_s": self.seconds - self.det_s - self.cls_s - self.rec_s,
            "rec_columns": self.columns,
            "rec_us_per_column": 1e6 * self.rec_s / max(self.columns, 1),
            **quality(pages, self.texts),
        }


def columns(width: float, height: float) -> int:
    """The recognizer's input width for a crop, at its fixed 48 px height."""
    return max(1, math.ceil(REC_HEIGHT * width / max(height, 1.0)))


class TimedSession:
    """An ONNX session whose `run` calls add their seconds (and for the recognizer, its input
    columns) to a profile."""

    def __init__(self, session: Any, add: Callable[[float, int], None]) -> None:
        self._session, self._add = session, add

    def get_inputs(self) -> Any:
        return self._session.get_inputs()

    def run(self, outputs: Any, feed: dict[str, Any]) -> Any:
        started = time.perf_counter()
        result = self._session.run(outputs, feed)
        tensor = next(iter(feed.values()))
        self._add(time.perf_counter() - started, int(tensor.shape[0] * tensor.shape[3]))
        return result


def profile_ours(label: str, config: RapidOCRConfig, pages: Sequence[BenchPage]) -> Profile:
    profile = Profile(label=label)
    provider = RapidOCRProvider(ENGINE, config)

    def add_det(seconds: float, _columns: int) -> None:
        profile.det_s += seconds

    def add_rec(seconds: float, cols: int) -> None:
        profile.rec_s += seconds
        profile.columns += cols

    provider.recognize(load_page(pages[0].page))  # warm: first runs allocate
    models = provider._models  # the benchmark times the model calls of this process's sessions
    models.narrow = models.narrow._replace(
        det=TimedSession(models.narrow.det, add_det), rec=TimedSession(models.narrow.rec, add_rec)
    )
    for page in pages:
        image = load_page(page.page)
        started = time.perf_counter()
        lines = provider.recognize(image).lines
        profile.seconds += time.perf_counter() - started
        profile.texts.append("\n".join(line.text for line in lines))
    return profile


def profile_stock(label: str, threads: int, pages: Sequence[BenchPage]) -> Profile:
    from rapidocr import RapidOCR
    from rapidocr.utils.output import RapidOCROutput

    params: dict[str, Any] = {"Global.log_level": "warning"}
    if threads > 0:
        params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
    engine = RapidOCR(params=params)
    profile = Profile(label=label)
    engine(np.ascontiguousarray(load_page(pages[0].page).pixels[:, :, ::-1]))  # warm
    for page in pages:
        bgr = np.ascontiguousarray(load_page(page.page).pixels[:, :, ::-1])
        started = time.perf_counter()
        result = engine(bgr)
        profile.seconds += time.perf_counter() - started
        assert isinstance(result, RapidOCROutput)  # a whole-page call
        det, cls, rec = (seconds or 0.0 for seconds in result.elapse_list)
        profile.det_s += det
        profile.cls_s += cls
        profile.rec_s += rec
        for box in result.boxes if result.boxes is not None else ():
            profile.columns += columns(*crop_size(np.asarray(box, dtype=np.float32)))
        profile.texts.append("\n".join(str(t).strip() for t in result.txts or ()))
    return profile


def crop_size(corners: Any) -> tuple[float, float]:
    """Width and height of a detected quad, as both loops crop it."""
    top, bottom = corners[0] - corners[1], corners[3] - corners[2]
    left, right = corners[0] - corners[3], corners[1] - corners[2]
    width = max(np.linalg.norm(top), np.linalg.norm(bottom))
    height = max(np.linalg.norm(left), np.linalg.norm(right))
    return float(width), float(height)


def with_fields(config: RapidOCRConfig, assignments: str) -> RapidOCRConfig:
    """The config with `FIELD=VALUE[,FIELD=VALUE]` applied (values parsed as YAML scalars)."""
    fields = msgspec.to_builtins(config)
    for assignment in assignments.split(","):
        name, _, value = assignment.partition("=")
        if name not in fields:
            raise SystemExit(f"--set {assignment}: RapidOCRConfig has no field {name!r}")
        fields[name] = msgspec.yaml.decode(value.encode())
    return msgspec.convert(fields, RapidOCRConfig)


def render_markdown(rows: list[dict[str, Any]]) -> str:
    categories = sorted({c for row in rows for c in row["f1_by_category"]})
    out = [
        "| side | total s | det s | cls s | rec s | other s | rec columns | us/column | "
        + " | ".join(f"F1 {c}" for c in categories)
        + " | F1 all |",
        "|---|" + "---|" * (8 + len(categories)),
    ]
    for row in rows:
        f1 = [f"{row['f1_by_category'].get(c, float('nan')):.3f}" for c in categories]
        out.append(
            f"| {row['label']} | {row['seconds']:.1f} | {row['det_s']:.1f} | {row['cls_s']:.1f} "
            f"| {row['rec_s']:.1f} | {row['other_s']:.1f} | {row['rec_columns']:,} "
            f"| {row['rec_us_per_column']:.0f} | " + " | ".join(f1) + f" | {row['f1']:.3f} |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--config", type=Path, default=REPO / "config.yaml")
    parser.add_argument("--limit", type=int, default=5, help="documents per category")
    parser.add_argument("--set", action="append", default=[], dest="variants", metavar="F=V")
    parser.add_argument("--no-stock", action="store_true", help="our sides only")
    parser.add_argument("--out", type=Path, default=REPO / "bench-out" / "engine_profile")
    args = parser.parse_args(argv)
    settings = load_settings(args.config)
    config = settings.providers[ENGINE]
    if not isinstance(config, RapidOCRConfig):
        raise SystemExit(f"provider {ENGINE!r} is not a rapidocr provider")
    with tempfile.TemporaryDirectory() as folder:
        pages = collect_pages(args.corpus, args.limit, settings, Path(folder))
        print(f"{len(pages)} pages", flush=True)
        profiles = [profile_ours(f"{ENGINE} (config.yaml)", config, pages)]
        for variant in args.variants:
            profiles.append(
                profile_ours(f"{ENGINE} {variant}", with_fields(config, variant), pages)
            )
        if not args.no_stock:
            profiles.append(profile_stock("stock 3.10.0, 1 thread", 1, pages))
            profiles.append(profile_stock("stock 3.10.0, default threads", 0, pages))
    rows = [p.summary(pages) for p in profiles]
    markdown = render_markdown(rows)
    print(markdown)
    summary = {
        "commit": git_commit(REPO),
        "machine": msgspec.to_builtins(describe_machine()),
        "packages": package_versions(),
        "pages": len(pages),
        "sides": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "engine_profile.json").write_text(json.dumps(summary, indent=2))
    (args.out / "engine_profile.md").write_text(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
