"""A pool of worker processes where one bad page costs one process, never the server.

Unlike `concurrent.futures.ProcessPoolExecutor`, a task that runs past its deadline is stopped by
killing its process, and a process that dies (a decoder crash on a hostile file) fails only the
task it was running; the slot is refilled with a fresh process either way. Its errors
(`gateway.errors.PoolError`) say what happened to the task, not what it means for a page or an
upload: `page_error_for_pool` and `document_error_for_pool` decide that.

Tasks report phases ("render", "ocr") so that each phase can have its own deadline.
The parent waits on the pipes with `loop.add_reader`, so the event loop never blocks.

Each process marks itself busy in a flag array shared by the pool (one flag per slot, written by
its process, cleared by the parent when it replaces the process), so that a task can ask how
many of its sibling processes are idle (`idle_siblings`): an engine then spreads a page that is
read alone over their cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import multiprocessing
import multiprocessing.connection
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from gateway.page_errors import RemoteError, TaskTimeoutError, WorkerCrashedError

log = structlog.get_logger(__name__)

_CTX = multiprocessing.get_context("spawn")

# In a worker process: its pool's busy flags (one per slot) and its own slot's index
_busy_flags: Any = None
_slot_index = -1


def siblings() -> int:
    """In a worker process: how many other processes its pool has (0 outside a pool)."""
    return 0 if _busy_flags is None else len(_busy_flags) - 1


def idle_siblings() -> int:
    """In a worker process: how many other processes of its pool run no task right now."""
    if _busy_flags is None:
        return 0
    return sum(1 for i, busy in enumerate(_busy_flags) if not busy and i != _slot_index)


Initializer = Callable[..., Any]
"""Called once in each new process; its return value is the process state handed to tasks."""


def _heap_trimmer() -> Callable[[], None]:
    """glibc keeps the heap a page's buffers grew to (decoders, ONNX activations of a few
    hundred MB); `malloc_trim` hands the free part back to the OS between tasks, so an idle
    worker returns to its loaded size. Elsewhere: nothing to do."""
    name = ctypes.util.find_library("c")
    malloc_trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None

    def trim() -> None:
        if malloc_trim is not None:
            malloc_trim(0)

    return trim


def _worker_main(
    conn: multiprocessing.connection.Connection,
    initializer: Initializer | None,
    init_args: tuple[Any, ...],
    busy_flags: Any,
    slot_index: int,
) -> None:
    global _busy_flags, _slot_index  # this process's place in its pool, set once
    _busy_flags, _slot_index = busy_flags, slot_index
    trim_heap = _heap_trimmer()
    try:
        state = initializer(*init_args) if initializer is not None else None
        # a state may say what it runs on (e.g. which device each engine uses), for /health
        describe = getattr(state, "describe", None)
        described = describe() if callable(describe) else None
    except BaseException as exc:  # noqa: BLE001 - report any start failure to the parent
        conn.send(("init_failed", f"{type(exc).__name__}: {exc}"))
        return
    busy_flags[slot_index] = 0
    conn.send(("ready", described))

    def phase(name: str) -> None:
        conn.send(("phase", name))

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        func, args = message
        result = None
        busy_flags[slot_index] = 1
        try:
            result = func(state, *args, phase=phase)
        except Exception as exc:  # noqa: BLE001 - every task failure goes back to the parent
            try:
                conn.send(("error", exc))
            except Exception:  # noqa: BLE001 - unpicklable exception: send its text instead
                conn.send(("error", RemoteError("".join(traceback.format_exception(exc)))))
        else:
            conn.send(("ok", result))
        finally:
            busy_flags[slot_index] = 0
        message = args = result = None  # drop the page's buffers before trimming
        trim_heap()  # after the answer is sent: the parent is not kept waiting


class _Slot:
    def __init__(self, pool: WorkerPool, index: int) -> None:
        parent, child = _CTX.Pipe(duplex=True)
        self.conn = parent
        self.index = index  # its flag in the pool's busy flags; a replacement takes it over
        self.process = _CTX.Process(
            target=_worker_main,
            daemon=True,
            args=(child, pool.initializer, pool.init_args, pool.busy_flags, index),
            name=f"{pool.name}-worker",
        )
        self.process.start()
        child.close()
        self.described: Any = None  # what the process said of itself when it started

    def kill(self) -> None:
        with contextlib.suppress(Exception):  # already gone, or never started: nothing to kill
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


class WorkerPool:
    def __init__(
        self,
        name: str,
        size: int,
        initializer: Initializer | None = None,
        init_args: tuple[Any, ...] = (),
        start_timeout_s: float = 180.0,
    ) -> None:
        self.name = name
        self.size = size
        self.initializer = initializer
        self.init_args = init_args
        self.start_timeout_s = start_timeout_s
        self.busy_flags = _CTX.Array("b", size, lock=False)  # one writer per flag: no lock
        self._idle: asyncio.Queue[_Slot] = asyncio.Queue()
        self._all: set[_Slot] = set()
        self.ready = 0
        self.busy = 0
        self.crashes = 0
        self._closed = False

    async def start(self) -> None:
        slots = await asyncio.gather(*(self._spawn(index) for index in range(self.size)))
        for slot in slots:
            self._idle.put_nowait(slot)

    async def _spawn(self, index: int) -> _Slot:
        # busy while it starts (loading models is work too); it clears its flag once ready, and
        # this also resets the flag a process killed mid-task left set
        self.busy_flags[index] = 1
        slot = await asyncio.to_thread(_Slot, self, index)
        self._all.add(slot)
        kind, detail = await self._recv(slot, self.start_timeout_s, "start")
        if kind != "ready":
            slot.kill()
            self._all.discard(slot)
            raise RuntimeError(f"{self.name} worker failed to start: {detail}")
        self.ready += 1
        slot.described = detail
        log.info("worker_started", pool=self.name, pid=slot.process.pid)
        return slot

    async def _recv(self, slot: _Slot, timeout_s: float, phase: str) -> tuple[str, Any]:
        loop = asyncio.get_running_loop()
        readable: asyncio.Future[None] = loop.create_future()
        fd = slot.conn.fileno()

        def on_readable() -> None:
            if not readable.done():
                readable.set_result(None)

        loop.add_reader(fd, on_readable)
        try:
            await asyncio.wait_for(readable, timeout_s)
        except TimeoutError:
            raise TaskTimeoutError(phase, timeout_s) from None
        finally:
            loop.remove_reader(fd)
        try:
            message: tuple[str, Any] = slot.conn.recv()
        except (EOFError, OSError) as exc:
            raise WorkerCrashedError(f"worker exited with code {slot.process.exitcode}") from exc
        return message

    async def run(
        self, func: Callable[..., Any], *args: Any, deadlines: Mapping[str, float], total_s: float
    ) -> Any:
        """Run `func(state, *args, phase=...)` in a worker process.

        `deadlines` maps a phase name to its own limit; `total_s` bounds the whole task. Raises
        TaskTimeoutError or WorkerCrashedError (the process is replaced), or the task's own error.
        """
        if self._closed:
            raise RuntimeError(f"{self.name} pool is closed")
        slot = await self._idle.get()
        self.busy += 1
        healthy = False
        try:
            slot.conn.send((func, args))
            started = phase_started = time.monotonic()
            phase = "task"
            while True:
                now = time.monotonic()
                phase_left = deadlines.get(phase, total_s) - (now - phase_started)
                total_left = total_s - (now - started)
                limit_phase = phase if phase_left < total_left else "task"
                limit = deadlines.get(phase, total_s) if phase_left < total_left else total_s
                try:
                    kind, value = await self._recv(
                        slot, max(min(phase_left, total_left), 0.0), limit_phase
                    )
                except TaskTimeoutError:
                    raise TaskTimeoutError(limit_phase, limit) from None
                if kind == "phase":
                    phase, phase_started = value, time.monotonic()
                    continue
                healthy = True
                if kind == "error":
                    raise value
                return value
        except WorkerCrashedError:
            self.crashes += 1
            raise
        finally:
            self.busy -= 1
            if healthy:
                self._idle.put_nowait(slot)
            else:
                await self._replace(slot)

    async def _replace(self, slot: _Slot) -> None:
        await asyncio.to_thread(slot.kill)
        self._all.discard(slot)
        self.ready -= 1
        if self._closed:
            return
        log.warning(
            "worker_replaced", pool=self.name, pid=slot.process.pid, exitcode=slot.process.exitcode
        )
        try:
            self._idle.put_nowait(await self._spawn(slot.index))
        except Exception:  # broad on purpose: logged with the pool's name, then raised as it is
            log.exception("worker_restart_failed", pool=self.name)
            raise

    def described(self) -> list[Any]:
        """What each live process said of itself when it started (None when nothing)."""
        return [slot.described for slot in self._all if slot.described is not None]

    def stop_accepting(self) -> None:
        """From now on a lost process is not replaced (the server is shutting down)."""
        self._closed = True

    async def close(self) -> None:
        self._closed = True
        for slot in list(self._all):
            with contextlib.suppress(Exception):  # a dead process's pipe: kill() follows anyway
                slot.conn.send(None)
        for slot in list(self._all):
            await asyncio.to_thread(slot.process.join, 5)
            slot.kill()
        self._all.clear()
        self.ready = 0
