"""The versions sites run: checked as heartbeats arrive, shown per site, counted over
the fleet (the skew an operator watches during an upgrade)."""

from __future__ import annotations

from typing import Any

import msgspec
import peewee

from registry.errors import BadRequest
from registry.store.fleet_versions import COLUMNS, enrolled_sites, version_counts
from registry.store.models import Site
from towerbox_core.api.versions import (
    COMPONENTS,
    MAX_VERSION_LENGTH,
    ComponentVersions,
    FleetVersions,
    SiteVersions,
    VersionCount,
    valid_version,
    version_key,
)
from towerbox_core.errors import InvalidInput
from towerbox_core.wire import Heartbeat


def check_heartbeat_versions(beat: Heartbeat) -> None:
    """Versions become indexed columns and metric labels: short, printable, or refused."""
    given = {"agent_version": beat.agent_version}
    if beat.versions is not None:
        given |= {f"versions.{k}": v for k, v in msgspec.structs.asdict(beat.versions).items()}
    for field, text in given.items():
        if text is not None and not valid_version(text):
            raise BadRequest(
                f"{field} {text[:80]!r} is not a version: at most {MAX_VERSION_LENGTH} "
                "letters, digits and . + _ ~ : -, starting with a letter or digit",
                code="invalid_heartbeat",
            )
    if beat.facts_hash is not None and not 0 < len(beat.facts_hash) <= 64:
        raise BadRequest("facts_hash is 1 to 64 characters", code="invalid_heartbeat")


def site_heartbeat(site: Site) -> dict[str, Any] | None:
    """The last heartbeat with the last host facts sent (a heartbeat may carry only
    their hash)."""
    if not site.heartbeat:
        return None
    beat: dict[str, Any] = msgspec.json.decode(site.heartbeat)
    if site.host_facts:
        beat["host"] = msgspec.json.decode(site.host_facts)
    return beat


def site_versions(site: Site) -> SiteVersions | None:
    if not site.heartbeat:
        return None
    return SiteVersions(
        towerbox=site.towerbox_version,
        agent=site.agent_version,
        gpu_driver=site.gpu_driver_version,
        vgpu_manager=site.vgpu_manager_version,
    )


def version_filter(component: str | None, version: str | None) -> peewee.Expression | None:
    """The site list's ``component=&version=`` filter; both or neither."""
    if component is None and version is None:
        return None
    if component is None or version is None:
        raise InvalidInput(
            "give component and version together, e.g. ?component=agent&version=0.1.0",
            code="invalid_version_filter",
            field="component" if component is None else "version",
        )
    column = COLUMNS.get(component)  # type: ignore[call-overload]
    if column is None:
        raise InvalidInput(
            f"unknown component {component!r}; use one of {', '.join(COMPONENTS)}",
            code="invalid_component",
            field="component",
        )
    expression: peewee.Expression = column == version
    return expression


def fleet_versions() -> FleetVersions:
    enrolled = enrolled_sites()
    components = []
    for component, counts in version_counts().items():
        versions = [
            VersionCount(version=v, sites=counts[v])
            for v in sorted(counts, key=version_key, reverse=True)
        ]
        # Newest first, so max() keeps the newest of equally common versions.
        common = max(versions, key=lambda c: c.sites).version if versions else None
        components.append(
            ComponentVersions(
                component=component,
                versions=versions,
                most_common=common,
                unreported=max(0, enrolled - sum(counts.values())),
            )
        )
    return FleetVersions(sites=enrolled, components=components)
