"""GET /api/v1/fleet/versions: which versions the fleet runs, per component."""

from __future__ import annotations

from litestar import Controller, get

from registry.services.versions import fleet_versions
from towerbox_core.api.versions import FleetVersions


class VersionController(Controller):
    path = "/api/v1"
    tags = ("fleet",)

    @get("/fleet/versions", sync_to_thread=True)
    def versions(self) -> FleetVersions:
        """Per component (towerbox, agent, gpu_driver, vgpu_manager): its versions with
        the number of sites on each, newest first, and the most common one."""
        return fleet_versions()
