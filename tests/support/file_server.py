"""A loopback HTTP server that serves files for documents-by-URL tests, plus hostile answers.

Routes: `/files/<path>` a file under the root; `/redirect?to=<url>` a 302 to `to`;
`/loop/<n>` a redirect to `/loop/<n+1>` (forever); `/declares-10gb` a Content-Length of 10 GB
(and a few bytes); `/endless` an unbounded chunked body; `/slow` headers, then nothing for
longer than any test waits; `/status/<code>` that status.
"""

from __future__ import annotations

import contextlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

TEN_GB = 10 * 1024**3


class FileServer:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.requests: list[str] = []  # paths asked for, in order
        self.hosts: list[str] = []  # their Host headers
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/{path.lstrip('/')}"

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                server.requests.append(url.path)
                server.hosts.append(self.headers.get("Host", ""))
                parts = url.path.strip("/").split("/", 1)
                route, rest = parts[0], parts[1] if len(parts) > 1 else ""
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    if route == "files":
                        self._file(rest)
                    elif route == "redirect":
                        self._redirect(parse_qs(url.query)["to"][0])
                    elif route == "loop":
                        self._redirect(f"/loop/{int(rest or 0) + 1}")
                    elif route == "declares-10gb":
                        self._head(200, TEN_GB)
                        self.wfile.write(b"%PDF-1.7\n" * 100)
                    elif route == "endless":
                        self._endless()
                    elif route == "slow":
                        self._head(200, 1000)
                        time.sleep(30)
                    elif route == "status":
                        self._head(int(rest), 0)
                    else:
                        self._head(404, 0)

            def _head(self, status: int, length: int | None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                if length is not None:
                    self.send_header("Content-Length", str(length))
                self.end_headers()

            def _file(self, rest: str) -> None:
                path = (server.root / rest).resolve()
                if not path.is_relative_to(server.root) or not path.is_file():
                    self._head(404, 0)
                    return
                body = path.read_bytes()
                self._head(200, len(body))
                self.wfile.write(body)

            def _redirect(self, to: str) -> None:
                self.send_response(302)
                self.send_header("Location", to)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _endless(self) -> None:
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunk = b"\0" * 65536
                for _ in range(100_000):  # 6.5 GB at most; the gateway hangs up long before
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))

        return Handler
