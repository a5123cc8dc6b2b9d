"""ONNX Runtime sessions of one PP-OCR model set, and how many threads each model call gets.

A page runs on `threads` ONNX threads (one by default), since the gateway reads pages in parallel
across worker processes. Once the worker process pool says how to count the process's idle
siblings (`use_idle_cores`), a second set of sessions is opened with a thread for each of the
node's processes, and a model call made while every sibling is idle runs on those: a page read
alone finishes sooner instead of leaving cores unused. The choice is made again before every
call, so a page that stops being alone gives the cores back within one call. Never more threads
than the process's CPU set allows; "alone" counts this node's pool only (one node per host, and
upload inspection, a one-process pool of its own, is not counted).

Device: `use_cuda` "auto" (or true) runs on CUDAExecutionProvider when onnxruntime lists it
(onnxruntime-gpu and a GPU), on the CPU otherwise; a session that cannot start CUDA falls back to
the CPU by itself, which `device` reports. Idle cores are lent on the CPU only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from providers.errors import ProviderUnavailableError


class Sessions(NamedTuple):
    det: Any
    rec: Any
    cls: Any  # None unless the per-line classifier is configured


def select_device(use_cuda: Literal["auto"] | bool, available: list[str]) -> str:
    """ "cuda" when asked (or auto) and onnxruntime lists the CUDA provider, else "cpu"."""
    wanted = use_cuda is True or use_cuda == "auto"
    return "cuda" if wanted and "CUDAExecutionProvider" in available else "cpu"


class ModelSessions:
    """Detection, recognition and (optional) classifier sessions of one model set."""

    def __init__(
        self,
        paths: Sequence[Path],
        *,
        threads: int,
        use_cuda: Literal["auto"] | bool,
        lend_idle_cores: bool,
    ) -> None:
        import onnxruntime as ort  # type: ignore[import-untyped]  # ships no type information

        self._ort = ort
        self._paths = list(paths)
        self.available = list(ort.get_available_providers())
        wanted = select_device(use_cuda, self.available)
        self._providers = ["CPUExecutionProvider"]
        if wanted == "cuda":
            self._providers.insert(0, "CUDAExecutionProvider")
        self.threads = threads
        self.narrow = self._open(threads)
        rec_device = self.narrow.rec.get_providers()[0]
        self.device = "cuda" if rec_device == "CUDAExecutionProvider" else "cpu"
        self._lend = lend_idle_cores and self.device == "cpu"
        self._wide: Sessions | None = None
        self._wide_threads = threads
        self._alone: Callable[[], bool] = lambda: False

    def _open(self, threads: int) -> Sessions:
        ort = self._ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.enable_cpu_mem_arena = False  # input shapes vary per page: no arena to grow
        options.log_severity_level = 3
        try:
            det, rec, *cls = [
                ort.InferenceSession(str(path), options, providers=self._providers)
                for path in self._paths
            ]
        except Exception as exc:  # broad on purpose: onnxruntime raises its own types, untyped
            raise ProviderUnavailableError(f"rapidocr models failed to load: {exc}") from exc
        return Sessions(det, rec, cls[0] if cls else None)

    def use_idle_cores(self, idle_siblings: Callable[[], int], siblings: int) -> None:
        """Calls made while all `siblings` other processes are idle (`idle_siblings()` counts
        them) run on their cores too; nothing when lending is off, on a GPU, or alone."""
        # never more threads than this process may run on (a container's CPU set): more
        # worker processes than cores must not turn a lone page into oversubscription
        wide = min(self.threads * (siblings + 1), len(os.sched_getaffinity(0)))
        if not self._lend or wide <= self.threads:
            return
        self._wide_threads = wide
        self._wide = self._open(wide)
        self._alone = lambda: idle_siblings() >= siblings

    def now(self) -> Sessions:
        """The sessions for the next model call."""
        if self._wide is not None and self._alone():
            return self._wide
        return self.narrow

    def threads_now(self) -> int:
        """ONNX threads the next model call runs on."""
        return self._wide_threads if self.now() is self._wide else self.threads
