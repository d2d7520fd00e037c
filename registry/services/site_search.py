"""The site list's search box and sort order, as SQL both engines run the same way.

Names and hostnames are short, and the site table holds one row per site: a
substring LIKE over 10,000 rows is one pass of a few milliseconds, and it finds
"cell-0042" from "0042", which a prefix-only index could not.
"""

from __future__ import annotations

import re

import peewee

from registry.store.models import Site
from towerbox_core.errors import InvalidInput

# What a name or a hostname can hold; LIKE's own wildcards are escaped below.
_QUERY = re.compile(r"[A-Za-z0-9._-]{1,63}")
_ESCAPE = "!"
_SORTS: dict[str, peewee.Field] = {
    "name": Site.name,
    "region": Site.region,
    "hostname": Site.hostname,
    "last_contact": Site.last_contact,
}


def name_or_hostname_contains(q: str) -> peewee.Expression:
    if not _QUERY.fullmatch(q):
        raise InvalidInput(
            "search for part of a site name or hostname: 1 to 63 letters, digits, '.', '-', '_'",
            code="invalid_search",
            field="q",
        )
    escaped = q.lower().replace(_ESCAPE, _ESCAPE * 2).replace("_", _ESCAPE + "_")
    pattern = f"%{escaped}%"

    def like(column: peewee.Field) -> peewee.Node:
        # LOWER on both sides: PostgreSQL's LIKE is case-sensitive, SQLite's is not.
        return peewee.NodeList(
            (
                peewee.fn.LOWER(column),
                peewee.SQL("LIKE"),
                pattern,
                peewee.SQL(f"ESCAPE '{_ESCAPE}'"),
            )
        )

    return peewee.Expression(like(Site.name), "OR", like(Site.hostname))


def sort_order(sort: str | None) -> tuple[peewee.Node, ...]:
    """ORDER BY for ``name``, ``-last_contact`` and the like; the name breaks ties."""
    if not sort:
        return (Site.name,)
    key = sort.removeprefix("-")
    column = _SORTS.get(key)
    if column is None:
        raise InvalidInput(
            f"unknown sort {sort!r}; use one of {', '.join(_SORTS)}, '-' first for descending",
            code="invalid_sort",
            field="sort",
        )
    first = column.desc(nulls="LAST") if sort.startswith("-") else column.asc(nulls="FIRST")
    return (first, Site.name)
