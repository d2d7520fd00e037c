"""Usage and price books as the node's and the registry's APIs serve them."""

from __future__ import annotations

import msgspec

from towerbox_core.metering.prices import PriceBook
from towerbox_core.metering.report import UsageLine


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


class PriceBooks(msgspec.Struct, frozen=True):
    """GET/POST /api/v1/prices: the versions, oldest first."""

    versions: list[PriceBook]


__all__ = ["PriceBook", "PriceBooks", "UsageLine", "UsageReport"]
