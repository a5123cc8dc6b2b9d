"""Where and with what a run happened: machine, package versions, git commit."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

from benchmarks.results import MachineInfo

PACKAGES = (
    "ocr-gateway",
    "msgspec",
    "numpy",
    "pillow",
    "pypdfium2",
    "rapidocr-onnxruntime",
    "onnxruntime",
    "rapidfuzz",
    "matplotlib",
)


def describe_machine() -> MachineInfo:
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        memory_gib: float | None = round(memory / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        memory_gib = None
    return MachineInfo(
        platform=platform.platform(),
        machine=platform.machine(),
        processor=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        memory_gib=memory_gib,
        python=platform.python_version(),
    )


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(repo: Path) -> str | None:
    """HEAD of the repository the benchmark runs from, with `+dirty` for local changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],  # noqa: S607 - git from PATH
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        status = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain"],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if status.stdout.strip() else "")
