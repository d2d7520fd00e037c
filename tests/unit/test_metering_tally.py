"""A report's sums are the same however usage is added: hour buckets (the node, a
rollup) or intervals cut only where a period or a price version begins (what the
registry adds as new entries close intervals)."""

from __future__ import annotations

import datetime as dt
import random

import msgspec
import pytest

from towerbox_core.metering.fold import Interval
from towerbox_core.metering.prices import PriceBook
from towerbox_core.metering.report import GROUPS, HOUR_US, Tally, hour_buckets, report

T0 = int(dt.datetime(2030, 1, 30, tzinfo=dt.UTC).timestamp()) * 1_000_000  # months meet
BOOKS = [
    PriceBook("2030-01-30T00:00:00+00:00", "EUR", {"vcpu": 0.5, "mig:1g.10gb": 2.0}),
    PriceBook(
        "2030-01-31T13:00:00+00:00",
        "EUR",
        {"vcpu": 0.7, "memory_gib": 0.01},
        {"acme": {"vcpu": 0.3}},
    ),
    PriceBook("2030-02-01T05:00:00+00:00", "EUR", {"vcpu": 0.9, "n6_gb": 0.05}),
]


def _intervals(seed: int) -> list[Interval]:
    rng = random.Random(seed)
    found = []
    for _ in range(60):
        start = T0 + rng.randrange(0, 72 * HOUR_US)
        length = rng.randrange(1, 30 * HOUR_US)
        tenant = rng.choice(["", "acme", "globex"])
        resource = rng.choice(["vcpu", "memory_mib", "mig:1g.10gb", "disk_gib"])
        found.append(Interval(tenant, resource, "s", rng.randrange(1, 9), start, start + length))
    # a measured count: one microsecond at its window's start
    found.append(
        Interval(
            "acme", "n6_bytes", "vnet", 3_000_000_000, T0 + 40 * HOUR_US, T0 + 40 * HOUR_US + 1
        )
    )
    return found


@pytest.mark.parametrize("group_by", GROUPS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_spans_and_hour_buckets_make_the_same_lines(group_by: str, seed: int) -> None:
    intervals = _intervals(seed)
    by_hours = report(hour_buckets(intervals, 0, 2**62), group_by, BOOKS)
    tally = Tally(group_by, BOOKS)
    for iv in intervals:
        tally.add_span(iv.tenant, iv.resource, iv.amount, iv.start_us, iv.end_us)
    assert msgspec.to_builtins(tally.lines()) == msgspec.to_builtins(by_hours)
    assert any(line.cost for line in by_hours)


def test_a_copy_adds_apart_from_its_original() -> None:
    kept = Tally("total", BOOKS)
    kept.add_span("acme", "vcpu", 2, T0, T0 + HOUR_US)
    answer = kept.copy()
    answer.add_span("acme", "vcpu", 2, T0 + HOUR_US, T0 + 2 * HOUR_US)
    assert [x.quantity for x in kept.lines()] == [2.0]
    assert [x.quantity for x in answer.lines()] == [4.0]


def test_a_span_is_cut_where_a_version_begins() -> None:
    tally = Tally("total", BOOKS)
    # acme's vCPU: 0.5 until 2030-01-31T13:00, then acme's own 0.3
    begins = T0 + 37 * HOUR_US
    tally.add_span("acme", "vcpu", 1, begins - HOUR_US, begins + 2 * HOUR_US)
    (line,) = tally.lines()
    assert (line.quantity, line.cost) == (3.0, pytest.approx(0.5 + 2 * 0.3))
