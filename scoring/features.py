"""What makes a page hard to read, measured on a small grayscale copy of it.

Every feature is computed on the page scaled so its long side is `SCORING_SIDE` pixels (a few
tens of milliseconds on one core), so scores do not depend on the resolution a page arrived at;
`dpi` and `text_height_px` report the resolution of the page as it will be read.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np
import numpy.typing as npt
from PIL import Image
from scipy import ndimage
from skimage.filters import threshold_otsu

SCORING_SIDE = 1000  # long side of the copy the features are measured on
SKEW_COARSE = np.deg2rad(np.arange(-6.0, 7.0, 1.0))
SKEW_SAMPLE = 20_000
MIN_RULE_PX = round(0.04 * SCORING_SIDE)  # shorter runs are glyph strokes, not ruling lines
AXIS_TOLERANCE = np.deg2rad(8.0)

Gray = npt.NDArray[np.uint8]


class PageFeatures(msgspec.Struct, frozen=True, kw_only=True):
    ink_ratio: float  # share of dark pixels
    contrast: float  # 5th-95th percentile spread of gray, 0..1
    noise: float  # high-frequency residue in the background, 0..1 (0 = clean)
    edge_density: float  # share of pixels on a strong edge
    skew_deg: float  # dominant text-line angle
    h_rules: int  # long horizontal ruling lines
    v_rules: int  # long vertical ruling lines
    line_regularity: float  # how periodic the rows of text are, 0..1 (print is high)
    component_height_cv: float  # variation of glyph heights (handwriting is high)
    connected_ratio: float  # share of ink in wide joined shapes (cursive writing is high)
    axis_alignment: float  # share of stroke edges on the page axes (print high, script low)
    color_saturation: float  # photos of paper documents are colored; scans are gray
    vertical_text: float  # > 0.5: text lines run vertically (page turned 90/270 degrees)
    dpi: float  # resolution of the page as it will be read
    text_height_px: float  # median glyph height at that resolution (small text is hard)

    @property
    def tables_likely(self) -> bool:
        return self.h_rules >= 3 and self.v_rules >= 2


def to_scoring_copy(pixels: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.uint8], float]:
    """RGB copy with the long side at most SCORING_SIDE (Pillow's box filter: fast, no
    aliasing); returns it and its scale."""
    scale = min(1.0, SCORING_SIDE / max(pixels.shape[:2]))
    if scale >= 1.0:
        return pixels, 1.0
    size = (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale)))
    small = Image.fromarray(pixels).resize(size, Image.Resampling.BOX)
    return np.asarray(small), scale


def _ink_mask(gray: Gray) -> npt.NDArray[np.bool_]:
    if int(gray.max()) == int(gray.min()):
        return np.zeros(gray.shape, dtype=bool)
    threshold = float(threshold_otsu(gray))  # type: ignore[no-untyped-call]
    ink: npt.NDArray[np.bool_] = np.asarray(gray <= threshold, dtype=np.bool_)
    if ink.mean() > 0.5:  # light text on a dark ground
        ink = ~ink
    return ink


def _long_runs(ink: npt.NDArray[np.bool_], length: int, axis: int) -> int:
    """Number of separate lines holding an unbroken ink run of `length` along `axis`."""
    if length < MIN_RULE_PX or ink.shape[axis] <= length:
        return 0
    counts = np.cumsum(ink, axis=axis, dtype=np.int32)
    if axis == 1:
        windows = counts[:, length:] - counts[:, :-length]
        hit: npt.NDArray[np.bool_] = np.asarray((windows >= length - 1).any(axis=1))
    else:
        windows = counts[length:, :] - counts[:-length, :]
        hit = np.asarray((windows >= length - 1).any(axis=0))
    # adjacent hit rows/columns are one thick line
    return int(np.count_nonzero(hit[1:] & ~hit[:-1]) + int(hit[0]))


def _regularity(profile: npt.NDArray[np.float64]) -> float:
    """Height of the first autocorrelation peak of a projection profile (0..1)."""
    p = profile - profile.mean()
    energy = float(np.dot(p, p))
    if energy <= 0 or len(p) < 16:
        return 0.0
    spectrum = np.fft.rfft(p, n=2 * len(p))
    corr = np.fft.irfft(spectrum * np.conj(spectrum))[: len(p) // 2] / energy
    lo = 3
    if len(corr) <= lo + 1:
        return 0.0
    return float(max(0.0, corr[lo:].max()))


def _skew(ink: npt.NDArray[np.bool_]) -> float:
    ys, xs = np.nonzero(ink)
    if len(ys) < 50:
        return 0.0
    if len(ys) > SKEW_SAMPLE:
        pick = np.random.default_rng(0).choice(len(ys), SKEW_SAMPLE, replace=False)
        ys, xs = ys[pick], xs[pick]
    height = ink.shape[0]

    def sharpness(angle: float) -> float:
        rows = np.clip((ys - xs * math.tan(angle)).astype(np.int64), 0, height - 1)
        return float(np.var(np.bincount(rows, minlength=height)))

    coarse = max(SKEW_COARSE, key=sharpness)
    fine = max(coarse + np.deg2rad(np.array([-0.5, 0.0, 0.5])), key=sharpness)
    return math.degrees(float(fine))


def _components(ink: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.int64], ...]:
    """Heights, widths and areas of the 8-connected ink components."""
    labels, count = ndimage.label(ink, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    boxes = ndimage.find_objects(labels)
    heights = np.array([b[0].stop - b[0].start for b in boxes], dtype=np.int64)
    widths = np.array([b[1].stop - b[1].start for b in boxes], dtype=np.int64)
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:].astype(np.int64)
    return heights, widths, areas


def _profile_contrast(ink: npt.NDArray[np.bool_]) -> tuple[float, float]:
    """Coefficient of variation of the row and column ink profiles over the inked area:
    rows of text make the row profile alternate between ink and gaps."""
    ys, xs = np.nonzero(ink)
    if len(ys) < 50:
        return 0.0, 0.0
    box = ink[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    rows = box.mean(axis=1)
    cols = box.mean(axis=0)
    return (float(rows.std() / max(rows.mean(), 1e-6)),
            float(cols.std() / max(cols.mean(), 1e-6)))


def _axis_alignment(g: npt.NDArray[np.float32], ink: npt.NDArray[np.bool_]) -> float:
    gx = g[1:-1, 2:] - g[1:-1, :-2]
    gy = g[2:, 1:-1] - g[:-2, 1:-1]
    magnitude = np.hypot(gx, gy)
    strong = (magnitude > 60) & ink[1:-1, 1:-1]
    if strong.sum() < 100:
        return 1.0
    angle = np.mod(np.arctan2(gy[strong], gx[strong]), np.pi / 2)
    aligned = (angle < AXIS_TOLERANCE) | (angle > np.pi / 2 - AXIS_TOLERANCE)
    weights = magnitude[strong]
    return float(weights[aligned].sum() / weights.sum())


def ink_coverage(pixels: npt.NDArray[np.uint8],
                 boxes: list[tuple[float, float, float, float]]) -> float:
    """Share of the page's ink inside `boxes` (left, top, right, bottom in `pixels`' space),
    each grown by a little margin."""
    small, scale = to_scoring_copy(pixels)
    gray = np.asarray(Image.fromarray(small).convert("L")) if small.ndim == 3 else small
    ink = _ink_mask(gray)
    total = int(ink.sum())
    if total == 0:
        return 1.0
    covered = np.zeros_like(ink)
    h, w = ink.shape
    for left, top, right, bottom in boxes:
        x0, y0 = max(0, int(left * scale) - 2), max(0, int(top * scale) - 2)
        x1, y1 = min(w, int(right * scale) + 3), min(h, int(bottom * scale) + 3)
        covered[y0:y1, x0:x1] = True
    return float((ink & covered).sum() / total)


def compute_features(pixels: npt.NDArray[np.uint8], dpi: float,
                     pixel_scale: float = 1.0) -> PageFeatures:
    """Features of a page image (RGB or gray) that will be read at `dpi`, at `pixel_scale`
    times the size of `pixels` (a thumbnail of the page has pixel_scale > 1)."""
    small, scale = to_scoring_copy(pixels)
    scale /= pixel_scale
    if small.ndim == 3:
        rgb = small[::3, ::3].astype(np.int16)  # chroma is smooth: a sample is enough
        saturation = float(np.mean(rgb.max(axis=2) - rgb.min(axis=2)) / 255.0)
        gray = np.asarray(Image.fromarray(small).convert("L"))
    else:
        saturation, gray = 0.0, small
    ink = _ink_mask(gray)
    ink_ratio = float(ink.mean())
    g = gray.astype(np.float32)
    paper = float(np.median(gray[~ink])) if (~ink).any() else 255.0
    text = float(np.median(gray[ink])) if ink.any() else paper
    lap = np.abs(4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:])
    background = ~ink[1:-1, 1:-1]
    noise = float(lap[background].mean() / 255.0) if background.any() else 0.0
    gx = np.abs(np.diff(g, axis=1))[:-1, :]
    gy = np.abs(np.diff(g, axis=0))[:, :-1]
    edge_density = float(((gx + gy) > 60).mean())
    h, w = ink.shape
    h_rules = _long_runs(ink, int(0.2 * w), axis=1)
    v_rules = _long_runs(ink, int(0.1 * h), axis=0)
    regularity = _regularity(ink.sum(axis=1).astype(np.float64))
    rows_cv, cols_cv = _profile_contrast(ink)
    vertical = cols_cv / (rows_cv + cols_cv) if rows_cv + cols_cv > 0 else 0.0

    heights, widths, areas = _components(ink)
    keep = (areas >= 4) & (heights < 0.2 * h) & (widths < 0.5 * w)
    heights, widths, areas = heights[keep], widths[keep], areas[keep]
    if len(heights) >= 5:
        text_height = float(np.median(heights))
        height_cv = float(np.std(heights) / max(np.mean(heights), 1e-6))
        joined = widths > 2.5 * np.maximum(heights, 1)
        connected_ratio = float(areas[joined].sum() / max(areas.sum(), 1))
    else:
        text_height, height_cv, connected_ratio = 0.0, 0.0, 0.0
    return PageFeatures(
        ink_ratio=round(ink_ratio, 4), contrast=round(max(0.0, paper - text) / 255.0, 4),
        noise=round(noise, 4), edge_density=round(edge_density, 4),
        skew_deg=round(_skew(ink), 2), h_rules=h_rules, v_rules=v_rules,
        line_regularity=round(regularity, 4), component_height_cv=round(height_cv, 4),
        connected_ratio=round(connected_ratio, 4),
        axis_alignment=round(_axis_alignment(g, ink), 4),
        color_saturation=round(saturation, 4), vertical_text=round(vertical, 4),
        dpi=round(dpi, 1), text_height_px=round(text_height / scale, 1))
