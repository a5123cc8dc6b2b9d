"""Helpers of the compatible-surface tests: a gateway with every surface on, and the API
documents' own curl commands run as printed (only the base URL, the key and the file changed)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.support.gateway_process import GatewayProcess, write_config

SPECS = Path(__file__).resolve().parents[2] / "shared" / "specs"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
CURL = shutil.which("curl")
ADMIN_TOKEN = "compat-admin-token"


QUEUE_BOUND = 5  # pages waiting or being read
SYNC_TIMEOUT_S = 2  # 001's POST /ocr
TASK_TTL_S = 3  # 002's tasks


def start_gateway(root: Path) -> GatewayProcess:
    """The gateway every compat test module shares (`compat_gateway` in conftest.py): one
    engine process, no result cache (each submission reads), signup on, the admin API on, and
    short limits the tests reach (the queue bound, 001's synchronous wait, 002's task TTL)."""
    config = write_config(
        root / "config.yaml",
        root / "data",
        worker={"processes": 1},
        cache={"enabled": False},
        signup={"enabled": True, "free_credits": 50},
        limits={"max_queued_pages": QUEUE_BOUND},
        compat={
            "jobapi": {"sync_timeout_s": SYNC_TIMEOUT_S},
            "solver": {"task_ttl_s": TASK_TTL_S, "sweep_interval_s": 0.5},
        },
    )
    env = {"OCR_GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN}
    return GatewayProcess(config, root / "gateway.log", env=env).start()


def new_key(gateway: GatewayProcess, credits: int, plan: str = "starter") -> str:
    """A tenant with `credits`, made through the admin API (a CLI call costs seconds); its key."""
    response = httpx.post(
        f"{gateway.url}/admin/tenants",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        json={"name": "compat", "plan": plan, "credits": credits},
    )
    assert response.status_code in (200, 201), response.text
    key: str = response.json()["api_key"]
    return key


def doc_curls(spec: str) -> list[str]:
    """Every curl command of an API document, in order, its line continuations restored (the
    text keeps `\\ ` where a line ended)."""
    lines = (SPECS / spec).read_text().splitlines()
    commands = []
    for index, line in enumerate(lines):
        start = line.find("curl ")
        if start < 0:
            continue
        command = line[start:]
        while command.endswith("\\") and index + 1 < len(lines):
            index += 1
            command += "\n" + lines[index]
        command = command.replace("\\ ", "\\\n")
        # the JSON example that follows a command on the same line is not part of it
        command = re.split(r"(?<=['\"])\{", command)[0]
        commands.append(command.strip())
    return commands


def run_curl(command: str, replace: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run a document's curl command with `replace` applied (base URL, key, file names);
    returns (HTTP status, body). With no curl on the machine, the same request through httpx."""
    for old, new in replace.items():
        command = command.replace(old, new)
    command += " -s -w '\\n%{http_code}'"
    if CURL is None:
        return _as_httpx(command, cwd)
    done = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, cwd=cwd, timeout=120, check=True
    )
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def _as_httpx(command: str, cwd: Path) -> tuple[int, str]:
    """The request a curl command makes (-X, -H, -F, --output), through httpx."""
    words = shlex.split(command.replace("\\\n", " "))
    method, url, headers, files, data, output = "GET", "", {}, {}, {}, None
    it = iter(words[1:])
    for word in it:
        if word == "-X":
            method = next(it)
        elif word == "-H":
            name, _, value = next(it).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "-F":
            name, _, value = next(it).partition("=")
            if value.startswith("@"):
                files[name] = (value[1:], (cwd / value[1:]).read_bytes())
            else:
                data[name] = value
        elif word == "--output":
            output = next(it)
        elif word in ("-s", "-w"):
            if word == "-w":
                next(it)
        elif not url:
            url = word
    if files and method == "GET":
        method = "POST"
    response = httpx.request(method, url, headers=headers, files=files or None, data=data or None)
    if output:
        (cwd / output).write_bytes(response.content)
        return response.status_code, ""
    return response.status_code, response.text


def poll(
    fetch: Callable[[], httpx.Response], done: Callable[[dict[str, Any]], bool], timeout_s: float
) -> dict[str, Any]:
    """GET until `done(body)`; the body. Polls about once a second, as the documents ask."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = fetch()
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if done(body):
            return body
        assert time.monotonic() < deadline, f"not done in {timeout_s} s: {json.dumps(body)[:500]}"
        time.sleep(1.0)
