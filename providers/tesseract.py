"""Tesseract, the Debian binary, driven through its TSV output in a subprocess.

Threads: the binary's OpenMP parallelism inside one page (its default, one thread per core)
costs far more than it gives on small machines: on two cores a 200 dpi page took 12-15 s with
it and 2.8-3.7 s on one thread, the same TSV byte for byte, most of the difference being system
time spent by idle OpenMP threads. `threads` sets OMP_THREAD_LIMIT (default 1), and the pages
run in parallel across the gateway's worker processes instead. `python -m
benchmarks.engine_speed` measures both ways side by side.
"""

from __future__ import annotations

import os
import subprocess
from collections import defaultdict

import msgspec

from providers.errors import ProviderError, ProviderTimeoutError, ProviderUnavailableError
from providers.types import PageImage, RecognizedPage, TextLine, TextWord, quad_from_box


class TesseractConfig(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="tesseract",
    tag_field="kind",
):
    binary: str = "tesseract"
    languages: str = "eng"
    psm: int = 3  # fully automatic page segmentation
    oem: int = 1  # LSTM engine
    threads: int = 1  # OMP_THREAD_LIMIT: parallelism belongs across pages (see above)
    timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ValueError("threads must be >= 1")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")


def encode_pnm(page: PageImage) -> bytes:
    """Binary PPM: the cheapest encoding Tesseract (Leptonica) reads from stdin."""
    header = f"P6\n{page.width} {page.height}\n255\n".encode("ascii")
    return header + page.pixels.tobytes()


def parse_tsv(tsv: str) -> list[TextLine]:
    """Group Tesseract's word rows into lines keyed by (block, paragraph, line)."""
    words: dict[tuple[int, int, int, int], list[TextWord]] = defaultdict(list)
    rows = tsv.splitlines()
    for row in rows[1:]:
        cols = row.split("\t")
        if len(cols) < 12 or cols[0] != "5":
            continue
        text = cols[11].strip()
        if not text:
            continue
        page, block, par, line = (int(c) for c in cols[1:5])
        left, top, width, height = (float(c) for c in cols[6:10])
        conf = max(0.0, min(1.0, float(cols[10]) / 100.0))
        words[(page, block, par, line)].append(
            TextWord(
                text=text,
                confidence=conf,
                quad=quad_from_box(left, top, left + width, top + height),
            )
        )
    lines = []
    for key in sorted(words):
        ws = words[key]
        left = min(w.quad[0][0] for w in ws)
        top = min(w.quad[0][1] for w in ws)
        right = max(w.quad[2][0] for w in ws)
        bottom = max(w.quad[2][1] for w in ws)
        lines.append(
            TextLine(
                text=" ".join(w.text for w in ws),
                confidence=sum(w.confidence for w in ws) / len(ws),
                quad=quad_from_box(left, top, right, bottom),
                words=tuple(ws),
            )
        )
    return lines


class TesseractProvider:
    def __init__(self, name: str, config: TesseractConfig) -> None:
        self.name = name
        self.config = config
        self._env = {**os.environ, "OMP_THREAD_LIMIT": str(config.threads)}
        try:
            out = subprocess.run(
                [config.binary, "--version"],
                capture_output=True,
                timeout=30,
                check=True,
                env=self._env,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise ProviderUnavailableError(f"tesseract binary not usable: {config.binary}") from exc
        first = (out.stdout or out.stderr).decode(errors="replace").splitlines()[0]
        self.model = first.strip().replace(" ", "-")

    def recognize(self, page: PageImage) -> RecognizedPage:
        argv = [
            self.config.binary,
            "stdin",
            "stdout",
            "-l",
            page.language or self.config.languages,
            "--psm",
            str(self.config.psm),
            "--oem",
            str(self.config.oem),
            "--dpi",
            str(round(page.dpi)),
            "tsv",
        ]
        try:
            proc = subprocess.run(
                argv,
                input=encode_pnm(page),
                capture_output=True,
                timeout=self.config.timeout_s,
                env=self._env,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ProviderTimeoutError(f"tesseract ran past {self.config.timeout_s:g} s") from exc
        except OSError as exc:
            raise ProviderUnavailableError(f"tesseract could not start: {exc.strerror}") from exc
        if proc.returncode != 0:
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise ProviderError(f"tesseract exited {proc.returncode}: {tail[0][:200]}")
        lines = parse_tsv(proc.stdout.decode("utf-8", errors="replace"))
        return RecognizedPage(
            lines=tuple(lines), model=self.model, width=page.width, height=page.height
        )
