"""Page geometry of the PP-OCR loop, pure: box order and crops, the content bounds of a page,
the word spaces a CTC recognizer drops (restored from a crop's blank columns), and where each
word of a crop lies (from its characters' CTC frames and the crop's ink)."""

from __future__ import annotations

import itertools

import cv2
import msgspec
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
WORD_REACH = 24  # input columns a word's ink may reach past its frames (half a 48 px line)


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


def _crop_size(box: Box) -> tuple[int, int]:
    width = int(max(np.linalg.norm(box[0] - box[1]), np.linalg.norm(box[2] - box[3])))
    height = int(max(np.linalg.norm(box[0] - box[3]), np.linalg.norm(box[1] - box[2])))
    return width, height


def _is_tall(width: int, height: int) -> bool:
    return height >= 1.5 * width


def crop_box(image: Image, box: Box) -> Image:
    """The box straightened into its own image; a tall box is read turned 90 degrees."""
    width, height = _crop_size(box)
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(box, target)
    crop = cv2.warpPerspective(
        image, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    if _is_tall(width, height):
        crop = np.ascontiguousarray(np.rot90(crop))
    return crop


def reading_order(box: Box, turned: bool = False) -> list[int]:
    """The box's corners as its crop reads them (indexes into `box`): top-left, top-right,
    bottom-right, bottom-left of the text. A tall box's crop is turned 90 degrees
    counter-clockwise, so its text starts at the box's top-right corner; a crop read `turned`
    by 180 degrees starts at the opposite one."""
    order = [1, 2, 3, 0] if _is_tall(*_crop_size(box)) else [0, 1, 2, 3]
    return order[2:] + order[:2] if turned else order


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


def space_after(
    chars: list[str], spans: list[tuple[int, int]], blank: npt.NDArray[np.bool_]
) -> list[bool]:
    """For each pair of neighbouring characters, whether the gap between reads as a word gap.

    `spans` are each character's CTC frames, `blank` the ink-free columns of the crop as the
    recognizer saw it (REC_STRIDE columns per frame). The pitch is the mean distance between
    character centres. A gap is a space when its widest blank run is SPACE_GAP pitches, or
    SPACE_GAP_SPREAD pitches where the two characters' frames are SPACE_SPREAD pitches apart.
    Spaces the recognizer emitted itself are characters already: no space is put beside one.
    """
    breaks = [False] * max(0, len(chars) - 1)
    centres = [(a + b) / 2 for a, b in spans]
    solid = [c for c, ch in zip(centres, chars, strict=True) if ch != " "]
    if len(solid) < 2:
        return breaks
    pitch = (solid[-1] - solid[0]) / (len(solid) - 1)
    if pitch <= 0:
        return breaks
    for i in range(len(chars) - 1):
        if chars[i] != " " and chars[i + 1] != " ":
            left = min(len(blank), int((spans[i][1] + 0.5) * REC_STRIDE))
            right = min(len(blank), int((spans[i + 1][0] + 0.5) * REC_STRIDE))
            gap = longest_run(blank[left:right]) / (pitch * REC_STRIDE)
            spread = (centres[i + 1] - centres[i]) / pitch
            breaks[i] = gap >= SPACE_GAP or (gap >= SPACE_GAP_SPREAD and spread >= SPACE_SPREAD)
    return breaks


def join_chars(chars: list[str], breaks: list[bool]) -> str:
    """The characters with a space wherever `breaks` (from `space_after`) puts one."""
    return "".join(ch + " " if i < len(breaks) and breaks[i] else ch for i, ch in enumerate(chars))


def respace(chars: list[str], spans: list[tuple[int, int]], blank: npt.NDArray[np.bool_]) -> str:
    """The characters joined, with the word spaces the recognizer dropped put back."""
    return join_chars(chars, space_after(chars, spans, blank))


class CropWord(msgspec.Struct, frozen=True, kw_only=True):
    """A word of a crop's reading: its text, the mean score of its characters, and where its
    ink lies across the crop (shares of the crop's width, in reading direction)."""

    text: str
    confidence: float
    start: float
    end: float


def crop_words(
    chars: list[str],
    spans: list[tuple[int, int]],
    scores: list[float],
    breaks: list[bool],
    blank: npt.NDArray[np.bool_],
) -> list[CropWord]:
    """The words of a crop's reading: the characters between spaces (emitted by the recognizer
    or put back by `breaks`), so that they joined by single spaces are the reading's words.

    A word's horizontal extent is the ink of its part of the crop: parts meet at the middle of
    the widest blank run between two words (the middle of the gap where there is none), and a
    word reaches at most WORD_REACH columns past the frames of its first and last character.
    """
    groups: list[list[int]] = [[]]
    for i, ch in enumerate(chars):
        if ch.isspace():
            groups.append([])
            continue
        groups[-1].append(i)
        if i < len(breaks) and breaks[i]:
            groups.append([])
    words = [g for g in groups if g]
    columns = len(blank)
    if not words or not columns:
        return []
    frames = [(spans[g[0]][0] * REC_STRIDE, (spans[g[-1]][1] + 1) * REC_STRIDE) for g in words]
    bounds = [0]
    for (_, gap_start), (gap_end, _) in itertools.pairwise(frames):
        left = min(columns, gap_start - REC_STRIDE // 2)
        right = max(left, min(columns, gap_end + REC_STRIDE // 2))
        run_start, run_length = widest_run(blank[left:right])
        middle = left + run_start + run_length // 2 if run_length else (left + right) // 2
        bounds.append(middle)
    bounds.append(columns)
    result = []
    for k, group in enumerate(words):
        low = max(bounds[k], frames[k][0] - WORD_REACH)
        high = min(bounds[k + 1], frames[k][1] + WORD_REACH, columns)
        ink = np.flatnonzero(~blank[low:high])
        if len(ink):
            start, end = low + int(ink[0]), low + int(ink[-1]) + 1
        else:
            start, end = min(frames[k][0], columns - 1), min(frames[k][1], columns)
        result.append(
            CropWord(
                text="".join(chars[i] for i in group),
                confidence=sum(scores[i] for i in group) / len(group),
                start=start / columns,
                end=max(end, start + 1) / columns,
            )
        )
    return result


def widest_run(flags: npt.NDArray[np.bool_]) -> tuple[int, int]:
    """(start, length) of the longest run of true flags; (0, 0) when there is none."""
    best = (0, 0)
    start = None
    for i, flag in enumerate([*flags.tolist(), False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if i - start > best[1]:
                best = (start, i - start)
            start = None
    return best


def longest_run(flags: npt.NDArray[np.bool_]) -> int:
    return widest_run(flags)[1]
