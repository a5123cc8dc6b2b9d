"""The console command: tenants create prints the key last; ocr reads a file with no server."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from benchmarks.metrics import bag_of_words_f1
from gateway.tenants import hash_key
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
        [sys.executable, "-m", "gateway", "--config", str(config), "ocr",
         str(corpus / "a_clean_printed/tesseract/phototest.tif"), "--format", "text",
         "--provider", "tesseract"], capture_output=True, text=True, check=True, cwd=REPO)
    truth = (corpus / "a_clean_printed/tesseract/phototest.gt.txt").read_text()
    assert bag_of_words_f1(truth, out.stdout) >= 0.9


def test_ocr_command_fails_clearly_on_a_broken_file(corpus: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "ocr",
         str(corpus / "g_malformed/pdf/ocrmypdf_invalid.pdf")],
        capture_output=True, text=True, check=False, cwd=REPO)
    assert out.returncode == 2
    assert "could not be opened" in out.stderr
    assert "Traceback" not in out.stderr
