"""A one-line progress bar: pages done, rate and ETA.

On a terminal the line is redrawn in place; otherwise (a log file, a pipe) one line is written
per page, so a long run can still be followed.
"""

from __future__ import annotations

import time
from typing import TextIO

BAR_WIDTH = 24


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.interactive = stream.isatty()
        self.total = 0
        self.done = 0
        self.started = time.perf_counter()
        self._drawn = False

    def note(self, message: str) -> None:
        self.stream.write(message + "\n")
        self.stream.flush()

    def start(self, total: int) -> None:
        self.total, self.done, self.started = total, 0, time.perf_counter()

    def line(self, label: str) -> str:
        elapsed = time.perf_counter() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        filled = BAR_WIDTH * self.done // max(self.total, 1)
        eta = format_duration((self.total - self.done) / rate) if rate > 0 else "?"
        return (
            f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self.done}/{self.total} pages"
            f"  {rate:.2f} pages/s  ETA {eta}  {label}"
        )

    def advance(self, label: str) -> None:
        self.done += 1
        text = self.line(label)
        if self.interactive:
            self.stream.write("\r\x1b[2K" + text[:200])
            self._drawn = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
