"""Page geometry of the PP-OCR loop, pure: box order and crops, the content bounds of a page,
and the word spaces a CTC recognizer drops (restored from a crop's blank columns)."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
from cv2.typing import MatLike

Image = MatLike  # 8-bit BGR pixels, as OpenCV returns them
Box = npt.NDArray[np.float32]  # (4, 2), clockwise from top-left

TRIM_PROBE = 512  # content bounds are found on a copy about this many pixels on its long side
TRIM_CONTRAST = 48  # grey levels from the edge colour that count as content
TRIM_PAD = 4  # probe pixels of margin kept around the content
TRIM_KEEP = 0.8  # trim only when the content covers less than this share of the page
SPACE_GAP = 0.6  # a blank gap this wide (in character pitches) is a space...
SPACE_GAP_SPREAD = 0.35  # ...and so is a narrower one where the CTC peaks stand apart
SPACE_SPREAD = 1.3  # by this many pitches
REC_STRIDE = 8  # input columns per CTC frame of PP-OCRv4 rec


def order_clockwise(points: Box) -> Box:
    """Top-left, top-right, bottom-right, bottom-left."""
    by_x = points[np.argsort(points[:, 0])]
    left = by_x[:2][np.argsort(by_x[:2, 1])]
    right = by_x[2:][np.argsort(by_x[2:, 1])]
    return np.array([left[0], right[0], right[1], left[1]], dtype=np.float32)


def sort_boxes(boxes: list[Box]) -> list[Box]:
    """Top to bottom, then left to right among boxes whose tops are within 10 px (as stock)."""
    ordered = sorted(boxes, key=lambda b: (float(b[0][1]), float(b[0][0])))
    for i in range(len(ordered) - 1):
        for j in range(i, -1, -1):
            upper, lower = ordered[j], ordered[j + 1]
            if abs(lower[0][1] - upper[0][1]) < 10 and lower[0][0] < upper[0][0]:
                ordered[j], ordered[j + 1] = lower, upper
            else:
                break
    return ordered


def crop_box(image: Image, box: Box) -> Image:
    """The box straightened into its own image; a tall box is read turned 90 degrees."""
    width = int(max(np.linalg.norm(box[0] - box[1]), np.linalg.norm(box[2] - box[3])))
    height = int(max(np.linalg.norm(box[0] - box[3]), np.linalg.norm(box[1] - box[2])))
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(box, target)
    crop = cv2.warpPerspective(
        image, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    if crop.shape[0] >= 1.5 * crop.shape[1]:
        crop = np.ascontiguousarray(np.rot90(crop))
    return crop


def content_bounds(rgb: Image) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of what differs from the page's edge colour, plus a margin.

    Measured on a small copy; a page whose content fills it (or nothing) keeps its full size.
    """
    height, width = rgb.shape[:2]
    step = max(1, max(height, width) // TRIM_PROBE)
    gray = cv2.cvtColor(np.ascontiguousarray(rgb[::step, ::step]), cv2.COLOR_RGB2GRAY)
    edge = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    ink = np.abs(gray.astype(np.int16) - int(np.median(edge))) > TRIM_CONTRAST
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if not len(rows):
        return 0, 0, height, width
    pad = TRIM_PAD * step
    top, bottom = max(0, rows[0] * step - pad), min(height, (rows[-1] + 1) * step + pad)
    left, right = max(0, cols[0] * step - pad), min(width, (cols[-1] + 1) * step + pad)
    if (bottom - top) * (right - left) > TRIM_KEEP * height * width:
        return 0, 0, height, width
    return int(top), int(left), int(bottom), int(right)


def blank_columns(crop: Image) -> npt.NDArray[np.bool_]:
    """Columns of the crop without ink (Otsu threshold; ink is the minority colour)."""
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    _, ink = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    if ink.mean() > 0.5:  # light text on a dark ground
        ink = 1 - ink
    blank: npt.NDArray[np.bool_] = ink.sum(axis=0) == 0
    return blank


def respace(chars: list[str], spans: list[tuple[int, int]], blank: npt.NDArray[np.bool_]) -> str:
    """The characters joined, with a space wherever the gap between two reads as a word gap.

    `spans` are each character's CTC frames, `blank` the ink-free columns of the crop as the
    recognizer saw it (REC_STRIDE columns per frame). The pitch is the mean distance between
    character centres. A gap is a space when its widest blank run is SPACE_GAP pitches, or
    SPACE_GAP_SPREAD pitches where the two characters' frames are SPACE_SPREAD pitches apart.
    Spaces the recognizer emitted itself are kept.
    """
    centres = [(a + b) / 2 for a, b in spans]
    solid = [c for c, ch in zip(centres, chars, strict=True) if ch != " "]
    if len(solid) < 2:
        return "".join(chars)
    pitch = (solid[-1] - solid[0]) / (len(solid) - 1)
    if pitch <= 0:
        return "".join(chars)
    out = [chars[0]]
    for i in range(len(chars) - 1):
        if chars[i] != " " and chars[i + 1] != " ":
            left = min(len(blank), int((spans[i][1] + 0.5) * REC_STRIDE))
            right = min(len(blank), int((spans[i + 1][0] + 0.5) * REC_STRIDE))
            gap = longest_run(blank[left:right]) / (pitch * REC_STRIDE)
            spread = (centres[i + 1] - centres[i]) / pitch
            if gap >= SPACE_GAP or (gap >= SPACE_GAP_SPREAD and spread >= SPACE_SPREAD):
                out.append(" ")
        out.append(chars[i + 1])
    return "".join(out)


def longest_run(flags: npt.NDArray[np.bool_]) -> int:
    best = run = 0
    for flag in flags.tolist():
        run = run + 1 if flag else 0
        best = max(best, run)
    return best
