"""``towerbox registry versions``: the fleet's version skew as a table (or JSON)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from registry.services.versions import fleet_versions
from towerbox_core.commands import table

if TYPE_CHECKING:
    from registry.context import Registry


def versions_command(args: argparse.Namespace, registry: Registry) -> Any:
    del registry  # the counts are plain queries on the database the CLI opened
    found = fleet_versions()
    if args.json:
        return found
    rows: list[dict[str, Any]] = []
    for c in found.components:
        rows += [
            {
                "component": c.component,
                "version": v.version,
                "sites": v.sites,
                "share": f"{100 * v.sites / found.sites:.1f} %" if found.sites else "-",
                "most_common": "*" if v.version == c.most_common else "",
            }
            for v in c.versions
        ]
        if c.unreported:
            rows.append(
                {"component": c.component, "version": "(not reported)", "sites": c.unreported}
            )
    columns = ("component", "version", "sites", "share", "most_common")
    return f"{found.sites} enrolled sites\n" + table(rows, columns) + "\n"
