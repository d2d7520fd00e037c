"""Measured usage: counter rises summed per window, resets counted from zero, one
journal entry per window, and what reports and /metrics make of them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import peewee
import pytest

from appliance.metrics import UsageCollector
from appliance.services.measured import MeasuredUsage, vnet_readings
from appliance.services.metering import MeteringService
from appliance.store import journal
from appliance.store.compaction import compact
from appliance.store.db import open_database
from towerbox_core.metering.fold import MEASURED_KIND
from towerbox_core.metering.ledger import Ledger
from towerbox_core.metering.prices import PriceBook
from towerbox_core.metering.report import rated
from upf_bridge.backends.base import InterfaceCounters, VNetCounters

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
T0_US = int(T0.timestamp()) * 1_000_000
MIN_US = 60_000_000
BYTES = ("acme", "n6_bytes", "vnet:acme/llm/n6v100")
CPU = ("acme", "cpu_ns", "vm:v1")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[peewee.SqliteDatabase]:
    database = open_database(tmp_path / "state.db")
    previous = journal.set_clock(lambda: T0)
    yield database
    journal.set_clock(previous)
    database.close()


def _measured() -> list[dict[str, object]]:
    return [e["state"] for e in journal.entries(0, 1000) if e["kind"] == MEASURED_KIND]


@pytest.mark.usefixtures("db")
def test_rises_are_summed_per_window_and_a_reset_counts_from_zero() -> None:
    meter = MeasuredUsage(window_s=300)
    # Minute 0: the baseline. Minutes 1-4: +100, +50, a reset to 30 (counts 30), +20.
    for minute, value in enumerate((1_000, 1_100, 1_150, 30, 50)):
        meter.observe(T0_US + minute * MIN_US, [(BYTES, value), (CPU, 10 * minute)])
    assert _measured() == []  # the window (minutes 0-5) is still open
    meter.observe(T0_US + 6 * MIN_US, [(BYTES, 70), (CPU, 60)])  # in the next window
    [window] = _measured()
    assert window == {
        "from_us": T0_US,
        "to_us": T0_US + 5 * MIN_US,
        "values": [
            ["acme", "cpu_ns", "vm:v1", 40],
            ["acme", "n6_bytes", "vnet:acme/llm/n6v100", 200],
        ],
    }
    # A window with no rise writes nothing: one entry per window at most, never per sample.
    meter.observe(T0_US + 11 * MIN_US, [(BYTES, 70), (CPU, 60)])
    meter.observe(T0_US + 16 * MIN_US, [(BYTES, 70), (CPU, 60)])
    assert len(_measured()) == 2  # the 5-10 window held the +20 / +10 of minute 6


def test_a_window_must_divide_an_hour() -> None:
    with pytest.raises(ValueError, match="divide an hour"):
        MeasuredUsage(window_s=7 * 60)


def test_vnet_readings_are_per_interface_and_charged_to_the_tenant() -> None:
    counters = {
        "acme/llm": VNetCounters(
            "acme/llm",
            (InterfaceCounters("n6v100", rx_bytes=10, tx_bytes=5, rx_packets=2, tx_packets=1),),
        )
    }
    assert vnet_readings(counters) == [
        (("acme", "n6_bytes", "vnet:acme/llm/n6v100"), 15),
        (("acme", "n6_packets", "vnet:acme/llm/n6v100"), 3),
    ]


@pytest.mark.usefixtures("db")
def test_reports_rate_measured_counts_and_metrics_count_them() -> None:
    meter = MeasuredUsage(window_s=300)
    meter.observe(T0_US, [(BYTES, 0), (CPU, 0)])
    meter.observe(T0_US + MIN_US, [(BYTES, 3_000_000_000), (CPU, 1_800_000_000_000)])
    meter.flush(T0_US + 5 * MIN_US)
    ledger = Ledger()
    ledger.feed_all(journal.metering_entries(0))
    book = PriceBook(
        effective_from=T0.isoformat(), currency="EUR", rates={"n6_gb": 0.02, "cpu_time": 0.1}
    )
    report = rated(ledger.buckets(T0_US, T0_US + 3_600_000_000, T0_US), "total", [book])
    lines = {line.resource: line for line in report.lines}
    assert (lines["n6_gb"].quantity, lines["n6_gb"].unit, lines["n6_gb"].seconds) == (
        3.0,
        "GB",
        None,
    )
    assert lines["n6_gb"].cost == pytest.approx(0.06)
    assert (lines["cpu_time"].quantity, lines["cpu_time"].unit) == (0.5, "CPU-hour")
    assert lines["cpu_time"].cost == pytest.approx(0.05)
    families = {f.name: f for f in UsageCollector(lambda: ledger.totals(T0_US)).collect()}
    measured = {
        tuple(s.labels.values()): s.value for s in families["towerbox_usage_measured"].samples
    }
    assert measured == {("acme", "cpu_seconds"): 1800.0, ("acme", "n6_bytes"): 3e9}
    assert families["towerbox_usage_seconds"].samples == []


@pytest.mark.usefixtures("db")
def test_compaction_keeps_measured_counts_in_its_rollup() -> None:
    meter = MeasuredUsage(window_s=300)
    for window in range(4):
        meter.observe(T0_US + window * 5 * MIN_US, [(BYTES, window * 1000)])
    hour = (T0_US, T0_US + 3_600_000_000, T0_US + 3_600_000_000)
    before = MeteringService().buckets(*hour)
    assert before == {("acme", "n6_bytes", T0_US): 2000}  # the fourth window is open
    with journal.acting_as(journal.NODE_ACTOR):
        assert compact(0, 365, before=MeteringService().write_rollup).deleted > 0
    assert len(_measured()) == 1  # only the newest window's entry stays
    assert MeteringService().buckets(*hour) == before
