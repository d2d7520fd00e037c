"""How many sites run each version of each component: one GROUP BY per indexed column."""

from __future__ import annotations

import peewee

from registry.store import sql
from registry.store.models import Site
from towerbox_core.api.versions import COMPONENTS, Component

COLUMNS: dict[Component, peewee.Field] = {
    "towerbox": Site.towerbox_version,
    "agent": Site.agent_version,
    "gpu_driver": Site.gpu_driver_version,
    "vgpu_manager": Site.vgpu_manager_version,
}


def _statement() -> str:
    # Only this module's column names are formatted into the text.
    parts = [
        f"SELECT '{component}', {COLUMNS[component].column_name}, COUNT(*) FROM site "  # noqa: S608
        f"WHERE {COLUMNS[component].column_name} IS NOT NULL "
        f"GROUP BY {COLUMNS[component].column_name}"
        for component in COMPONENTS
    ]
    return " UNION ALL ".join(parts)


COUNTS = _statement()
_ENROLLED = "SELECT COUNT(*) FROM site WHERE secret_hash IS NOT NULL"


def version_counts() -> dict[Component, dict[str, int]]:
    counts: dict[Component, dict[str, int]] = {c: {} for c in COMPONENTS}
    for component, version, count in sql.fetchall(COUNTS, ()):
        counts[component][version] = int(count)
    return counts


def enrolled_sites() -> int:
    row = sql.fetchone(_ENROLLED, ())
    return int(row[0]) if row else 0
