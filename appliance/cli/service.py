"""``towerbox service ...``: multi-VM services through the appliance API.

deploy | list | show | scale | update | remove. Writes answer at once while the node
works in the background; ``--wait`` polls the service until its operation ends and
prints what it did, or exits 1 (``service_operation_failed``) when it failed.
"""

from __future__ import annotations

import argparse
import json
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec

from appliance.cli.confirm import confirm, yes_flag
from appliance.cli.connect import json_flag, node_call, show_plain
from appliance.cli.values import value_words
from towerbox_core.api.services import SINGLE_ROLE, RolloutPlan
from towerbox_core.commands import CommandGroup, out, table
from towerbox_core.errors import InvalidInput, TowerboxError
from towerbox_core.rollout_plan import plan_in_words

if TYPE_CHECKING:
    from towerbox_core.sync_client import ApiClient

_LIST_COLUMNS = ("name", "tenant", "state", "roles", "managed_by", "message")
_ROLE_COLUMNS = ("role", "catalog", "version", "count", "healthy", "health", "values")
_REPLICA_COLUMNS = ("vm", "role", "generation", "state", "healthy", "detail")
_WAIT_S = 0.5


def _path(name: str, action: str = "") -> str:
    return f"/api/v1/services/{quote(name, safe='')}" + (f"/{action}" if action else "")


def parse_values(words: list[str], *, per_role: bool) -> dict[str, Any]:
    """``role.key=value`` (per role) or ``key=value`` words as the API's maps, each
    value typed as ``towerbox vm create --value`` types it (a list, a number)."""
    if not per_role:
        return value_words(words)
    by_role: dict[str, list[str]] = {}
    for word in words:
        key, sep, text = word.partition("=")
        role, dot, name = key.partition(".")
        if not sep or not dot or not role or not name:
            raise InvalidInput(
                f"--value {word!r} is not ROLE.KEY=VALUE", code="invalid_argument", field=word
            )
        by_role.setdefault(role, []).append(f"{name}={text}")
    return {role: value_words(named) for role, named in by_role.items()}


def deploy_body(
    template: str | None,
    file: Path | None,
    name: str | None,
    tenant: str | None,
    values: list[str],
    *,
    entry: str | None = None,
    count: int = 1,
) -> dict[str, Any]:
    """The POST /api/v1/services body: a template file of the node's, a local template
    file, or one role (named ``app``, as the UI names it) made from a catalog entry,
    whose values are ``key=value``."""
    if entry is None and count != 1:
        raise InvalidInput(
            "--count sets the one role of an --entry deploy; a template's roles have "
            "their own counts (scale them after)",
            code="invalid_service_request",
            field="--count",
        )
    if sum(x is not None for x in (template, file, entry)) != 1:
        raise InvalidInput(
            "give --template NAME (images/services), --file PATH or --entry ENTRY "
            "(a catalog entry: one role)",
            code="invalid_service_request",
        )
    body: dict[str, Any] = {}
    if entry is not None:
        role: dict[str, Any] = {"name": SINGLE_ROLE, "catalog": entry, "count": count}
        if values:
            role["values"] = parse_values(values, per_role=False)
        body["service"] = {"name": name or entry, "roles": [role]}
    else:
        body["values"] = parse_values(values, per_role=True)
    if file is not None:
        try:
            text = file.read_text()
            body["service"] = tomllib.loads(text) if file.suffix == ".toml" else json.loads(text)
        except (OSError, ValueError) as err:
            raise InvalidInput(
                f"{file}: {err}", code="invalid_service_template", field="--file"
            ) from err
    elif template is not None:
        body["template"] = template
    if name and entry is None:
        body["name"] = name
    if tenant:
        body["tenant"] = tenant
    return body


def update_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {
        "role": args.role,
        "max_surge": args.max_surge,
        "max_unavailable": args.max_unavailable,
        "dry_run": args.dry_run,
    }
    if args.catalog:
        body["catalog"] = args.catalog
    if args.version:
        body["version"] = args.version
    if args.value:
        body["values"] = parse_values(args.value, per_role=False)
        if args.merge_values:
            body["merge_values"] = True
    elif args.merge_values:
        raise InvalidInput(
            "--merge-values keeps the values --value does not name: give at least one --value",
            code="invalid_service_request",
            field="--merge-values",
        )
    spec = {k: getattr(args, k) for k in ("vcpus", "memory_mib") if getattr(args, k)}
    if spec:
        body["spec"] = spec
    return body


def _wait(c: ApiClient, name: str) -> Any:
    from towerbox_core.sync_client import ApiError

    while True:
        try:
            view = c.request("GET", _path(name))
        except ApiError as err:
            if err.status == 404:  # a remove ended: the service is gone
                return {"name": name, "state": "removed"}
            raise
        progress = view.get("progress") or {}
        if not progress.get("done", True):
            time.sleep(_WAIT_S)
            continue
        if progress.get("failed"):
            # A script that waited must be able to tell: the exit status says it failed.
            raise TowerboxError(
                f"the {progress['operation']} of service {name} failed: {view['message']} "
                f"(towerbox service show {name} lists its steps)",
                code="service_operation_failed",
            )
        return view


def _write(args: argparse.Namespace, c: ApiClient, method: str, path: str, body: Any) -> Any:
    answer = c.request(method, path, json=body)
    if getattr(args, "wait", False) and not getattr(args, "dry_run", False):
        return _wait(c, args.name)
    return answer


def _deploy(args: argparse.Namespace, c: ApiClient) -> Any:
    body = deploy_body(
        args.template,
        args.file,
        args.name,
        args.tenant,
        args.value,
        entry=args.entry,
        count=args.count,
    )
    answer = c.request("POST", "/api/v1/services", json=body)
    if args.wait:
        return _wait(c, answer["name"])
    return answer


def _remove(args: argparse.Namespace, c: ApiClient) -> Any:
    confirm(args, f"remove service {args.name} and its VMs")
    return _write(args, c, "DELETE", _path(args.name), None)


_COMMANDS: dict[str, tuple[str, Any]] = {
    "deploy": ("deploy a service from a template", _deploy),
    "list": ("list services with their roles' health", lambda a, c: c.request("GET", _path(""))),
    "show": (
        "a service: roles, replicas, health, progress",
        lambda a, c: c.request("GET", _path(a.name)),
    ),
    "scale": (
        "set a role's replica count",
        lambda a, c: _write(
            a, c, "POST", _path(a.name, f"roles/{a.role}/scale"), {"count": a.count}
        ),
    ),
    "update": (
        "rolling update of a role (catalog entry or version, values, spec)",
        lambda a, c: _write(a, c, "POST", _path(a.name, "update"), update_body(a)),
    ),
    "remove": ("remove a service, roles in reverse start order", _remove),
}


def _register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="service_command", required=True)
    for name, (help_text, _) in _COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text)
        json_flag(cmd)
        if name == "deploy":
            cmd.add_argument("--template", help="a template in images/services")
            cmd.add_argument("--file", type=Path, help="a template file (.toml or .json)")
            cmd.add_argument(
                "--entry",
                help="a catalog entry: one role of --count replicas, its values key=value "
                "(`towerbox catalog` lists the values each entry declares)",
            )
            cmd.add_argument("--count", type=int, default=1, help="with --entry (default 1)")
            cmd.add_argument(
                "--name", help="the service's name (default: the template's or the entry's)"
            )
            cmd.add_argument("--tenant")
            cmd.add_argument(
                "--value",
                action="append",
                default=[],
                help="role.key=value (key=value with --entry); JSON reads as typed: "
                '2, true, ["a","b"]',
            )
        elif name != "list":
            cmd.add_argument("name")
        if name in ("scale", "update"):
            cmd.add_argument("role")
        if name == "scale":
            cmd.add_argument("count", type=int)
        if name == "update":
            cmd.add_argument("--catalog", help="the role's new catalog entry")
            cmd.add_argument(
                "--version",
                help="the entry version to move to (must be the node's; default: the one "
                "the node's catalog holds)",
            )
            cmd.add_argument("--value", action="append", default=[], help="key=value")
            cmd.add_argument(
                "--merge-values",
                dest="merge_values",
                action="store_true",
                help="change only the values --value names; the others (secrets too) stay",
            )
            cmd.add_argument("--vcpus", type=int)
            cmd.add_argument("--memory-mib", dest="memory_mib", type=int)
            cmd.add_argument("--max-surge", dest="max_surge", type=int, default=1)
            cmd.add_argument("--max-unavailable", dest="max_unavailable", type=int, default=0)
            cmd.add_argument("--dry-run", dest="dry_run", action="store_true")
        if name == "remove":
            yes_flag(cmd)
        if name in ("deploy", "scale", "update", "remove"):
            cmd.add_argument("--wait", action="store_true", help="wait for the work to end")


def service_rows(view: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A service view as a role table and a replica table."""
    roles = [
        {
            **r,
            "role": r["name"],
            "healthy": f"{r['healthy']}/{len(r['replicas'])}",
            "values": ", ".join(f"{k}={v}" for k, v in sorted(r.get("values", {}).items())),
            "version": _version(r),
        }
        for r in view.get("roles", [])
    ]
    replicas = [{**rep, "role": r["name"]} for r in view.get("roles", []) for rep in r["replicas"]]
    return roles, replicas


def _version(role: dict[str, Any]) -> str:
    """``1``, or ``1 (catalog: 2)`` when the node's catalog moved on: an update moves it."""
    version = str(role.get("version") or "")
    held = role.get("catalog_version")
    return f"{version} (catalog: {held})" if held else version


def _show(args: argparse.Namespace, result: Any) -> None:
    if isinstance(result, list):
        rows = [
            {
                **s,
                "roles": ", ".join(f"{r['name']} {r['healthy']}/{r['count']}" for r in s["roles"]),
            }
            for s in result
        ]
        out(table(rows, _LIST_COLUMNS))
    elif isinstance(result, dict) and "plan" in result:
        plan = msgspec.convert(result["plan"], RolloutPlan)
        out(f"{'dry run, nothing changed: ' if result['dry_run'] else ''}role {result['role']}")
        for line in plan_in_words(plan):
            out(f"  {line}")
    elif isinstance(result, dict) and "roles" in result:
        out(f"{result['name']} ({result['tenant']}): {result['state']} {result['message']}")
        roles, replicas = service_rows(result)
        out(table(roles, _ROLE_COLUMNS))
        if replicas:
            out(table(replicas, _REPLICA_COLUMNS))
        for step in (result.get("progress") or {}).get("steps", []):
            out(f"  {step}")
    else:
        show_plain(args, result)


def _run(args: argparse.Namespace) -> int:
    handler = _COMMANDS[args.service_command][1]
    return node_call(args, lambda c: handler(args, c), _show)


group = CommandGroup("service", "deploy and manage multi-VM services", _register, _run)
