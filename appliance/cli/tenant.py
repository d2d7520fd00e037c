"""``towerbox tenant ...``: the node's tenants."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from appliance.cli.connect import json_flag, node_call
from towerbox_core.commands import CommandGroup

if TYPE_CHECKING:
    from towerbox_core.client import ApiClient


def _register(parser: argparse.ArgumentParser) -> None:
    tenant = parser.add_subparsers(dest="tenant_command", required=True)
    json_flag(tenant.add_parser("list", help="list tenants"))
    create = tenant.add_parser("create", help="create a tenant")
    create.add_argument("tenant_name")
    create.add_argument("--description", default="")
    json_flag(create)


def _call(args: argparse.Namespace, c: ApiClient) -> Any:
    if args.tenant_command == "create":
        body = {"name": args.tenant_name, "description": args.description}
        return c.request("POST", "/api/v1/tenants", json=body)
    return c.request("GET", "/api/v1/tenants")


group = CommandGroup("tenant", "tenants", _register, lambda a: node_call(a, lambda c: _call(a, c)))
