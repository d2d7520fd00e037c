"""``towerbox top``: the node's VMs and GPU slices by current use, once.

towerbox top                  # busiest CPU first
towerbox top --sort net       # or memory, disk, gpu, name
towerbox top --json           # the API's answer
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from appliance.cli.connect import json_flag, node_call, show_plain
from appliance.cli.vm import byte_size
from towerbox_core.api.top import SORT_KEYS
from towerbox_core.commands import CommandGroup, out, table

if TYPE_CHECKING:
    from towerbox_core.sync_client import ApiClient

# Network received and sent, disk read and written, per second; the slice it holds.
VM_COLUMNS: tuple[str, ...] = ("name", "tenant", "state", "cpu", "memory", "rx/s", "tx/s")
VM_COLUMNS += ("read/s", "write/s", "slice", "gpu")
SLICE_COLUMNS = ("gpu", "slice", "role", "owner", "tenant", "busy", "memory")


def _args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sort", choices=SORT_KEYS, default="cpu", help="busiest first by this (default: cpu)"
    )
    json_flag(parser)


def _pct(value: float | None) -> str | None:
    return None if value is None else f"{value:.1f}%"


def _slice_name(s: dict[str, Any]) -> str:
    """A slice as the GPU pages name it: profile at its start slot, or the whole GPU."""
    return "whole GPU" if s["profile"] is None else f"{s['profile']}@{s['start']}"


def _busy(s: dict[str, Any]) -> str | None:
    """Utilization, marked when it is the whole GPU's standing in for a slice's."""
    shown = _pct(s["utilization_pct"])
    if shown is not None and s["scope"] == "gpu" and s["profile"] is not None:
        return f"{shown} (GPU)"
    return shown


def _vm_row(vm: dict[str, Any]) -> dict[str, Any]:
    gpu = vm["gpu"]
    return {
        "name": vm["name"],
        "tenant": vm["tenant"] or "(node)",
        "state": vm["state"],
        "cpu": _pct(vm["cpu_pct"]),
        "memory": byte_size(vm["memory_bytes"]),
        "rx/s": byte_size(vm["net_rx_bps"]),
        "tx/s": byte_size(vm["net_tx_bps"]),
        "read/s": byte_size(vm["disk_read_bps"]),
        "write/s": byte_size(vm["disk_write_bps"]),
        "slice": _slice_name(gpu) if gpu else None,
        "gpu": _busy(gpu) if gpu else None,
    }


def _slice_row(s: dict[str, Any]) -> dict[str, Any]:
    used = s["memory_used_bytes"]
    return {
        "gpu": s["pci_address"],
        "slice": _slice_name(s),
        "role": s["role"],
        "owner": s["owner"] or "(free)",
        "tenant": s["tenant"] or ("(node)" if s["owner"] else None),
        "busy": _busy(s),
        "memory": None if used is None else byte_size(used),
    }


def _show(args: argparse.Namespace, result: Any) -> None:
    if not isinstance(result, dict):  # --json is printed as it came, before this
        show_plain(args, result)
        return
    if not result["taken_at"]:
        out("no sweep yet: the monitor has not read the node since the daemon started")
    out(table([_vm_row(v) for v in result["vms"]], VM_COLUMNS) if result["vms"] else "no VMs")
    if result["slices"]:
        out("")
        out(table([_slice_row(s) for s in result["slices"]], SLICE_COLUMNS))


def _run(args: argparse.Namespace) -> int:
    def call(c: ApiClient) -> Any:
        return c.request("GET", "/api/v1/top", params={"sort": args.sort})

    return node_call(args, call, _show)


top = CommandGroup("top", "VMs and GPU slices by current use, busiest first", _args, _run)
