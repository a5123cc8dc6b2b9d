"""A loopback webhook receiver: records each POST, checks its Standard Webhooks signature
independently of the gateway's code, and answers as the test scripts it (statuses in turn, or
holding the first request until released)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple


class Delivery(NamedTuple):
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float  # time.monotonic() of arrival
    verified: bool  # the signature checks out against the receiver's secret


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance_s: int = 300) -> bool:
    """Standard Webhooks verification: HMAC-SHA256 over `id.timestamp.body` keyed by the
    base64 after `whsec_`, one of the space-separated `v1,` signatures, a recent timestamp."""
    try:
        message_id = headers["webhook-id"]
        timestamp = headers["webhook-timestamp"]
        signatures = headers["webhook-signature"].split()
    except KeyError:
        return False
    if abs(time.time() - int(timestamp)) > tolerance_s:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    expected = base64.b64encode(digest).decode()
    return any(
        version == "v1" and hmac.compare_digest(signature, expected)
        for version, _, signature in (s.partition(",") for s in signatures)
    )


class WebhookReceiver:
    def __init__(self) -> None:
        self.secret = ""  # set by the test from the admin API
        self.answers: list[int] = []  # statuses to answer, in turn; 200 once they run out
        self.hold_first = False  # keep the first request unanswered until `release`
        self.arrived = threading.Event()  # set when any request arrives
        self.release = threading.Event()
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str = "/hook", host: str = "localhost") -> str:
        return f"http://{host}:{self.port}{path}"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, count: int, timeout_s: float = 60.0) -> list[Delivery]:
        """The first `count` deliveries, once they have arrived."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.deliveries) >= count:
                    return list(self.deliveries)
            time.sleep(0.05)
        raise TimeoutError(f"{len(self.deliveries)} of {count} webhooks arrived")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def do_PUT(self) -> None:  # an upload (the read-results API's ZIP): recorded alike
                self.do_POST()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    first = not receiver.deliveries
                    receiver.deliveries.append(
                        Delivery(
                            headers, body, time.monotonic(), verify(receiver.secret, headers, body)
                        )
                    )
                    status = receiver.answers.pop(0) if receiver.answers else 200
                receiver.arrived.set()
                if first and receiver.hold_first:
                    receiver.release.wait(60)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler
