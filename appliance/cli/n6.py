"""``towerbox n6 ...``: N6 trunks and tenant VNets."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from appliance.cli.confirm import confirm, yes_flag
from appliance.cli.connect import json_arg, json_flag, node_call, show_plain
from towerbox_core.commands import CommandGroup, out

if TYPE_CHECKING:
    from towerbox_core.sync_client import ApiClient

_BASE = "/api/v1/n6"


def _register(parser: argparse.ArgumentParser) -> None:
    n6 = parser.add_subparsers(dest="n6_command", required=True)
    for name, help_text in (
        ("trunks", "list trunks"),
        ("vnets", "list VNets"),
        ("plan", "what apply would change"),
        ("apply", "apply the VNets"),
        ("state", "VNets with traffic and attached VMs"),
        ("status", "N6 backends, OVS datapaths and the last apply's result"),
    ):
        cmd = n6.add_parser(name, help=help_text)
        json_flag(cmd)
        if name == "apply":
            yes_flag(cmd)
    vnet = n6.add_parser("vnet-create", help="declare a VNet from a JSON document")
    vnet.add_argument("document", help='e.g. \'{"tenant": "acme", "name": "llm", ...}\'')
    json_flag(vnet)
    vnet_rm = n6.add_parser("vnet-delete", help="remove a VNet from the declaration")
    vnet_rm.add_argument("tenant")
    vnet_rm.add_argument("name")
    yes_flag(vnet_rm)
    json_flag(vnet_rm)
    trunk = n6.add_parser("trunk-set", help="declare or change a trunk")
    trunk.add_argument("name")
    trunk.add_argument("--kind", choices=("ovs", "linux"), required=True)
    trunk.add_argument("--port", action="append", default=[], help="uplink/UPF port (repeat)")
    trunk.add_argument(
        "--datapath",
        # Checked by the node, which also knows what this host can run.
        help="OVS datapath of a new trunk bridge: system (kernel), netdev (userspace) or "
        "auto, the default: the kernel one where this host runs it",
    )
    json_flag(trunk)
    trunk_rm = n6.add_parser("trunk-delete", help="remove a trunk (its VNets first)")
    trunk_rm.add_argument("name")
    yes_flag(trunk_rm)
    json_flag(trunk_rm)


def _call(args: argparse.Namespace, c: ApiClient) -> Any:
    command = args.n6_command
    if command in ("trunks", "vnets", "state", "status"):
        return c.request("GET", f"{_BASE}/{command}")
    if command == "apply":
        confirm(args, "apply the N6 declaration (bridges, VLANs and routes change now)")
    if command in ("plan", "apply"):
        return c.request("POST", f"{_BASE}/{command}")
    if command == "vnet-create":
        return c.request(
            "POST", f"{_BASE}/vnets", json=json_arg(args.document, "the VNet document")
        )
    if command == "vnet-delete":
        confirm(args, f"remove VNet {args.name} of tenant {args.tenant} from the declaration")
        return c.request("DELETE", f"{_BASE}/vnets/{args.tenant}/{args.name}")
    if command == "trunk-delete":
        confirm(args, f"remove trunk {args.name} from the declaration")
        return c.request("DELETE", f"{_BASE}/trunks/{args.name}")
    body: dict[str, Any] = {"kind": args.kind, "ports": args.port}
    if args.datapath:
        body["datapath_type"] = args.datapath
    return c.request("PUT", f"{_BASE}/trunks/{args.name}", json=body)


def _show(args: argparse.Namespace, result: Any) -> None:
    if isinstance(result, dict) and "changes" in result:
        if not any(result["changes"].values()):
            out("nothing to change")
        for kind, lines in result["changes"].items():
            out(f"{kind}: {len(lines)} changes")
            for line in lines:
                out(f"  {line}")
    else:
        show_plain(args, result)


group = CommandGroup(
    "n6",
    "N6 trunks and tenant VNets",
    _register,
    lambda a: node_call(a, lambda c: _call(a, c), _show),
)
