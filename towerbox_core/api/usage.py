"""Usage and price books as the node's and the registry's APIs serve them."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import msgspec

from towerbox_core.metering.prices import PriceBook
from towerbox_core.metering.report import UsageLine

USAGE_CSV_COLUMNS = (
    "tenant",
    "resource",
    "unit",
    "period",
    "quantity",
    "seconds",
    "cost",
    "currency",
)
FLEET_USAGE_CSV_COLUMNS = ("site", *USAGE_CSV_COLUMNS)


class UsageReport(msgspec.Struct, frozen=True, rename={"from_": "from"}):
    """GET /api/v1/usage: usage per tenant, resource and period, rated when a price
    book is set. ``to`` is now when not asked for."""

    from_: str
    to: str
    group_by: str
    tenant: str | None  # the tenant asked for, or None for all the caller may see
    currency: str | None
    total_cost: float | None
    lines: list[UsageLine]


class FleetUsageLine(msgspec.Struct, frozen=True):
    """A ``UsageLine`` of one site: the registry groups by site first."""

    site: str
    tenant: str | None  # None: the node's own
    resource: str
    unit: str
    period: str | None
    quantity: float
    seconds: float | None  # None for measured counts
    cost: float | None  # rated with the registry's price book
    currency: str | None


class SiteUsageAsOf(msgspec.Struct, frozen=True):
    """How far the registry's figures for a site reach: what the site has shipped."""

    site: str
    acked_seq: int
    # The node time of the newest entry the registry holds: holdings still open end
    # there (or at ``to`` if earlier); None when the site sent nothing yet.
    as_of: str | None


class FleetUsageReport(msgspec.Struct, frozen=True, rename={"from_": "from"}):
    """GET /api/v1/usage on the registry: usage per site, tenant, resource and period,
    folded from each site's journal with the node's code and rated with the
    registry's price book."""

    from_: str
    to: str
    group_by: str
    site: str | None  # the site asked for, or None for every site
    tenant: str | None  # the tenant asked for ("" the nodes' own), or None for all
    currency: str | None
    total_cost: float | None
    sites: list[SiteUsageAsOf]
    lines: list[FleetUsageLine]


class PriceBooks(msgspec.Struct, frozen=True):
    """GET/POST /api/v1/prices: the versions, oldest first."""

    versions: list[PriceBook]


def usage_csv(lines: Sequence[msgspec.Struct], columns: Sequence[str]) -> str:
    """Report lines as CSV, a header first; None is an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for line in lines:
        writer.writerow(["" if getattr(line, c) is None else getattr(line, c) for c in columns])
    return out.getvalue()


__all__ = [
    "FleetUsageLine",
    "FleetUsageReport",
    "PriceBook",
    "PriceBooks",
    "SiteUsageAsOf",
    "UsageLine",
    "UsageReport",
]
