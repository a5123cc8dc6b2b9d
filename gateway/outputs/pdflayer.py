"""A page's invisible text layer: each word drawn in the glyphless font (render mode 3) at its
box, the font size the box's height and the horizontal scale (`Tz`) stretching the word over
the box's width; between two words of a line a space stretched over the gap, so that copied
text has its spaces and extractors see word boundaries.

The layer is drawn in the page's upright frame: the page as displayed once its /Rotate is
applied, in points, origin bottom-left; `page_frame` gives the matrix from that frame to the
page's user space, for any crop box and quarter-turn rotation.
"""

from __future__ import annotations

import msgspec

from gateway.outputs.pages import page_lines
from gateway.outputs.pdffont import ADVANCE, DESCENT, encode_text
from gateway.results import PageResult

MIN_SCALE = 1.0  # percent: the least horizontal scale drawn (a word or gap of no width)


class Frame(msgspec.Struct, frozen=True):
    width: float  # of the page as displayed, in points
    height: float
    matrix: tuple[float, float, float, float, float, float]  # frame -> user space (cm operands)


def page_frame(box: tuple[float, float, float, float], rotate: int) -> Frame:
    """The upright frame of a page whose visible box is (left, bottom, right, top) in user
    space, displayed turned clockwise by `rotate` (0, 90, 180 or 270)."""
    left, bottom, right, top = box
    width, height = right - left, top - bottom
    if rotate == 90:
        return Frame(height, width, (0, 1, -1, 0, right, bottom))
    if rotate == 180:
        return Frame(width, height, (-1, 0, 0, -1, right, top))
    if rotate == 270:
        return Frame(height, width, (0, -1, 1, 0, left, top))
    return Frame(width, height, (1, 0, 0, 1, left, bottom))


def _n(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") or "0"


def text_layer(page: PageResult, frame: Frame, font: str) -> bytes:
    """Content-stream operators drawing the page's words invisibly, in a q/Q pair."""
    width, height = frame.width, frame.height
    ops = ["q", " ".join(_n(v) for v in frame.matrix) + " cm", "BT", "3 Tr"]
    for _, _, words in page_lines(page):
        for i, word in enumerate(words):
            g = word.geometry
            left, right = g.x * width, (g.x + g.width) * width
            bottom = height * (1 - g.y - g.height)
            size = g.height * height
            if size <= 0 or not word.text:
                continue
            em = ADVANCE / 1000 * size  # one glyph's natural width
            scale = max(100 * (right - left) / (len(word.text) * em), MIN_SCALE)
            baseline = bottom - DESCENT / 1000 * size
            ops.append(
                f"/{font} {_n(size)} Tf {_n(scale)} Tz 1 0 0 1 {_n(left)} {_n(baseline)} Tm "
                f"{encode_text(word.text)} Tj"
            )
            if i + 1 < len(words):
                gap = words[i + 1].geometry.x * width - right
                ops.append(f"{_n(max(100 * gap / em, MIN_SCALE))} Tz <0020> Tj")
    ops += ["ET", "Q"]
    return ("\n".join(ops) + "\n").encode("ascii")
