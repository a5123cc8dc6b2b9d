"""`ocr-gateway serve` and `ocr-gateway worker`: the two kinds of node.

`serve` runs the HTTP API with page-reading workers in the same process (the embedded default);
`serve --workers 0` runs the API alone, and `worker` reads pages alone, with no HTTP. Any number
of each share one PostgreSQL database (`database.url`); with SQLite there is one `serve`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import msgspec
import structlog

from gateway.cli_common import CLIError, settings_of
from gateway.config import ConfigError, Settings

log = structlog.get_logger(__name__)


def _with_workers(settings: Settings, workers: int | None) -> Settings:
    if workers is None or workers == 0:
        return settings
    if workers < 0:
        raise CLIError("--workers must be >= 0")
    return msgspec.structs.replace(
        settings, worker=msgspec.structs.replace(settings.worker, processes=workers)
    )


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.app import create_app
    from gateway.logs import configure_logging

    settings = _with_workers(settings_of(args), args.workers)
    configure_logging(settings.logging)
    try:
        app = create_app(settings, "api" if args.workers == 0 else "api+worker")
    except ConfigError as exc:  # e.g. a compat surface's prefix colliding with another route
        raise CLIError(str(exc)) from exc
    uvicorn.run(
        app,
        host=args.host or settings.server.host,
        port=args.port or settings.server.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from gateway.logs import configure_logging

    settings = _with_workers(settings_of(args), args.workers)
    if args.workers == 0:
        raise CLIError("a worker node needs at least one worker (--workers >= 1)")
    configure_logging(settings.logging)
    if settings.database.url is None:
        log.warning(
            "worker_on_sqlite",
            hint="a worker node shares the queue through PostgreSQL (database.url); on SQLite"
            " it only reads this data folder's queue, which `serve` already does",
        )
    asyncio.run(run_worker(settings))
    return 0


async def run_worker(settings: Settings) -> None:
    """Read pages until SIGTERM or SIGINT; the page in hand goes back to the queue."""
    from gateway.services import Services

    services = Services(settings, "worker")
    await services.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    log.info(
        "worker_node_started",
        node=services.node.id,
        workers=services.node.workers,
        database=services.db.describe(),
    )
    try:
        await stopping.wait()
    finally:
        await services.stop()
        log.info("worker_node_stopped", node=services.node.id)


def add_node_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run the HTTP gateway (with its page-reading workers)")
    serve.add_argument("--config", default=argparse.SUPPRESS)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--workers",
        type=int,
        help="page-reading processes (default: worker.processes); 0: the API alone",
    )
    serve.set_defaults(func=cmd_serve)
    worker = sub.add_parser("worker", help="read pages from the shared queue, without HTTP")
    worker.add_argument("--config", default=argparse.SUPPRESS)
    worker.add_argument("--workers", type=int, help="processes (default: worker.processes)")
    worker.set_defaults(func=cmd_worker)
