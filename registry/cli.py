"""``towerbox registry ...``: serve the registry and administer it on its own host.

The administration commands open the registry database directly, as the server
does (same config, same services), so they work while the server is down too.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from towerbox_core.commands import CommandGroup, journal_table, report, table

# Kept here, not imported: `towerbox registry` loads cli_provisioning only when parsing.
PROVISIONING_COMMANDS = ("provisioning", "site-identity", "site-rebind")
# Commands whose code lives in a module of their own, imported only when they run.
_DELEGATES = {
    "blob": "registry.cli_blobs:blob_command",
    "versions": "registry.cli_versions:versions_command",
    "rollout": "registry.cli_rollouts:rollout_command",
    **dict.fromkeys(PROVISIONING_COMMANDS, "registry.cli_provisioning:run"),
}

if TYPE_CHECKING:
    from registry.context import Registry


def _register(reg: argparse.ArgumentParser) -> None:
    """The ``registry`` group's arguments."""
    reg.add_argument(
        "--config",
        dest="registry_config",
        type=Path,
        help="registry config (default $TOWERBOX_REGISTRY_CONFIG or /etc/towerbox/registry.toml)",
    )
    cmds = reg.add_subparsers(dest="registry_command", required=True)
    serve = cmds.add_parser("serve", help="run the registry API (uvicorn)")
    serve.add_argument("--workers", type=int, help="worker processes (PostgreSQL: several)")
    cmds.add_parser("migrate", help="create or upgrade the database schema")

    create = cmds.add_parser("site-create", help="create a site; prints its enrollment token")
    create.add_argument("name")
    create.add_argument("--region", default="")
    create.add_argument("--label", action="append", default=[], help="key=value, repeatable")
    create.add_argument("--ttl", type=int, help="token lifetime in seconds")
    token = cmds.add_parser("token", help="a new one-time enrollment token for a site")
    token.add_argument("name")
    token.add_argument("--ttl", type=int, help="token lifetime in seconds")
    sites = cmds.add_parser("sites", help="list sites with their status")
    sites.add_argument("--status", choices=("pending", "online", "stale", "offline"))
    sites.add_argument("--label", action="append", default=[], help="key=value, repeatable")
    site = cmds.add_parser("site", help="one site in detail")
    site.add_argument("name")
    journal = cmds.add_parser("journal", help="a site's journal as the registry holds it")
    journal.add_argument("name")
    journal.add_argument("--after", type=int, default=0, help="entries after this seq")
    journal.add_argument("--limit", type=int, default=50)
    journal.add_argument("--epoch", type=int, help="an ended journal epoch (default: current)")
    usage = cmds.add_parser("usage", help="usage per site, tenant and resource, rated")
    usage.add_argument("--site", help="one site (default: every site)")
    usage.add_argument("--tenant", help="one tenant ('' for the nodes' own)")
    usage.add_argument("--from", dest="from_", help="on the hour, UTC (default: month start)")
    usage.add_argument("--to", help="on the hour, UTC (default: now)")
    usage.add_argument("--group-by", default="total", choices=("hour", "day", "month", "total"))
    usage.add_argument("--csv", action="store_true", help="print CSV")
    versions = cmds.add_parser("versions", help="versions the sites run, per component")
    cmds.add_parser("admin-password", help="set a new random admin password (file, 0600)")
    blob = cmds.add_parser("blob", help="content-addressed files the registry serves to sites")
    blob_cmds = blob.add_subparsers(dest="blob_command", required=True)
    upload = blob_cmds.add_parser("upload", help="store a file under its sha256")
    upload.add_argument("file", type=Path)
    upload.add_argument("--name", help="what to call it (default: the file's name)")
    blob_list = blob_cmds.add_parser("list", help="the stored blobs")
    remove = blob_cmds.add_parser("remove", help="remove a blob; sites can no longer fetch it")
    remove.add_argument("sha256")
    from registry.cli_provisioning import register as register_provisioning

    provisioning = register_provisioning(cmds)
    for parser in (
        create,
        token,
        sites,
        site,
        journal,
        usage,
        upload,
        blob_list,
        versions,
        *provisioning,
    ):
        parser.add_argument("--json", action="store_true", help="print JSON")
    from registry.cli_rollouts import add_parser as add_rollout_parser

    add_rollout_parser(cmds)


def _handle(args: argparse.Namespace) -> int:
    from registry.config import load_config
    from registry.context import build_registry
    from towerbox_core.errors import TowerboxError

    try:
        cfg = load_config(args.registry_config)
        if args.registry_command == "serve":
            from registry.server import serve

            return serve(cfg, args.workers, args.registry_config)
        registry = build_registry(cfg)
        try:
            result = _run(args, registry)
        finally:
            registry.db.close()
    except TowerboxError as err:
        return report(err)
    _show(args, result)
    return 0


def _run(args: argparse.Namespace, registry: Registry) -> Any:
    from towerbox_core.names import parse_label

    command = args.registry_command
    if command == "migrate":
        return "database at the current schema version\n"
    if command == "site-create":
        labels = dict(parse_label(text) for text in args.label)
        return registry.sites.create(args.name, args.region, labels, args.ttl)
    if command == "token":
        return registry.sites.new_enrollment_token(args.name, args.ttl)
    if command == "sites":
        return registry.sites.search(args.status, args.label, None, 100000, 0).sites
    if command in (
        "site",
        "journal",
        "usage",
        "blob",
        "versions",
        "rollout",
        *PROVISIONING_COMMANDS,
    ):
        return _reads(args, registry)
    path = registry.cfg.admin_password_file
    registry.operators.reset_password("admin", path)
    return f"new admin password written to {path}; admin login tokens revoked\n"


def _reads(args: argparse.Namespace, registry: Registry) -> Any:
    from towerbox_core.errors import InvalidInput

    delegate = _DELEGATES.get(args.registry_command)
    if delegate is not None:
        module, function = delegate.split(":")
        return getattr(importlib.import_module(module), function)(args, registry)
    if args.registry_command == "usage":
        return _usage(args, registry)
    if args.registry_command == "site":
        return registry.sites.detail(registry.sites.get(args.name))
    if not 1 <= args.limit <= 1000:
        raise InvalidInput("--limit must be 1 to 1000", code="invalid_limit", field="limit")
    if args.epoch is not None:
        return registry.provisioning.journal(args.name, args.epoch, max(0, args.after), args.limit)
    return registry.fleet.journal(args.name, max(0, args.after), args.limit)


def _usage(args: argparse.Namespace, registry: Registry) -> Any:
    from towerbox_core.api.usage import FLEET_USAGE_CSV_COLUMNS, usage_csv

    found = registry.fleet_usage(args.site, args.tenant, args.from_, args.to, args.group_by)
    if args.csv:
        return usage_csv(found.lines, FLEET_USAGE_CSV_COLUMNS)
    if args.json:
        return found
    columns = ("site", "tenant", "resource", "period", "quantity", "unit", "cost", "currency")
    lines = msgspec.to_builtins(found.lines)
    total = "" if found.total_cost is None else f"total: {found.total_cost} {found.currency}\n"
    return f"{found.from_} to {found.to}\n" + table(lines, columns) + "\n" + total


def _show(args: argparse.Namespace, result: Any) -> None:
    if isinstance(result, str):
        sys.stdout.write(result)
        return
    result = msgspec.to_builtins(result)
    if isinstance(result, dict) and "entries" in result and not args.json:
        sys.stdout.write(journal_table(result["entries"]) + "\n")
    elif getattr(args, "json", False) or not isinstance(result, list):
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        columns = ("name", "region", "status", "last_contact", "acked_seq")
        sys.stdout.write(table(result, columns) + "\n")


group = CommandGroup(
    "registry", "the central fleet registry", _register, _handle, node_options=False
)
