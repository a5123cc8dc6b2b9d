"""RapidOCR (PP-OCR ONNX models shipped inside the rapidocr-onnxruntime wheel)."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

from providers.base import ProviderError, ProviderUnavailableError
from providers.types import PageImage, Quad, RecognizedPage, TextLine


class RapidOCRConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True,
                     tag="rapidocr", tag_field="kind"):
    threads: int = 1  # ONNX intra-op threads per page; parallelism belongs across pages
    use_angle_cls: bool = True
    det_limit_side_len: int = 736
    max_side_len: int = 2000
    text_score: float = 0.5
    use_cuda: bool = False  # needs onnxruntime-gpu and a GPU

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ValueError("threads must be >= 1")

class RapidOCRProvider:
    """Fixed options at construction: RapidOCR 1.4.4 mutates its engine on per-call options."""

    def __init__(self, name: str, config: RapidOCRConfig) -> None:
        self.name = name
        self.config = config
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:  # pragma: no cover - dependency is pinned
            raise ProviderUnavailableError("rapidocr-onnxruntime is not installed") from exc
        self._engine: Any = RapidOCR(
            intra_op_num_threads=config.threads,
            inter_op_num_threads=1,
            use_cls=config.use_angle_cls,
            det_limit_side_len=config.det_limit_side_len,
            max_side_len=config.max_side_len,
            text_score=config.text_score,
            det_use_cuda=config.use_cuda,
            cls_use_cuda=config.use_cuda,
            rec_use_cuda=config.use_cuda,
        )
        self.model = "rapidocr-onnxruntime-1.4.4/PP-OCRv4"

    def recognize(self, page: PageImage) -> RecognizedPage:
        bgr = np.ascontiguousarray(page.pixels[:, :, ::-1])
        try:
            result, _elapsed = self._engine(bgr)
        except Exception as exc:
            raise ProviderError(f"rapidocr failed: {type(exc).__name__}") from exc
        lines: list[TextLine] = []
        for box, text, score in result or ():
            text = str(text).strip()
            if not text:
                continue
            quad: Quad = tuple((float(x), float(y)) for x, y in box)  # type: ignore[assignment]
            lines.append(TextLine(text=text, confidence=float(score), quad=quad))
        return RecognizedPage(
            lines=tuple(lines), model=self.model, width=page.width, height=page.height
        )

