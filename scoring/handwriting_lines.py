"""Is a text line handwritten? A cheap classifier over the line's crop, whatever engine read it.

Each line's box is cut from the page, scaled to `CROP_HEIGHT` pixels high, binarized (Otsu)
and cleared of ruling lines (underlines, table borders, lined paper: horizontal ink runs a line
height long, vertical ones the crop's height). Ten measurements of what is left, and the
recognizer's own confidence, go into a logistic regression (`COEFFICIENTS`, fitted on the
corpus as the README's "Handwriting" section tells):

| feature | print | handwriting |
|---|---|---|
| `axis` share of edge strength within 10 degrees of the axes | high | low (slant, curves) |
| `upright` share of it on vertical strokes | high | low |
| `height_cv` variation of glyph heights | low | high |
| `wide_share` share of ink in shapes wider than 1.5x their height | low | high (joined letters) |
| `shapes_per_char` glyph-sized shapes per character read | ~1 | < 1 (joined) |
| `baseline_share` glyphs whose bottom sits on the median baseline | high | low |
| `height_mode_share` glyphs of the median height | high | low |
| `confidence` the recognizer's confidence in the line | high | low |
| `stroke_cv` variation of stroke width | low | high |
| `log_height` log of the line's height in pixels, capped at 64 | | |

Then each line's log-odds is pulled towards the page's median line (`page_weight`): handwriting
comes in pages, and a printed page's one odd line is more likely a blur than a hand. A line with
fewer than `MIN_GLYPHS` glyph-sized shapes (a dot, a lone digit, a rule) gives no evidence of
its own (log-odds 0): the page decides it. A line the page context calls printed is still
handwritten when one of its parts (words apart by more than a line height: a form's answer
written beside its printed label, which the layout joins into one row) that the recognizer is
unsure of (`part_max_confidence`) is, by its own measure, above `part_log_odds`.

The probability reported is that of the verdict's rule, measured from its threshold: the line's
(with page context) against `min_probability`, or the part's against `part_log_odds`.

Pure numpy / OpenCV; about a millisecond a line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import msgspec
import numpy as np
import numpy.typing as npt

CROP_HEIGHT = 40  # every line is measured scaled to this height
MIN_GLYPHS = 3  # fewer glyph-sized shapes than this: no evidence of its own, the page decides
PART_GAP = 1.0  # words further apart than this many line heights are separate parts
MAX_LOG_HEIGHT_PX = 64.0  # taller lines count as this tall (a high-resolution scan is no hand)
FEATURES = (
    "axis",
    "upright",
    "height_cv",
    "wide_share",
    "shapes_per_char",
    "baseline_share",
    "height_mode_share",
    "confidence",
    "stroke_cv",
    "log_height",
)
# Logistic regression on FEATURES (raw units), fitted by benchmarks/handwriting.py --fit:
# see the README, "Handwriting".
INTERCEPT = 3.6064
COEFFICIENTS: tuple[float, ...] = (
    -12.7509,
    -4.2111,
    5.7291,
    3.3433,
    -1.0016,
    -1.654,
    -1.3583,
    -5.1711,
    -0.8597,
    1.7395,
)

Box = tuple[float, float, float, float]  # left, top, right, bottom in page pixels
Gray = npt.NDArray[np.uint8]


class HandwritingSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`pipeline.handwriting` in config."""

    enabled: bool = True  # mark each line handwritten or printed
    min_probability: float = 0.5  # a line this likely handwritten (after page context) is
    page_weight: float = 1.5  # share of the page's median line log-odds added to each line's
    # A part of a line (its words between gaps wider than the line is tall: a filled-in answer
    # beside its printed label) whose own log-odds, without page context, is above this marks
    # the line handwritten.
    part_log_odds: float = -0.5
    part_max_confidence: float = 0.95  # parts the recognizer is surer of than this are print

    def __post_init__(self) -> None:
        if not 0.0 < self.min_probability < 1.0:
            raise ValueError("min_probability must be between 0 and 1 (exclusive)")
        if not 0.0 <= self.page_weight <= 5.0:
            raise ValueError("page_weight must be between 0 and 5")
        if not 0.0 <= self.part_max_confidence <= 1.0:
            raise ValueError("part_max_confidence must be between 0 and 1")


class WordInput(msgspec.Struct, frozen=True, kw_only=True):
    box: Box
    text: str
    confidence: float  # the recognizer's, 0..1


class LineInput(msgspec.Struct, frozen=True, kw_only=True):
    box: Box
    text: str
    confidence: float  # the recognizer's, 0..1
    words: tuple[WordInput, ...] = ()  # in reading order; for the line's parts


class LineVerdict(msgspec.Struct, frozen=True, kw_only=True):
    is_handwritten: bool
    probability: float  # that the line is handwritten, 0..1

    @property
    def confidence(self) -> float:
        """How sure the verdict is: the probability, or its complement for a printed line."""
        return self.probability if self.is_handwritten else 1.0 - self.probability


def to_gray(pixels: npt.NDArray[np.uint8]) -> Gray:
    if pixels.ndim == 2:
        return pixels
    return np.asarray(cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2GRAY))


def _crop(gray: Gray, box: Box) -> Gray | None:
    """The line's pixels scaled to CROP_HEIGHT high; None for a box too small to measure."""
    left, top, right, bottom = box
    height, width = gray.shape
    x0, y0 = max(0, int(left)), max(0, int(top))
    x1, y1 = min(width, math.ceil(right)), min(height, math.ceil(bottom))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    scale = CROP_HEIGHT / (y1 - y0)
    size = (max(4, round((x1 - x0) * scale)), CROP_HEIGHT)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(gray[y0:y1, x0:x1], size, interpolation=interpolation))


def _rules(ink8: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Ruling lines: horizontal runs a line height long (small gaps bridged) and vertical runs
    nearly the crop's height."""
    horizontal = cv2.morphologyEx(
        cv2.morphologyEx(ink8, cv2.MORPH_CLOSE, np.ones((1, 5), np.uint8)),
        cv2.MORPH_OPEN,
        cv2.getStructuringElement(cv2.MORPH_RECT, (CROP_HEIGHT, 1)),
    )
    vertical = cv2.morphologyEx(
        ink8, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, CROP_HEIGHT - 2))
    )
    return np.asarray(np.maximum(horizontal, vertical), dtype=np.uint8)


def line_features(gray: Gray, line: LineInput) -> tuple[float, ...] | None:
    """FEATURES of one line, in order; None when the box holds too little ink to judge."""
    crop = _crop(gray, line.box)
    if crop is None:
        return None
    threshold, _ = cv2.threshold(crop, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ink = crop <= threshold
    if ink.mean() > 0.5:  # light text on a dark ground
        ink = ~ink
    if np.count_nonzero(ink) < 20 or ink.all():
        return None
    paper = int(np.median(crop[~ink]))
    rules = _rules(ink.astype(np.uint8))
    glyph_ink = ink.astype(np.uint8) & ~rules
    count, _, stats, _ = cv2.connectedComponentsWithStats(glyph_ink, connectivity=8)
    table = stats[1:count]
    table = table[table[:, cv2.CC_STAT_AREA] >= 4]
    heights = table[:, cv2.CC_STAT_HEIGHT].astype(np.float64)
    widths = table[:, cv2.CC_STAT_WIDTH].astype(np.float64)
    areas = table[:, cv2.CC_STAT_AREA].astype(np.float64)
    bottoms = table[:, cv2.CC_STAT_TOP].astype(np.float64) + heights
    glyphs = heights >= 0.25 * CROP_HEIGHT
    if np.count_nonzero(glyphs) < MIN_GLYPHS:
        return None
    tall, tall_bottoms = heights[glyphs], bottoms[glyphs]
    tolerance = 0.08 * CROP_HEIGHT
    chars = max(1, len(line.text.replace(" ", "")))

    painted = crop.copy()
    cleared = cv2.dilate(rules, np.ones((3, 3), np.uint8)).astype(bool)
    painted[cleared] = paper
    strokes = ink & ~cleared
    if np.count_nonzero(strokes) < 20:
        return None
    axis, upright = _orientation(painted)
    distance = cv2.distanceTransform(strokes.astype(np.uint8), cv2.DIST_L2, 3)
    ridge = (distance >= cv2.dilate(distance, np.ones((3, 3), np.uint8))) & strokes
    widths_on_ridge = distance[ridge]
    stroke_cv = (
        float(widths_on_ridge.std() / max(widths_on_ridge.mean(), 1e-6))
        if len(widths_on_ridge) > 5
        else 0.0
    )
    box_height = max(4.0, line.box[3] - line.box[1])
    return (
        axis,
        upright,
        float(tall.std() / tall.mean()),
        float(areas[widths > 1.5 * heights].sum() / max(areas.sum(), 1.0)),
        min(3.0, len(tall) / chars),
        float(np.mean(np.abs(tall_bottoms - np.median(tall_bottoms)) <= tolerance)),
        float(np.mean(np.abs(tall - np.median(tall)) <= tolerance)),
        float(line.confidence),
        stroke_cv,
        math.log(min(MAX_LOG_HEIGHT_PX, box_height)),
    )


def _orientation(crop: Gray) -> tuple[float, float]:
    """Shares of strong edge strength within 10 degrees of the axes, and of it on upright
    strokes (a horizontal gradient)."""
    g = crop.astype(np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = np.hypot(gx, gy)
    strong = magnitude > 0.25 * (float(magnitude.max()) + 1e-6)
    ax, ay, weight = np.abs(gx[strong]), np.abs(gy[strong]), magnitude[strong]
    total = max(float(weight.sum()), 1e-6)
    tolerance = math.tan(math.radians(10))
    aligned = np.minimum(ax, ay) < tolerance * np.maximum(ax, ay)
    vertical = ay < tolerance * ax
    return float(weight[aligned].sum() / total), float(weight[vertical].sum() / total)


def line_log_odds(features: Sequence[float]) -> float:
    return INTERCEPT + sum(c * f for c, f in zip(COEFFICIENTS, features, strict=True))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def line_parts(line: LineInput) -> list[LineInput]:
    """The line's words grouped where the gap between two is wider than `PART_GAP` line
    heights, each group a part with the line's height; none when the line is one group."""
    gap = PART_GAP * (line.box[3] - line.box[1])
    groups: list[list[WordInput]] = []
    for word in line.words:
        if groups and word.box[0] - groups[-1][-1].box[2] <= gap:
            groups[-1].append(word)
        else:
            groups.append([word])
    if len(groups) < 2:
        return []
    return [
        LineInput(
            box=(group[0].box[0], line.box[1], max(w.box[2] for w in group), line.box[3]),
            text=" ".join(w.text for w in group),
            confidence=sum(w.confidence for w in group) / len(group),
        )
        for group in groups
    ]


def _part_odds(gray: Gray, line: LineInput, max_confidence: float) -> float | None:
    """The highest log-odds among the line's parts that the recognizer is not sure of (None:
    one part, or none judged)."""
    odds = [
        line_log_odds(features)
        for part in line_parts(line)
        if part.confidence < max_confidence and (features := line_features(gray, part)) is not None
    ]
    return max(odds) if odds else None


def classify_lines(
    pixels: npt.NDArray[np.uint8], lines: Sequence[LineInput], settings: HandwritingSettings
) -> list[LineVerdict]:
    """A verdict for each line of a page (RGB or gray pixels, boxes in their space)."""
    gray = to_gray(pixels)
    odds: list[float | None] = []
    for line in lines:
        features = line_features(gray, line)
        odds.append(None if features is None else line_log_odds(features))
    judged = [z for z in odds if z is not None]
    page = float(np.median(judged)) if judged else 0.0
    threshold = math.log(settings.min_probability / (1.0 - settings.min_probability))
    verdicts = []
    for line, z in zip(lines, odds, strict=True):
        probability = _sigmoid((z or 0.0) + settings.page_weight * page - threshold)
        if probability <= 0.5:
            part = _part_odds(gray, line, settings.part_max_confidence)
            if part is not None and part > settings.part_log_odds:
                probability = _sigmoid(part - settings.part_log_odds)
        verdicts.append(
            LineVerdict(is_handwritten=probability > 0.5, probability=round(probability, 4))
        )
    return verdicts
