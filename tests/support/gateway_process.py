"""A real gateway process on a free loopback port, for benchmarks and tests."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("OCR_GATEWAY_CORPUS") or REPO.parent / "shared" / "corpus")


_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, so the forked child only calls it


def die_with_parent(signum: int) -> None:
    """In the child between fork and exec: `signum` when the test process dies (a killed pytest
    leaves no server behind). Pass as `preexec_fn=functools.partial(die_with_parent, sig)`.
    Linux means the thread that forked: start servers from a thread that outlives them."""
    _prctl(_PR_SET_PDEATHSIG, signum)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, data_dir: Path, **overrides: Any) -> Path:
    """config.yaml of the repo with `overrides` merged in (nested dicts merge key by key)."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["data_dir"] = str(data_dir)
    for section, values in overrides.items():
        if isinstance(values, dict):
            config.setdefault(section, {}).update(values)
        else:
            config[section] = values
    path.write_text(yaml.safe_dump(config))
    return path


class GatewayProcess:
    """`args`: the node's command, `serve` (default, HTTP on a free port), `serve --workers 0`
    (API only) or `worker` (no HTTP: ready once its node shows in `peer`'s /health nodes)."""

    def __init__(
        self,
        config: Path,
        log_path: Path,
        env: dict[str, str] | None = None,
        args: Sequence[str] = ("serve",),
    ) -> None:
        self.config = config
        self.extra_env = env or {}
        self.log_path = log_path
        self.args = tuple(args)
        self.serves_http = self.args[0] == "serve"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 120.0, peer: GatewayProcess | None = None) -> GatewayProcess:
        return self.launch().wait_ready(timeout_s, peer)

    def launch(self) -> GatewayProcess:
        """Start the process without waiting (several nodes then load their models at once)."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.extra_env}
        env.pop("OCR_GATEWAY_DATA_DIR", None)
        argv = [sys.executable, "-m", "gateway", *self.args, "--config", str(self.config)]
        if self.serves_http:
            argv += ["--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
                # SIGTERM, not SIGKILL: the node then stops its worker processes as it does
                preexec_fn=functools.partial(die_with_parent, signal.SIGTERM),  # only prctl(2)
            )
        return self

    def wait_ready(
        self, timeout_s: float = 120.0, peer: GatewayProcess | None = None
    ) -> GatewayProcess:
        """Healthy; a node without HTTP: listed (by its pid) in `peer`'s /health nodes."""
        assert self.proc is not None, "launch() first"
        if not self.serves_http and peer is None:
            raise ValueError("a node without HTTP is ready when a peer lists it: pass `peer`")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if self.serves_http:
                    if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                        return self
                else:
                    assert peer is not None
                    health = httpx.get(f"{peer.url}/health", timeout=2).json()
                    if any(n["pid"] == self.proc.pid for n in health.get("nodes", [])):
                        return self
            time.sleep(0.2)
        raise RuntimeError(f"gateway did not become ready in time: {self.logs()[-3000:]}")

    def pids(self) -> list[int]:
        """The node's process and its worker processes (none once it has exited)."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        return [self.proc.pid, *_children(self.proc.pid)]

    def kill(self) -> None:
        """SIGKILL the server and its worker processes, as a crash would."""
        assert self.proc is not None
        children = _children(self.proc.pid)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


def _children(pid: int) -> list[int]:
    out = subprocess.run(
        ["/bin/ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    ).stdout
    return [int(p) for p in out.split()]


def create_tenant(
    config: Path, name: str = "tenant", credits: int = 1000, plan: str = "starter"
) -> str:
    """Create a tenant through the CLI; returns its API key (the last line of stdout)."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "--config",
            str(config),
            "tenants",
            "create",
            "--name",
            name,
            "--plan",
            plan,
            "--credits",
            str(credits),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return out.stdout.strip().splitlines()[-1]


def wait_for_job(
    client: httpx.Client, job_id: str, key: str, timeout_s: float = 300.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        # long-poll: the server answers as soon as the job changes
        response = client.get(f"/v1/jobs/{job_id}", headers={"X-API-Key": key}, params={"wait": 10})
        response.raise_for_status()
        job: dict[str, Any] = response.json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
    raise TimeoutError(f"job {job_id} did not finish in {timeout_s} s")
