"""Node-level routes: health, host inventory, catalog, journal, metrics."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import FromPath, QueryParameter

from appliance.api.deps import ApplianceDep, AuthedRequest, require_node_scope
from appliance.api.sync import SYNC_AGENT_OPEN, require_sync_scope
from towerbox_core.api.history import HistoryPage
from towerbox_core.api.node import CatalogEntryView, Health, HostView
from towerbox_core.api.sync import JournalPage
from towerbox_core.api_params import CountQuery, OptionalCountQuery


@get("/healthz")
async def healthz(appliance: ApplianceDep) -> Health:
    return appliance.views.health()


class NodeController(Controller):
    path = "/api/v1"
    tags = ("node",)

    @get("/host", sync_to_thread=True)
    def host(self, request: AuthedRequest, appliance: ApplianceDep) -> HostView:
        require_node_scope(request.user)
        return appliance.views.host()

    @get("/catalog", sync_to_thread=True)
    def catalog(self, appliance: ApplianceDep) -> list[CatalogEntryView]:
        return appliance.views.catalog()

    @get("/catalog/{name:str}", sync_to_thread=True)
    def catalog_entry(self, name: FromPath[str], appliance: ApplianceDep) -> CatalogEntryView:
        return appliance.views.catalog_entry(name)

    @get("/journal", sync_to_thread=True, opt=SYNC_AGENT_OPEN)
    def journal_entries(
        self,
        request: AuthedRequest,
        appliance: ApplianceDep,
        after: CountQuery = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        kind: Annotated[str | None, QueryParameter(max_length=48)] = None,
    ) -> JournalPage:
        require_sync_scope(request.user)
        return appliance.journal.page(after, limit, kind)

    @get("/journal/history", sync_to_thread=True)
    def journal_history(
        self,
        request: AuthedRequest,
        appliance: ApplianceDep,
        before: OptionalCountQuery = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
        kind: Annotated[str | None, QueryParameter(max_length=48)] = None,
    ) -> HistoryPage:
        """The journal as an audit log, newest first: time, actor, object name and
        type, what changed. ``before`` pages back (the previous page's ``next_before``)."""
        require_node_scope(request.user)
        return appliance.journal.history(before, limit, kind)


@get("/metrics", media_type="text/plain; version=0.0.4", sync_to_thread=True)
def metrics(request: AuthedRequest, appliance: ApplianceDep) -> str:
    """Prometheus text exposition of the appliance's metrics: node-wide, so for
    infra-admins and tenant-less viewers (a scraper's token) only. On a worker thread:
    the usage counters fold the journal entries written since the last scrape."""
    require_node_scope(request.user)
    return appliance.metrics.render().decode()
