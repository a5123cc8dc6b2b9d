"""What runs inside `engine_speed`'s worker processes: one initializer and one task per side.

Every side reads the same rendered pages: the parent writes each page once as a `.npy` file and
tasks load it by path, so no side pays for pickling pixels through its pipe more than another.
Tasks run in the gateway's own `WorkerPool` (`func(state, *args, phase=...)`), one page at a
time per process, as the gateway's workers do.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from benchmarks.workers import ignore_sigint
from gateway.config import Settings
from gateway.work.documents import DocumentKind
from gateway.work.pipeline import PageEngine, PageTask
from providers.base import Provider
from providers.tesseract import TesseractConfig, encode_pnm, parse_tsv
from providers.types import PageImage

STOCK_TIMEOUT_S = 600.0  # stock Tesseract can take many times the provider's limit


class PageFile(msgspec.Struct, frozen=True, kw_only=True):
    """A rendered page on disk: pixels in `path` (RGB uint8 .npy) and the render's dpi."""

    path: str
    dpi: float
    page_number: int


def load_page(page: PageFile) -> PageImage:
    pixels = np.load(page.path)
    return PageImage(pixels=pixels, dpi=page.dpi, page_number=page.page_number)


# --- stock RapidOCR: rapidocr 3.10.0's RapidOCR() with its packaged defaults -------------------


def init_stock_rapidocr() -> Any:
    """PP-OCRv6 small as the package runs it: every core on one page, the per-line angle
    classifier, detection with the shortest side raised to 736, recognition in batches of 6.
    Called without per-call options, so none stay set between pages."""
    ignore_sigint()
    from rapidocr import RapidOCR

    return RapidOCR(params={"Global.log_level": "warning"})  # logging only


def stock_rapidocr_task(engine: Any, page: PageFile, *, phase: Any) -> str:
    image = load_page(page)
    result = engine(np.ascontiguousarray(image.pixels[:, :, ::-1]))  # it reads BGR
    return "\n".join(str(text).strip() for text in result.txts or ())


# --- stock Tesseract: the CLI with default OpenMP threading -------------------------------------


def init_stock_tesseract(config: TesseractConfig) -> tuple[TesseractConfig, dict[str, str]]:
    ignore_sigint()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")}
    return config, env


def stock_tesseract_task(
    state: tuple[TesseractConfig, dict[str, str]], page: PageFile, *, phase: Any
) -> str:
    """The same argv and image bytes as the provider, without OMP_THREAD_LIMIT."""
    config, env = state
    image = load_page(page)
    argv = [
        config.binary,
        "stdin",
        "stdout",
        "-l",
        config.languages,
        "--psm",
        str(config.psm),
        "--oem",
        str(config.oem),
        "--dpi",
        str(round(image.dpi)),
        "tsv",
    ]
    proc = subprocess.run(
        argv,
        input=encode_pnm(image),
        capture_output=True,
        env=env,
        timeout=STOCK_TIMEOUT_S,
        check=True,
    )
    return "\n".join(line.text for line in parse_tsv(proc.stdout.decode("utf-8", "replace")))


# --- a configured provider, as the gateway builds it ------------------------------------------


def provider_task(provider: Provider, page: PageFile, *, phase: Any) -> str:
    recognized = provider.recognize(load_page(page))
    return "\n".join(line.text for line in recognized.lines)


# --- the whole pipeline: render, recognize, layout --------------------------------------------


def init_pipeline(settings: Settings) -> PageEngine:
    ignore_sigint()
    return PageEngine(settings)


def pipeline_task(
    engine: PageEngine, path: str, kind: DocumentKind, page_number: int, *, phase: Any
) -> str:
    result = engine.read_page(PageTask(path=path, kind=kind, page_number=page_number), phase)
    return result.raw_markdown


def noop_task(_state: Any, *, phase: Any) -> None:
    return None


def write_page(folder: Path, index: int, image: PageImage) -> PageFile:
    path = folder / f"page-{index:04d}.npy"
    np.save(path, image.pixels)
    return PageFile(path=str(path), dpi=image.dpi, page_number=image.page_number)
