"""`ocr-gateway`: serve, manage tenants, read a file locally, benchmark."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Mapping
from importlib.metadata import EntryPoint, entry_points
from importlib.util import find_spec
from pathlib import Path
from typing import TypeVar

import msgspec

from gateway.config import ConfigError, Settings, load_settings
from gateway.errors import GatewayError
from gateway.store import tenants
from gateway.store.db import Database

T = TypeVar("T")
PLANS = ["free", "starter", "professional", "business"]
PLUGIN_GROUP = "ocr_gateway.commands"
# Subcommands that ship apart from the product, by entry point (the product never imports them):
# name -> (help, what to do when it is missing).
OPTIONAL_COMMANDS = {
    "bench": (
        "benchmark providers on a corpus",
        "it comes with the benchmarks package of a checkout: pip install -e '.[bench]'",
    ),
}


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
    uvicorn.run(
        app,
        host=args.host or settings.server.host,
        port=args.port or settings.server.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0


def _with_db(args: argparse.Namespace, action: Callable[[Database], Awaitable[T]]) -> T:
    """Run one store action against the configured SQLite file (server running or not)."""
    settings = _settings(args)

    async def run() -> T:
        db = Database(settings.database_path)
        await db.open()
        try:
            return await action(db)
        finally:
            await db.close()

    try:
        return asyncio.run(run())
    except GatewayError as exc:
        raise CLIError(exc.message) from exc


def _print_tenant(tenant: tenants.Tenant) -> None:
    print(
        f"{tenant.id}  {tenant.name}  plan={tenant.plan}  "
        f"available={tenant.credits_available}  reserved={tenant.credits_reserved}"
    )


def cmd_tenants_create(args: argparse.Namespace) -> int:
    tenant, key = _with_db(
        args, lambda db: tenants.create_tenant(db, args.name, args.plan, args.credits)
    )
    print(f"tenant {tenant.id} ({args.name}, plan {args.plan}, {args.credits} credits)")
    print("API key (shown once, stored only as a hash):")
    print(key)
    return 0


def cmd_tenants_list(args: argparse.Namespace) -> int:
    for tenant in _with_db(args, lambda db: tenants.list_tenants(db, args.limit, 0)):
        _print_tenant(tenant)
    return 0


def cmd_tenants_set_plan(args: argparse.Namespace) -> int:
    _print_tenant(_with_db(args, lambda db: tenants.set_plan(db, args.tenant, args.plan)))
    return 0


def cmd_tenants_grant(args: argparse.Namespace) -> int:
    _print_tenant(
        _with_db(args, lambda db: tenants.grant_credits(db, args.tenant, args.credits, args.note))
    )
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    info, key = _with_db(args, lambda db: tenants.create_key(db, args.tenant))
    print(f"key {info.id} for tenant {info.tenant_id} (shown once, stored only as a hash):")
    print(key)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    for key in _with_db(args, lambda db: tenants.list_keys(db, args.tenant)):
        state = f"revoked at {key.revoked_at}" if key.revoked_at else "active"
        print(f"{key.id}  {key.prefix}...  created {key.created_at}  {state}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    _with_db(args, lambda db: tenants.revoke_key(db, args.key_id))
    print(f"key {args.key_id} revoked")
    return 0


def cmd_ocr(args: argparse.Namespace) -> int:
    """Read a file with the server's pipeline, in this process, and write it in any result
    format (gateway.outputs); a binary format (pdf) goes to --out only."""
    import functools

    from gateway.errors import DocumentError
    from gateway.logs import configure_logging
    from gateway.outputs.formats import OutputFormat, write_text_format
    from gateway.outputs.pdf import Source, write_searchable_pdf
    from gateway.page_errors import PageError
    from gateway.results import failed_page
    from gateway.services import VERSION
    from gateway.work.documents import DocumentKind, detect_kind, inspect_document, render_page
    from gateway.work.inspection import parse_page_ranges
    from gateway.work.pipeline import PageEngine, PageTask

    fmt = OutputFormat(args.format)
    if fmt == OutputFormat.PDF and not args.out:
        raise CLIError("--format pdf writes a binary file: name it with --out FILE")
    settings = _settings(args)
    configure_logging(settings.logging)  # log lines to stderr: stdout carries the result
    if args.provider:
        if args.provider not in settings.providers:
            raise CLIError(f"unknown provider {args.provider!r}")
        settings = msgspec.structs.replace(
            settings, pipeline=msgspec.structs.replace(settings.pipeline, provider=args.provider)
        )
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
            results.append(
                engine.read_page(PageTask(path=str(path), kind=kind, page_number=number))
            )
        except PageError as exc:
            results.append(failed_page(number, exc.detail()))
    if fmt == OutputFormat.PDF:
        render = functools.partial(
            render_page,
            path,
            kind,
            dpi=settings.rendering.dpi,
            max_pixels=settings.limits.max_pixels_per_page,
        )
        source = Source(
            pdf_path=str(path) if kind == DocumentKind.PDF else None,
            render=render,
            lossy=kind == DocumentKind.JPEG,
        )
        write_searchable_pdf(results, args.out, source, producer=f"ocr-gateway {VERSION}")
    else:
        if fmt == OutputFormat.JSON:
            text = msgspec.json.format(msgspec.json.encode(results), indent=2).decode() + "\n"
        else:
            text = write_text_format(fmt, results, path.name, ("ocr-gateway", VERSION))
        if args.out:
            Path(args.out).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
    failed = [r for r in results if r.status == "failed"]
    for r in failed:
        assert r.error is not None
        print(f"page {r.page_number}: {r.error.code}: {r.error.message}", file=sys.stderr)
    return 1 if failed and len(failed) == len(results) else 0


def cmd_quote(args: argparse.Namespace) -> int:
    """Each page's tier, credits and reason, as the server would bill them (local providers)."""
    from gateway.errors import DocumentError
    from gateway.work.assess import plan_context
    from gateway.work.documents import detect_kind
    from gateway.work.inspection import prepare_in_worker
    from router.plan import plan_document
    from router.policy import Mode

    settings = _settings(args)
    plan = settings.plans.get(args.plan) if args.plan else None
    if args.plan and plan is None:
        raise CLIError(f"unknown plan {args.plan!r}; configured: {', '.join(settings.plans)}")
    path = Path(args.file)
    try:
        kind = detect_kind(path.open("rb").read(2048))
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror}") from exc
    if kind is None:
        raise CLIError(f"{path}: not a supported document type")
    max_pages = min(settings.limits.max_pages, plan.max_pages_per_document if plan else 10**9)
    try:
        prepared = prepare_in_worker(
            None, str(path), kind, args.page_ranges, max_pages, settings, phase=lambda _: None
        )
    except DocumentError as exc:
        raise CLIError(f"{path}: {exc.message}") from exc
    context = plan_context(
        settings,
        mode=Mode(args.mode),
        max_credits=args.max_credits,
        plan=args.plan,
        allowed_tiers=frozenset(plan.allowed_tiers) if plan else None,
    )
    planned = plan_document(prepared.evidence, settings.routing, context)
    if not planned.fits(args.max_credits):
        raise CLIError(f"max_credits {args.max_credits} is below the {planned.credits} needed")
    for number, route in zip(prepared.pages, planned.routes, strict=True):
        first = route.providers[0] if route.providers else "-"
        print(f"page {number:4d}  {route.tier.value:7s} {route.credits} credits  {first:10s}"
              f"  {route.reason}")  # fmt: skip
    print(f"total: {planned.credits} credits for {len(planned.routes)} pages")
    return 0


def plugin_commands() -> dict[str, EntryPoint]:
    """Subcommands that installed packages add through the `ocr_gateway.commands` entry points."""
    return {entry.name: entry for entry in entry_points(group=PLUGIN_GROUP)}


def run_plugin(
    name: str, argv: list[str], config: str | None, plugins: Mapping[str, EntryPoint]
) -> int:
    """Hand `argv` (plus the global --config) to the plugin's `main(argv) -> int`."""
    entry = plugins.get(name)
    if entry is None:
        raise CLIError(f"`{name}` is not installed: {OPTIONAL_COMMANDS[name][1]}")
    try:
        command = entry.load()
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if not missing or find_spec(missing) is not None:
            raise  # a broken import inside installed code, not a missing package
        hint = OPTIONAL_COMMANDS.get(name, ("", "install the package that provides it"))[1]
        raise CLIError(f"`{name}` cannot load {entry.value} ({exc}): {hint}") from exc
    code: int = command([*argv, *(["--config", config] if config else [])])
    return code


def _command(
    group: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    func: Callable[[argparse.Namespace], int],
    help_text: str,
) -> argparse.ArgumentParser:
    parser = group.add_parser(name, help=help_text)
    parser.add_argument("--config", default=argparse.SUPPRESS)
    parser.set_defaults(func=func)
    return parser


def build_parser(plugins: Mapping[str, EntryPoint] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocr-gateway", description=__doc__)
    parser.add_argument("--config", help="config file (default: ./config.yaml if present)")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP gateway")
    serve.add_argument("--config", default=argparse.SUPPRESS)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=cmd_serve)

    tenant_cmds = sub.add_parser("tenants", help="manage tenants").add_subparsers(
        dest="tenants_command", required=True
    )
    create = _command(
        tenant_cmds, "create", cmd_tenants_create, "create a tenant; prints its API key last"
    )
    create.add_argument("--name", required=True)
    create.add_argument("--plan", required=True, choices=PLANS)
    create.add_argument("--credits", type=int, required=True)
    listing = _command(tenant_cmds, "list", cmd_tenants_list, "list tenants, newest first")
    listing.add_argument("--limit", type=int, default=100)
    plan = _command(tenant_cmds, "set-plan", cmd_tenants_set_plan, "change a tenant's plan")
    plan.add_argument("tenant")
    plan.add_argument("plan", choices=PLANS)
    grant = _command(tenant_cmds, "grant", cmd_tenants_grant, "grant credits to a tenant")
    grant.add_argument("tenant")
    grant.add_argument("credits", type=int)
    grant.add_argument("--note", default="cli grant")

    key_cmds = sub.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    _command(
        key_cmds, "create", cmd_keys_create, "another API key for a tenant; printed last"
    ).add_argument("tenant")
    _command(key_cmds, "list", cmd_keys_list, "a tenant's keys").add_argument("tenant")
    _command(key_cmds, "revoke", cmd_keys_revoke, "revoke a key at once").add_argument("key_id")

    ocr = sub.add_parser("ocr", help="read one file locally with the same pipeline, no server")
    ocr.add_argument("--config", default=argparse.SUPPRESS)
    ocr.add_argument("file")
    ocr.add_argument(
        "--format",
        choices=["json", "markdown", "text", "hocr", "alto", "pdf"],
        default="markdown",
        help="what to write (pdf: a searchable PDF, needs --out)",
    )
    ocr.add_argument("--out", help="write the result to this file instead of stdout")
    ocr.add_argument("--provider", help="read every page with this configured provider")
    ocr.add_argument("--page-ranges", help='JSON, e.g. [{"start":1,"end":3}]')
    ocr.set_defaults(func=cmd_ocr)

    quote = sub.add_parser("quote", help="price a file as the server would bill it, no server")
    quote.add_argument("--config", default=argparse.SUPPRESS)
    quote.add_argument("file")
    quote.add_argument("--page-ranges", help='JSON, e.g. [{"start":1,"end":3}]')
    quote.add_argument("--mode", choices=["auto", "fast", "accurate"], default="auto")
    quote.add_argument("--max-credits", type=int)
    quote.add_argument("--plan", help="apply this plan's allowed tiers and page limit")
    quote.set_defaults(func=cmd_quote)

    plugins = plugin_commands() if plugins is None else plugins
    for name in sorted(OPTIONAL_COMMANDS.keys() | plugins.keys()):
        about = OPTIONAL_COMMANDS[name][0] if name in OPTIONAL_COMMANDS else "a plugin command"
        sub.add_parser(name, help=f"{about} (ocr-gateway {name} --help)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    front = argparse.ArgumentParser(add_help=False)
    front.add_argument("--config")
    front.add_argument("command", nargs="?")
    known, rest = front.parse_known_args(argv)
    plugins = plugin_commands()
    try:
        if known.command in OPTIONAL_COMMANDS or known.command in plugins:
            # A plugin's own parser owns every option after its name.
            return run_plugin(known.command, rest, known.config, plugins)
        args = build_parser(plugins).parse_args(argv)
        code: int = args.func(args)
    except CLIError as exc:
        print(f"ocr-gateway: {exc}", file=sys.stderr)
        return exc.exit_code
    return code


if __name__ == "__main__":
    sys.exit(main())
