"""A page read alone spreads over the cores of its idle sibling worker processes."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from PIL import Image

from gateway.config import load_settings
from gateway.page_errors import WorkerCrashedError
from gateway.work.pipeline import load_provider
from gateway.work.procpool import WorkerPool, idle_siblings
from providers.rapidocr import RapidOCRConfig, RapidOCRProvider
from providers.types import PageImage
from tests.support.gateway_process import CORPUS, REPO

PAGE = CORPUS / "a_clean_printed/tesseract/phototest.tif"


def report_idle(state: Any, busy_s: float, *, phase: Any) -> int:
    """Idle siblings halfway through a task `busy_s` long (tasks started together overlap)."""
    time.sleep(busy_s / 2)
    idle = idle_siblings()
    time.sleep(busy_s / 2)
    return idle


def hold_until(state: Any, flag: str, *, phase: Any) -> None:
    """Keep this process busy until the file `flag` exists (at most two minutes)."""
    deadline = time.monotonic() + 120
    while not Path(flag).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def crash(state: Any, *, phase: Any) -> None:
    os._exit(3)


def start_rapidocr() -> RapidOCRProvider:
    config = load_settings(REPO / "config.yaml").providers["rapidocr"]
    assert isinstance(config, RapidOCRConfig)
    provider = load_provider("rapidocr", msgspec.structs.replace(config, use_cuda=False))
    assert isinstance(provider, RapidOCRProvider)
    return provider


def read(provider: RapidOCRProvider, path: str, *, phase: Any) -> tuple[str, int]:
    """The page's text, and the threads the engine would use now, while this task runs."""
    pixels = np.asarray(Image.open(path).convert("RGB"))
    text = "\n".join(
        line.text
        for line in provider.recognize(PageImage(pixels=pixels, dpi=300, page_number=1)).lines
    )
    return text, provider.threads()


def run(pool: WorkerPool, func: Any, *args: Any) -> Any:
    return pool.run(func, *args, deadlines={}, total_s=120.0)


async def test_a_task_sees_which_siblings_are_idle_and_a_crash_frees_its_flag() -> None:
    pool = WorkerPool("idle-test", 3, start_timeout_s=60.0)
    await pool.start()
    try:
        assert await run(pool, report_idle, 0.0) == 2  # alone
        # tasks sent together have started well before they look, halfway through
        assert await asyncio.gather(*(run(pool, report_idle, 3.0) for _ in range(2))) == [1, 1]
        assert await asyncio.gather(*(run(pool, report_idle, 3.0) for _ in range(3))) == [0] * 3
        with pytest.raises(WorkerCrashedError):
            await run(pool, crash)  # dies with its busy flag set
        assert await run(pool, report_idle, 0.0) == 2  # its replacement cleared it
    finally:
        await pool.close()
    assert idle_siblings() == 0  # outside a pool: no sibling


ONE_CORE = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="one core: no sibling's core to lend"
)


@ONE_CORE
async def test_a_page_read_alone_uses_every_core_and_reads_the_same(tmp_path: Path) -> None:
    pool = WorkerPool("idle-rapidocr", 2, start_rapidocr, start_timeout_s=120.0)
    await pool.start()
    flag = tmp_path / "done"
    try:
        alone, alone_threads = await run(pool, read, str(PAGE))
        sibling = asyncio.create_task(run(pool, hold_until, str(flag)))  # busy until we say
        shared, shared_threads = await run(pool, read, str(PAGE))
        flag.touch()
        await sibling
    finally:
        flag.touch()
        await pool.close()
    assert "12 point text" in alone
    assert (alone_threads, shared_threads) == (2, 1)
    assert alone == shared  # more threads change when it is done, not what it reads


@ONE_CORE
def test_one_process_or_the_option_off_keeps_one_thread() -> None:
    provider = start_rapidocr()  # not in a pool
    assert provider.threads() == 1
    provider.use_idle_cores(lambda: 1, 1)
    assert provider.threads() == 2
    off = RapidOCRProvider("off", RapidOCRConfig(idle_cores=False, use_cuda=False))
    off.use_idle_cores(lambda: 1, 1)
    assert off.threads() == 1
