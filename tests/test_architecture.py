"""Imports point one way: scoring <- router <- gateway -> providers, and inside gateway
api -> work -> store with the core modules below them all, and outputs (the result formats)
beside them, using none of them; nothing in the product uses
benchmarks or tests; no product module grows past MAX_LINES."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway_process import REPO

PRODUCT = ("gateway", "providers", "router", "scoring")
OUTSIDE = ("benchmarks", "tests")  # may use the product; the product never uses them
CORE = tuple(
    f"gateway.{name}"
    for name in (
        "config",
        "compat_config",
        "errors",
        "page_errors",
        "clock",
        "logs",
        "results",
        "metrics",
    )
)
COMPOSITION = tuple(f"gateway.{name}" for name in ("app", "services", "cli", "__main__"))
MAX_LINES = 400

# (modules, imports they must not make): a module matches its own name or any name below it.
RULES: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (("scoring",), ("gateway", "providers", "router", *OUTSIDE)),
    (("router",), ("gateway", "providers", *OUTSIDE)),
    (("providers",), ("gateway", "router", "scoring", *OUTSIDE)),
    (("gateway",), OUTSIDE),
    (("gateway.store",), ("gateway.work", "gateway.api", *COMPOSITION)),
    (("gateway.work",), ("gateway.api", *COMPOSITION)),
    # result formats are pure functions of the results: callers hand them what they need
    (("gateway.outputs",), ("gateway.api", "gateway.work", "gateway.store", *COMPOSITION)),
]


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def modules(root: Path) -> Iterator[tuple[str, Path]]:
    """(dotted name, path) of every module of the product packages under `root`."""
    for package in PRODUCT:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def imported_names(module: str, path: Path) -> set[str]:
    """Every module `module` imports anywhere in its file (functions included): absolute and
    relative `from` imports resolved, and `from a import b` counted as `a` and `a.b`."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names)
    return names


def forbidden_for(module: str, root: Path) -> tuple[str, ...]:
    forbidden = [name for owners, banned in RULES if within(module, owners) for name in banned]
    if within(module, CORE):  # core modules sit below every gateway sub-package
        subpackages = sorted(p.parent.name for p in (root / "gateway").glob("*/__init__.py"))
        forbidden += [f"gateway.{name}" for name in subpackages] + list(COMPOSITION)
    return tuple(forbidden)


def import_violations(root: Path) -> list[str]:
    """`module imports name` for every import that breaks a rule, in file order."""
    return [
        f"{module} imports {name}"
        for module, path in modules(root)
        for name in sorted(imported_names(module, path))
        if within(name, forbidden_for(module, root))
    ]


def oversized_modules(root: Path) -> list[str]:
    """`path (lines)` of every product module over MAX_LINES, largest first."""
    sizes = sorted(
        (
            (len(path.read_text().splitlines()), path.relative_to(root).as_posix())
            for _, path in modules(root)
        ),
        reverse=True,
    )
    return [f"{path} ({lines})" for lines, path in sizes if lines > MAX_LINES]


def test_imports_point_one_way() -> None:
    assert import_violations(REPO) == []


def test_no_product_module_is_over_the_line_limit() -> None:
    over = oversized_modules(REPO)
    assert not over, f"over {MAX_LINES} lines, largest first: {', '.join(over)}"


SYNTHETIC = {
    "gateway/__init__.py": "",
    "gateway/config.py": "import gateway.errors\n",
    "gateway/errors.py": "",
    "gateway/services.py": "from gateway.api import native\n",
    "gateway/api/__init__.py": "",
    "gateway/api/native.py": "from ..work import pool\nfrom gateway.store import db\n",
    "gateway/store/__init__.py": "",
    "gateway/store/db.py": "from . import queue\n",
    "gateway/store/queue.py": "",
    "gateway/work/__init__.py": "",
    "gateway/work/pool.py": "from gateway.store import db\n",
    "gateway/outputs/__init__.py": "",
    "gateway/outputs/pdf.py": "from gateway.results import PageResult\n",
    "gateway/outputs/markdown.py": "",
    "providers/__init__.py": "",
    "router/__init__.py": "",
    "scoring/__init__.py": "",
}


@pytest.mark.parametrize(
    ("path", "source", "reported"),
    [
        (
            "gateway/store/ledger.py",
            "def f():\n    from ..work import pool\n",
            "gateway.store.ledger imports gateway.work",
        ),
        (
            "gateway/store/__init__.py",
            "from .. import services\n",
            "gateway.store imports gateway.services",
        ),
        (
            "gateway/work/worker.py",
            "import gateway.api.native\n",
            "gateway.work.worker imports gateway.api",
        ),
        (
            "gateway/work/worker.py",
            "from gateway import cli\n",
            "gateway.work.worker imports gateway.cli",
        ),
        (
            "gateway/config.py",
            "from gateway.store.db import Database\n",
            "gateway.config imports gateway.store",
        ),
        ("gateway/errors.py", "from . import app\n", "gateway.errors imports gateway.app"),
        (
            "router/plan.py",
            "from tests.support import gateway_process\n",
            "router.plan imports tests",
        ),
        (
            "providers/base.py",
            "import benchmarks.metrics as m\n",
            "providers.base imports benchmarks",
        ),
        ("scoring/score.py", "from router.policy import Tier\n", "scoring.score imports router"),
        (
            "gateway/outputs/pdf.py",
            "from gateway.work.documents import render_page\n",
            "gateway.outputs.pdf imports gateway.work",
        ),
        (
            "gateway/outputs/markdown.py",
            "from ..store import reads\n",
            "gateway.outputs.markdown imports gateway.store",
        ),
    ],
)
def test_checker_reports_a_forbidden_import(
    tmp_path: Path, path: str, source: str, reported: str
) -> None:
    """The checker is not vacuous: a clean synthetic tree passes, one bad import is caught."""
    for name, text in SYNTHETIC.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert import_violations(tmp_path) == []
    (tmp_path / path).write_text(source)
    assert any(v.startswith(reported) for v in import_violations(tmp_path))


def test_checker_reports_the_largest_module(tmp_path: Path) -> None:
    for name, lines in [
        ("gateway/big.py", MAX_LINES + 1),
        ("router/huge.py", MAX_LINES + 9),
        ("scoring/small.py", MAX_LINES),
    ]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x = 1\n" * lines)
    assert oversized_modules(tmp_path) == ["router/huge.py (409)", "gateway/big.py (401)"]
