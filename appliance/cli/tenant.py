"""``towerbox tenant ...``: the node's tenants, their quotas and grants.

    towerbox tenant create acme --description "ACME AI" --label tier=gold
    towerbox tenant show acme
    towerbox tenant set-quota acme vms=20 memory_mib=unlimited gpu_slices.1g.10gb=2
    towerbox tenant grant acme pinned_cores=8 isolated_cores hugepages.1G=16384 \\
        sriov_pfs.ens1f1=2 pci_devices=0000:5e:00.0 numa_node_choice
    towerbox tenant revoke acme isolated_cores sriov_pfs.ens1f1 pci_devices=0000:5e:00.0

A count of ``unlimited`` is -1; revoking a count sets it to 0.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from appliance.cli.connect import json_flag, node_call, show_plain
from towerbox_core.commands import CommandGroup, out, table
from towerbox_core.errors import InvalidInput
from towerbox_core.names import parse_label

if TYPE_CHECKING:
    from towerbox_core.sync_client import ApiClient

_MAPS = ("gpu_slices", "hugepages", "sriov_pfs")
_FLAGS = ("isolated_cores", "numa_node_choice")


def _path(name: str, part: str = "") -> str:
    return f"/api/v1/tenants/{quote(name, safe='')}" + (f"/{part}" if part else "")


def _count(key: str, text: str) -> int:
    if text == "unlimited":
        return -1
    try:
        return int(text)
    except ValueError as err:
        raise InvalidInput(
            f"{key}: {text!r} is not a whole number or 'unlimited'", code="invalid_argument"
        ) from err


def _put(body: dict[str, Any], key: str, value: Any) -> None:
    head, dot, tail = key.partition(".")
    if head in _MAPS and dot and tail:
        body.setdefault(head, {})[tail] = value
    elif head in _MAPS:
        raise InvalidInput(f"{key}: name the entry, as in {head}.NAME", code="invalid_argument")
    else:
        body[key] = value


def create_body(name: str, description: str, labels: list[str]) -> dict[str, Any]:
    """``tenant create`` with its ``--label KEY=VALUE`` words."""
    return {
        "name": name,
        "description": description,
        "labels": dict(parse_label(text) for text in labels),
    }


def quota_body(items: list[str]) -> dict[str, Any]:
    """``KEY=COUNT`` words as a quotas update."""
    body: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise InvalidInput(f"{item!r} is not KEY=COUNT", code="invalid_argument")
        _put(body, key, _count(key, value))
    return body


def grant_body(items: list[str], pci: list[str], *, revoke: bool) -> dict[str, Any]:
    """Grant or revoke words as a grants update; ``pci`` is the current device list."""
    body: dict[str, Any] = {}
    devices = list(pci)
    for item in items:
        key, eq, value = item.partition("=")
        if key == "pci_devices":
            if not eq:
                raise InvalidInput("pci_devices=ADDRESS", code="invalid_argument")
            devices = [d for d in devices if d != value] if revoke else [*devices, value]
            body["pci_devices"] = devices
        elif key in _FLAGS:
            body[key] = not revoke
        elif revoke:
            _put(body, key, 0)
        elif eq:
            _put(body, key, _count(key, value))
        else:
            raise InvalidInput(f"{item!r} is not KEY=COUNT", code="invalid_argument")
    return body


def _register(parser: argparse.ArgumentParser) -> None:
    tenant = parser.add_subparsers(dest="tenant_command", required=True)
    json_flag(tenant.add_parser("list", help="list tenants"))
    create = tenant.add_parser("create", help="create a tenant")
    create.add_argument("tenant_name")
    create.add_argument("--description", default="")
    create.add_argument(
        "--label", action="append", default=[], metavar="KEY=VALUE", help="repeatable"
    )
    json_flag(create)
    show = tenant.add_parser("show", help="a tenant's quotas, grants and usage")
    show.add_argument("tenant_name")
    json_flag(show)
    for name, help_text, metavar in (
        ("set-quota", "change quotas (infra-admin)", "KEY=COUNT"),
        ("grant", "grant beyond shared VMs (infra-admin)", "GRANT[=VALUE]"),
        ("revoke", "revoke grants (infra-admin)", "GRANT"),
    ):
        sub = tenant.add_parser(name, help=help_text)
        sub.add_argument("tenant_name")
        sub.add_argument("items", nargs="+", metavar=metavar)
        json_flag(sub)


def _call(args: argparse.Namespace, c: ApiClient) -> Any:
    command = args.tenant_command
    if command == "create":
        body = create_body(args.tenant_name, args.description, args.label)
        return c.request("POST", "/api/v1/tenants", json=body)
    if command == "show":
        return c.request("GET", _path(args.tenant_name))
    if command == "set-quota":
        return c.request("PUT", _path(args.tenant_name, "quotas"), json=quota_body(args.items))
    if command in ("grant", "revoke"):
        pci: list[str] = []
        if any(i.startswith("pci_devices=") for i in args.items):
            pci = c.request("GET", _path(args.tenant_name))["grants"]["pci_devices"]
        body = grant_body(args.items, pci, revoke=command == "revoke")
        return c.request("PUT", _path(args.tenant_name, "grants"), json=body)
    return c.request("GET", "/api/v1/tenants")


def _limit(value: int) -> str:
    return "unlimited" if value == -1 else str(value)


def usage_rows(detail: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per quota and granted count: what is used against what is allowed."""
    quotas, grants, usage = detail["quotas"], detail["grants"], detail["usage"]
    rows = []
    for key, limit in quotas.items():
        if isinstance(limit, dict):
            for entry in sorted(set(limit) | set(usage.get(key, {}))):
                used = usage.get(key, {}).get(entry, 0)
                rows.append(
                    {"limit": f"{key}.{entry}", "used": used, "max": _limit(limit.get(entry, 0))}
                )
        else:
            rows.append({"limit": key, "used": usage.get(key, 0), "max": _limit(limit)})
    rows.append(
        {
            "limit": "grants.pinned_cores",
            "used": usage["pinned_cores"],
            "max": _limit(grants["pinned_cores"]),
        }
    )
    for key in ("hugepages", "sriov_pfs"):
        for entry in sorted(set(grants[key]) | set(usage[key])):
            rows.append(
                {
                    "limit": f"grants.{key}.{entry}",
                    "used": usage[key].get(entry, 0),
                    "max": _limit(grants[key].get(entry, 0)),
                }
            )
    return rows


def _show(args: argparse.Namespace, result: Any) -> None:
    if args.tenant_command not in ("show", "set-quota", "grant", "revoke"):
        show_plain(args, result)
        return
    if args.tenant_command == "show":
        out(f"tenant {result['name']} (quotas: {result['quotas_source']})")
        if result.get("labels"):
            out("labels: " + ", ".join(f"{k}={v}" for k, v in result["labels"].items()))
        out(table(usage_rows(result), ("limit", "used", "max")))
        grants = result["grants"]
        flags = [k for k in _FLAGS if grants[k]]
        out(
            f"granted: {', '.join(flags) or 'no flags'}; PCI devices: "
            f"{', '.join(grants['pci_devices']) or 'none'}"
        )
    else:
        out(f"tenant {result['tenant']} updated")
    over = result["over"]
    if over:
        out(f"over its limits: {', '.join(over)} (new allocations of these are refused)")


group = CommandGroup(
    "tenant",
    "tenants, their quotas and grants",
    _register,
    lambda a: node_call(a, lambda c: _call(a, c), _show),
)
