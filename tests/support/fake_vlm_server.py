"""A small OpenAI-compatible vision server for tests and benchmarks, with faults on demand.

`POST /v1/chat/completions` reads the image of the request (a base64 data URI) with Tesseract
(`providers.tesseract`) and answers the text as markdown: a paragraph per block of lines, each
paragraph on one line, as VLMs write them. Plain asyncio with a minimal HTTP/1.1 loop, so that a
fault can be anything down to a dropped connection.

    POST /control   {"delay_s", "fail_next", "status", "rate_limit_next", "retry_after_s",
                     "malformed_next", "drop_next", "truncate_next", "fence"}: faults, partly
                     updated. Each chat request waits `delay_s`, then takes the first fault
                     whose count is left: drop, 429, `status`, malformed JSON, finish_reason
                     "length"; else it is read.
    POST /reset     faults and counters back to their defaults (a request still in flight
                    keeps the ones it arrived with)
    GET  /stats     {"requests", "in_flight", "max_in_flight", "authorization", "model"}

Run `python -m tests.support.fake_vlm_server [--port 0]`: it prints `listening <url>` once ready.
`FakeVLMServer` starts it as a subprocess on a free loopback port.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import io
import itertools
import os
import selectors
import statistics
import subprocess
import sys
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
import msgspec
import numpy as np
from PIL import Image

from providers.errors import ProviderError
from providers.tesseract import TesseractConfig, TesseractProvider
from providers.types import PageImage, TextLine, quad_bounds

REPO = Path(__file__).resolve().parents[2]
PARAGRAPH_GAP = 2.0  # a gap this many times the median gap between lines starts a paragraph
PARAGRAPH_MIN_GAP = 0.25  # and at least this many line heights


class Faults(msgspec.Struct, kw_only=True):
    delay_s: float = 0.0
    fail_next: int = 0
    status: int = 503
    rate_limit_next: int = 0
    retry_after_s: float = 1.0
    malformed_next: int = 0
    drop_next: int = 0
    truncate_next: int = 0
    fence: bool = False  # wrap answers in ```markdown fences


class Control(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    delay_s: float | None = None
    fail_next: int | None = None
    status: int | None = None
    rate_limit_next: int | None = None
    retry_after_s: float | None = None
    malformed_next: int | None = None
    drop_next: int | None = None
    truncate_next: int | None = None
    fence: bool | None = None


class Stats(msgspec.Struct, kw_only=True):
    requests: int = 0  # chat completion requests received, faulty ones included
    in_flight: int = 0
    max_in_flight: int = 0
    authorization: str | None = None  # of the last chat request
    model: str | None = None


class _ImageURL(msgspec.Struct):
    url: str


class _Part(msgspec.Struct, kw_only=True):
    type: str
    text: str | None = None
    image_url: _ImageURL | None = None


class _Message(msgspec.Struct, kw_only=True):
    role: str
    content: str | list[_Part]


class _ChatRequest(msgspec.Struct, kw_only=True):
    model: str
    messages: list[_Message]
    max_tokens: int | None = None


class _DropConnectionError(Exception):
    """Close the connection without an answer."""


def lines_to_markdown(lines: list[TextLine]) -> str:
    """Paragraphs separated by a blank line, each paragraph's lines joined into one. A
    paragraph starts after a gap clearly wider than the usual gap between lines."""
    boxes = sorted(
        ((quad_bounds(line.quad), line.text) for line in lines), key=lambda item: item[0][1]
    )
    if not boxes:
        return ""
    line_h = statistics.median(box[3] - box[1] for box, _ in boxes)
    gaps = [b[0][1] - a[0][3] for a, b in itertools.pairwise(boxes)]
    usual = statistics.median(gaps) if gaps else 0.0
    paragraphs: list[list[str]] = [[boxes[0][1]]]
    for gap, (_, text) in zip(gaps, boxes[1:], strict=True):
        if gap >= max(PARAGRAPH_GAP * usual, PARAGRAPH_MIN_GAP * line_h):
            paragraphs.append([])
        paragraphs[-1].append(text)
    return "\n\n".join(" ".join(p) for p in paragraphs)


def decode_image(uri: str) -> PageImage:
    head, _, data = uri.partition(",")
    if not head.startswith("data:image/") or ";base64" not in head:
        raise ValueError("image_url must be a base64 data URI")
    with Image.open(io.BytesIO(base64.b64decode(data, validate=True))) as image:
        dpi = image.info.get("dpi", (300.0, 300.0))[0]
        pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return PageImage(pixels=pixels, dpi=float(dpi) or 300.0, page_number=1)


class FakeVLM:
    def __init__(self, ocr: TesseractProvider) -> None:
        self.ocr = ocr
        self.faults = Faults()
        self.stats = Stats()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: requests until the client closes it (HTTP/1.1 keep-alive)."""
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers = {}
                for line in header_lines:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                try:
                    status, payload, extra = await self.dispatch(
                        method, target.split("?")[0], headers, body
                    )
                except _DropConnectionError:
                    writer.transport.abort()
                    return
                await self.respond(writer, status, payload, extra)
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def respond(
        self, writer: asyncio.StreamWriter, status: int, payload: bytes, extra: dict[str, str]
    ) -> None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:  # a status made up for a test
            reason = "Unknown"
        lines = [
            f"HTTP/1.1 {status} {reason}",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
            *(f"{k}: {v}" for k, v in extra.items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
        await writer.drain()

    async def dispatch(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        if (method, path) == ("POST", "/v1/chat/completions"):
            return await self.chat(headers, body)
        if (method, path) == ("GET", "/v1/models"):
            return 200, msgspec.json.encode({"object": "list", "data": []}), {}
        if (method, path) == ("GET", "/stats"):
            return 200, msgspec.json.encode(self.stats), {}
        if (method, path) == ("POST", "/reset"):
            self.faults, self.stats = Faults(), Stats()
            return 200, b"{}", {}
        if (method, path) == ("POST", "/control"):
            try:
                control = msgspec.json.decode(body, type=Control)
            except msgspec.DecodeError as exc:
                return 400, _error("bad_control", str(exc)), {}
            changes = {k: v for k, v in msgspec.structs.asdict(control).items() if v is not None}
            for name, value in changes.items():  # in place: requests in flight see it too
                setattr(self.faults, name, value)
            return 200, msgspec.json.encode(self.faults), {}
        return 404, _error("not_found", f"{method} {path}"), {}

    @staticmethod
    def _take(faults: Faults, name: str) -> bool:
        left: int = getattr(faults, name)
        if left > 0:
            setattr(faults, name, left - 1)
            return True
        return False

    async def chat(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes, dict[str, str]]:
        # the faults and counters of this request's time: a request left over from before a
        # reset (a client that timed out) neither takes the next test's faults nor counts there
        faults, stats = self.faults, self.stats
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        stats.authorization = headers.get("authorization")
        try:
            if faults.delay_s > 0:
                await asyncio.sleep(faults.delay_s)
            if self._take(faults, "drop_next"):
                raise _DropConnectionError()
            if self._take(faults, "rate_limit_next"):
                return (
                    429,
                    _error("rate_limit_exceeded", "slow down"),
                    {"Retry-After": f"{faults.retry_after_s:g}"},
                )
            if self._take(faults, "fail_next"):
                return faults.status, _error("injected", "injected failure"), {}
            if self._take(faults, "malformed_next"):
                return 200, b'{"choices": [{"message": {"content": "unterminated', {}
            try:
                request = msgspec.json.decode(body, type=_ChatRequest)
                page = decode_image(_image_url(request))
            except (msgspec.DecodeError, ValueError, binascii.Error, OSError) as exc:
                return 400, _error("invalid_request_error", str(exc)[:200]), {}
            stats.model = request.model
            try:
                lines = await asyncio.to_thread(self.ocr.recognize, page)
            except ProviderError as exc:
                return 500, _error("ocr_failed", exc.message), {}
            markdown = lines_to_markdown(list(lines.lines))
            if faults.fence:
                markdown = f"```markdown\n{markdown}\n```"
            finish = "length" if self._take(faults, "truncate_next") else "stop"
            return 200, _completion(request.model, markdown, finish), {}
        finally:
            stats.in_flight -= 1


def _image_url(request: _ChatRequest) -> str:
    for message in request.messages:
        if isinstance(message.content, list):
            for part in message.content:
                if part.type == "image_url" and part.image_url is not None:
                    return part.image_url.url
    raise ValueError("no image_url part in the messages")


def _error(code: str, message: str) -> bytes:
    return msgspec.json.encode({"error": {"message": message, "type": code, "code": code}})


def _completion(model: str, markdown: str, finish: str) -> bytes:
    return msgspec.json.encode(
        {
            "id": f"chatcmpl-{time.monotonic_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": finish,
                    "message": {"role": "assistant", "content": markdown},
                }
            ],
            "usage": {
                "prompt_tokens": 0,
                "completion_tokens": len(markdown.split()),
                "total_tokens": len(markdown.split()),
            },
        }
    )


async def serve(host: str, port: int) -> None:
    app = FakeVLM(TesseractProvider("fake-vlm", TesseractConfig(psm=3)))
    server = await asyncio.start_server(app.serve, host, port)
    bound = server.sockets[0].getsockname()
    print(f"listening http://{bound[0]}:{bound[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))


# --- The helper that tests and benchmarks use -------------------------------------------------


class FakeVLMServer:
    """The server as a subprocess on a free loopback port: `start()`, `control(...)`,
    `reset()`, `stats()`, `stop()`; also a context manager."""

    def __init__(self, log_path: Path | None = None) -> None:
        self.log_path = log_path
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as base_url."""
        return f"{self.url}/v1"

    def start(self, timeout_s: float = 30.0) -> FakeVLMServer:
        log = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.support.fake_vlm_server", "--port", "0"],
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            if not isinstance(log, int):
                log.close()
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout_s):
                self.stop()
                raise RuntimeError("the fake VLM server did not start in time")
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("listening "):
            self.stop()
            raise RuntimeError(f"the fake VLM server did not start: {line!r}")
        self.url = line.removeprefix("listening ")
        return self

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{self.url}{path}", json=body, timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def control(self, **faults: Any) -> dict[str, Any]:
        return self._post("/control", faults)

    def reset(self) -> None:
        self._post("/reset", {})

    def stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/stats", timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> FakeVLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


if __name__ == "__main__":
    main()
