"""``towerbox``: the daemon and the operator's commands, one console script."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from appliance.client import ApiError, ApplianceClient
from appliance.config import load_config
from appliance.errors import TowerboxError
from edge_agent.cli import handle as agent_command
from edge_agent.cli import register as register_agent
from registry.cli import handle as registry_command
from registry.cli import register as register_registry
from ui.cli import handle as ui_command
from ui.cli import register as register_ui

Handler = Callable[[argparse.Namespace, ApplianceClient], Any]


def _vm_create(args: argparse.Namespace, c: ApplianceClient) -> Any:
    spec: dict[str, Any] = json.loads(args.spec) if args.spec else {}
    for key in ("vcpus", "memory_mib", "tenant", "role"):
        if getattr(args, key) is not None:
            spec[key] = getattr(args, key)
    body = {"name": args.name, "appliance": args.appliance, "spec": spec, "start": args.start}
    return c.request("POST", "/api/v1/vms", json=body)


def _vm_shutdown(args: argparse.Namespace, c: ApplianceClient) -> Any:
    body = {"timeout_s": args.timeout} if args.timeout is not None else None
    return c.request("POST", f"/api/v1/vms/{args.name}/shutdown", json=body)


_VM_COMMANDS: dict[str, tuple[str, Handler]] = {
    "list": ("list VMs", lambda a, c: c.request("GET", "/api/v1/vms")),
    "get": (
        "show a VM: spec, live state, allocation",
        lambda a, c: c.request("GET", f"/api/v1/vms/{a.name}"),
    ),
    "create": ("create a VM from the catalog or a spec", _vm_create),
    "start": ("start a VM", lambda a, c: c.request("POST", f"/api/v1/vms/{a.name}/start")),
    "shutdown": ("ACPI shutdown, forced after a deadline", _vm_shutdown),
    "stop": ("force a VM off", lambda a, c: c.request("POST", f"/api/v1/vms/{a.name}/stop")),
    "reboot": ("reboot a VM", lambda a, c: c.request("POST", f"/api/v1/vms/{a.name}/reboot")),
    "delete": (
        "delete a VM and its disks",
        lambda a, c: c.request("DELETE", f"/api/v1/vms/{a.name}"),
    ),
    "console": (
        "tail the serial console log",
        lambda a, c: c.request("GET", f"/api/v1/vms/{a.name}/console", params={"lines": a.lines}),
    ),
    "stats": (
        "CPU, memory, network and disk figures",
        lambda a, c: c.request("GET", f"/api/v1/vms/{a.name}/stats"),
    ),
}


def _add_resource_commands(sub: Any) -> None:
    n6 = sub.add_parser("n6", help="N6 trunks and tenant VNets").add_subparsers(
        dest="n6_command", required=True
    )
    for name, help_text in (
        ("trunks", "list trunks"),
        ("vnets", "list VNets"),
        ("plan", "what apply would change"),
        ("apply", "apply the VNets"),
        ("state", "VNets with traffic and attached VMs"),
    ):
        n6.add_parser(name, help=help_text).add_argument("--json", action="store_true")
    vnet = n6.add_parser("vnet-create", help="declare a VNet from a JSON document")
    vnet.add_argument("document", help='e.g. \'{"tenant": "acme", "name": "llm", ...}\'')
    vnet.add_argument("--json", action="store_true")
    vnet_rm = n6.add_parser("vnet-delete", help="remove a VNet from the declaration")
    vnet_rm.add_argument("tenant")
    vnet_rm.add_argument("name")
    trunk = n6.add_parser("trunk-set", help="declare or change a trunk")
    trunk.add_argument("name")
    trunk.add_argument("--kind", choices=("ovs", "linux"), required=True)
    trunk.add_argument("--port", action="append", default=[], help="uplink/UPF port (repeat)")
    trunk.add_argument("--json", action="store_true")

    gpu = sub.add_parser("gpu", help="GPUs and MIG layouts").add_subparsers(
        dest="gpu_command", required=True
    )
    gpu.add_parser("list", help="GPUs with their layouts").add_argument(
        "--json", action="store_true"
    )
    for name, help_text in (("plan", "dry-run a target layout"), ("apply", "apply it")):
        cmd = gpu.add_parser(name, help=help_text)
        cmd.add_argument("uuid")
        cmd.add_argument("target", help='{"counts": {"1g.10gb": 4}} or {"instances": [...]}')
        cmd.add_argument("--json", action="store_true")
    gpu.add_parser("claims", help="who holds which slice").add_argument(
        "--json", action="store_true"
    )
    claim = gpu.add_parser("claim", help="a slice for a process: prints its MIG device UUID")
    claim.add_argument("process")
    claim.add_argument("--profile", help="MIG profile, e.g. 1g.10gb (default: any)")
    claim.add_argument("--role", choices=("b2b", "vran"), default="b2b")
    claim.add_argument("--gpu", help="GPU UUID or PCI address (default: any)")
    claim.add_argument("--json", action="store_true")
    release = gpu.add_parser("release", help="give a process's slice back")
    release.add_argument("process")
    release.add_argument("--json", action="store_true")

    tenant = sub.add_parser("tenant", help="tenants").add_subparsers(
        dest="tenant_command", required=True
    )
    tenant.add_parser("list", help="list tenants").add_argument("--json", action="store_true")
    tenant_add = tenant.add_parser("create", help="create a tenant")
    tenant_add.add_argument("tenant_name")
    tenant_add.add_argument("--description", default="")
    tenant_add.add_argument("--json", action="store_true")


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="towerbox", description="Towerbox edge node")
    p.add_argument("--config", type=Path, help="appliance config (default /etc/towerbox/...)")
    p.add_argument("--url", help="appliance API URL (default: the local unix socket)")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("appliance", help="run the appliance daemon")

    vm = sub.add_parser("vm", help="manage VMs").add_subparsers(dest="vm_command", required=True)
    for name, (help_text, _) in _VM_COMMANDS.items():
        cmd = vm.add_parser(name, help=help_text)
        cmd.add_argument("--json", action="store_true", help="print JSON")
        if name != "list":
            cmd.add_argument("name")
        if name == "create":
            cmd.add_argument("--appliance", help="catalog entry to start from")
            cmd.add_argument("--spec", help="VM spec fields as JSON")
            cmd.add_argument("--vcpus", type=int)
            cmd.add_argument("--memory-mib", dest="memory_mib", type=int)
            cmd.add_argument("--tenant")
            cmd.add_argument("--role")
            cmd.add_argument("--start", action="store_true")
        if name == "shutdown":
            cmd.add_argument("--timeout", type=float, help="seconds before forcing it off")
        if name == "console":
            cmd.add_argument("--lines", type=int, default=50)

    for name, help_text, path in (
        ("host", "host inventory", "/api/v1/host"),
        ("catalog", "appliance catalog", "/api/v1/catalog"),
        ("health", "daemon health", "/healthz"),
    ):
        sub.add_parser(name, help=help_text).add_argument("--json", action="store_true")
        p.set_defaults(**{f"_{name}_path": path})
    _add_resource_commands(sub)

    journal = sub.add_parser("journal", help="the node's journal")
    journal.add_argument("--after", type=int, default=0)
    journal.add_argument("--limit", type=int, default=50)
    journal.add_argument("--json", action="store_true")
    register_agent(sub)
    register_registry(sub)
    register_ui(sub)
    token = sub.add_parser("token", help="create an API token for yourself")
    token.add_argument("token_name")
    token.add_argument("--json", action="store_true")
    return p


def _print_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns))
    for r in rows:
        print(
            "  ".join(
                str(r.get(c, "") if r.get(c) is not None else "-").ljust(widths[c]) for c in columns
            )
        )


def _show(args: argparse.Namespace, result: Any) -> None:
    if result is None:
        return
    if getattr(args, "json", False) or not isinstance(result, (list, dict)):
        print(
            json.dumps(result, indent=2) if not isinstance(result, str) else result,
            end="" if isinstance(result, str) else "\n",
        )
        return
    if isinstance(result, list) and args.command == "vm":
        _print_table(result, ["name", "state", "role", "tenant", "vcpus", "memory_mib", "cpu_pct"])
    elif isinstance(result, list) and args.command == "catalog":
        _print_table(result, ["name", "role", "version", "description"])
    elif isinstance(result, dict) and args.command == "n6" and "changes" in result:
        for kind, lines in result["changes"].items():
            print(f"{kind}: {len(lines)} changes")
            for line in lines:
                print(f"  {line}")
    elif isinstance(result, dict) and args.command == "journal":
        _print_table(result["entries"], ["seq", "kind", "object_type", "object_id"])
    else:
        print(json.dumps(result, indent=2))


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    # These groups read their own config, not the appliance's.
    own_config = {"agent": agent_command, "registry": registry_command}
    if args.command in own_config:
        return own_config[args.command](args)
    if args.command == "ui":
        return ui_command(args)
    try:
        cfg = load_config(args.config)
        if args.command == "appliance":
            from appliance.daemon import run_daemon

            return run_daemon(cfg)
        client = ApplianceClient(cfg, url=args.url)
        try:
            result = _dispatch(args, client)
        finally:
            client.close()
    except ApiError as err:
        print(f"error [{err.code}] (HTTP {err.status}): {err.message}", file=sys.stderr)
        return 1
    except TowerboxError as err:
        print(f"error [{err.code}]: {err.message}", file=sys.stderr)
        return 1
    _show(args, result)
    return 0


def _n6(args: argparse.Namespace, c: ApplianceClient) -> Any:
    base = "/api/v1/n6"
    command = args.n6_command
    if command in ("trunks", "vnets", "state"):
        return c.request("GET", f"{base}/{command}")
    if command in ("plan", "apply"):
        return c.request("POST", f"{base}/{command}")
    if command == "vnet-create":
        return c.request("POST", f"{base}/vnets", json=json.loads(args.document))
    if command == "vnet-delete":
        return c.request("DELETE", f"{base}/vnets/{args.tenant}/{args.name}")
    body = {"kind": args.kind, "ports": args.port}
    return c.request("PUT", f"{base}/trunks/{args.name}", json=body)


def _gpu(args: argparse.Namespace, c: ApplianceClient) -> Any:
    if args.gpu_command == "list":
        return c.request("GET", "/api/v1/gpus")
    if args.gpu_command == "claims":
        return c.request("GET", "/api/v1/gpus/claims")
    if args.gpu_command == "claim":
        body = {"name": args.process, "profile": args.profile, "role": args.role, "gpu": args.gpu}
        return c.request("POST", "/api/v1/gpus/claims", json=body)
    if args.gpu_command == "release":
        return c.request("DELETE", f"/api/v1/gpus/claims/{args.process}")
    return c.request(
        "POST", f"/api/v1/gpus/{args.uuid}/{args.gpu_command}", json=json.loads(args.target)
    )


def _tenant(args: argparse.Namespace, c: ApplianceClient) -> Any:
    if args.tenant_command == "create":
        body = {"name": args.tenant_name, "description": args.description}
        return c.request("POST", "/api/v1/tenants", json=body)
    return c.request("GET", "/api/v1/tenants")


_COMMANDS: dict[str, Handler] = {
    "vm": lambda a, c: _VM_COMMANDS[a.vm_command][1](a, c),
    "host": lambda a, c: c.request("GET", a._host_path),
    "catalog": lambda a, c: c.request("GET", a._catalog_path),
    "health": lambda a, c: c.request("GET", a._health_path),
    "n6": _n6,
    "tenant": _tenant,
    "gpu": _gpu,
    "journal": lambda a, c: c.request(
        "GET", "/api/v1/journal", params={"after": a.after, "limit": a.limit}
    ),
    "token": lambda a, c: c.request("POST", "/api/v1/tokens", json={"name": a.token_name}),
}


def _dispatch(args: argparse.Namespace, client: ApplianceClient) -> Any:
    return _COMMANDS[args.command](args, client)


if __name__ == "__main__":
    sys.exit(main())
