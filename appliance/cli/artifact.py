"""``towerbox artifact list|fetch|gc|plan``: the image folder's artifacts.

``fetch`` asks the node to fetch now and follows the fetch with a progress bar (on
stderr, by polling the API) until it is done, failed or paused.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from appliance.cli.confirm import confirm, yes_flag
from appliance.cli.connect import json_flag, node_call, show_plain
from towerbox_core import fmt
from towerbox_core.commands import CommandGroup, out, table

if TYPE_CHECKING:
    from towerbox_core.sync_client import ApiClient

_ACTIVE = ("queued", "running", "verifying")


class Requester(Protocol):
    def request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any: ...


def _register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="artifact_command", required=True)
    json_flag(sub.add_parser("list", help="artifacts the catalog names, and their state"))
    fetch = sub.add_parser("fetch", help="fetch an artifact now, with a progress bar")
    fetch.add_argument("name")
    fetch.add_argument("--no-wait", action="store_true", help="start it and return")
    json_flag(fetch)
    gc = sub.add_parser("gc", help="remove files no catalog entry or VM uses")
    gc.add_argument("--dry-run", action="store_true", help="only say what would go")
    gc.add_argument(
        "--keep", action="append", default=[], metavar="PATTERN", help="never remove (repeat)"
    )
    json_flag(gc)
    yes_flag(gc)
    json_flag(sub.add_parser("plan", help="what the next off-peak window will fetch"))


def follow(
    c: Requester, name: str, update: Callable[[dict[str, Any]], None], poll_s: float = 0.5
) -> dict[str, Any]:
    """Poll the node's fetches until ``name``'s has ended; its last progress."""
    while True:
        current = next(
            (f for f in c.request("GET", "/api/v1/artifacts/fetches") if f["name"] == name), None
        )
        if current is None:
            raise LookupError(f"the node reports no fetch of {name}")
        update(current)
        if current["state"] not in _ACTIVE:
            return dict(current)
        time.sleep(poll_s)


def _fetch(args: argparse.Namespace, c: Requester) -> Any:
    started = c.request("POST", f"/api/v1/artifacts/{args.name}/fetch")
    if args.no_wait:
        return started
    if args.json or not sys.stderr.isatty():
        return follow(c, args.name, lambda _: None)
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress

    # Sizes in MiB like `artifact list`; rate and time left as the node reports them
    # (the UI shows the same figures).
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(binary_units=True),
        "{task.fields[rate]}",
        "{task.fields[left]}",
        console=Console(stderr=True),  # stdout keeps the answer
    ) as bar:
        task = bar.add_task(args.name, total=None, rate="", left="")

        def update(f: dict[str, Any]) -> None:
            rate, left = _rate_and_left(f)
            bar.update(
                task,
                completed=f["bytes_done"],
                total=f["bytes_total"],
                description=f"{args.name} ({f['state']})",
                rate=rate,
                left=left,
            )

        return follow(c, args.name, update)


def _rate_and_left(fetch: dict[str, Any]) -> tuple[str, str]:
    running = fetch["state"] == "running"
    rate = f"{fmt.size_bytes(fetch['rate_bps'])}/s" if running and fetch["rate_bps"] else ""
    eta = fetch["eta_s"]
    return rate, f"{fmt.time_left(eta)} left" if running and eta is not None else ""


def _call(args: argparse.Namespace, c: Requester) -> Any:
    command = args.artifact_command
    if command == "list":
        return c.request("GET", "/api/v1/artifacts")
    if command == "fetch":
        return _fetch(args, c)
    if command == "gc":
        if not args.dry_run:
            confirm(args, "remove the files no catalog entry or VM uses (--dry-run lists them)")
        body = {"dry_run": args.dry_run, "keep": args.keep}
        return c.request("POST", "/api/v1/artifacts/gc", json=body)
    return c.request("GET", "/api/v1/artifacts/plan")


def _size(n: int | None) -> str | None:
    return None if n is None else f"{n / (1 << 20):.1f} MiB"


def show(args: argparse.Namespace, result: Any) -> None:
    command = args.artifact_command
    if command == "list":
        rows = [
            {
                "name": a["name"],
                "kind": a["kind"],
                "state": a["state"],
                "size": _size(a["size"] if a["size"] is not None else a["size_on_disk"]),
                "needed_by": ",".join(a["needed_by"]) or None,
                "vms": ",".join(a["used_by_vms"]) or None,
            }
            for a in result["artifacts"]
        ]
        out(table(rows, ["name", "kind", "state", "size", "needed_by", "vms"]))
        out(f"image folder {result['image_dir']}: {_size(result['free_bytes'])} free")
    elif command == "fetch":
        state = result["state"]
        out(
            f"{result['name']}: {state}"
            + (f" [{result['error_code']}] {result['error']}" if result.get("error") else "")
        )
    elif command == "gc":
        verb = "would remove" if result["dry_run"] else "removed"
        for item in result["removed"]:
            out(f"{verb} {item['path']} ({item['why']}, {_size(item['bytes'])})")
        for name in result["kept"]:
            out(f"kept {name} (keep list)")
        out(f"{verb} {_size(result['freed_bytes'])} in all")
    elif command == "plan":
        if result["window_cron"] is None:
            out("no off-peak window ([artifacts] precache_cron is empty)")
        else:
            state = "open" if result["in_window"] else "next"
            span = f"{result['next_start']} to {result['next_end']}"
            out(f"window {result['window_cron']} ({state}: {span})")
        rows = [
            {
                "name": i["name"],
                "left": _size(i["bytes_left"]) or "unknown",
                "url": i["url"],
                "held": i.get("held", ""),
            }
            for i in result["items"]
        ]
        out(table(rows, ["name", "left", "url", "held"]))
        unsized = sum(1 for i in result["items"] if i["bytes_left"] is None and not i.get("held"))
        out(
            f"in all: {_size(result['total_bytes'])}"
            + (f" and {unsized} of unknown size" if unsized else "")
        )
    else:
        show_plain(args, result)


def _run(args: argparse.Namespace) -> int:
    def call(c: ApiClient) -> Any:
        result = _call(args, c)
        if args.artifact_command == "fetch" and result.get("state") == "failed":
            from towerbox_core.errors import TowerboxError

            raise TowerboxError(result.get("error") or "fetch failed", code=result["error_code"])
        return result

    return node_call(args, call, show)


group = CommandGroup(
    "artifact", "images, kernels and model bundles in the image folder", _register, _run
)
