"""API keys, for operators.

    csv-import-keys create --tenant NAME [--name LABEL] [--targets public.customers,sales.*]
    csv-import-keys list [--tenant NAME]
    csv-import-keys revoke KEY_ID
    csv-import-keys webhook --tenant NAME [--url URL | --no-url] [--new-secret]

`create` prints the key once, alone on stdout (`KEY=$(csv-import-keys create ...)`); only
its sha256 is stored, so a lost key cannot be shown again: make another and revoke the old
one. `webhook` sets the tenant's default webhook endpoint and makes its signing secret,
printed the same way, once (`--new-secret` replaces it; the old one stops at once).
`--targets` limits the key's tenant to some of the tables that IMPORT_TARGETS allows.
Exit codes: 0 done, 1 no such key or a bad argument, 2 the database is unreachable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine
from sqlalchemy.exc import SQLAlchemyError

from server.keys.keys import BadKeySpec, create_key, list_keys, revoke_key
from server.outbound import RefusedUrl, check_literal
from server.settings import Settings, get_settings
from server.targets import is_allowed
from server.webhooks import endpoints

console = Console(stderr=True)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="csv-import-keys", description=__doc__.split("\n\n")[0])
    commands = root.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="make a key and print it, once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", default="", help="a label: who or what uses the key")
    create.add_argument(
        "--targets",
        type=_split,
        help="comma-separated: table, schema.table "
        "or schema.*; default: every target IMPORT_TARGETS allows",
    )
    create.add_argument(
        "--operator",
        action="store_true",
        help="the key also sees the service itself (GET /workers)",
    )
    listing = commands.add_parser(
        "list", help="the keys, revoked ones too (never the keys themselves)"
    )
    listing.add_argument("--tenant")
    revoke = commands.add_parser("revoke", help="revoke a key for good")
    revoke.add_argument("key_id", type=int)
    webhook = commands.add_parser(
        "webhook", help="a tenant's webhook signing secret (printed once) and default endpoint"
    )
    webhook.add_argument("--tenant", required=True)
    endpoint = webhook.add_mutually_exclusive_group()
    endpoint.add_argument("--url", help="where the tenant's jobs post their end by default")
    endpoint.add_argument("--no-url", action="store_true", help="no default endpoint")
    webhook.add_argument(
        "--new-secret", action="store_true", help="replace the secret (the old one stops)"
    )
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = get_settings()
    engine = create_engine(settings.database_url)
    try:
        with engine.begin() as connection:
            return run(args, connection, settings)
    except BadKeySpec as error:
        console.print(f"[red]{error}")
        return 1
    except SQLAlchemyError as error:
        console.print(f"[red]cannot use the database (has `make setup` run?): {error}")
        return 2
    finally:
        engine.dispose()


def run(args: argparse.Namespace, connection: Any, settings: Settings) -> int:
    if args.command == "create":
        return create(connection, settings, args)
    if args.command == "webhook":
        return webhook(connection, settings, args)
    if args.command == "list":
        Console(width=None if sys.stdout.isatty() else 200).print(
            table(list_keys(connection, args.tenant))
        )
        return 0
    if revoke_key(connection, args.key_id):
        console.print(f"key {args.key_id} revoked")
        return 0
    console.print(f"[red]no key {args.key_id}, or it was revoked already")
    return 1


def create(connection: Any, settings: Settings, args: argparse.Namespace) -> int:
    tenant, targets = args.tenant, args.targets
    key_id, key = create_key(connection, tenant, args.name, targets, args.operator)
    closed = [
        target
        for target in targets or ()
        if not target.endswith(".*") and not is_allowed(target, settings.import_targets)
    ]
    if closed:
        console.print(
            f"[yellow]IMPORT_TARGETS does not allow {', '.join(closed)}: closed until it does"
        )
    role = " (operator)" if args.operator else ""
    console.print(f"key {key_id} for tenant {tenant!r}{role}; it is shown this once:")
    print(key)
    return 0


def webhook(connection: Any, settings: Settings, args: argparse.Namespace) -> int:
    if args.url is not None:
        try:
            check_literal(args.url, settings.outbound_allow_networks)
        except RefusedUrl as error:
            console.print(f"[red]{args.url}: {error}")
            return 1
    keep_url = args.url is None and not args.no_url
    secret = endpoints.configure(connection, args.tenant, args.url, keep_url, args.new_secret)
    found = endpoints.endpoint(connection, args.tenant)
    assert found is not None
    console.print(f"tenant {args.tenant!r}: default endpoint {found.default_url or '(none)'}")
    if secret is None:
        console.print("its signing secret is unchanged (--new-secret replaces it)")
        return 0
    console.print("its webhook signing secret; it is shown this once:")
    print(secret)
    return 0


def table(rows: Sequence[Any]) -> Table:
    view = Table(
        "id",
        "tenant",
        "name",
        "key starts",
        "targets",
        "operator",
        "created",
        "revoked",
        title="API keys",
    )
    for row in rows:
        view.add_row(
            str(row.id),
            row.tenant,
            row.name,
            row.prefix + "…",
            ", ".join(row.targets) if row.targets is not None else "(all allowed)",
            "yes" if row.operator else "",
            _when(row.created_at),
            _when(row.revoked_at),
        )
    return view


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else ""


if __name__ == "__main__":
    sys.exit(main())
