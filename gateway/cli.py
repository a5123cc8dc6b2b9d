"""`ocr-gateway`: serve, manage tenants, read a file locally, benchmark."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import msgspec

from gateway.config import ConfigError, Settings, load_settings


class CLIError(Exception):
    exit_code = 2


def _settings(args: argparse.Namespace) -> Settings:
    try:
        return load_settings(Path(args.config) if args.config else _default_config())
    except ConfigError as exc:
        raise CLIError(str(exc)) from exc


def _default_config() -> Path | None:
    path = Path("config.yaml")
    return path if path.is_file() else None


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.app import create_app
    from gateway.logs import configure_logging

    settings = _settings(args)
    configure_logging(settings.logging)
    app = create_app(settings)
    uvicorn.run(app, host=args.host or settings.server.host, port=args.port or
                settings.server.port, log_config=None, access_log=False,
                timeout_graceful_shutdown=10)
    return 0


def cmd_tenants_create(args: argparse.Namespace) -> int:
    from gateway.db import Database
    from gateway.tenants import Plan, create_tenant

    settings = _settings(args)

    async def create() -> tuple[str, str]:
        db = Database(settings.database_path)
        await db.open()
        try:
            tenant, key = await create_tenant(db, args.name, Plan(args.plan), args.credits)
        finally:
            await db.close()
        return tenant.id, key

    tenant_id, key = asyncio.run(create())
    print(f"tenant {tenant_id} ({args.name}, plan {args.plan}, {args.credits} credits)")
    print("API key (shown once, stored only as a hash):")
    print(key)
    return 0


def cmd_ocr(args: argparse.Namespace) -> int:
    from gateway.documents import detect_kind, inspect_document
    from gateway.errors import DocumentError, PageError
    from gateway.pipeline import PageEngine, PageTask
    from gateway.results import failed_page
    from gateway.submissions import parse_page_ranges

    settings = _settings(args)
    if args.provider:
        if args.provider not in settings.providers:
            raise CLIError(f"unknown provider {args.provider!r}")
        settings = msgspec.structs.replace(
            settings, pipeline=msgspec.structs.replace(settings.pipeline,
                                                       provider=args.provider))
    path = Path(args.file)
    try:
        head = path.open("rb").read(2048)
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror}") from exc
    kind = detect_kind(head)
    if kind is None:
        raise CLIError(f"{path}: not a supported document type")
    try:
        info = inspect_document(path, kind, settings.limits.max_pixels_per_page)
        pages = parse_page_ranges(args.page_ranges, info.page_count)
    except DocumentError as exc:
        raise CLIError(f"{path}: {exc.message}") from exc
    engine = PageEngine(settings)
    results = []
    for number in pages:
        try:
            results.append(engine.read_page(PageTask(path=str(path), kind=kind,
                                                     page_number=number)))
        except PageError as exc:
            results.append(failed_page(number, exc.detail()))
    if args.format == "json":
        print(msgspec.json.format(msgspec.json.encode(results), indent=2).decode())
    elif args.format == "markdown":
        print("\n\n---\n\n".join(r.raw_markdown for r in results))
    else:
        print("\n\f\n".join("\n\n".join(b.text for b in r.content_blocks) for r in results))
    failed = [r for r in results if r.status == "failed"]
    for r in failed:
        assert r.error is not None
        print(f"page {r.page_number}: {r.error.code}: {r.error.message}", file=sys.stderr)
    return 1 if failed and len(failed) == len(results) else 0


def run_bench(argv: list[str], config: str | None) -> int:
    # The one place the product reaches into benchmarks/: the CLI entry point delegates to it.
    from benchmarks.cli import main as bench_main

    return bench_main([*argv, *(["--config", config] if config else [])])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocr-gateway", description=__doc__)
    parser.add_argument("--config", help="config file (default: ./config.yaml if present)")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP gateway")
    serve.add_argument("--config", default=argparse.SUPPRESS)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=cmd_serve)

    tenants = sub.add_parser("tenants", help="manage tenants")
    tenants_sub = tenants.add_subparsers(dest="tenants_command", required=True)
    create = tenants_sub.add_parser("create", help="create a tenant; prints its API key last")
    create.add_argument("--config", default=argparse.SUPPRESS)
    create.add_argument("--name", required=True)
    create.add_argument("--plan", required=True,
                        choices=["free", "starter", "professional", "business"])
    create.add_argument("--credits", type=int, required=True)
    create.set_defaults(func=cmd_tenants_create)

    ocr = sub.add_parser("ocr", help="read one file locally with the same pipeline, no server")
    ocr.add_argument("--config", default=argparse.SUPPRESS)
    ocr.add_argument("file")
    ocr.add_argument("--format", choices=["json", "markdown", "text"], default="markdown")
    ocr.add_argument("--provider", help="read every page with this configured provider")
    ocr.add_argument("--page-ranges", help='JSON, e.g. [{"start":1,"end":3}]')
    ocr.set_defaults(func=cmd_ocr)

    sub.add_parser("bench", help="benchmark providers on a corpus (ocr-gateway bench --help)",
                   add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    front = argparse.ArgumentParser(add_help=False)
    front.add_argument("--config")
    front.add_argument("command", nargs="?")
    known, rest = front.parse_known_args(argv)
    if known.command == "bench":  # its own parser owns every option after the word
        return run_bench(rest, known.config)
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except CLIError as exc:
        print(f"ocr-gateway: {exc}", file=sys.stderr)
        return exc.exit_code
    return code


if __name__ == "__main__":
    sys.exit(main())
