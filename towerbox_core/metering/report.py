"""Usage reports: intervals cut into hours, summed by tenant, resource and period, rated.

Everything is summed per hour first, in unit-microseconds (exact integers), then
grouped to the period asked for: an hour is the unit a price version covers and
the bucket a rollup keeps after compaction, so a report is the same before and
after the journal is compacted.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Iterable

import msgspec

from towerbox_core.errors import InvalidInput
from towerbox_core.metering.fold import NODE_TENANT, Interval
from towerbox_core.metering.prices import PriceBook, effective_us

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


@functools.lru_cache(maxsize=256)
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
    tally = Tally(group_by, books)
    tally.add_buckets(buckets.items())
    return tally.lines()


def check_group(group_by: str) -> None:
    if group_by not in GROUPS:
        raise InvalidInput(
            f"group_by must be one of {', '.join(GROUPS)}",
            code="invalid_group_by",
            field="group_by",
        )


LineKey = tuple[str, str, str | None]  # tenant, resource as priced, period


class Tally:
    """A report's sums before they become lines: exact integers per line, and per line
    and price version; costs are worked out once, at the end, from those integers.

    So a report is the same however its usage was added (hour buckets, or intervals
    cut only where a period or a price version changes), and a tally can be kept and
    added to as new intervals close instead of summing every hour again.
    """

    def __init__(self, group_by: str, books: list[PriceBook]) -> None:
        check_group(group_by)
        self.group_by = group_by
        self.books = books
        self._starts = [effective_us(b) for b in books]
        self.held: dict[LineKey, int] = defaultdict(int)
        self.priced: dict[tuple[LineKey, int], int] = defaultdict(int)  # (line, version)
        self._hours: dict[int, tuple[str | None, int]] = {}  # hour -> period, version
        self._billing: dict[str, tuple[str, int, int | None]] = {}

    def copy(self) -> Tally:
        other = Tally(self.group_by, self.books)
        other.held.update(self.held)
        other.priced.update(self.priced)
        other._hours, other._billing = self._hours, self._billing  # caches, shared
        return other

    def add_buckets(self, buckets: Iterable[tuple[tuple[str, str, int], int]]) -> None:
        """Hour buckets' items: (tenant, resource, hour) and unit-microseconds."""
        # _add's work, with each hour's period and version and each resource's billing
        # looked up once: a month of a busy node is some 100,000 buckets.
        held, priced, hours, billing = self.held, self.priced, self._hours, self._billing
        for (tenant, resource, hour), value in buckets:
            known = hours.get(hour)
            if known is None:
                known = self._hour(hour)
            billed = billing.get(resource)
            if billed is None:
                billed = billing[resource] = _scale(resource)
            key = (tenant, billed[0], known[0])
            held[key] += value
            if known[1] >= 0:
                priced[key, known[1]] += value

    def add_span(self, tenant: str, resource: str, amount: int, start: int, end: int) -> None:
        """``amount`` held over [start, end): cut where a period or a version begins."""
        while start < end:
            cut = min(end, self._next_cut(start))
            self._add(tenant, resource, start, amount * (cut - start))
            start = cut

    def _add(self, tenant: str, resource: str, at: int, value: int) -> None:
        hour = at - at % HOUR_US
        known = self._hours.get(hour)
        if known is None:
            known = self._hour(hour)
        billing = self._billing.get(resource)
        if billing is None:
            billing = self._billing[resource] = _scale(resource)
        key = (tenant, billing[0], known[0])
        self.held[key] += value
        if known[1] >= 0:
            self.priced[key, known[1]] += value

    def _hour(self, hour: int) -> tuple[str | None, int]:
        version = bisect.bisect_right(self._starts, hour) - 1
        known = self._hours[hour] = (period_start(hour, self.group_by), version)
        return known

    def _next_cut(self, at: int) -> int:
        """The next time after ``at`` a period or a price version begins."""
        version = bisect.bisect_right(self._starts, at)
        cut = self._starts[version] if version < len(self._starts) else _NEVER
        hour = at - at % HOUR_US
        if self.group_by == "hour":
            return min(cut, hour + HOUR_US)
        if self.group_by == "day":
            return min(cut, at - at % DAY_US + DAY_US)
        if self.group_by == "month":
            return min(cut, next_month_us(hour))
        return cut

    def lines(self) -> list[UsageLine]:
        scales = {billed: (unit, seconds) for billed, unit, seconds in self._billing.values()}
        cost: dict[LineKey, float] = defaultdict(float)
        for (key, version), value in sorted(self.priced.items(), key=_line_order):
            unit = scales[key[1]][0]
            cost[key] += value / unit * self.books[version].rate(key[0], key[1])
        currency = self.books[-1].currency if self.books else None
        return [
            UsageLine(
                tenant=key[0] or None,
                resource=key[1],
                unit=unit_of(key[1]),
                period=key[2],
                quantity=round(value / scales[key[1]][0], 6),
                seconds=_seconds(value, scales[key[1]][1]),
                cost=round(cost[key], 6) if self.books else None,
                currency=currency,
            )
            for key, value in sorted(self.held.items(), key=lambda kv: _key_order(kv[0]))
        ]


_NEVER = 2**62
DAY_US = 24 * HOUR_US


@functools.lru_cache(maxsize=1 << 12)
def next_month_us(hour_us: int) -> int:
    when = dt.datetime.fromtimestamp(hour_us / 1_000_000, dt.UTC)
    first = when.replace(day=1, hour=0)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return int(following.timestamp()) * 1_000_000


def _key_order(key: LineKey) -> tuple[str, str, str]:
    return (key[0], key[1], key[2] or "")


def _line_order(item: tuple[tuple[LineKey, int], int]) -> tuple[tuple[str, str, str], int]:
    return (_key_order(item[0][0]), item[0][1])


def _seconds(held: int, per_second: int | None) -> float | None:
    return None if per_second is None else round(held / per_second, 6)


class Rated(msgspec.Struct, frozen=True):
    lines: list[UsageLine]
    currency: str | None
    total_cost: float | None


def rated(buckets: Buckets, group_by: str, books: list[PriceBook]) -> Rated:
    """The report's lines with the currency and total cost a book gives them."""
    tally = Tally(group_by, books)
    tally.add_buckets(buckets.items())
    return rated_tally(tally)


def rated_tally(tally: Tally) -> Rated:
    lines = tally.lines()
    books = tally.books
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
