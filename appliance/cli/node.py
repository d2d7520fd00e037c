"""``towerbox host|catalog|health|journal|token``: one-call node commands."""

from __future__ import annotations

import argparse
from typing import Any

from appliance.cli.connect import json_flag, node_call, show_plain
from towerbox_core.commands import CommandGroup, journal_table, out, table


def _get(path: str, show: Any = show_plain) -> Any:
    return lambda a: node_call(a, lambda c: c.request("GET", path), show)


def _catalog_show(args: argparse.Namespace, result: Any) -> None:
    if isinstance(result, list):
        out(table(result, ("name", "role", "version", "description")))
    else:
        show_plain(args, result)


def _journal_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--after", type=int, default=0)
    parser.add_argument("--limit", type=int, default=50)
    json_flag(parser)


def _journal_show(args: argparse.Namespace, result: Any) -> None:
    if isinstance(result, dict) and "entries" in result:
        out(journal_table(result["entries"]))
    else:
        show_plain(args, result)


def _journal(args: argparse.Namespace) -> int:
    params = {"after": args.after, "limit": args.limit}
    return node_call(
        args, lambda c: c.request("GET", "/api/v1/journal", params=params), _journal_show
    )


def _token_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("token_name")
    json_flag(parser)


def _token(args: argparse.Namespace) -> int:
    body = {"name": args.token_name}
    return node_call(args, lambda c: c.request("POST", "/api/v1/tokens", json=body))


host = CommandGroup("host", "host inventory", json_flag, _get("/api/v1/host"))
catalog = CommandGroup(
    "catalog", "appliance catalog", json_flag, _get("/api/v1/catalog", _catalog_show)
)
health = CommandGroup("health", "daemon health", json_flag, _get("/healthz"))
journal = CommandGroup("journal", "the node's journal", _journal_args, _journal)
token = CommandGroup("token", "create an API token for yourself", _token_args, _token)
