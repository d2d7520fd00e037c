"""Measured GPU usage through the monitor sweep on simulated GPUs and a scripted
clock: a tenant's MIG slice busy 60 % of the time, a tenant VM holding a whole GPU by
passthrough, the node's own GPU energy; journalled as one window, priced in the
usage report and counted on /metrics."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from appliance.backends.gpu.simulated import SimulatedGpuBackend
from appliance.context import Appliance
from appliance.store import journal
from tests.support.journal_clock import Clock
from tests.support.tenancy import clients, tenant_node
from towerbox_core.metering.fold import MEASURED_KIND

Api = tuple[TestClient[Any], dict[str, str], dict[str, str]]
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[Appliance]:
    # An H100 with MIG on, and an L40S (no MIG) to pass through.
    yield from tenant_node(tmp_path, TOWERBOX_GPU_SIMULATED_MODELS="H100-80GB,L40S-48GB")


@pytest.fixture
def api(appliance: Appliance) -> Iterator[Api]:
    yield from clients(appliance)


def _ok(resp: Any, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json()


def test_gpu_energy_and_busy_time_are_measured_journalled_and_priced(
    appliance: Appliance, api: Api, clock: Clock
) -> None:
    c, admin, acme = api
    sim = appliance.gpus.backend
    assert isinstance(sim, SimulatedGpuBackend)
    h100, l40s = (g["uuid"] for g in _ok(c.get("/api/v1/gpus", headers=admin))["gpus"])
    _ok(c.post(f"/api/v1/gpus/{h100}/apply", headers=admin, json={"counts": {"1g.10gb": 4}}))
    quotas = {
        "process_claims": 1,
        "gpu_slices": {"1g.10gb": 1},
        "gpu_compute_slices": 1,
        "whole_gpus": 1,
    }
    _ok(c.put("/api/v1/tenants/acme/quotas", headers=admin, json=quotas))
    claim = _ok(
        c.post("/api/v1/gpus/claims", headers=acme, json={"name": "vllm", "profile": "1g.10gb"}),
        201,
    )
    # The claimed slice runs a workload: the simulator reports it 60 % busy.
    [gi] = [i for i in sim.instances(h100) if i.start == claim["start"]]
    sim.attach_workload(h100, gi.gpu_instance_id, "vllm")
    render = {
        "name": "render",
        "appliance": "demo",
        "spec": {
            "role": "b2b",
            "vcpus": 1,
            "memory_mib": 256,
            "gpu": {"attach": "passthrough", "gpu": l40s},
        },
        "start": True,
    }
    _ok(c.post("/api/v1/vms", headers=acme, json=render), 201)
    book = {
        "effective_from": clock.iso(),
        "currency": "EUR",
        "rates": {"gpu_energy_kwh": 0.30, "gpu_busy_time": 2.0},
    }
    _ok(c.post("/api/v1/prices", headers=admin, json=book), 201)

    sim.use_clock(clock.seconds)
    for minute in range(6):  # the sweep at +5 min closes the first window
        clock.now = clock.t0 + dt.timedelta(minutes=minute)
        appliance.monitor_job()
    assert set(appliance.monitor.snapshot.gpus) == {h100, l40s}

    [window] = [e["state"] for e in journal.entries(0, 10_000) if e["kind"] == MEASURED_KIND]
    gpu_rows = {
        (tenant, resource, subject): value
        for tenant, resource, subject, value in window["values"]
        if resource.startswith("gpu_")
    }
    # Four minutes counted (the first sweep is the baseline). The H100: 70 W idle plus
    # 35 W for its one busy compute slice, at the node; the slice's 60 % to acme. The
    # L40S idles at 70 W in acme's running VM, 0 % busy (no busy row).
    assert gpu_rows == {
        ("", "gpu_energy_mj", f"gpu:{h100}"): 105 * 240 * 1000,
        ("acme", "gpu_busy_us", f"mig:{h100}/{claim['start']}"): 144 * 1_000_000,
        ("acme", "gpu_energy_mj", f"gpu:{l40s}"): 70 * 240 * 1000,
    }

    period = {"from": clock.iso(), "to": clock.iso(hours=1)}
    lines = {
        (x["tenant"], x["resource"]): x
        for x in _ok(c.get("/api/v1/usage", headers=admin, params=period))["lines"]
    }
    busy = lines[("acme", "gpu_busy_time")]
    assert (busy["quantity"], busy["unit"], busy["seconds"]) == (0.04, "GPU busy-hour", None)
    assert busy["cost"] == pytest.approx(0.04 * 2.0)
    node_kwh = lines[(None, "gpu_energy_kwh")]
    assert (node_kwh["quantity"], node_kwh["unit"]) == (0.007, "kWh")
    assert node_kwh["cost"] == pytest.approx(0.007 * 0.30)
    # 16,800 J in kWh, to the report's 6 decimals.
    assert lines[("acme", "gpu_energy_kwh")]["quantity"] == 0.004667
    # A tenant sees its own GPU lines, and the CSV carries them like any other.
    mine = _ok(c.get("/api/v1/usage", headers=acme, params=period))
    assert {x["resource"] for x in mine["lines"]} >= {"gpu_busy_time", "gpu_energy_kwh"}
    csv = c.get("/api/v1/usage.csv", headers=acme, params=period).text
    assert "acme,gpu_busy_time,GPU busy-hour,,0.04,,0.08,EUR" in csv.splitlines()

    text = c.get("/metrics", headers=admin).text
    family = next(
        f for f in text_string_to_metric_families(text) if f.name == "towerbox_usage_measured"
    )
    measured = {
        (s.labels["tenant"], s.labels["resource"]): s.value
        for s in family.samples
        if s.name == "towerbox_usage_measured_total"
    }
    assert measured[("acme", "gpu_busy_seconds")] == pytest.approx(144.0)
    assert measured[("_node", "gpu_energy_joules")] == pytest.approx(105 * 240)
