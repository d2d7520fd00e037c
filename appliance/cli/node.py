"""``towerbox host|catalog|health|journal|token``: one-call node commands."""

from __future__ import annotations

import argparse
from typing import Any

from appliance.cli.connect import json_flag, node_call, show_plain
from towerbox_core.commands import CommandGroup, journal_table, out, table


def _get(path: str, show: Any = show_plain) -> Any:
    return lambda a: node_call(a, lambda c: c.request("GET", path), show)


def declared_values(values: dict[str, dict[str, Any]]) -> str:
    """An entry's declared values in a line: ``model=llama (string), token (secret,
    required)``: what ``--value`` may set at a VM create or a service deploy."""
    words = []
    for name, decl in sorted(values.items()):
        traits = [decl.get("type", "string")]
        traits += [t for t in ("secret", "required") if decl.get(t)]
        default = decl.get("default")
        shown = f"={default}" if default is not None and not decl.get("secret") else ""
        words.append(f"{name}{shown} ({', '.join(traits)})")
    return ", ".join(words)


def _catalog_show(args: argparse.Namespace, result: Any) -> None:
    if isinstance(result, list):
        rows = [{**e, "values": declared_values(e.get("values", {}))} for e in result]
        out(table(rows, ("name", "role", "version", "values", "description")))
    else:
        show_plain(args, result)


def _health_show(args: argparse.Namespace, result: Any) -> None:
    out(f"{result['node']}: {result['status']}, up {result['uptime_s']:.0f} s")
    for backend in result.get("backends", {}).values():
        summary = backend.get("summary")
        for line in summary if isinstance(summary, list) else [summary]:
            if line:
                out(f"  {line}")
                note = backend.get("note")
                if note:
                    out(f"    {note}")


def _host_show(args: argparse.Namespace, result: Any) -> None:
    """The inventory in a few lines; the thread, PCI and allocation tables are in --json."""
    inv = result["inventory"]
    virt = "vmx" if inv["has_vmx"] else "svm" if inv["has_svm"] else "no hardware virtualization"
    out(f"{inv['hostname']}: {inv['cpu_model']}")
    out(
        f"  {inv['sockets']} sockets, {inv['core_count']} cores, {inv['thread_count']} threads"
        f" ({virt}, /dev/kvm {'present' if inv['kvm_device'] else 'absent'})"
    )
    gib = 1 << 20
    out(
        f"  memory {inv['memory_available_kib'] / gib:.1f} of "
        f"{inv['memory_total_kib'] / gib:.1f} GiB available, {len(inv['pci'])} PCI devices"
    )
    free = {n["id"]: n for n in result.get("allocation", {}).get("nodes", [])}
    rows = []
    for node in inv["numa"]:
        cpus = free.get(node["id"], {}).get("cpus", {})
        rows.append(
            {
                "numa": node["id"],
                "cpus": node["cpu_count"],
                "free_cpus": cpus.get("free"),
                "memory_gib": f"{node['memory_total_kib'] / gib:.1f}",
                "free_gib": f"{node['memory_free_kib'] / gib:.1f}",
            }
        )
    out(table(rows, ("numa", "cpus", "free_cpus", "memory_gib", "free_gib")))


def _journal_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kind", help="only entries whose kind starts with this (vm., gpu.deleted, ...)"
    )
    parser.add_argument("--before", type=int, help="page back: entries older than this seq")
    parser.add_argument(
        "--after",
        type=int,
        help="the raw entries after this seq, oldest first, as the agent reads them",
    )
    parser.add_argument("--limit", type=int, default=50)
    json_flag(parser)


def _journal_show(args: argparse.Namespace, result: Any) -> None:
    if isinstance(result, dict) and "entries" in result and args.after is not None:
        out(journal_table(result["entries"]))
    elif isinstance(result, dict) and "entries" in result:
        rows = [
            {
                **line,
                "object": f"{line['object_type']} {line['object_name'] or line['object_id']}",
            }
            for line in result["entries"]
        ]
        out(table(rows, ("seq", "at", "actor", "object", "kind", "summary")))
        if result.get("next_before"):
            out(f"(older: --before {result['next_before']})")
    else:
        show_plain(args, result)


def _journal(args: argparse.Namespace) -> int:
    """The journal as history, newest first (who changed what); ``--after``: raw."""
    params: dict[str, Any] = {"limit": args.limit}
    if args.kind:
        params["kind"] = args.kind
    if args.after is not None:
        params["after"] = args.after
        path = "/api/v1/journal"
    else:
        path = "/api/v1/journal/history"
        if args.before is not None:
            params["before"] = args.before
    return node_call(args, lambda c: c.request("GET", path, params=params), _journal_show)


def _token_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("token_name")
    json_flag(parser)


def _token(args: argparse.Namespace) -> int:
    body = {"name": args.token_name}
    return node_call(args, lambda c: c.request("POST", "/api/v1/tokens", json=body))


host = CommandGroup("host", "host inventory", json_flag, _get("/api/v1/host", _host_show))
catalog = CommandGroup(
    "catalog", "appliance catalog", json_flag, _get("/api/v1/catalog", _catalog_show)
)
health = CommandGroup("health", "daemon health", json_flag, _get("/healthz", _health_show))
journal = CommandGroup("journal", "the node's journal", _journal_args, _journal)
token = CommandGroup(
    "token",
    "create an API token for yourself (an infra-admin's never expires; others' expire)",
    _token_args,
    _token,
)
