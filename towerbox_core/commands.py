"""What a ``towerbox`` command group is, and how every group prints its answers.

Each package owns its command groups (``towerbox vm`` is the appliance's, ``towerbox
registry`` the registry's) and names them in the ``towerbox.commands`` entry-point
group; the CLI loads only the group a command line names. A group module must stay
cheap to import: it imports its package's heavy parts inside ``run``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ENTRY_POINT_GROUP = "towerbox.commands"


@dataclass(frozen=True)
class CommandGroup:
    name: str
    help: str
    register: Callable[[argparse.ArgumentParser], None]  # adds the group's arguments
    run: Callable[[argparse.Namespace], int]  # the exit status
    # Node commands read the appliance config and may be pointed at another API.
    node_options: bool = True


def out(text: str) -> None:
    """The command's answer goes to stdout; logs go to stderr."""
    sys.stdout.write(text + "\n")


def fail(code: str, message: str, status: int | None = None) -> int:
    http = f" (HTTP {status})" if status else ""
    sys.stderr.write(f"error [{code}]{http}: {message}\n")
    return 1


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Rows as aligned columns under upper-case headers; None shows as '-'."""

    def cell(row: Mapping[str, Any], column: str) -> str:
        value = row.get(column)
        return "-" if value is None else str(value)

    widths = {c: max([len(c)] + [len(cell(r, c)) for r in rows]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(cell(r, c).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def journal_table(entries: Sequence[Mapping[str, Any]]) -> str:
    """Journal entries (as the node or the registry serves them) with who made each."""
    # Imported here: the CLI's start-up imports this module and stays cheap without them.
    import msgspec

    from towerbox_core.wire import Actor

    def who(entry: Mapping[str, Any]) -> str:
        actor = entry.get("actor")
        return "-" if actor is None else msgspec.convert(actor, Actor).describe()

    rows = [{**e, "actor": who(e)} for e in entries]
    return table(rows, ("seq", "kind", "object_type", "object_id", "actor"))


def as_json(result: Any) -> str:
    return json.dumps(result, indent=2)
