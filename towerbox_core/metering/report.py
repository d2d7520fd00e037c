"""Usage reports: intervals cut into hours, summed by tenant, resource and period, rated.

Everything is summed per hour first, in unit-microseconds (exact integers), then
grouped to the period asked for: an hour is the unit a price version covers and
the bucket a rollup keeps after compaction, so a report is the same before and
after the journal is compacted.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Iterable

import msgspec

from towerbox_core.errors import InvalidInput
from towerbox_core.metering.fold import NODE_TENANT, Interval
from towerbox_core.metering.prices import PriceBook, book_at

HOUR_US = 3_600_000_000
GROUPS = ("hour", "day", "month", "total")
# Hour buckets: (tenant, resource, hour start in µs) -> unit-microseconds.
Buckets = dict[tuple[str, str, int], int]


class UsageLine(msgspec.Struct, frozen=True):
    tenant: str | None  # None: the node's own
    resource: str  # vcpu, memory_gib, disk_gib, hugepages:1G, gpu, mig:1g.10gb, vnet
    unit: str  # "vCPU-hour", "GiB-hour", ...
    period: str | None  # the period's start (ISO, UTC); None for group_by=total
    quantity: float  # unit-hours; for measured resources, units (GB, packets, CPU-hours)
    seconds: float | None  # unit-seconds, e.g. slice-seconds; None for measured counts
    cost: float | None  # None without a price book
    currency: str | None


_UNITS = {"vcpu": "vCPU-hour", "gpu": "GPU-hour", "vnet": "VNet-hour", "disk_gib": "GiB-hour"}


def unit_of(resource: str) -> str:
    for billed, unit, _ in MEASURED.values():
        if resource == billed:
            return unit
    if resource.startswith("mig:"):
        return "slice-hour"
    return _UNITS.get(resource, "GiB-hour")


# Measured resources: as priced, their unit, and the count one unit is.
MEASURED = {
    "n6_bytes": ("n6_gb", "GB", 1_000_000_000),
    "n6_packets": ("n6_packets", "packet", 1),
    "cpu_ns": ("cpu_time", "CPU-hour", 3_600_000_000_000),
    "gpu_energy_mj": ("gpu_energy_kwh", "kWh", 3_600_000_000),
    "gpu_busy_us": ("gpu_busy_time", "GPU busy-hour", 3_600_000_000),
}


def billed_resource(resource: str) -> tuple[str, int]:
    """The resource as priced and the divisor from held amounts (MiB are billed in GiB)."""
    if resource == "memory_mib":
        return "memory_gib", 1024
    if resource.startswith("hugepages:"):
        return resource, 1024
    return resource, 1


def _scale(resource: str) -> tuple[str, int, int | None]:
    """As priced, what one unit of quantity is in bucket units, and in seconds (None
    for counts): held resources are unit-microseconds, measured ones counts."""
    measured = MEASURED.get(resource)
    if measured is not None:
        return measured[0], measured[2], None
    billed, divisor = billed_resource(resource)
    return billed, divisor * HOUR_US, divisor * 1_000_000


def add_interval(into: Buckets, iv: Interval, from_us: int, to_us: int) -> None:
    start, end = max(iv.start_us, from_us), min(iv.end_us, to_us)
    if start >= end:
        return
    tenant, resource, amount = iv.tenant, iv.resource, iv.amount
    hour = start - start % HOUR_US
    last = (end - 1) - (end - 1) % HOUR_US
    if hour == last:
        key = (tenant, resource, hour)
        into[key] = into.get(key, 0) + amount * (end - start)
        return
    key = (tenant, resource, hour)
    into[key] = into.get(key, 0) + amount * (hour + HOUR_US - start)
    whole = amount * HOUR_US
    for full in range(hour + HOUR_US, last, HOUR_US):
        key = (tenant, resource, full)
        into[key] = into.get(key, 0) + whole
    key = (tenant, resource, last)
    into[key] = into.get(key, 0) + amount * (end - last)


def hour_buckets(intervals: Iterable[Interval], from_us: int, to_us: int) -> Buckets:
    buckets: Buckets = {}
    for iv in intervals:
        add_interval(buckets, iv, from_us, to_us)
    return buckets


@functools.lru_cache(maxsize=1 << 16)  # the same hours come up for every site of a fleet
def period_start(hour_us: int, group_by: str) -> str | None:
    if group_by == "total":
        return None
    when = dt.datetime.fromtimestamp(hour_us / 1_000_000, dt.UTC)
    if group_by == "day":
        when = when.replace(hour=0)
    elif group_by == "month":
        when = when.replace(day=1, hour=0)
    return when.isoformat()


def report(buckets: Buckets, group_by: str, books: list[PriceBook]) -> list[UsageLine]:
    if group_by not in GROUPS:
        raise InvalidInput(
            f"group_by must be one of {', '.join(GROUPS)}",
            code="invalid_group_by",
            field="group_by",
        )
    # Exact integer sums per line first; one division each at the end. Each hour's
    # period and price version and each resource's billing are worked out once.
    held: dict[tuple[str, str, str | None], int] = defaultdict(int)
    cost: dict[tuple[str, str, str | None], float] = defaultdict(float)
    hours: dict[int, tuple[str | None, PriceBook | None]] = {}
    billing = {r: _scale(r) for r in {k[1] for k in buckets}}
    scales = {billed: (unit, seconds) for billed, unit, seconds in billing.values()}
    for (tenant, resource, hour), unit_us in buckets.items():
        known = hours.get(hour)
        if known is None:
            known = hours[hour] = (period_start(hour, group_by), book_at(books, hour))
        billed, unit, _ = billing[resource]
        key = (tenant, billed, known[0])
        held[key] += unit_us
        if known[1] is not None:
            cost[key] += unit_us / unit * known[1].rate(tenant, billed)
    currency = books[-1].currency if books else None
    return [
        UsageLine(
            tenant=key[0] or None,
            resource=key[1],
            unit=unit_of(key[1]),
            period=key[2],
            quantity=round(held[key] / scales[key[1]][0], 6),
            seconds=_seconds(held[key], scales[key[1]][1]),
            cost=round(cost[key], 6) if books else None,
            currency=currency,
        )
        for key in sorted(held, key=lambda k: (k[0], k[1], k[2] or ""))
    ]


def _seconds(held: int, per_second: int | None) -> float | None:
    return None if per_second is None else round(held / per_second, 6)


class Rated(msgspec.Struct, frozen=True):
    lines: list[UsageLine]
    currency: str | None
    total_cost: float | None


def rated(buckets: Buckets, group_by: str, books: list[PriceBook]) -> Rated:
    """The report's lines with the currency and total cost a book gives them."""
    lines = report(buckets, group_by, books)
    costs = [line.cost for line in lines if line.cost is not None]
    return Rated(
        lines=lines,
        currency=books[-1].currency if books else None,
        total_cost=round(sum(costs), 6) if books else None,
    )


def only_tenant(buckets: Buckets, tenant: str | None) -> Buckets:
    """The buckets of one tenant (``NODE_TENANT`` for the node's own), or all."""
    if tenant is None:
        return buckets
    return {k: v for k, v in buckets.items() if k[0] == tenant}


__all__ = ["GROUPS", "NODE_TENANT", "Buckets", "UsageLine", "hour_buckets", "report"]
