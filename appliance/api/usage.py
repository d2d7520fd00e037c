"""Usage reports (JSON and CSV) and the node's price books."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, post
from litestar.params import FromPath, JSONBody, QueryParameter

from appliance.api.deps import ApplianceDep, AuthedRequest
from towerbox_core.api.usage import (
    USAGE_CSV_COLUMNS,
    PriceBook,
    PriceBooks,
    UsageReport,
    usage_csv,
)
from towerbox_core.openapi_problems import problem_responses

Tenant = Annotated[str | None, QueryParameter(max_length=63)]
Bound = Annotated[str | None, QueryParameter(max_length=40)]
GroupBy = Annotated[str, QueryParameter(pattern="^(hour|day|month|total)$")]


class UsageController(Controller):
    path = "/api/v1"
    tags = ("usage",)

    @get("/usage", sync_to_thread=True, responses=problem_responses(404, 422))
    def usage(
        self,
        request: AuthedRequest,
        appliance: ApplianceDep,
        tenant: Tenant = None,
        from_: Annotated[str | None, QueryParameter(name="from", max_length=40)] = None,
        to: Bound = None,
        group_by: GroupBy = "total",
    ) -> UsageReport:
        """Usage per tenant, resource and period from the journal, rated by the price
        book; ``from``/``to`` on the hour (default: this month until now). A tenant's
        users get their own tenant's only."""
        return appliance.metering.usage(request.user, tenant, from_, to, group_by)

    @get(
        "/usage.csv",
        sync_to_thread=True,
        media_type="text/csv",
        responses=problem_responses(404, 422),
    )
    def usage_csv(
        self,
        request: AuthedRequest,
        appliance: ApplianceDep,
        tenant: Tenant = None,
        from_: Annotated[str | None, QueryParameter(name="from", max_length=40)] = None,
        to: Bound = None,
        group_by: GroupBy = "total",
    ) -> str:
        """The same report as CSV, one line per tenant, resource and period."""
        found = appliance.metering.usage(request.user, tenant, from_, to, group_by)
        return usage_csv(found.lines, USAGE_CSV_COLUMNS)

    @get("/prices", sync_to_thread=True)
    def prices(self, request: AuthedRequest, appliance: ApplianceDep) -> PriceBooks:
        """The price book's versions, oldest first (anyone who may read usage)."""
        request.user.refuse_sync_agent()
        return appliance.metering.books()

    @post("/prices", sync_to_thread=True, status_code=201)
    def add_prices(
        self, request: AuthedRequest, data: JSONBody[PriceBook], appliance: ApplianceDep
    ) -> PriceBooks:
        """A new version (infra-admin): effective on the hour, after the newest one."""
        return appliance.metering.add_book(request.user, data)

    @delete("/prices/{effective_from:str}", sync_to_thread=True, status_code=200)
    def remove_prices(
        self, request: AuthedRequest, effective_from: FromPath[str], appliance: ApplianceDep
    ) -> PriceBooks:
        """Withdraw a version not yet in effect (infra-admin); one in effect stays."""
        return appliance.metering.remove_book(request.user, effective_from)
