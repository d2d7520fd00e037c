"""Versions a node runs and the fleet's version skew.

A node reports what its appliance runs (the Towerbox package version of the daemon,
the NVIDIA driver and vGPU manager it found at start) with its heartbeats; the agent
adds its own version, which can differ from the appliance's during an upgrade. The
registry keeps each in an indexed column of the site, so the skew over the fleet is
one GROUP BY per component.
"""

from __future__ import annotations

import re
from typing import Literal

import msgspec

Component = Literal["towerbox", "agent", "gpu_driver", "vgpu_manager"]
COMPONENTS: tuple[Component, ...] = ("towerbox", "agent", "gpu_driver", "vgpu_manager")
MAX_VERSION_LENGTH = 64
# Printable, no spaces: a version is a label value on /metrics and a column in tables.
_VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_~:-]*$")


class NodeVersions(msgspec.Struct, frozen=True, omit_defaults=True):
    """What the appliance runs; null where there is none (no NVIDIA driver, no vGPU
    manager). A simulated GPU backend reports versions ending in ``-simulated``."""

    towerbox: str | None = None  # the appliance daemon's package version
    gpu_driver: str | None = None
    vgpu_manager: str | None = None


class VersionCount(msgspec.Struct, frozen=True):
    version: str
    sites: int


class ComponentVersions(msgspec.Struct, frozen=True):
    component: Component
    versions: list[VersionCount]  # newest first
    most_common: str | None  # the version most sites run; ties go to the newest
    unreported: int  # enrolled sites with no version for this component


class FleetVersions(msgspec.Struct, frozen=True):
    """GET /api/v1/fleet/versions."""

    sites: int  # enrolled sites
    components: list[ComponentVersions]


class SiteVersions(msgspec.Struct, frozen=True):
    """One site's versions as its last heartbeat with host facts reported them."""

    towerbox: str | None
    agent: str | None
    gpu_driver: str | None
    vgpu_manager: str | None


def valid_version(text: str) -> bool:
    return len(text) <= MAX_VERSION_LENGTH and _VERSION_RE.match(text) is not None


def version_key(text: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key, newest last: numeric parts compare as numbers ("550.90" > "535.183"),
    other parts as text after the numbers of the same place."""
    parts = re.split(r"[.+_~:-]", text)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)
