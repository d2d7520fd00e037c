"""The parser: global options, then the command groups that the line needs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from towerbox_cli.entrypoints import entry_points
from towerbox_core import __version__
from towerbox_core.commands import ENTRY_POINT_GROUP, EXIT_STATUS_HELP, CommandGroup


def _node_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # Accepted before the group and after it (``towerbox appliance --config F``);
    # after it they do not reset what was given before.
    default = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--config",
        type=Path,
        default=default,
        help="appliance config (default $TOWERBOX_CONFIG or /etc/towerbox/appliance.toml)",
    )
    parser.add_argument(
        "--url", default=default, help="appliance API URL (default: the local unix socket)"
    )


def build_parser(wanted: str | None) -> argparse.ArgumentParser:
    """A parser with the group ``wanted`` only, or with all of them when it names none
    we know (``--help``, a typo): then the help lists every group."""
    parser = argparse.ArgumentParser(
        prog="towerbox",
        description="Towerbox edge node",
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"towerbox {__version__}")
    _node_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    found = entry_points(group=ENTRY_POINT_GROUP)
    chosen = [ep for ep in found if ep.name == wanted]
    listing = not chosen
    for ep in chosen or sorted(found, key=lambda ep: ep.name):
        try:
            group = ep.load()
        except ImportError as err:
            if not listing:
                raise
            # A group whose package is not installed on this host (a registry host has
            # no appliance) is left out of the list, not a reason to fail.
            sys.stderr.write(f"towerbox: command group {ep.name!r} is unavailable: {err}\n")
            continue
        if not isinstance(group, CommandGroup):
            raise TypeError(f"entry point {ep.name} = {ep.value} is not a CommandGroup")
        cmd = sub.add_parser(group.name, help=group.help, description=group.help)
        if group.node_options:
            _node_options(cmd, top=False)
        group.register(cmd)
        cmd.set_defaults(group=group)
    return parser
