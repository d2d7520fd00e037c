"""``towerbox vm ...``: VM lifecycle through the appliance API."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from appliance.cli.confirm import CRITICAL_ROLES, confirm, yes_flag
from appliance.cli.connect import json_arg, json_flag, node_call, show_plain
from appliance.cli.values import value_words
from towerbox_core.commands import CommandGroup, out, table
from towerbox_core.errors import Conflict

if TYPE_CHECKING:
    from towerbox_core.sync_client import ApiClient

_LIST_COLUMNS = ("name", "state", "role", "tenant", "vcpus", "memory_mib", "cpu_pct")
# States in which a VM runs nothing: deleting it stops no guest.
_STOPPED = ("shutoff", "crashed", "missing")
# What each disruptive command does, for the confirmation question.
_VERBS = {
    "delete": "delete VM {name} and its disks",
    "shutdown": "shut VM {name} down",
    "stop": "force VM {name} off",
    "reboot": "reboot VM {name}",
}


def _path(name: str, action: str = "") -> str:
    return f"/api/v1/vms/{quote(name, safe='')}" + (f"/{action}" if action else "")


def _create(args: argparse.Namespace, c: ApiClient) -> Any:
    spec: dict[str, Any] = json_arg(args.spec, "--spec") if args.spec else {}
    for key in ("vcpus", "memory_mib", "tenant", "role"):
        if getattr(args, key) is not None:
            spec[key] = getattr(args, key)
    body = {
        "name": args.name,
        "appliance": args.appliance,
        "spec": spec,
        "start": args.start,
        "values": value_words(args.value),
    }
    return c.request("POST", "/api/v1/vms", json=body)


def _shutdown(args: argparse.Namespace, c: ApiClient) -> Any:
    body = {"timeout_s": args.timeout} if args.timeout is not None else None
    return c.request("POST", _path(args.name, "shutdown"), json=body)


def guard(args: argparse.Namespace, c: ApiClient) -> None:
    """Refuse or ask before a command that stops or removes a VM (see confirm)."""
    vm = c.request("GET", _path(args.name))
    if args.vm_command == "delete" and vm.get("service"):
        return  # the node refuses it (vm_in_service): no advice to stop it first
    running = vm["state"] not in _STOPPED
    if args.vm_command != "delete" and not running:
        return  # stopping a stopped VM disrupts nothing
    what = _VERBS[args.vm_command].format(name=args.name) + f" ({vm['state']}, role {vm['role']})"
    if args.vm_command == "delete" and running and not args.force:
        raise Conflict(
            f"VM {args.name} is {vm['state']}: shut it down first (towerbox vm shutdown "
            f"{args.name}) or delete it running with --force",
            code="vm_running",
        )
    critical = vm["role"] in CRITICAL_ROLES
    if critical:
        what += f": a {vm['role']} VM, the cell goes down"
    confirm(
        args,
        what,
        typed=args.name if critical else None,
        needs_yes_off_terminal=critical or (args.vm_command == "delete" and running),
    )


def _guarded(method: str, action: str) -> Any:
    def call(args: argparse.Namespace, c: ApiClient) -> Any:
        guard(args, c)
        if action == "shutdown":
            return _shutdown(args, c)
        return c.request(method, _path(args.name, action))

    return call


_COMMANDS: dict[str, tuple[str, Any]] = {
    "list": ("list VMs", lambda a, c: c.request("GET", "/api/v1/vms")),
    "get": (
        "show a VM: spec, live state, allocation",
        lambda a, c: c.request("GET", _path(a.name)),
    ),
    "create": ("create a VM from the catalog or a spec", _create),
    "start": ("start a VM", lambda a, c: c.request("POST", _path(a.name, "start"))),
    "shutdown": ("ACPI shutdown, forced after a deadline", _guarded("POST", "shutdown")),
    "stop": ("force a VM off", _guarded("POST", "stop")),
    "reboot": ("reboot a VM", _guarded("POST", "reboot")),
    "delete": ("delete a VM and its disks", _guarded("DELETE", "")),
    "console": (
        "tail the serial console log",
        lambda a, c: c.request("GET", _path(a.name, "console"), params={"lines": a.lines}),
    ),
    "stats": (
        "CPU, memory, network and disk figures",
        lambda a, c: c.request("GET", _path(a.name, "stats")),
    ),
}


def _register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="vm_command", required=True)
    for name, (help_text, _) in _COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text)
        json_flag(cmd)
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
            cmd.add_argument(
                "--value",
                action="append",
                default=[],
                metavar="KEY=VALUE",
                help="a value for the appliance's cloud-init template (repeatable)",
            )
        if name in _VERBS:
            yes_flag(cmd)
        if name == "delete":
            cmd.add_argument(
                "--force", action="store_true", help="delete it even while it runs (stops it)"
            )
        if name == "shutdown":
            cmd.add_argument("--timeout", type=float, help="seconds before forcing it off")
        if name == "console":
            cmd.add_argument("--lines", type=int, default=50)


def _mib(kib: float) -> str:
    return f"{kib / 1024:.0f} MiB"


def byte_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def stats_summary(result: dict[str, Any]) -> str:
    """``vm stats`` for a person: the latest sample and the CPU over the history kept
    (the history itself is for --json and charts)."""
    now = result["current"]
    if now is None:
        return f"{result['name']}: no sample yet"
    lines = [f"{result['name']}: {now['state']}"]
    cpus = [s["cpu_pct"] for s in result["history"] if s.get("cpu_pct") is not None]
    cpu = "CPU - %" if now["cpu_pct"] is None else f"CPU {now['cpu_pct']:.1f} %"
    if cpus:
        span = result["history"][-1]["at"] - result["history"][0]["at"]
        cpu += (
            f" (avg {sum(cpus) / len(cpus):.1f}, max {max(cpus):.1f} over "
            f"{len(cpus)} samples, {span:.0f} s)"
        )
    lines.append(cpu)
    lines.append(f"memory {_mib(now['memory_kib'])} (QEMU RSS {_mib(now['rss_kib'])})")
    lines.append(
        f"network rx {byte_size(now['net_rx_bytes'])}, tx {byte_size(now['net_tx_bytes'])}; "
        f"disk read {byte_size(now['disk_read_bytes'])}, "
        f"written {byte_size(now['disk_write_bytes'])}"
    )
    return "\n".join(lines)


def _show(args: argparse.Namespace, result: Any) -> None:
    command = args.vm_command
    if isinstance(result, list):
        out(table(result, _LIST_COLUMNS))
    elif command == "stats":
        out(stats_summary(result))
    elif command in ("create", "start", "shutdown", "stop", "reboot") and result:
        forced = " (forced off after the deadline)" if result.get("forced") else ""
        out(
            f"{result['name']}: {result['state']} (desired {result['desired_state']}){forced}, "
            f"{result['vcpus']} vCPU, {result['memory_mib']} MiB, role {result['role']}, "
            f"tenant {result['tenant'] or '-'}"
        )
    elif command == "delete":
        out(f"{args.name} deleted")
    else:
        show_plain(args, result)


def _run(args: argparse.Namespace) -> int:
    handler = _COMMANDS[args.vm_command][1]
    return node_call(args, lambda c: handler(args, c), _show)


group = CommandGroup("vm", "manage VMs", _register, _run)
