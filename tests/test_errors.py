"""The error trees: page errors by class, their trip across processes, the one mapping of pool
errors to page and document errors, and the provider names kept where callers still look."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from gateway.errors import DocumentError, ErrorDetail, InspectTimeoutError
from gateway.page_errors import (
    PAGE_ERRORS,
    PageCrashedError,
    PageError,
    PageInternalError,
    PageTimeoutError,
    RemoteError,
    RenderTimeoutError,
    TaskTimeoutError,
    TextLayerMissingError,
    WorkerCrashedError,
    document_error_for_pool,
    page_error_for_pool,
)
from gateway.work.procpool import WorkerPool


@pytest.mark.parametrize("cls", list(PAGE_ERRORS.values()), ids=list(PAGE_ERRORS))
def test_page_error_survives_pickling_with_class_and_message(cls: type[PageError]) -> None:
    back = pickle.loads(pickle.dumps(cls("page 2: something went wrong")))
    assert type(back) is cls
    assert back.message == "page 2: something went wrong"
    assert back.detail().code == cls.code


def test_every_page_code_names_one_class() -> None:
    assert all(cls.code == code for code, cls in PAGE_ERRORS.items())
    assert len({cls.code for cls in PAGE_ERRORS.values()}) == len(PAGE_ERRORS)


def test_timeout_codes_share_a_base() -> None:
    assert issubclass(RenderTimeoutError, PageTimeoutError)


@pytest.mark.parametrize(
    ("exc", "attempts", "cls", "code", "message"),
    [
        (
            TaskTimeoutError("render", 30.0),
            1,
            RenderTimeoutError,
            "render_timeout",
            "page 3: render took longer than 30 s and was stopped",
        ),
        (
            TaskTimeoutError("ocr", 12.5),
            1,
            PageTimeoutError,
            "page_timeout",
            "page 3: ocr took longer than 12.5 s and was stopped",
        ),
        (
            TaskTimeoutError("task", 120.0),
            1,
            PageTimeoutError,
            "page_timeout",
            "page 3: task took longer than 120 s and was stopped",
        ),
        (
            WorkerCrashedError("worker exited with code -11"),
            3,
            PageCrashedError,
            "page_crashed",
            "page 3 crashed the reader 3 times; the file is probably damaged",
        ),
        (
            RemoteError("Traceback ... secret detail"),
            1,
            PageInternalError,
            "internal_error",
            "page 3 could not be read because of an internal error",
        ),
        (
            KeyError("secret detail"),
            1,
            PageInternalError,
            "internal_error",
            "page 3 could not be read because of an internal error",
        ),
    ],
)
def test_pool_error_becomes_the_page_error_the_worker_stored(
    exc: Exception, attempts: int, cls: type[PageError], code: str, message: str
) -> None:
    """Same codes and messages as gateway/work/worker.py `_process` wrote by hand."""
    error = page_error_for_pool(exc, 3, attempts, 3)
    assert type(error) is cls
    assert error.detail() == ErrorDetail(code=code, message=message)


def test_crashed_page_with_attempts_left_goes_back_to_the_queue() -> None:
    assert page_error_for_pool(WorkerCrashedError("worker exited"), 3, 2, 3) is None


def test_page_error_from_the_task_passes_through() -> None:
    error = TextLayerMissingError("the page's text layer could not be read")
    assert page_error_for_pool(error, 3, 1, 3) is error


@pytest.mark.parametrize(
    ("exc", "cls", "message"),
    [
        (
            TaskTimeoutError("inspect", 10.0),
            InspectTimeoutError,
            "opening the document took longer than 10 s",
        ),
        (
            TaskTimeoutError("assess", 70.0),
            InspectTimeoutError,
            "scoring the pages of the document took longer than 70 s",
        ),
        (
            TaskTimeoutError("task", 70.0),
            InspectTimeoutError,
            "scoring the pages of the document took longer than 70 s",
        ),
        (
            WorkerCrashedError("worker exited with code -11"),
            DocumentError,
            "the document is damaged: reading it crashed the decoder",
        ),
    ],
)
def test_pool_error_becomes_the_document_error_submissions_raised(
    exc: TaskTimeoutError | WorkerCrashedError, cls: type[DocumentError], message: str
) -> None:
    """Same classes and messages as gateway/work/submissions.py `_prepare` raised by hand."""
    error = document_error_for_pool(exc)
    assert type(error) is cls
    assert error.message == message


def test_pool_errors_survive_pickling() -> None:
    back = pickle.loads(pickle.dumps(TaskTimeoutError("render", 30.0)))
    assert (type(back), back.phase, back.limit_s) == (TaskTimeoutError, "render", 30.0)
    assert type(pickle.loads(pickle.dumps(RemoteError("trace")))) is RemoteError


def fail_with_page_error(_state: Any, *, phase: Any) -> None:
    phase("ocr")
    raise TextLayerMissingError("the page's text layer could not be read")


async def test_page_error_crosses_the_worker_process_boundary_as_its_class() -> None:
    pool = WorkerPool("errors-test", 1, start_timeout_s=60.0)
    await pool.start()
    try:
        with pytest.raises(TextLayerMissingError, match="text layer could not be read"):
            await pool.run(fail_with_page_error, deadlines={}, total_s=30.0)
    finally:
        await pool.close()
