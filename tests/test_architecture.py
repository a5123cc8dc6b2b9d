"""Imports point one way: scoring <- router <- gateway -> providers; nothing uses benchmarks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.gateway_process import REPO

FORBIDDEN = {
    "scoring": {"gateway", "providers", "router", "benchmarks"},
    "router": {"gateway", "providers", "benchmarks"},
    "providers": {"gateway", "router", "scoring", "benchmarks"},
    "gateway": {"benchmarks"},
}
ALLOWED = {("gateway/cli.py", "benchmarks")}  # `ocr-gateway bench` delegates to benchmarks


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_point_one_way(package: str) -> None:
    for path in sorted((REPO / package).rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        bad = {name for name in imported_packages(path) & FORBIDDEN[package]
               if (relative, name) not in ALLOWED}
        assert not bad, f"{relative} imports {sorted(bad)}"
