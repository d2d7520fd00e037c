"""Measured GPU usage: power and utilization integrated into counters, the driver's
energy counter and its resets, and who each GPU and MIG slice is charged to."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import peewee
import pytest

from appliance.backends.gpu.protocol import GpuTelemetry, InstanceTelemetry
from appliance.services.gpu_telemetry import GpuSample
from appliance.services.measured import Integrator, MeasuredUsage
from appliance.services.measured_gpu import GpuTenants, gpu_readings, owner_tenant
from appliance.store import journal
from appliance.store.db import open_database
from towerbox_core.metering.fold import MEASURED_KIND

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
T0_US = int(T0.timestamp()) * 1_000_000
S_US = 1_000_000
GPU = "GPU-aaaa"
SLICE = ("acme", "gpu_busy_us", f"mig:{GPU}/0")


def _whole(**fields: float | None) -> dict[str, GpuSample]:
    telemetry = GpuTelemetry(
        power_w=fields.get("power_w"),
        energy_j=fields.get("energy_j"),
        utilization_pct=fields.get("utilization_pct"),
        memory_used_mib=None,
    )
    return {GPU: GpuSample(GPU, "0000:17:00.0", telemetry)}


def test_power_is_integrated_into_energy_and_a_long_gap_counts_nothing() -> None:
    meter = Integrator(max_gap_s=60)
    key = ("", "gpu_energy_mj", f"gpu:{GPU}")
    # The first sample is the baseline; 300 W for 10 s is 3,000 J.
    assert meter.rate(T0_US, key, 300_000) == (key, 0)
    assert meter.rate(T0_US + 10 * S_US, key, 300_000) == (key, 3_000_000)
    # Two minutes without a sample (a stalled daemon): a new baseline, nothing invented.
    assert meter.rate(T0_US + 130 * S_US, key, 300_000) == (key, 3_000_000)
    # A clock that stepped back counts nothing either.
    assert meter.rate(T0_US + 120 * S_US, key, 300_000) == (key, 3_000_000)
    assert meter.rate(T0_US + 125 * S_US, key, 100_000) == (key, 3_500_000)


def test_energy_comes_from_the_drivers_counter_else_from_power() -> None:
    meter = Integrator()
    counted = [
        gpu_readings(
            T0_US + n * 5 * S_US, _whole(energy_j=joules, power_w=999.0), GpuTenants(), meter
        )
        for n, joules in enumerate((1_000.0, 1_500.25, 40.0, 100.0))
    ]
    # Millijoules; 1,500.25 J after 1,000 J is 500,250 mJ; a smaller value is a driver
    # reload and counts from zero (40 J), the power figure is not used beside a counter.
    assert [r[0][1] for r in counted] == [0, 500_250, 540_250, 600_250]
    assert counted[0][0][0] == ("", "gpu_energy_mj", f"gpu:{GPU}")
    # No counter: 250 W over the 5 s between sweeps.
    meter = Integrator()
    gpu_readings(T0_US, _whole(power_w=250.0), GpuTenants(), meter)
    [(key, mj)] = gpu_readings(T0_US + 5 * S_US, _whole(power_w=250.0), GpuTenants(), meter)
    assert (key, mj) == (("", "gpu_energy_mj", f"gpu:{GPU}"), 1_250_000)


def test_whole_gpu_activity_goes_to_the_vm_it_is_passed_through_to() -> None:
    meter = Integrator()
    rendering = GpuTenants(whole={GPU: "acme"})
    sample = _whole(utilization_pct=40.0, energy_j=10.0)
    gpu_readings(T0_US, sample, rendering, meter)
    found = dict(gpu_readings(T0_US + 30 * S_US, sample, rendering, meter))
    assert found == {
        ("acme", "gpu_busy_us", f"gpu:{GPU}"): 12 * S_US,  # 40 % of 30 s
        ("acme", "gpu_energy_mj", f"gpu:{GPU}"): 0,  # the counter did not move
    }
    # No VM holds it any more: the node's from now on.
    found = dict(gpu_readings(T0_US + 40 * S_US, sample, GpuTenants(), meter))
    assert found[("", "gpu_busy_us", f"gpu:{GPU}")] == 4 * S_US


def _mig(*per_instance: float | None) -> dict[str, GpuSample]:
    telemetry = GpuTelemetry(
        power_w=200.0,
        energy_j=None,
        utilization_pct=None,  # as NVML under MIG
        memory_used_mib=None,
        instances=tuple(
            InstanceTelemetry(gi, None, pct) for gi, pct in enumerate(per_instance, start=1)
        ),
    )
    placements = {1: ("1g.10gb", 0), 2: ("1g.10gb", 1), 3: ("3g.40gb", 4)}
    return {GPU: GpuSample(GPU, "0000:17:00.0", telemetry, placements)}


def test_mig_activity_is_charged_to_each_slices_owner_and_energy_stays_at_the_node() -> None:
    meter = Integrator()
    owners = GpuTenants(slices={(GPU, 0): "acme", (GPU, 4): "beta"})
    gpu_readings(T0_US, _mig(50.0, 20.0, 100.0), owners, meter)
    found = dict(gpu_readings(T0_US + 10 * S_US, _mig(50.0, 20.0, 100.0), owners, meter))
    assert found == {
        ("acme", "gpu_busy_us", f"mig:{GPU}/0"): 5 * S_US,
        ("", "gpu_busy_us", f"mig:{GPU}/1"): 2 * S_US,  # a free slice: the node's
        ("beta", "gpu_busy_us", f"mig:{GPU}/4"): 10 * S_US,
        ("", "gpu_energy_mj", f"gpu:{GPU}"): 2_000_000,  # 200 W x 10 s, never split
    }


def test_without_per_instance_figures_nothing_is_split() -> None:
    meter = Integrator()
    owners = GpuTenants(slices={(GPU, 0): "acme"})
    gpu_readings(T0_US, _mig(None, None, None), owners, meter)
    found = dict(gpu_readings(T0_US + 10 * S_US, _mig(None, None, None), owners, meter))
    # Only the GPU's energy, at the node: no busy time for anyone.
    assert found == {("", "gpu_energy_mj", f"gpu:{GPU}"): 2_000_000}
    # An instance the sweep could not place (a reshape under way) is left out too.
    sample = _mig(30.0)
    sample[GPU].placements.clear()
    assert "gpu_busy_us" not in {key[1] for key, _ in gpu_readings(T0_US, sample, owners, meter)}


def test_slice_owners_charge_their_tenants() -> None:
    vms = {"llm": "acme", "ops": ""}
    assert owner_tenant("llm", vms) == "acme"
    assert owner_tenant("ops", vms) == ""  # the operator's own VM
    assert owner_tenant("process:beta/vllm", vms) == "beta"
    assert owner_tenant("process:probe", vms) == ""  # the operator's own claim
    assert owner_tenant("gone", vms) == ""


@pytest.fixture
def db(tmp_path: Path) -> Iterator[peewee.SqliteDatabase]:
    database = open_database(tmp_path / "state.db")
    previous = journal.set_clock(lambda: T0)
    yield database
    journal.set_clock(previous)
    database.close()


@pytest.mark.usefixtures("db")
def test_a_slice_passed_to_another_tenant_and_back_is_never_charged_twice() -> None:
    meter, usage = Integrator(), MeasuredUsage(window_s=300)
    owners = ["acme", "acme", "beta", "beta", "acme", "acme"]
    for n, tenant in enumerate(owners):  # 50 % busy, a sweep every 10 s
        tenants = GpuTenants(slices={(GPU, 0): tenant})
        at = T0_US + n * 10 * S_US
        usage.observe(at, gpu_readings(at, _mig(50.0), tenants, meter))
    usage.flush(T0_US + 300 * S_US)
    [window] = [e["state"] for e in journal.entries(0, 100) if e["kind"] == MEASURED_KIND]
    busy = {(t, s): v for t, r, s, v in window["values"] if r == "gpu_busy_us"}
    # Five intervals of 5 busy seconds. Each goes to the owner at its end; beta's first
    # is its baseline (lost, as a counter's first reading is), and acme, back, counts
    # from where it left: never the seconds beta's sweeps counted.
    assert busy == {("acme", f"mig:{GPU}/0"): 15 * S_US, ("beta", f"mig:{GPU}/0"): 5 * S_US}
