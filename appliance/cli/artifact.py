"""``towerbox artifact list|fetch|gc|plan``: the image folder's artifacts.

``fetch`` asks the node to fetch now and follows the fetch with a progress bar (on
stderr, by polling the API) until it is done, failed or paused. ``list`` shows each
fetch's progress as a bar in its table, and ``--follow`` follows every fetch under
way with live bars until they end. ``gc`` on a terminal removes the files of its
plan one by one, with a bar over the bytes freed.
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
from towerbox_core.api.artifacts import FETCH_UNDER_WAY
from towerbox_core.commands import CommandGroup, out, table

if TYPE_CHECKING:
    from towerbox_core.sync_client import ApiClient


class Requester(Protocol):
    def request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any: ...


def _register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="artifact_command", required=True)
    listing = sub.add_parser("list", help="artifacts the catalog names, and their state")
    listing.add_argument(
        "--follow", action="store_true", help="follow the fetches under way until they end"
    )
    json_flag(listing)
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
        if current["state"] not in FETCH_UNDER_WAY:
            return dict(current)
        time.sleep(poll_s)


def follow_all(
    c: Requester, update: Callable[[list[dict[str, Any]]], None], poll_s: float = 0.5
) -> None:
    """Poll the node's fetches until none is under way, showing each poll's."""
    while True:
        fetches: list[dict[str, Any]] = c.request("GET", "/api/v1/artifacts/fetches")
        update(fetches)
        if not any(f["state"] in FETCH_UNDER_WAY for f in fetches):
            return
        time.sleep(poll_s)


def _progress() -> Any:
    """A rich progress display on stderr (stdout keeps the answer): sizes in MiB like
    `artifact list`, rate and time left as the node reports them (the UI's figures)."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(binary_units=True),
        "{task.fields[rate]}",
        "{task.fields[left]}",
        console=Console(stderr=True),
    )


def _list(args: argparse.Namespace, c: Requester) -> Any:
    if args.follow and not args.json and sys.stderr.isatty():
        with _progress() as bar:
            tasks: dict[str, Any] = {}

            def update(fetches: list[dict[str, Any]]) -> None:
                for f in fetches:
                    if f["name"] not in tasks and f["state"] not in FETCH_UNDER_WAY:
                        continue  # ended before this command: `list` shows how
                    if f["name"] not in tasks:
                        tasks[f["name"]] = bar.add_task(f["name"], total=None, rate="", left="")
                    _show_fetch(bar, tasks[f["name"]], f)

            follow_all(c, update)
    elif args.follow:
        follow_all(c, lambda _: None)
    return c.request("GET", "/api/v1/artifacts")


def _gc(args: argparse.Namespace, c: Requester) -> Any:
    body = {"dry_run": args.dry_run, "keep": args.keep}
    if args.dry_run:
        return c.request("POST", "/api/v1/artifacts/gc", json=body)
    # The plan first: the question names what goes, and nothing to remove asks nothing.
    plan = c.request("POST", "/api/v1/artifacts/gc", json={**body, "dry_run": True})
    if not plan["removed"]:
        return {**plan, "dry_run": False}
    if sys.stdin.isatty() and not args.yes:
        for item in plan["removed"]:
            sys.stderr.write(f"  {item['path']} ({fmt.size_bytes(item['bytes'])}, {item['why']})\n")
    total = sum(item["bytes"] for item in plan["removed"])
    count = len(plan["removed"])
    confirm(args, f"remove these {count} file{'s' if count > 1 else ''} ({fmt.size_bytes(total)})")
    if args.json or not sys.stderr.isatty():
        # What was listed and agreed to, no more (each still only if it is garbage).
        listed = [item["path"] for item in plan["removed"]]
        return c.request("POST", "/api/v1/artifacts/gc", json={**body, "only": listed})
    # On a terminal: its files one by one (each only if it is still garbage when its
    # turn comes), with a bar over the bytes.
    removed: list[dict[str, Any]] = []
    with _progress() as bar:
        total = sum(item["bytes"] for item in plan["removed"])
        task = bar.add_task("gc", total=total, rate="", left="")
        for item in plan["removed"]:
            bar.update(task, description=f"gc {item['path']}")
            answer = c.request(
                "POST", "/api/v1/artifacts/gc", json={**body, "only": [item["path"]]}
            )
            removed += answer["removed"]
            bar.advance(task, item["bytes"])
        bar.update(task, description="gc")
    return {
        "dry_run": False,
        "removed": removed,
        "kept": plan["kept"],
        "freed_bytes": sum(item["bytes"] for item in removed),
    }


def _fetch(args: argparse.Namespace, c: Requester) -> Any:
    started = c.request("POST", f"/api/v1/artifacts/{args.name}/fetch")
    if args.no_wait:
        return started
    if args.json or not sys.stderr.isatty():
        return follow(c, args.name, lambda _: None)
    with _progress() as bar:
        task = bar.add_task(args.name, total=None, rate="", left="")
        return follow(c, args.name, lambda f: _show_fetch(bar, task, f))


def _show_fetch(bar: Any, task: Any, fetch: dict[str, Any]) -> None:
    """One fetch's progress, as the node reports it, on its bar."""
    rate, left = _rate_and_left(fetch)
    bar.update(
        task,
        completed=fetch["bytes_done"],
        total=fetch["bytes_total"],
        description=f"{fetch['name']} ({fetch['state']})",
        rate=rate,
        left=left,
    )


def _rate_and_left(fetch: dict[str, Any]) -> tuple[str, str]:
    running = fetch["state"] == "running"
    rate = f"{fmt.size_bytes(fetch['rate_bps'])}/s" if running and fetch["rate_bps"] else ""
    eta = fetch["eta_s"]
    return rate, f"{fmt.time_left(eta)} left" if running and eta is not None else ""


def _call(args: argparse.Namespace, c: Requester) -> Any:
    command = args.artifact_command
    if command == "list":
        return _list(args, c)
    if command == "fetch":
        return _fetch(args, c)
    if command == "gc":
        return _gc(args, c)
    return c.request("GET", "/api/v1/artifacts/plan")


def _size(n: int | None) -> str | None:
    return None if n is None else f"{n / (1 << 20):.1f} MiB"


def _fetch_cell(fetch: dict[str, Any] | None) -> str | None:
    """A fetch under way as a bar and its figures; an ended one's outcome."""
    if fetch is None:
        return None
    text = fmt.fetch_progress(fetch)
    if fetch["state"] in FETCH_UNDER_WAY:
        return f"{fmt.bar(fetch['bytes_done'], fetch['bytes_total'])} {text}"
    return text


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
                "fetch": _fetch_cell(a["fetch"]),
            }
            for a in result["artifacts"]
        ]
        out(table(rows, ["name", "kind", "state", "size", "needed_by", "vms", "fetch"]))
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
