"""GET /api/v1/fleet/overview: what the registry web UI's first page shows."""

from __future__ import annotations

from typing import Annotated

from litestar import get
from litestar.params import QueryParameter

from registry.api.deps import RegistryDep
from registry.services.fleet_overview import LAG_BEHIND, FleetOverviewService
from towerbox_core.api.fleet_overview import FleetOverview


# Any operator reads it (viewer included); a worker thread keeps heartbeats flowing.
@get("/api/v1/fleet/overview", sync_to_thread=True, tags=["fleet"])
def fleet_overview(
    registry: RegistryDep,
    limit: Annotated[
        int, QueryParameter(ge=1, le=500, description="regions, labels and problems at most")
    ] = 50,
    lag_behind: Annotated[
        int,
        QueryParameter(ge=1, le=2**62, description="journal entries a site lags to be listed"),
    ] = LAG_BEHIND,
) -> FleetOverview:
    return FleetOverviewService(registry.sites.status).overview(limit, lag_behind)
