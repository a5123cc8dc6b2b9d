"""Real PostgreSQL and Redis for tests: free loopback ports, temporary folders, stopped after.

Both come from Debian's packages (`postgresql`, `redis-server`, installed by `scripts/setup test`);
a missing binary is an error, never a skip. Neither package's own service is used.

PostgreSQL runs with fsync, synchronous commit and full-page writes off (test data only), trust
authentication for the superuser `USER`, and listens on 127.0.0.1 only. As root (CI) initdb and
postgres run as the `postgres` system user, which owns the temporary folder; otherwise as the
caller. `create_database()` gives every test a fresh empty database.

Redis runs without persistence (`--save '' --appendonly no`); `flushall()` empties it between tests.

Each server gets the parent-death signal, so a test run killed outright leaves no server behind.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from tests.support.gateway_process import die_with_parent, free_port

USER = "gateway"  # the PostgreSQL superuser the tests connect as (trust on loopback)
_die_with_parent = functools.partial(die_with_parent, signal.SIGKILL)


def _on_a_free_port(server: PostgresServer | RedisServer, timeout_s: float, taken: str) -> None:
    """Launch `server` on a free port; another process may take the port before the server
    binds it (its log then says `taken`): up to three ports are tried."""
    for attempt in range(3):
        server.port = free_port()
        try:
            server._launch(timeout_s)
            return
        except RuntimeError:
            _stop(server.proc, signal.SIGKILL, 10)
            if attempt == 2 or taken not in _tail(server.log):
                server.stop()
                raise


def postgres_bindir() -> Path:
    """The bin folder with initdb and postgres: pg_config's, else the newest under /usr/lib."""
    candidates: list[Path] = []
    if pg_config := shutil.which("pg_config"):
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))
    found = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(found, key=lambda p: int(p.parent.name.split(".")[0]), reverse=True)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    raise RuntimeError(
        "PostgreSQL server binaries not found (pg_config --bindir, /usr/lib/postgresql/*/bin): "
        "run `scripts/setup test`, which installs Debian's postgresql"
    )


def _tail(path: Path, chars: int = 3000) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-chars:]
    return ""


def _stop(proc: subprocess.Popen[bytes] | None, sig: signal.Signals, timeout_s: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _wait(
    ready: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, what: str, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{_tail(log)}")
        if ready():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not accept connections in {timeout_s} s:\n{_tail(log)}")


class PostgresServer:
    """One PostgreSQL server; `url(dbname)` and `create_database()` for the tests."""

    def __init__(self) -> None:
        self.bindir = postgres_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="ocr-gateway-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:  # postgres refuses to run as root: run it as Debian's system user
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("no `postgres` system user: run `scripts/setup test`") from None
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}

    def start(self, timeout_s: float = 60.0) -> PostgresServer:
        self._run(
            self.bindir / "initdb",
            f"--pgdata={self.data}",
            f"--username={USER}",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )
        (self.root / "sock").mkdir()
        if self._as:
            os.chown(self.root / "sock", self._as["user"], self._as["group"])
        _on_a_free_port(self, timeout_s, "could not bind")
        return self

    def _run(self, *argv: str | Path) -> None:
        out = subprocess.run(
            [str(a) for a in argv], capture_output=True, text=True, check=False, **self._as
        )
        if out.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({out.returncode}):\n{out.stdout}{out.stderr}")

    def _launch(self, timeout_s: float) -> None:
        argv = [
            str(self.bindir / "postgres"),
            *("-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port)),
            *("-k", str(self.root / "sock")),
            *("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
            *("-c", "max_connections=300"),  # several gateway nodes, each with a pool
        ]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,  # only calls prctl(2)
                **self._as,
            )
        _wait(self._accepts, self.proc, self.log, "postgres", timeout_s)

    def _accepts(self) -> bool:
        try:
            with psycopg.connect(self.url(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self) -> str:
        """A fresh empty database (UTF-8, C collation); returns its name."""
        name = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        return name

    def drop_database(self, name: str) -> None:
        """Drop `name`, ending any connection a test left open to it."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        _stop(self.proc, signal.SIGINT, 30)  # SIGINT: fast shutdown, clients are disconnected
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """One redis-server without persistence; `url(db)` and `flushall()` for the tests."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: run `scripts/setup test`")
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="ocr-gateway-redis-"))
        self.log = self.root / "redis.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> RedisServer:
        _on_a_free_port(self, timeout_s, "Address already in use")
        return self

    def _launch(self, timeout_s: float) -> None:
        argv = [
            self.binary,
            *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root)),
            *("--save", "", "--appendonly", "no", "--daemonize", "no"),
        ]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,  # only calls prctl(2)
            )
        _wait(lambda: self.command("PING") == "+PONG", self.proc, self.log, "redis", timeout_s)

    def command(self, *args: str) -> str:
        """One command over a new connection; its first reply line ("" if not reachable)."""
        request = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
                conn.sendall(request.encode())
                reply = b""
                while not reply.endswith(b"\r\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
        except OSError:
            return ""
        return reply.decode().split("\r\n", 1)[0]

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def halt(self) -> None:
        """Kill the server as an outage would, keeping its port and folder for `restart()`."""
        _stop(self.proc, signal.SIGKILL, 10)

    def restart(self, timeout_s: float = 30.0) -> None:
        """Start it again on the same port, empty (nothing is persisted)."""
        self._launch(timeout_s)

    def flushall(self) -> None:
        reply = self.command("FLUSHALL")
        if reply != "+OK":
            raise RuntimeError(f"redis FLUSHALL answered {reply!r}:\n{_tail(self.log)}")

    def stop(self) -> None:
        _stop(self.proc, signal.SIGTERM, 30)
        shutil.rmtree(self.root, ignore_errors=True)
