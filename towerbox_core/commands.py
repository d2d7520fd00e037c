"""What a ``towerbox`` command group is, how every group prints its answers (tables
and summaries for people, ``--json`` for machines) and how it ends (one error line,
one exit status table).

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

from towerbox_core.errors import ConfigError, InvalidInput, TowerboxError, Unauthorized

ENTRY_POINT_GROUP = "towerbox.commands"

# The exit status of every ``towerbox`` command: a script can tell "the node said no"
# from "I typed it wrong", "my token is wrong" and "the node is down".
EXIT_OK = 0
EXIT_REFUSED = 1  # the API refused the request (4xx but 401), or the operator said no
EXIT_USAGE = 2  # a bad command line or input, found before anything was sent (argparse's 2)
EXIT_AUTH = 3  # no token, or the API refused the token (401)
EXIT_UNREACHABLE = 4  # nothing answers at the URL or socket
EXIT_SERVER = 5  # the daemon failed (5xx)

EXIT_STATUS_HELP = """\
exit status:
  0  done
  1  refused: the node answered no (not found, conflict, quota, invalid value, 403),
     or a confirmation was declined
  2  usage: a bad command line or input, nothing sent (bad JSON, unreadable file,
     config file not found, --yes needed off a terminal)
  3  auth: no token found, or the node refused the token (401)
  4  unreachable: nothing answers at the API URL or unix socket
  5  server error: the node failed (5xx)

Every command prints a table or a summary; --json prints the API's answer as JSON.
Destructive commands ask on a terminal (type the VM's name for vran and upf VMs);
--yes answers for them. Off a terminal they run without asking, except the most
destructive (vm delete --force of a running VM, changes to a vran or upf VM, gpu
apply), which need --yes."""

# Error codes that mean the far end never answered.
_UNREACHABLE_SUFFIXES = ("_unreachable", "_timeout")


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


def fail(code: str, message: str, status: int | None = None, exit: int = EXIT_REFUSED) -> int:
    """One line on stderr, ``error [code] (HTTP status): message``; the exit status."""
    http = f" (HTTP {status})" if status else ""
    sys.stderr.write(f"error [{code}]{http}: {message}\n")
    return exit


def _http_status(err: TowerboxError) -> int | None:
    """The HTTP status of an API's answer; None for an error made here (whose class
    ``status`` is only what the API would answer for it)."""
    from towerbox_core.sync_client import ApiError

    return err.status if isinstance(err, ApiError) and err.status else None


def exit_status(err: TowerboxError) -> int:
    """Which row of the exit status table an error belongs to."""
    status = _http_status(err)
    if status is not None:
        if status == 401:
            return EXIT_AUTH
        return EXIT_SERVER if status >= 500 else EXIT_REFUSED
    if err.code.endswith(_UNREACHABLE_SUFFIXES):
        return EXIT_UNREACHABLE
    if isinstance(err, Unauthorized):  # no token to send (one found here is checked there)
        return EXIT_AUTH
    if isinstance(err, InvalidInput | ConfigError):
        return EXIT_USAGE
    return EXIT_REFUSED


def report(err: TowerboxError) -> int:
    """Print ``err`` as one line and answer its exit status."""
    return fail(err.code, err.message, _http_status(err), exit_status(err))


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
    # Not ensure_ascii: a model name with a multiplication sign stays readable.
    return json.dumps(result, indent=2, ensure_ascii=False)


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, dict | list)


def _human_list(items: list[Any], indent: str) -> str:
    if not items:
        return f"{indent}(none)"
    if all(isinstance(item, dict) for item in items):
        columns = [k for k, v in items[0].items() if _is_scalar(v)]
        rows = [{c: _scalar(item.get(c)) for c in columns} for item in items]
        return "\n".join(indent + line for line in table(rows, columns).splitlines())
    return indent + ", ".join(
        _scalar(v) if _is_scalar(v) else json.dumps(v, ensure_ascii=False) for v in items
    )


def human(result: Any, indent: str = "") -> str:
    """An answer for a person: ``key: value`` lines (nested maps indented), lists of
    objects as tables of their plain fields, lists of values on one line."""
    if result is None:
        return ""
    if isinstance(result, str):
        return result.rstrip("\n")
    if isinstance(result, list):
        return _human_list(result, indent)
    if not isinstance(result, dict):
        return indent + _scalar(result)
    lines = []
    for key, value in result.items():
        if _is_scalar(value):
            lines.append(f"{indent}{key}: {_scalar(value)}")
        elif isinstance(value, list) and not any(isinstance(v, dict | list) for v in value):
            lines.append(f"{indent}{key}: {', '.join(_scalar(v) for v in value) or '(none)'}")
        elif not value:
            lines.append(f"{indent}{key}: (none)")
        else:
            lines.append(f"{indent}{key}:")
            lines.append(human(value, indent + "  "))
    return "\n".join(lines)
