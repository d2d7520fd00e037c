"""Guards for destructive commands: ask on a terminal, ``--yes`` for scripts.

The rule (also in ``towerbox --help``): on a terminal a destructive command asks, and
for a VM whose role is vran or upf (a cell outage) the operator types its name.
Off a terminal a script is not stopped by a question it cannot answer, except for
the most destructive commands, which need ``--yes`` there: nobody is asked, so
nobody should be surprised.
"""

from __future__ import annotations

import argparse
import sys

from towerbox_core.errors import InvalidInput, TowerboxError

# Roles whose VMs carry the cell: stopping one takes the radio or user plane down.
CRITICAL_ROLES = ("vran", "upf")


def yes_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--yes", "-y", action="store_true", help="do it without asking")


def confirm(
    args: argparse.Namespace,
    what: str,
    *,
    typed: str | None = None,
    needs_yes_off_terminal: bool = False,
) -> None:
    """Go on, or raise: ``what`` is the action in words ("delete VM du1 (running)").

    ``typed``: on a terminal the operator must type this (a VM's name) rather than y.
    """
    if getattr(args, "yes", False):
        return
    if not sys.stdin.isatty():
        if needs_yes_off_terminal:
            raise InvalidInput(
                f"{what}: not on a terminal, nobody can confirm; add --yes to do it",
                code="confirmation_required",
            )
        return
    if typed is not None:
        sys.stderr.write(f"{what}. Type {typed} to confirm: ")
        sys.stderr.flush()
        agreed = sys.stdin.readline().strip() == typed
    else:
        sys.stderr.write(f"{what}? [y/N] ")
        sys.stderr.flush()
        agreed = sys.stdin.readline().strip().lower() in ("y", "yes")
    if not agreed:
        raise TowerboxError(f"{what}: not confirmed, nothing done", code="not_confirmed")
