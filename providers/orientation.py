"""Page orientation (0/90/180/270) from Tesseract's orientation and script detection (OSD)."""

from __future__ import annotations

import os
import re
import subprocess

import msgspec
import numpy as np
from PIL import Image

from providers.types import PageImage

OSD_SIDE = 1600  # long side of the copy OSD reads: enough glyphs, a fraction of the cost
_ROTATE = re.compile(r"Rotate:\s*(\d+)")
_CONFIDENCE = re.compile(r"Orientation confidence:\s*([\d.]+)")


def detect_orientation(
    page: PageImage, binary: str = "tesseract", timeout_s: float = 30.0
) -> tuple[int, float]:
    """(degrees the page is turned counter-clockwise, confidence); (0, 0.0) when unknown."""
    image = Image.fromarray(page.pixels).convert("L")
    scale = min(1.0, OSD_SIDE / max(image.size))
    if scale < 1.0:
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
            Image.Resampling.BOX,
        )
    data = f"P5\n{image.width} {image.height}\n255\n".encode("ascii") + image.tobytes()
    try:
        proc = subprocess.run(
            [binary, "stdin", "stdout", "--psm", "0", "--dpi", str(round(page.dpi * scale))],
            input=data,
            capture_output=True,
            timeout=timeout_s,
            check=False,
            env={**os.environ, "OMP_THREAD_LIMIT": "1"},
        )
    except (OSError, subprocess.SubprocessError):
        return 0, 0.0
    out = proc.stdout.decode(errors="replace")
    rotate, confidence = _ROTATE.search(out), _CONFIDENCE.search(out)
    if rotate is None or confidence is None:
        return 0, 0.0  # too little text to tell
    return int(rotate.group(1)) % 360, float(confidence.group(1))


def rotate_upright(page: PageImage, degrees_ccw: int) -> PageImage:
    """The page turned back clockwise by `degrees_ccw`."""
    turns = (degrees_ccw // 90) % 4
    if turns == 0:
        return page
    pixels = np.ascontiguousarray(np.rot90(page.pixels, -turns))
    return msgspec.structs.replace(page, pixels=pixels)
