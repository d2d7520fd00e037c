"""``towerbox vm ...``: VM lifecycle through the appliance API."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from appliance.cli.connect import json_arg, json_flag, node_call, show_plain
from towerbox_core.commands import CommandGroup, out, table
from towerbox_core.errors import InvalidInput

if TYPE_CHECKING:
    from towerbox_core.client import ApiClient

_LIST_COLUMNS = ("name", "state", "role", "tenant", "vcpus", "memory_mib", "cpu_pct")


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


def value_words(words: list[str]) -> dict[str, Any]:
    """``--value KEY=VALUE`` words as the request's values. A value that reads as JSON
    (``42``, ``true``, ``["a", "b"]``) is sent as that; anything else as a string, so
    ``--value model=llama-3-8b`` needs no quoting. Repeating a key is refused."""
    values: dict[str, Any] = {}
    for word in words:
        key, sep, text = word.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--value {word!r} is not KEY=VALUE", code="invalid_argument")
        if key in values:
            raise InvalidInput(f"--value {key} is given twice", code="invalid_argument")
        try:
            values[key] = json.loads(text)
        except ValueError:
            values[key] = text
        if not isinstance(values[key], str | int | bool | list):
            values[key] = text
    return values


def _shutdown(args: argparse.Namespace, c: ApiClient) -> Any:
    body = {"timeout_s": args.timeout} if args.timeout is not None else None
    return c.request("POST", _path(args.name, "shutdown"), json=body)


_COMMANDS: dict[str, tuple[str, Any]] = {
    "list": ("list VMs", lambda a, c: c.request("GET", "/api/v1/vms")),
    "get": (
        "show a VM: spec, live state, allocation",
        lambda a, c: c.request("GET", _path(a.name)),
    ),
    "create": ("create a VM from the catalog or a spec", _create),
    "start": ("start a VM", lambda a, c: c.request("POST", _path(a.name, "start"))),
    "shutdown": ("ACPI shutdown, forced after a deadline", _shutdown),
    "stop": ("force a VM off", lambda a, c: c.request("POST", _path(a.name, "stop"))),
    "reboot": ("reboot a VM", lambda a, c: c.request("POST", _path(a.name, "reboot"))),
    "delete": ("delete a VM and its disks", lambda a, c: c.request("DELETE", _path(a.name))),
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
        if name == "shutdown":
            cmd.add_argument("--timeout", type=float, help="seconds before forcing it off")
        if name == "console":
            cmd.add_argument("--lines", type=int, default=50)


def _show(args: argparse.Namespace, result: Any) -> None:
    if isinstance(result, list):
        out(table(result, _LIST_COLUMNS))
    else:
        show_plain(args, result)


def _run(args: argparse.Namespace) -> int:
    handler = _COMMANDS[args.vm_command][1]
    return node_call(args, lambda c: handler(args, c), _show)


group = CommandGroup("vm", "manage VMs", _register, _run)
