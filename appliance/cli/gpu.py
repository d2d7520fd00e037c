"""``towerbox gpu ...``: GPUs, MIG layouts, and slices claimed by processes."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from appliance.cli.confirm import confirm, yes_flag
from appliance.cli.connect import json_arg, json_flag, node_call, show_plain
from towerbox_core.commands import CommandGroup, human, out, table

if TYPE_CHECKING:
    from towerbox_core.sync_client import ApiClient


def _register(parser: argparse.ArgumentParser) -> None:
    gpu = parser.add_subparsers(dest="gpu_command", required=True)
    json_flag(gpu.add_parser("list", help="GPUs with their layouts"))
    for name, help_text in (("plan", "dry-run a target layout"), ("apply", "apply it")):
        cmd = gpu.add_parser(name, help=help_text)
        cmd.add_argument("uuid")
        cmd.add_argument("target", help='{"counts": {"1g.10gb": 4}} or {"instances": [...]}')
        json_flag(cmd)
        if name == "apply":
            yes_flag(cmd)
    json_flag(gpu.add_parser("claims", help="who holds which slice"))
    claim = gpu.add_parser("claim", help="a slice for a process: prints its MIG device UUID")
    claim.add_argument("process")
    claim.add_argument("--profile", help="MIG profile, e.g. 1g.10gb (default: any)")
    claim.add_argument("--role", choices=("b2b", "vran"), default="b2b")
    claim.add_argument("--gpu", help="GPU UUID or PCI address (default: any)")
    claim.add_argument(
        "--tenant", help="the tenant whose claim it is (default: yours; infra-admin: the node's)"
    )
    json_flag(claim)
    release = gpu.add_parser("release", help="give a process's slice back")
    release.add_argument("process")
    release.add_argument("--tenant", help="infra-admin: release a tenant's claim")
    json_flag(release)


def _call(args: argparse.Namespace, c: ApiClient) -> Any:
    command = args.gpu_command
    if command == "list":
        return c.request("GET", "/api/v1/gpus")
    if command == "claims":
        return c.request("GET", "/api/v1/gpus/claims")
    if command == "claim":
        body = {
            "name": args.process,
            "profile": args.profile,
            "role": args.role,
            "gpu": args.gpu,
            "tenant": args.tenant,
        }
        return c.request("POST", "/api/v1/gpus/claims", json=body)
    if command == "release":
        params = {"tenant": args.tenant} if args.tenant else None
        return c.request("DELETE", f"/api/v1/gpus/claims/{args.process}", params=params)
    target = json_arg(args.target, "the target layout")
    if command == "apply":
        # An apply drains and restarts B2B VMs: never unasked, not even from a script.
        confirm(
            args,
            f"apply layout {args.target} to GPU {args.uuid} (B2B VMs on changed slices restart)",
            needs_yes_off_terminal=True,
        )
    return c.request("POST", f"/api/v1/gpus/{args.uuid}/{command}", json=target)


def _instances(layout: dict[str, Any] | None) -> str:
    if not layout or not layout.get("instances"):
        return "-"
    return ", ".join(f"{i['profile']}@{i['start']} {i['role']}" for i in layout["instances"])


def _show(args: argparse.Namespace, result: Any) -> None:
    command = args.gpu_command
    if command == "list":
        out(f"backend: {result['backend']}")
        rows = [
            {
                "uuid": g["uuid"],
                "model": g["model"],
                "pci": g["pci_address"],
                "numa": g["numa_node"],
                "mig": "on" if (g.get("mig") or {}).get("current") else "off",
                "slices": _instances(g.get("layout")),
            }
            for g in result["gpus"]
        ]
        out(table(rows, ("uuid", "model", "pci", "numa", "mig", "slices")))
    elif command in ("plan", "apply") and isinstance(result, dict):
        # A plan, or an apply's answer: the plan it carried out and how the drain went.
        plan = result.get("plan", result)
        if plan["empty"]:
            out("nothing to change")
        else:
            out(table(plan["ops"], ("op", "profile", "start", "role", "owner")))
        out(f"kept: {_instances({'instances': plan['kept']})}")
        if "layout" in result:
            out(f"now: {_instances(result['layout'])}")
            out("drain:\n" + human(result["drain"], "  "))
        else:
            out(f"drained first: {_instances({'instances': plan['drain']})}")
    else:
        show_plain(args, result)


group = CommandGroup(
    "gpu", "GPUs and MIG layouts", _register, lambda a: node_call(a, lambda c: _call(a, c), _show)
)
