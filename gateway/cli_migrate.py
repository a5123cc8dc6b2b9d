"""`ocr-gateway migrate-to URL`: move an embedded installation (the data folder's SQLite file and
its upload files) into an empty PostgreSQL database, for nodes to share. Stop the server first;
the copying is the store's (`gateway.store.transfer`)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from gateway.cli_common import CLIError, settings_of
from gateway.errors import GatewayError
from gateway.store import transfer


def cmd_migrate_to(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    def warn(missing: transfer.MissingUpload) -> None:
        print(
            f"warning: job {missing.job_id}: its upload {missing.path} is missing; its results"
            " are moved, but its pages cannot be previewed or read again",
            file=sys.stderr,
        )

    try:
        report = asyncio.run(transfer.move(settings, args.url, on_missing=warn))
    except transfer.TransferError as exc:
        raise CLIError(f"nothing moved: {exc}") from exc
    except GatewayError as exc:
        raise CLIError(f"nothing moved: {exc.message}") from exc
    print(f"moved {report.source} -> {report.target}")
    for table, rows in report.rows.items():
        print(f"  {table:<18} {rows:>9} rows")
    print(
        f"  {'uploads':<18} {report.uploads:>9} copied ({report.upload_bytes} bytes),"
        f" {len(report.missing)} missing"
    )
    print(
        f"checked: row counts equal; {report.tenants_checked} tenants' balances and ledgers"
        " equal, available + reserved == grants - charges"
    )
    print("next: start the nodes with database.url (or OCR_GATEWAY_DATABASE_URL) set to the target")
    return 0


def add_migrate_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    migrate = sub.add_parser(
        "migrate-to",
        help="move this data folder's database and uploads into an empty PostgreSQL database"
        " (stop the server first)",
    )
    migrate.add_argument("--config", default=argparse.SUPPRESS)
    migrate.add_argument("url", help="postgresql://user:password@host:5432/database, empty")
    migrate.set_defaults(func=cmd_migrate_to)
