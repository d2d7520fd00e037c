"""The node's "top" through the API on the libvirt test driver and a simulated H100:
order and figures follow the monitor's sweeps, a VM's MIG slice shows its activity,
a tenant sees only its own, a bad sort is refused; and the VM's chart history holds
the slice's points."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from appliance.backends.vm.protocol import DomainStats
from appliance.context import Appliance
from appliance.store.models import Vm
from tests.support.tenancy import clients, tenant_node

Api = tuple[TestClient[Any], dict[str, str], dict[str, str]]
MIB = 1024 * 1024
# Per sweep, what the busy VM's counters grow by: far more CPU time than a sweep
# apart lasts (so 100 % of its vCPU), and bytes on its NIC and disk.
BUSY_STEP = {
    "cpu_time_ns": 60 * 10**9,
    "net_rx_bytes": 50 * MIB,
    "net_tx_bytes": 5 * MIB,
    "disk_read_bytes": 2 * MIB,
    "disk_write_bytes": 30 * MIB,
}


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[Appliance]:
    yield from tenant_node(tmp_path)


@pytest.fixture
def api(appliance: Appliance) -> Iterator[Api]:
    yield from clients(appliance)


def _ok(resp: Any, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json()


def _working(appliance: Appliance, monkeypatch: pytest.MonkeyPatch, busy: str) -> None:
    """The test driver reports states only: add the counters a guest at work grows,
    to the busy VM's domain, sweep after sweep (1 GiB of memory for every domain)."""
    real = appliance.backend.bulk_stats
    sweeps = {"n": 0}
    busy_id = Vm.get(Vm.name == busy).id

    def stats(deadline_s: float = 2.0) -> list[DomainStats]:
        sweeps["n"] += 1
        out = []
        for s in real(deadline_s):
            grown = {k: v * sweeps["n"] for k, v in BUSY_STEP.items()} if s.uuid == busy_id else {}
            out.append(msgspec.structs.replace(s, vcpus=1, memory_kib=1024 * 1024, **grown))
        return out

    monkeypatch.setattr(appliance.backend, "bulk_stats", stats)


def _slice_setup(c: TestClient[Any], admin: dict[str, str]) -> str:
    gpu = str(_ok(c.get("/api/v1/gpus", headers=admin))["gpus"][0]["uuid"])
    _ok(c.post(f"/api/v1/gpus/{gpu}/apply", headers=admin, json={"counts": {"1g.10gb": 4}}))
    quotas = {"gpu_slices": {"1g.10gb": 1}, "gpu_compute_slices": 1}
    _ok(c.put("/api/v1/tenants/acme/quotas", headers=admin, json=quotas))
    return gpu


def _vm(c: TestClient[Any], headers: dict[str, str], name: str, **spec: Any) -> None:
    body = {"name": name, "appliance": "demo", "spec": {"role": "b2b", **spec}, "start": True}
    _ok(c.post("/api/v1/vms", headers=headers, json=body), 201)


def test_top_puts_the_busy_vm_first_with_the_sweeps_figures(
    appliance: Appliance, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    c, admin, acme = api
    gpu = _slice_setup(c, admin)
    _vm(c, admin, "idle")
    _vm(c, acme, "busy", gpu={"profile": "1g.10gb"})
    _working(appliance, monkeypatch, "busy")
    for _ in range(3):
        appliance.monitor_job()

    top = _ok(c.get("/api/v1/top", headers=admin))
    assert [v["name"] for v in top["vms"]] == ["busy", "idle"]
    assert top["sort"] == "cpu"
    busy, idle = top["vms"]
    assert (busy["cpu_pct"], idle["cpu_pct"]) == (100.0, 0.0)
    assert (busy["tenant"], idle["tenant"]) == ("acme", None)
    # Rates are the counters' growth over the two last sweeps, as /stats shows them.
    before, now = _ok(c.get("/api/v1/vms/busy/stats", headers=admin))["history"][-2:]
    span = now["at"] - before["at"]
    for field, counter in (
        ("net_rx_bps", "net_rx_bytes"),
        ("net_tx_bps", "net_tx_bytes"),
        ("disk_read_bps", "disk_read_bytes"),
        ("disk_write_bps", "disk_write_bytes"),
    ):
        assert busy[field] == pytest.approx(BUSY_STEP[counter] / span), field
        assert idle[field] == 0.0
    assert busy["memory_bytes"] == 1024 * MIB

    # The busy VM holds a 1g.10gb slice with its vGPU on it: 60 % busy, per instance.
    assert busy["gpu"]["gpu"] == gpu
    assert (busy["gpu"]["profile"], busy["gpu"]["scope"]) == ("1g.10gb", "mig")
    assert busy["gpu"]["utilization_pct"] == 60.0
    assert busy["gpu"]["memory_used_bytes"] == 10 * 512 * MIB
    assert idle["gpu"] is None
    held = [s for s in top["slices"] if s["owner"] == "busy"]
    assert [(s["tenant"], s["role"], s["utilization_pct"]) for s in held] == [("acme", "b2b", 60.0)]
    assert top["slices"][0] == held[0]  # the busiest slice first
    assert len(top["slices"]) == 4
    # By GPU the busy VM leads; by name the order is alphabetical.
    assert [v["name"] for v in _ok(c.get("/api/v1/top?sort=gpu", headers=admin))["vms"]] == [
        "busy",
        "idle",
    ]
    assert [v["name"] for v in _ok(c.get("/api/v1/top?sort=name", headers=admin))["vms"]] == [
        "busy",
        "idle",
    ]
    # The VM's chart history: one point per sweep while it held the slice.
    points = _ok(c.get("/api/v1/vms/busy/stats", headers=admin))["gpu"]
    assert [p["utilization_pct"] for p in points] == [60.0, 60.0, 60.0]
    assert _ok(c.get("/api/v1/vms/idle/stats", headers=admin))["gpu"] == []


def test_top_orders_by_each_use_and_follows_the_load(
    appliance: Appliance, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    c, admin, _ = api
    _vm(c, admin, "a-quiet")
    _vm(c, admin, "b-loaded")
    _working(appliance, monkeypatch, "b-loaded")
    for _ in range(2):
        appliance.monitor_job()
    for sort in ("cpu", "net", "disk"):
        names = [v["name"] for v in _ok(c.get(f"/api/v1/top?sort={sort}", headers=admin))["vms"]]
        assert names == ["b-loaded", "a-quiet"], sort
    # The load moves to the other VM: the next sweeps put it first.
    _working(appliance, monkeypatch, "a-quiet")
    for _ in range(2):
        appliance.monitor_job()
    names = [v["name"] for v in _ok(c.get("/api/v1/top?sort=net", headers=admin))["vms"]]
    assert names == ["a-quiet", "b-loaded"]


def test_a_tenant_sees_only_its_own_vms_and_slices(
    appliance: Appliance, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    c, admin, acme = api
    _slice_setup(c, admin)
    _vm(c, admin, "node-vm")
    _vm(c, acme, "acme-vm", gpu={"profile": "1g.10gb"})
    appliance.monitor_job()
    mine = _ok(c.get("/api/v1/top", headers=acme))
    assert [v["name"] for v in mine["vms"]] == ["acme-vm"]
    assert [(s["owner"], s["tenant"]) for s in mine["slices"]] == [("acme-vm", "acme")]
    everything = _ok(c.get("/api/v1/top", headers=admin))
    assert sorted(v["name"] for v in everything["vms"]) == ["acme-vm", "node-vm"]
    assert len(everything["slices"]) == 4


def test_a_bad_sort_is_refused_and_top_needs_a_login(api: Api) -> None:
    c, admin, _ = api
    refused = c.get("/api/v1/top?sort=heat", headers=admin)
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "invalid_sort"
    assert "cpu, memory, net, disk, gpu, name" in refused.json()["detail"]
    assert c.get("/api/v1/top").status_code == 401
