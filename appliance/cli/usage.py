"""``towerbox usage`` and ``towerbox prices``: what tenants used and what it costs.

towerbox usage                                  # this month until now, every tenant
towerbox usage --tenant acme --group-by day --from 2026-11-01T00:00:00Z
towerbox usage --csv > november.csv
towerbox prices show
towerbox prices add prices.json                 # a new version (infra-admin)
towerbox prices remove 2026-12-01T00:00:00Z     # withdraw one not yet in effect
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from appliance.cli.confirm import confirm, yes_flag
from appliance.cli.connect import json_arg, json_flag, node_call, show_plain
from towerbox_core.commands import EXIT_USAGE, CommandGroup, fail, out, table

if TYPE_CHECKING:
    from towerbox_core.sync_client import ApiClient

_COLUMNS = ("tenant", "resource", "period", "quantity", "unit", "cost", "currency")


def _usage_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", help="one tenant (default: all you may see)")
    parser.add_argument("--from", dest="from_", help="ISO time on the hour (default: month start)")
    parser.add_argument("--to", help="ISO time on the hour (default: now)")
    parser.add_argument("--group-by", choices=("hour", "day", "month", "total"), default="total")
    parser.add_argument("--csv", action="store_true", help="print CSV")
    json_flag(parser)


def _params(args: argparse.Namespace) -> dict[str, str]:
    wanted = {"tenant": args.tenant, "from": args.from_, "to": args.to, "group_by": args.group_by}
    return {k: v for k, v in wanted.items() if v is not None}


def _show_usage(args: argparse.Namespace, result: Any) -> None:
    if isinstance(result, str):
        sys.stdout.write(result)
    elif args.json or not isinstance(result, dict):
        show_plain(args, result)
    else:
        rows = [{**line, "tenant": line["tenant"] or "(node)"} for line in result["lines"]]
        out(table(rows, _COLUMNS))
        if result["total_cost"] is not None:
            out(f"total: {result['total_cost']} {result['currency']}")


def _usage(args: argparse.Namespace) -> int:
    path = "/api/v1/usage.csv" if args.csv else "/api/v1/usage"

    def call(c: ApiClient) -> Any:
        return c.request("GET", path, params=_params(args))

    return node_call(args, call, _show_usage)


def _prices_args(parser: argparse.ArgumentParser) -> None:
    cmds = parser.add_subparsers(dest="prices_command", required=True)
    json_flag(cmds.add_parser("show", help="the price book's versions"))
    add = cmds.add_parser("add", help="add a version from a JSON file ('-': stdin)")
    add.add_argument("file")
    json_flag(add)
    remove = cmds.add_parser("remove", help="withdraw a version not yet in effect")
    remove.add_argument("effective_from", help="the version's effective_from, as shown")
    json_flag(remove)
    yes_flag(remove)


def _prices(args: argparse.Namespace) -> int:
    if args.prices_command == "show":
        return node_call(args, lambda c: c.request("GET", "/api/v1/prices"))
    if args.prices_command == "remove":
        path = f"/api/v1/prices/{quote(args.effective_from, safe='')}"

        def remove(c: ApiClient) -> Any:
            confirm(args, f"withdraw the price book version of {args.effective_from}")
            return c.request("DELETE", path)

        return node_call(args, remove)
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    except OSError as err:
        return fail("unreadable_file", f"cannot read {args.file}: {err.strerror}", exit=EXIT_USAGE)
    return node_call(
        args, lambda c: c.request("POST", "/api/v1/prices", json=json_arg(text, args.file))
    )


usage = CommandGroup("usage", "usage and cost per tenant, from the journal", _usage_args, _usage)
prices = CommandGroup("prices", "the node's price book", _prices_args, _prices)
