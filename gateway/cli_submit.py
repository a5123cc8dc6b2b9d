"""`ocr-gateway submit FILE --url URL --key KEY [--wait] [--format markdown]`: send a document to
a running gateway with the Python client (`gateway.client`) and print the job, or its result.

FILE is a path, or an http(s) URL the gateway fetches the document from. The gateway's address
and the API key may also come from $OCR_GATEWAY_URL and $OCR_GATEWAY_KEY.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import httpx
import msgspec

from gateway.cli_common import CLIError
from gateway.client import ApiError, Client
from gateway.client.base import Format, Mode

URL_ENV, KEY_ENV = "OCR_GATEWAY_URL", "OCR_GATEWAY_KEY"
DEFAULT_URL = "http://127.0.0.1:8080"
FORMATS = ["json", "markdown", "text", "hocr", "alto", "pdf"]


def cmd_submit(args: argparse.Namespace) -> int:
    key = args.key or os.environ.get(KEY_ENV, "")
    if not key:
        raise CLIError(f"an API key is needed: --key KEY or ${KEY_ENV}")
    fmt: Format = args.format
    if fmt == "pdf" and not args.out:
        raise CLIError("--format pdf writes a binary file: name it with --out FILE")
    remote = args.file.startswith(("http://", "https://"))
    if not remote and not Path(args.file).is_file():
        raise CLIError(f"cannot read {args.file}: no such file")
    mode: Mode | None = args.mode
    try:
        with Client(args.url or os.environ.get(URL_ENV) or DEFAULT_URL, key) as client:
            job = client.submit(
                None if remote else args.file,
                url=args.file if remote else None,
                page_ranges=args.page_ranges,
                mode=mode,
                max_credits=args.max_credits,
                language=args.language,
                idempotency_key=args.idempotency_key,
            )
            if not args.wait:
                sys.stdout.write(msgspec.json.encode(job).decode() + "\n")
                return 0
            done = client.wait(job.jobId, timeout_s=args.timeout)
            body = client.result(job.jobId, fmt)
    except ApiError as exc:
        raise CLIError(f"{exc.code}: {exc.message}") from exc
    except TimeoutError as exc:
        raise CLIError(str(exc)) from exc
    except httpx.TransportError as exc:
        raise CLIError(f"cannot reach the gateway: {exc}") from exc
    except OSError as exc:
        raise CLIError(f"cannot read {args.file}: {exc}") from exc
    if args.out:
        Path(args.out).write_bytes(body)
    else:
        sys.stdout.write(body.decode())
    for page in done.results:
        if page.error is not None:
            sys.stderr.write(f"page {page.page_number}: {page.error.code}: {page.error.message}\n")
    return 0 if done.status == "completed" else 1


def add_submit_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    submit = sub.add_parser("submit", help="send a file to a running gateway (the Python client)")
    submit.add_argument("--config", default=argparse.SUPPRESS)
    submit.add_argument("file", help="a path, or an http(s) URL the gateway fetches")
    submit.add_argument("--url", help=f"the gateway (default ${URL_ENV} or {DEFAULT_URL})")
    submit.add_argument("--key", help=f"the API key (default ${KEY_ENV})")
    submit.add_argument("--wait", action="store_true", help="wait for the job, print its result")
    submit.add_argument("--format", choices=FORMATS, default="json", help="the result's format")
    submit.add_argument("--out", help="write the result to this file instead of stdout")
    submit.add_argument("--mode", choices=["auto", "fast", "accurate"])
    submit.add_argument("--max-credits", type=int)
    submit.add_argument("--page-ranges", help='JSON, e.g. [{"start":1,"end":3}]')
    submit.add_argument("--language", help="auto (default), a name (french) or a code (fr)")
    submit.add_argument("--idempotency-key", help="default: one generated for this submit")
    submit.add_argument("--timeout", type=float, help="seconds --wait waits at most")
    submit.set_defaults(func=cmd_submit)
