"""``towerbox registry rollout create|list|show|pause|resume|abort|rollback``.

Like the other administration commands it opens the registry database directly,
with the same services and checks as ``/api/v1/rollouts``; the registry's workers
move the rollout on (a rollout created while none runs starts when one does).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from towerbox_core.commands import table

if TYPE_CHECKING:
    from registry.context import Registry
    from towerbox_core.api.rollouts import Rollout

_ACTIONS = ("pause", "resume", "abort", "rollback")
_WAVE_COLUMNS = (
    "wave", "percent", "state", "sites", "released", "applied", "healthy", "failed", "deferred",
)  # fmt: skip
AUTHOR = "cli"


def add_parser(cmds: Any) -> None:
    """The ``rollout`` command and its subcommands under ``towerbox registry``."""
    rollout = cmds.add_parser("rollout", help="publish a group's document in waves, and steer it")
    sub = rollout.add_subparsers(dest="rollout_command", required=True)
    create = sub.add_parser("create", help="publish a document to a label group as a rollout")
    # Not "group": the CLI keeps the command group it dispatches to under that name.
    create.add_argument("label_group", metavar="group", help="label=value")
    create.add_argument("kind", help="the desired-state kind (gpu, tenants, vnets, ...)")
    create.add_argument("file", type=Path, help="the document, a JSON object ('-': stdin)")
    create.add_argument("--waves", help="cumulative percents, e.g. 5,25,100 (the default)")
    create.add_argument("--canary", type=int, help="sites in the canary wave (0: none)")
    create.add_argument("--soak", type=float, dest="soak_s", help="seconds healthy after applying")
    create.add_argument("--canary-failure-pct", type=float, help="default 0: any failure halts")
    create.add_argument("--failure-pct", type=float, help="default 10")
    create.add_argument("--offline-wait", type=float, dest="offline_wait_s", help="seconds")
    create.add_argument("--if-match", help="the group's current version or ETag")
    listing = sub.add_parser("list", help="rollouts, newest first")
    listing.add_argument("--state")
    listing.add_argument("--group", dest="label_group")
    listing.add_argument("--kind")
    listing.add_argument("--limit", type=int, default=50)
    show = sub.add_parser("show", help="a rollout's waves and the sites that need a look")
    show.add_argument("id", type=int)
    parsers = [create, listing, show]
    for action in _ACTIONS:
        parser = sub.add_parser(action, help=f"{action} a rollout")
        parser.add_argument("id", type=int)
        parsers.append(parser)
    for parser in parsers:
        parser.add_argument("--json", action="store_true", help="print JSON")


def rollout_command(args: argparse.Namespace, registry: Registry) -> Any:
    from towerbox_core.api.rollouts import RolloutCreate
    from towerbox_core.errors import InvalidInput

    rollouts = registry.rollouts
    command = args.rollout_command
    if command == "create":
        text = sys.stdin.read() if str(args.file) == "-" else args.file.read_text()
        try:
            document = json.loads(text)
            waves = [float(p) for p in args.waves.split(",")] if args.waves else None
        except ValueError as err:
            raise InvalidInput(f"{args.file}: {err}", code="invalid_document") from err
        body = RolloutCreate(
            group=args.label_group,
            kind=args.kind,
            document=document,
            if_match=args.if_match,
            waves=waves,
            canary=args.canary,
            soak_s=args.soak_s,
            canary_failure_pct=args.canary_failure_pct,
            failure_pct=args.failure_pct,
            offline_wait_s=args.offline_wait_s,
        )
        return _shown(args, rollouts.create(body, AUTHOR), registry)
    if command == "list":
        found = rollouts.list(args.state, args.label_group, args.kind, max(1, args.limit), 0)
        if args.json:
            return found
        rows = [{**msgspec.to_builtins(r), "progress": _progress(r)} for r in found.rollouts]
        columns = ("id", "group", "kind", "version", "state", "progress", "created_at")
        return table(rows, columns) + f"\n{len(rows)} of {found.total} rollout(s)\n"
    if command == "show":
        return _shown(args, rollouts.get(args.id), registry)
    action = getattr(rollouts, command)
    return _shown(args, action(args.id, AUTHOR), registry)


def _progress(rollout: Rollout) -> str:
    done = sum(w.healthy + w.failed + w.deferred for w in rollout.waves)
    total = sum(w.sites for w in rollout.waves)
    return f"wave {rollout.current_wave + 1}/{len(rollout.waves)}, {done}/{total} sites"


def _shown(args: argparse.Namespace, rollout: Rollout, registry: Registry) -> Any:
    if args.json:
        return rollout
    versions = f"version {rollout.version} (previous {rollout.previous_version or 'none'})"
    lines = [
        f"rollout {rollout.id}: {rollout.kind} {versions} to {rollout.group}",
        f"state: {rollout.state}" + (f" ({rollout.reason})" if rollout.reason else ""),
        f"progress: {_progress(rollout)}; soak {rollout.soak_s:g} s, failure "
        f"{rollout.canary_failure_pct:g} % canary / {rollout.failure_pct:g} % after",
        "",
        table([msgspec.to_builtins(w) for w in rollout.waves], _WAVE_COLUMNS),
    ]
    for status in ("failed", "deferred"):
        found = registry.rollouts.sites(rollout.id, None, status, 20, 0)
        for site in found.sites:
            lines.append(f"{status}: {site.site} (wave {site.wave}) {site.reason}".rstrip())
        if found.total > len(found.sites):
            lines.append(f"{status}: {found.total - len(found.sites)} more")
    return "\n".join(lines) + "\n"
