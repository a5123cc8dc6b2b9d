"""The console command: tenants create prints the key last; ocr reads a file with no server;
bench is a plugin found by entry point."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from benchmarks.metrics import bag_of_words_f1
from gateway.cli import PLUGIN_GROUP, CLIError, run_plugin
from gateway.store.tenants import hash_key
from tests.support.gateway_process import REPO, create_tenant, write_config


def test_tenant_key_is_printed_once_and_stored_only_as_hash(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yaml", tmp_path / "data")
    key = create_tenant(config, name="acme", credits=7, plan="business")
    assert key.startswith("ocrg_")
    assert len(key) > 40
    db_path = tmp_path / "data/gateway.sqlite3"
    assert key.encode() not in db_path.read_bytes()
    with sqlite3.connect(db_path) as db:
        stored = db.execute("SELECT key_hash FROM api_keys").fetchall()
        balance = db.execute("SELECT plan, credits_available FROM tenants").fetchall()
    assert stored == [(hash_key(key),)]
    assert balance == [("business", 7)]


def test_ocr_command_prints_the_text_of_a_local_file(corpus: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yaml", tmp_path / "data")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "--config",
            str(config),
            "ocr",
            str(corpus / "a_clean_printed/tesseract/phototest.tif"),
            "--format",
            "text",
            "--provider",
            "tesseract",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    truth = (corpus / "a_clean_printed/tesseract/phototest.gt.txt").read_text()
    assert bag_of_words_f1(truth, out.stdout) >= 0.9


def test_ocr_command_fails_clearly_on_a_broken_file(corpus: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "ocr",
            str(corpus / "g_malformed/pdf/ocrmypdf_invalid.pdf"),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert out.returncode == 2
    assert "could not be opened" in out.stderr
    assert "Traceback" not in out.stderr


def test_bench_is_a_subcommand_found_by_entry_point() -> None:
    """`ocr-gateway bench` reaches benchmarks.cli through its entry point, not an import."""
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "bench", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert out.stdout.startswith("usage: ocr-gateway bench")
    assert "--providers" in out.stdout


def test_bench_receives_the_global_config(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "--config",
            str(missing),
            "bench",
            "--corpus",
            str(tmp_path),
            "--providers",
            "tesseract",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert out.returncode == 2
    assert "ocr-gateway bench:" in out.stderr
    assert str(missing) in out.stderr
    assert "Traceback" not in out.stderr


def test_bench_says_how_to_install_it_when_missing() -> None:
    with pytest.raises(CLIError, match=r"`bench` is not installed: .*pip install"):
        run_plugin("bench", ["--help"], None, plugins={})


def test_bench_says_which_module_is_missing_when_it_cannot_load() -> None:
    broken = EntryPoint(name="bench", value="no_such_package.cli:main", group=PLUGIN_GROUP)
    with pytest.raises(CLIError, match=r"cannot load no_such_package\.cli:main .*no_such_package"):
        run_plugin("bench", ["--help"], None, plugins={"bench": broken})
