"""What makes a page hard to read, measured on a small grayscale copy of it.

Every feature is computed on the page scaled so its long side is `SCORING_SIDE` pixels, so scores
do not depend on the resolution a page arrived at; `dpi` and `text_height_px` report the
resolution of the page as it will be read. The work is whole-array operations (OpenCV's filters
and connected components, one shared histogram): about 20 ms a page on one core, 1-1.5% of
reading it (`python -m benchmarks.scoring_cost`).
"""

from __future__ import annotations

import math

import cv2
import msgspec
import numpy as np
import numpy.typing as npt
from PIL import Image
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
    """RGB copy with the long side at most SCORING_SIDE (area averaging: fast, no aliasing);
    returns it and its scale."""
    scale = min(1.0, SCORING_SIDE / max(pixels.shape[:2]))
    if scale >= 1.0:
        return pixels, 1.0
    size = (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale)))
    small = Image.fromarray(pixels).resize(size, Image.Resampling.BOX)
    return np.asarray(small), scale


def _gray(pixels: npt.NDArray[np.uint8]) -> Gray:
    if pixels.ndim == 2:
        return pixels
    return np.asarray(cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2GRAY))


def _ink_mask(gray: Gray, histogram: npt.NDArray[np.int64] | None = None) -> npt.NDArray[np.bool_]:
    """Dark pixels by Otsu's threshold (light text on a dark ground: the light ones).
    `histogram`: the 256-bin histogram of `gray`, when the caller has it."""
    if histogram is None:
        histogram = _histogram(gray, None)
    levels = np.flatnonzero(histogram)
    if len(levels) < 2:
        return np.zeros(gray.shape, dtype=bool)
    threshold = float(threshold_otsu(hist=(histogram, np.arange(256))))  # type: ignore[no-untyped-call]
    ink: npt.NDArray[np.bool_] = gray <= threshold
    if np.count_nonzero(ink) > ink.size // 2:
        ink = ~ink
    return ink


def _median(histogram: npt.NDArray[np.int64], default: float) -> float:
    """Median gray level of a 256-bin histogram (np.median's convention on even counts)."""
    total = int(histogram.sum())
    if total == 0:
        return default
    cumulative = np.cumsum(histogram)
    low = int(np.searchsorted(cumulative, (total - 1) // 2, side="right"))
    high = int(np.searchsorted(cumulative, total // 2, side="right"))
    return (low + high) / 2


def _histogram(gray: Gray, mask: npt.NDArray[np.uint8] | None) -> npt.NDArray[np.int64]:
    counts = cv2.calcHist([gray], [0], mask, [256], [0, 256])
    return np.asarray(counts.ravel(), dtype=np.int64)


def _long_runs(ink: npt.NDArray[np.bool_], length: int, axis: int) -> int:
    """Number of separate lines holding an unbroken ink run of `length` along `axis` (one
    missing pixel forgiven)."""
    if length < MIN_RULE_PX or ink.shape[axis] <= length or length >= 65_535:
        return 0
    size = (length, 1) if axis == 1 else (1, length)
    windows = cv2.boxFilter(
        ink.view(np.uint8), cv2.CV_16U, size, normalize=False, borderType=cv2.BORDER_CONSTANT
    )
    hit: npt.NDArray[np.bool_] = np.asarray((windows >= length - 1).any(axis=axis))
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
    points = cv2.findNonZero(ink.view(np.uint8))  # (x, y) of the ink, in reading order
    if points is None or len(points) < 50:
        return 0.0
    step = -(-len(points) // SKEW_SAMPLE)  # an even sample of at most SKEW_SAMPLE
    sample = points.reshape(-1, 2)[::step]
    xs, ys = sample[:, 0], sample[:, 1]
    height = ink.shape[0]

    def sharpness(angle: float) -> float:
        rows = np.clip((ys - xs * math.tan(angle)).astype(np.int64), 0, height - 1)
        return float(np.var(np.bincount(rows, minlength=height)))

    coarse = max(SKEW_COARSE, key=sharpness)
    fine = max(coarse + np.deg2rad(np.array([-0.5, 0.0, 0.5])), key=sharpness)
    return math.degrees(float(fine))


def _components(ink: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.int64], ...]:
    """Heights, widths and areas of the 8-connected ink components."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(ink.view(np.uint8), connectivity=8)
    table: npt.NDArray[np.int64] = np.asarray(stats[1:count], dtype=np.int64)  # 0: background
    return (table[:, cv2.CC_STAT_HEIGHT], table[:, cv2.CC_STAT_WIDTH], table[:, cv2.CC_STAT_AREA])


def _profile_contrast(
    rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64]
) -> tuple[float, float]:
    """Coefficient of variation of the row and column ink profiles (ink per row and per
    column) over the inked area: rows of text make the row profile alternate between ink and
    gaps."""
    if rows.sum() < 50:
        return 0.0, 0.0
    inked_rows, inked_cols = np.flatnonzero(rows), np.flatnonzero(cols)
    rows = rows[inked_rows[0] : inked_rows[-1] + 1]
    cols = cols[inked_cols[0] : inked_cols[-1] + 1]
    return (float(rows.std() / max(rows.mean(), 1e-6)), float(cols.std() / max(cols.mean(), 1e-6)))


def _axis_alignment(gray: Gray, ink: npt.NDArray[np.bool_]) -> float:
    """Share of strong stroke-edge gradient (central differences) that lies within
    AXIS_TOLERANCE of the page axes, weighted by gradient magnitude."""
    g = gray.astype(np.int16)
    inner = ink[1:-1, 1:-1]
    gx = (g[1:-1, 2:][inner] - g[1:-1, :-2][inner]).astype(np.float32)
    gy = (g[2:, 1:-1][inner] - g[:-2, 1:-1][inner]).astype(np.float32)
    magnitude = np.hypot(gx, gy)
    strong = magnitude > 60
    if np.count_nonzero(strong) < 100:
        return 1.0
    ax, ay, weights = np.abs(gx[strong]), np.abs(gy[strong]), magnitude[strong]
    # the angle is within the tolerance of an axis when the smaller component is small enough
    aligned = np.minimum(ax, ay) < math.tan(AXIS_TOLERANCE) * np.maximum(ax, ay)
    return float(weights[aligned].sum() / weights.sum())


def ink_coverage(
    pixels: npt.NDArray[np.uint8], boxes: list[tuple[float, float, float, float]]
) -> float:
    """Share of the page's ink inside `boxes` (left, top, right, bottom in `pixels`' space),
    each grown by a little margin."""
    small, scale = to_scoring_copy(pixels)
    ink = _ink_mask(_gray(small))
    total = int(np.count_nonzero(ink))
    if total == 0:
        return 1.0
    covered = np.zeros_like(ink)
    h, w = ink.shape
    for left, top, right, bottom in boxes:
        x0, y0 = max(0, int(left * scale) - 2), max(0, int(top * scale) - 2)
        x1, y1 = min(w, int(right * scale) + 3), min(h, int(bottom * scale) + 3)
        covered[y0:y1, x0:x1] = True
    return float(np.count_nonzero(ink & covered) / total)


def _saturation(small: npt.NDArray[np.uint8]) -> float:
    """Mean (max - min) over RGB of a sample of the pixels: chroma is smooth."""
    if small.ndim != 3:
        return 0.0
    sample = small[::3, ::3]
    r, g, b = sample[..., 0], sample[..., 1], sample[..., 2]
    spread = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)
    return float(spread.mean() / 255.0)


def compute_features(
    pixels: npt.NDArray[np.uint8], dpi: float, pixel_scale: float = 1.0
) -> PageFeatures:
    """Features of a page image (RGB or gray) that will be read at `dpi`, at `pixel_scale`
    times the size of `pixels` (a thumbnail of the page has pixel_scale > 1)."""
    small, scale = to_scoring_copy(pixels)
    scale /= pixel_scale
    gray = _gray(small)
    histogram = _histogram(gray, None)
    ink = _ink_mask(gray, histogram)
    ink8 = ink.view(np.uint8)
    ink_ratio = float(np.count_nonzero(ink) / ink.size)
    ink_histogram = _histogram(gray, ink8)
    paper = _median(histogram - ink_histogram, 255.0)
    text = _median(ink_histogram, paper)
    # 4-neighbour Laplacian residue over the background, away from the border
    lap = np.abs(cv2.Laplacian(gray, cv2.CV_16S, ksize=1))[1:-1, 1:-1]
    background = np.ascontiguousarray(1 - ink8[1:-1, 1:-1])
    noise = float(cv2.mean(lap, mask=background)[0] / 255.0) if background.any() else 0.0
    h, w = ink.shape
    edge_density = 0.0
    if h >= 2 and w >= 2:  # a 1-pixel strip (a thumbnail of a very long image) has no edges
        gx = cv2.absdiff(gray[:-1, 1:], gray[:-1, :-1]).astype(np.int16)
        gy = cv2.absdiff(gray[1:, :-1], gray[:-1, :-1]).astype(np.int16)
        edge_density = float(np.count_nonzero((gx + gy) > 60) / gx.size)
    h_rules = _long_runs(ink, int(0.2 * w), axis=1)
    v_rules = _long_runs(ink, int(0.1 * h), axis=0)
    row_ink = np.count_nonzero(ink, axis=1).astype(np.int64)
    col_ink = np.count_nonzero(ink, axis=0).astype(np.int64)
    regularity = _regularity(row_ink.astype(np.float64))
    rows_cv, cols_cv = _profile_contrast(row_ink, col_ink)
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
        ink_ratio=round(ink_ratio, 4),
        contrast=round(max(0.0, paper - text) / 255.0, 4),
        noise=round(noise, 4),
        edge_density=round(edge_density, 4),
        skew_deg=round(_skew(ink), 2),
        h_rules=h_rules,
        v_rules=v_rules,
        line_regularity=round(regularity, 4),
        component_height_cv=round(height_cv, 4),
        connected_ratio=round(connected_ratio, 4),
        axis_alignment=round(_axis_alignment(gray, ink), 4),
        color_saturation=round(_saturation(small), 4),
        vertical_text=round(vertical, 4),
        dpi=round(dpi, 1),
        text_height_px=round(text_height / scale, 1),
    )
