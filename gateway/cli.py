"""`ocr-gateway`: serve and worker nodes (`cli_nodes`), manage tenants, read a file locally
(`cli_local`), submit one to a running gateway (`cli_submit`), benchmark.

`CLIError` (from `cli_common`) stays importable from here."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Mapping
from importlib.metadata import EntryPoint, entry_points
from importlib.util import find_spec
from typing import TypeVar

from gateway.cli_common import CLIError as CLIError  # re-exported: callers and tests import it here
from gateway.cli_common import settings_of
from gateway.cli_local import add_local_commands
from gateway.cli_migrate import add_migrate_command
from gateway.cli_nodes import add_node_commands
from gateway.cli_submit import add_submit_command
from gateway.errors import GatewayError
from gateway.store import tenants
from gateway.store.db import Database, opened

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


def _with_db(args: argparse.Namespace, action: Callable[[Database], Awaitable[T]]) -> T:
    """Run one store action against the configured database (server running or not)."""
    settings = settings_of(args)

    async def run() -> T:
        async with opened(settings) as db:
            return await action(db)

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

    add_node_commands(sub)  # serve, worker

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

    add_local_commands(sub)  # ocr, quote
    add_submit_command(sub)  # submit, to a running gateway
    add_migrate_command(sub)  # migrate-to, SQLite to PostgreSQL

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
