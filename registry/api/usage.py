"""Fleet usage (JSON and CSV) and the registry's price book.

Any operator reads usage and prices; only admins add or withdraw a price version.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, post
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED

from registry.api.auth import OperatorRequest
from registry.api.deps import RegistryDep
from towerbox_core.api.usage import (
    FLEET_USAGE_CSV_COLUMNS,
    FleetUsageReport,
    PriceBook,
    PriceBooks,
    usage_csv,
)
from towerbox_core.openapi_problems import problem_responses

Name = Annotated[str | None, QueryParameter(max_length=63)]
From = Annotated[str | None, QueryParameter(name="from", max_length=40)]
To = Annotated[str | None, QueryParameter(max_length=40)]
GroupBy = Annotated[str, QueryParameter(max_length=16, description="hour|day|month|total")]


class UsageController(Controller):
    path = "/api/v1"
    tags = ("usage",)

    @get("/usage", sync_to_thread=True, responses=problem_responses(404, 422))
    def usage(
        self,
        registry: RegistryDep,
        site: Name = None,
        tenant: Name = None,
        from_: From = None,
        to: To = None,
        group_by: GroupBy = "total",
    ) -> FleetUsageReport:
        """Usage per site, tenant, resource and period from the journals the sites
        shipped, rated with the registry's price book; ``from``/``to`` on the hour
        (default: this month until now). A site's holdings still open count up to its
        newest entry (``sites[].as_of``)."""
        return registry.fleet_usage(site, tenant, from_, to, group_by)

    @get(
        "/usage.csv",
        sync_to_thread=True,
        media_type="text/csv",
        responses=problem_responses(404, 422),
    )
    def usage_csv(
        self,
        registry: RegistryDep,
        site: Name = None,
        tenant: Name = None,
        from_: From = None,
        to: To = None,
        group_by: GroupBy = "total",
    ) -> str:
        """The same report as CSV, one line per site, tenant, resource and period."""
        found = registry.fleet_usage(site, tenant, from_, to, group_by)
        return usage_csv(found.lines, FLEET_USAGE_CSV_COLUMNS)

    @get("/prices", sync_to_thread=True)
    def prices(self, registry: RegistryDep) -> PriceBooks:
        """The registry's price book versions, oldest first."""
        return registry.prices.books()

    @post("/prices", sync_to_thread=True, status_code=HTTP_201_CREATED)
    def add_prices(
        self, request: OperatorRequest, data: JSONBody[PriceBook], registry: RegistryDep
    ) -> PriceBooks:
        """A new version (admin): effective on the hour, after the newest one."""
        return registry.prices.add(request.user, data)

    @delete("/prices/{effective_from:str}", sync_to_thread=True, status_code=200)
    def remove_prices(
        self, request: OperatorRequest, effective_from: FromPath[str], registry: RegistryDep
    ) -> PriceBooks:
        """Withdraw a version not yet in effect (admin); one in effect stays."""
        return registry.prices.remove(request.user, effective_from)
