"""RapidOCR: PP-OCR ONNX models shipped inside a pinned wheel, run by our own loop.

`models` picks the set (`providers.ppocr_models`): PP-OCRv6 small from `rapidocr==3.10.0` (the
default) or PP-OCRv4 from `rapidocr-onnxruntime==1.4.4`; files by explicit path, SHA-256 checked.
Neither package's `RapidOCR()` is used: on two cores their defaults cost more than half the page
time, 3.10.0's per-call options stay set for later calls, and its model resolver may download
(measured by `python -m benchmarks.engine_speed`). Per page, whichever set:

1. cap the longest side at `max_side_len` and add a plain margin (text touching the edge of a
   small image, such as a single text line, is otherwise not detected);
2. detect text boxes (DB) with the longest side at `det_limit_side_len`; stock raises the
   *shortest* side to 736, which turns a 46 x 1550 text line into a 736 x 24800 input;
3. recognize each crop on its own (CTC): one crop per run needs no padding, and on one CPU
   thread batching is slower per pixel, not faster (`rec_batch_size`; raise it on a GPU);
4. put back the word spaces the recognizer drops ("TAMANDAYA"): a space goes where the crop
   has a blank vertical gap wide for the line's character pitch (`space_after`); each word is
   boxed by the ink around its characters' CTC frames in the crop, mapped back along the
   detected quad to the page (`crop_words`, `place_words`), its confidence the mean of its
   characters';
5. no per-line angle classifier by default: it squeezes a long line into 48 x 192 pixels and
   then turns upright lines upside down (3.10.0's as well). Instead, a page whose reading is
   unsure is re-read turned by 180 degrees on a few crops, and the turn is kept only when it
   reads clearly better.

Sessions, threads and device: `providers.onnx_sessions`. One ONNX thread per page (`threads`),
pages in parallel across processes; a page read while every other worker process of the node is
idle runs on their cores too (`idle_cores`), about 1.6x sooner on two cores. `use_cuda` "auto"
(or true) runs on CUDAExecutionProvider when onnxruntime lists it; `device` says which.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import cv2
import msgspec
import numpy as np
import numpy.typing as npt
import structlog

from providers.errors import ProviderError, ProviderUnavailableError
from providers.onnx_sessions import ModelSessions
from providers.ppocr_geometry import (
    REC_STRIDE,
    Box,
    CropWord,
    Image,
    blank_columns,
    content_bounds,
    crop_box,
    crop_words,
    join_chars,
    order_clockwise,
    reading_order,
    sort_boxes,
    space_after,
)
from providers.ppocr_models import MODEL_SETS, ModelSetName
from providers.types import PageImage, Quad, RecognizedPage, TextLine, TextWord, quad_span

log = structlog.get_logger(__name__)


REC_HEIGHT = 48  # the recognizer's input height
CLS_SHAPE = (48, 192)
MARGIN = 32  # pixels of plain margin around the page before detection
FLIP_SAMPLE = 6  # crops re-read turned by 180 degrees to test an unsure page's orientation
FLIP_MARGIN = 0.1  # the turned reading must be this much more confident


class RapidOCRConfig(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="rapidocr",
    tag_field="kind",
):
    models: ModelSetName = "PP-OCRv6"  # the model set (providers.ppocr_models)
    threads: int = 1  # ONNX intra-op threads per page; parallelism belongs across pages
    use_angle_cls: bool = False  # stock's per-line 0/180 classifier (flips long upright lines)
    orientation_check_below: float = 0.85  # re-test orientation under this mean confidence
    det_limit_side_len: int = 1280  # detection input size, px (stock: 736 with limit type min)
    det_limit_type: Literal["max", "min"] = "max"  # max: longest side <=; min: shortest >=
    max_side_len: int = 2000  # pages are scaled down to this longest side first
    text_score: float = 0.5  # lines read with less confidence are dropped
    rec_batch_size: int = 1  # crops per recognizer run; 1 is fastest on CPU (no padding)
    restore_spaces: bool = True  # put back word spaces from the crop's blank gaps
    use_cuda: Literal["auto"] | bool = "auto"  # CUDA when onnxruntime lists it, else CPU
    idle_cores: bool = True  # a page read alone uses the idle worker processes' cores too

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ValueError("threads must be >= 1")
        if self.det_limit_side_len < 32 or self.max_side_len < 32:
            raise ValueError("det_limit_side_len and max_side_len must be >= 32")
        if self.rec_batch_size < 1:
            raise ValueError("rec_batch_size must be >= 1")


class Reading(msgspec.Struct, frozen=True, kw_only=True):
    """One crop as recognized: text (spaces restored), the mean of its characters' scores, and
    its words."""

    text: str
    confidence: float
    words: tuple[CropWord, ...] = ()


class RapidOCRProvider:
    """Fixed options at construction; sessions are loaded once per worker process."""

    def __init__(self, name: str, config: RapidOCRConfig) -> None:
        self.name = name
        self.config = config
        models = MODEL_SETS[config.models]
        try:
            # DB post-processing, the same algorithm in both packages (3.10.0 adds the order,
            # clip and size filter that `_detect` does); this one imports nothing that downloads
            from rapidocr_onnxruntime.ch_ppocr_det.utils import DBPostProcess
        except ImportError as exc:  # pragma: no cover - dependency is pinned
            raise ProviderUnavailableError("onnxruntime or rapidocr-onnxruntime missing") from exc
        paths = [models.path(models.det), models.path(models.rec)]
        if config.use_angle_cls:
            paths.append(models.path(models.cls))
        cv2.setNumThreads(config.threads)  # OpenCV's own pool, process-wide: as ONNX's
        self._models = ModelSessions(
            paths,
            threads=config.threads,
            use_cuda=config.use_cuda,
            lend_idle_cores=config.idle_cores,
        )
        self.device = self._models.device
        log.info(
            "rapidocr_device_selected",
            models=config.models,
            device=self.device,
            requested=config.use_cuda,
            available=self._models.available,
        )
        charset = (
            self._models.narrow.rec.get_modelmeta().custom_metadata_map["character"].splitlines()
        )
        self._chars = ["", *charset, " "]  # CTC blank first; the recognizer's space last
        self._postprocess: Any = DBPostProcess(
            thresh=0.3,
            box_thresh=0.5,
            max_candidates=1000,
            unclip_ratio=1.6,
            score_mode="fast",
            use_dilation=True,
        )
        self.model = models.label

    def use_idle_cores(self, idle_siblings: Callable[[], int], siblings: int) -> None:
        """Told by the worker process pool: a page read while its `siblings` are idle runs on
        their cores too (`providers.onnx_sessions`)."""
        self._models.use_idle_cores(idle_siblings, siblings)

    def threads(self) -> int:
        """ONNX threads the next model call runs on."""
        return self._models.threads_now()

    def recognize(self, page: PageImage) -> RecognizedPage:
        try:
            lines, upside_down = self._read(page.pixels)
        except Exception as exc:  # broad on purpose: any engine failure is this page's error
            raise ProviderError(f"rapidocr failed: {type(exc).__name__}") from exc
        return RecognizedPage(
            lines=tuple(lines),
            model=self.model,
            width=page.width,
            height=page.height,
            upside_down=upside_down,
        )

    # --- the page -----------------------------------------------------------------------------

    def _read(self, rgb: Image) -> tuple[list[TextLine], bool]:
        """The page's lines, and whether it was read turned by 180 degrees (upside down)."""
        height, width = rgb.shape[:2]
        top, left, bottom, right = content_bounds(rgb)
        content = rgb[top:bottom, left:right]  # a view: no copy of a large page at full size
        scale = min(1.0, self.config.max_side_len / max(bottom - top, right - left))
        if scale < 1.0:
            size = (max(1, round((right - left) * scale)), max(1, round((bottom - top) * scale)))
            content = cv2.resize(content, size, interpolation=cv2.INTER_AREA)
        image = cv2.cvtColor(content, cv2.COLOR_RGB2BGR)  # the models read BGR
        edge = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
        fill = tuple(int(v) for v in np.median(edge, axis=0))
        work = cv2.copyMakeBorder(
            image, MARGIN, MARGIN, MARGIN, MARGIN, cv2.BORDER_CONSTANT, value=fill
        )
        boxes = self._detect(work)
        if not boxes:
            return [], False
        crops = [crop_box(work, box) for box in boxes]
        turned = [False] * len(crops)
        cls = self._models.now().cls
        if cls is not None:
            crops, turned = self._classify_lines(cls, crops)
        readings = self._recognize_all(crops)
        readings, page_turned = self._check_orientation(crops, readings)
        lines = []
        for box, reading, crop_turned in zip(boxes, readings, turned, strict=True):
            text = reading.text.strip()
            if not text or reading.confidence < self.config.text_score:
                continue
            points = (box - MARGIN) / scale + np.array([left, top], dtype=np.float32)
            points[:, 0] = points[:, 0].clip(0, width)
            points[:, 1] = points[:, 1].clip(0, height)
            along = _quad(points[reading_order(box, crop_turned != page_turned)])
            lines.append(
                TextLine(
                    text=text,
                    confidence=reading.confidence,
                    quad=_quad(points),
                    words=place_words(reading.words, along),
                )
            )
        return lines, page_turned

    def _detect(self, image: Image) -> list[Box]:
        height, width = image.shape[:2]
        limit = self.config.det_limit_side_len
        if self.config.det_limit_type == "max":
            ratio = min(1.0, limit / max(height, width))
        else:
            ratio = max(1.0, limit / min(height, width))
        size = (max(32, round(width * ratio / 32) * 32), max(32, round(height * ratio / 32) * 32))
        tensor = (cv2.resize(image, size).astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)
        det = self._models.now().det
        pred = det.run(None, {det.get_inputs()[0].name: tensor[None]})[0]
        found, _scores = self._postprocess(pred, (height, width))
        boxes = []
        for raw in found:
            box = order_clockwise(np.asarray(raw, dtype=np.float32))
            box[:, 0] = box[:, 0].clip(0, width - 1)
            box[:, 1] = box[:, 1].clip(0, height - 1)
            if np.linalg.norm(box[0] - box[1]) > 3 and np.linalg.norm(box[0] - box[3]) > 3:
                boxes.append(box)
        return sort_boxes(boxes)

    # --- orientation --------------------------------------------------------------------------

    def _classify_lines(self, cls: Any, crops: list[Image]) -> tuple[list[Image], list[bool]]:
        """Stock behaviour: turn each crop the classifier calls upside down (score > 0.9); which
        were turned."""
        cls_h, cls_w = CLS_SHAPE
        batch = np.zeros((len(crops), 3, cls_h, cls_w), dtype=np.float32)
        for i, crop in enumerate(crops):
            resized_w = min(cls_w, math.ceil(cls_h * crop.shape[1] / crop.shape[0]))
            resized = cv2.resize(crop, (resized_w, cls_h)).astype(np.float32)
            batch[i, :, :, :resized_w] = (resized / 127.5 - 1.0).transpose(2, 0, 1)
        probs = cls.run(None, {cls.get_inputs()[0].name: batch})[0]
        turned = [bool(p[1] > 0.9 and p[1] > p[0]) for p in probs]
        return [
            cv2.rotate(crop, cv2.ROTATE_180) if turn else crop
            for crop, turn in zip(crops, turned, strict=True)
        ], turned

    def _check_orientation(
        self, crops: list[Image], readings: list[Reading]
    ) -> tuple[list[Reading], bool]:
        """Re-read an unsure page turned 180 degrees; keep the turn if it reads clearly better
        (and say so)."""
        if mean_confidence(readings) >= self.config.orientation_check_below:
            return readings, False
        sample = sorted(range(len(crops)), key=lambda i: -crops[i].shape[1])[:FLIP_SAMPLE]
        upright = mean_confidence([readings[i] for i in sample])
        turned = mean_confidence(
            self._recognize_all([cv2.rotate(crops[i], cv2.ROTATE_180) for i in sample])
        )
        if turned < upright + FLIP_MARGIN:
            return readings, False
        return self._recognize_all([cv2.rotate(crop, cv2.ROTATE_180) for crop in crops]), True

    # --- recognition --------------------------------------------------------------------------

    def _recognize_all(self, crops: list[Image]) -> list[Reading]:
        """Crops in runs of `rec_batch_size`, sorted by width so a run pads little."""
        ratios = [crop.shape[1] / crop.shape[0] for crop in crops]
        order = sorted(range(len(crops)), key=ratios.__getitem__)
        readings: list[Reading | None] = [None] * len(crops)
        step = self.config.rec_batch_size
        for start in range(0, len(order), step):
            run = order[start : start + step]
            width = math.ceil(REC_HEIGHT * max(ratios[i] for i in run) / REC_STRIDE) * REC_STRIDE
            batch = np.zeros((len(run), 3, REC_HEIGHT, width), dtype=np.float32)
            resized = []
            for row, i in enumerate(run):
                crop_w = min(width, max(1, math.ceil(REC_HEIGHT * ratios[i])))
                scaled = cv2.resize(crops[i], (crop_w, REC_HEIGHT))
                batch[row, :, :, :crop_w] = (scaled.astype(np.float32) / 127.5 - 1.0).transpose(
                    2, 0, 1
                )
                resized.append(scaled)
            rec = self._models.now().rec  # chosen per crop: a page stops being alone at any time
            probs = rec.run(None, {rec.get_inputs()[0].name: batch})[0]
            for row, i in enumerate(run):
                readings[i] = self._decode(probs[row], resized[row])
        return [r if r is not None else Reading(text="", confidence=0.0) for r in readings]

    def _decode(self, probs: npt.NDArray[np.float32], crop: Image) -> Reading:
        """Greedy CTC: one character per run of equal non-blank frames, with its frame span."""
        best = probs.argmax(axis=1)
        chars: list[str] = []
        spans: list[tuple[int, int]] = []
        scores: list[float] = []
        previous = 0
        for frame, index in enumerate(best.tolist()):
            if index and index == previous:
                spans[-1] = (spans[-1][0], frame)
            elif index:
                chars.append(self._chars[index])
                spans.append((frame, frame))
                scores.append(float(probs[frame, index]))
            previous = index
        if not chars:
            return Reading(text="", confidence=0.0)
        blank = blank_columns(crop)
        breaks = (
            space_after(chars, spans, blank)
            if self.config.restore_spaces
            else [False] * (len(chars) - 1)
        )
        return Reading(
            text=join_chars(chars, breaks),
            confidence=sum(scores) / len(scores),
            words=tuple(crop_words(chars, spans, scores, breaks, blank)),
        )


def place_words(words: tuple[CropWord, ...], along: Quad) -> tuple[TextWord, ...]:
    """A crop's words on the page: `along` is the line's quad in page pixels, corners in the
    order the crop reads them (`reading_order`); each word takes its share of it."""
    return tuple(
        TextWord(
            text=word.text,
            confidence=word.confidence,
            quad=_quad(
                order_clockwise(np.array(quad_span(along, word.start, word.end), np.float32))
            ),
        )
        for word in words
    )


def _quad(points: Box) -> Quad:
    return tuple((float(x), float(y)) for x, y in points)  # type: ignore[return-value]


def mean_confidence(readings: list[Reading]) -> float:
    """Mean character confidence, weighted by text length; 1.0 when nothing was read."""
    total = sum(len(r.text) for r in readings)
    if not total:
        return 1.0
    return sum(r.confidence * len(r.text) for r in readings) / total
