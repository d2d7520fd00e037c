"""``towerbox user ...``: the node's users (infra-admins: all; tenant-admins: their own)."""

from __future__ import annotations

import argparse
import secrets
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from appliance.cli.confirm import confirm, yes_flag
from appliance.cli.connect import json_flag, node_call, show_plain
from towerbox_core.commands import CommandGroup, out, table

if TYPE_CHECKING:
    from towerbox_core.sync_client import ApiClient

_ROLES = ("infra-admin", "tenant-admin", "tenant-user", "viewer")


def _register(parser: argparse.ArgumentParser) -> None:
    user = parser.add_subparsers(dest="user_command", required=True)
    json_flag(user.add_parser("list", help="list users"))
    create = user.add_parser(
        "create", help="create a user; prints a new random password unless given one"
    )
    create.add_argument("username")
    create.add_argument("--role", choices=_ROLES, required=True)
    create.add_argument("--tenant", help="the user's tenant (a tenant-admin's own by default)")
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    json_flag(create)
    delete = user.add_parser("delete", help="remove a user and its tokens")
    delete.add_argument("username")
    yes_flag(delete)
    json_flag(delete)


def _call(args: argparse.Namespace, c: ApiClient) -> Any:
    if args.user_command == "list":
        return c.request("GET", "/api/v1/users")
    if args.user_command == "delete":
        confirm(args, f"delete user {args.username} and its tokens")
        return c.request("DELETE", f"/api/v1/users/{quote(args.username, safe='')}")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        generated = False
    else:
        password = secrets.token_urlsafe(18)
        generated = True
    body = {"username": args.username, "password": password, "role": args.role}
    if args.tenant is not None:
        body["tenant"] = args.tenant
    made: dict[str, Any] = c.request("POST", "/api/v1/users", json=body)
    if generated:
        # Shown once: the node keeps only its hash.
        made["password"] = password
    return made


def _show(args: argparse.Namespace, result: Any) -> None:
    if isinstance(result, list):
        out(table(result, ("username", "role", "tenant", "disabled")))
    elif isinstance(result, dict) and "password" in result:
        out(f"user {result['username']} ({result['role']}) created; password: {result['password']}")
    else:
        show_plain(args, result)


group = CommandGroup(
    "user",
    "users of the node and its tenants",
    _register,
    lambda a: node_call(a, lambda c: _call(a, c), _show),
)
