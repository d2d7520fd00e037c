"""Artifact routes: the catalog's artifacts, fetch now, progress, GC and the pre-cache plan.

Node-wide data: infra-admins and tenant-less viewers read it; only infra-admins fetch
or collect. Tenants see their appliances through the catalog instead: the list names
every tenant's VMs and the node's bandwidth plans.
"""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.params import FromPath, JSONBody

from appliance.api.deps import ApplianceDep, AuthedRequest, require_node_scope
from appliance.services.artifact_gc import collect
from towerbox_core.api.artifacts import (
    ArtifactList,
    FetchProgress,
    GcRequest,
    GcResult,
    PrecachePlan,
)


class ArtifactController(Controller):
    path = "/api/v1/artifacts"
    tags = ("artifacts",)

    @get("/", sync_to_thread=True)
    def list_artifacts(self, request: AuthedRequest, appliance: ApplianceDep) -> ArtifactList:
        require_node_scope(request.user)
        return appliance.artifacts.artifacts()

    @get("/fetches", sync_to_thread=True)
    def fetches(self, request: AuthedRequest, appliance: ApplianceDep) -> list[FetchProgress]:
        """Every fetch since the daemon started: bytes done of total, rate and ETA."""
        require_node_scope(request.user)
        return appliance.artifacts.fetches()

    @get("/plan", sync_to_thread=True)
    def plan(self, request: AuthedRequest, appliance: ApplianceDep) -> PrecachePlan:
        """What the next (or the open) off-peak window will fetch."""
        require_node_scope(request.user)
        return appliance.precache.plan()

    @post("/{name:str}/fetch", sync_to_thread=True, status_code=202)
    def fetch(
        self, request: AuthedRequest, name: FromPath[str], appliance: ApplianceDep
    ) -> FetchProgress:
        """Fetch now, outside any window; answers at once with the fetch's progress."""
        return appliance.artifacts.fetch_now(request.user, name)

    @post("/gc", sync_to_thread=True, status_code=200)
    def gc(
        self, request: AuthedRequest, data: JSONBody[GcRequest], appliance: ApplianceDep
    ) -> GcResult:
        """Remove files no catalog entry or VM uses (``dry_run``: only say which)."""
        return collect(appliance.artifacts, request.user, data)
