"""/metrics from the monitor's snapshot on a populated node (libvirt test driver,
simulated H100 in MIG, simulated N6): each VM, GPU, MIG instance and VNet with the
labels the node's records give it, values that follow what happens on the node, and
no backend call made by a scrape."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
from prometheus_client import generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from appliance import metrics_text
from appliance.backends.gpu.simulated import SimulatedGpuBackend
from appliance.context import Appliance
from tests.support.populated import (
    Node,
    Series,
    busy_claim,
    ok,
    populated_node,
    scrape,
    value,
    vnet_vm,
)
from tests.support.tenancy import clients, tenant_node

GIB = 1024**3


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    yield from populated_node(tmp_path)


def _states(series: Series, vm: str) -> dict[str, float]:
    return {
        dict(k)["state"]: v for k, v in series["towerbox_vm_state"].items() if dict(k)["vm"] == vm
    }


def test_vms_follow_their_state_tenant_role_and_restarts(node: Node) -> None:
    appliance, c, admin, acme = node.app, node.c, node.admin, node.acme
    appliance.monitor_job()
    m = scrape(c, admin)
    # One series per VM: its current state, with its tenant and role.
    assert _states(m, "web") == {"running": 1.0}
    assert value(m, "towerbox_vm_state", vm="web", tenant="acme", role="b2b") == 1.0
    assert value(m, "towerbox_vm_cpu_seconds_total", vm="web", tenant="acme") >= 0
    assert value(m, "towerbox_vm_restarts_total", vm="web", tenant="acme") == 0

    ok(c.post("/api/v1/vms/web/stop", headers=acme))
    appliance.monitor_job()
    assert _states(scrape(c, admin), "web") == {"shutoff": 1.0}

    # Started again, then pulled from under the node: reconcile restarts it (policy
    # always), and the restart counts.
    ok(c.post("/api/v1/vms/web/start", headers=acme))
    vm_id = ok(c.get("/api/v1/vms/web", headers=acme))["id"]
    conn = libvirt.open("test:///default")
    try:
        conn.lookupByUUIDString(vm_id).destroy()
    finally:
        conn.close()
    appliance.monitor_job()
    assert _states(scrape(c, admin), "web") == {"shutoff": 1.0}
    appliance.reconcile_job()
    appliance.monitor_job()
    m = scrape(c, admin)
    assert _states(m, "web") == {"running": 1.0}
    assert value(m, "towerbox_vm_restarts_total", vm="web", tenant="acme") == 1

    # A VM whose domain is gone shows as missing, as the API says.
    conn = libvirt.open("test:///default")
    try:
        dom = conn.lookupByUUIDString(vm_id)
        dom.destroy()
        dom.undefine()
    finally:
        conn.close()
    appliance.monitor_job()
    assert _states(scrape(c, admin), "web") == {"missing": 1.0}
    assert ok(c.get("/api/v1/vms/web", headers=acme))["state"] == "missing"


def test_gpu_and_mig_series_name_owners_and_follow_the_board(node: Node) -> None:
    appliance, c, admin = node.app, node.c, node.admin
    gpu = node.gpu
    starts = {x["owner"]: x["start"] for x in ok(c.get("/api/v1/gpus/claims", headers=admin))}
    appliance.monitor_job()
    idle = scrape(c, admin)
    pci = ok(c.get(f"/api/v1/gpus/{gpu}", headers=admin))["pci_address"]
    assert value(idle, "towerbox_gpu_info", gpu=gpu, pci_address=pci, simulated="true") == 1
    info = {
        (d["instance"], d["profile"], d["owner"], d["role"])
        for d in map(dict, idle["towerbox_mig_instance_info"])
        if d["gpu"] == gpu
    }
    llm_start, claim_start = str(starts["llm"]), str(starts["process:acme/vllm"])
    assert info == {
        ("4", "3g.40gb", "du1", "vran"),
        (llm_start, "2g.20gb", "llm", "b2b"),
        (claim_start, "2g.20gb", "process:acme/vllm", "b2b"),
    }
    # The VM holds its slice; a process claim is no VM's.
    held = [dict(k) for k in idle["towerbox_vm_gpu_slice"]]
    slice_ = {"vm": "llm", "tenant": "acme", "gpu": gpu, "profile": "2g.20gb"}
    assert held == [{**slice_, "instance": llm_start}]
    # Per-instance figures: the slice's memory, and its utilization where reported.
    total = value(idle, "towerbox_gpu_memory_total_bytes", gpu=gpu, instance="4")
    assert total == 40 * GIB
    assert value(idle, "towerbox_gpu_memory_total_bytes", gpu=gpu, instance="") == 80 * GIB
    claim_util = {"instance": claim_start, "scope": "mig"}
    assert value(idle, "towerbox_gpu_utilization_ratio", gpu=gpu, **claim_util) == 0.0
    assert value(idle, "towerbox_gpu_layout_drift", gpu=gpu) == 0
    assert value(idle, "towerbox_mig_instances_missing", gpu=gpu) == 0
    assert value(idle, "towerbox_gpu_ecc_errors_total", gpu=gpu, kind="uncorrected") == 0

    # The claim's process starts working: its slice is busy, the board draws more.
    busy_claim(appliance, gpu, int(claim_start))
    appliance.monitor_job()
    busy = scrape(c, admin)
    assert value(busy, "towerbox_gpu_utilization_ratio", gpu=gpu, **claim_util) == 0.6
    watts = "towerbox_gpu_power_watts"
    assert value(busy, watts, gpu=gpu) > value(idle, watts, gpu=gpu)
    celsius = "towerbox_gpu_temperature_celsius"
    assert value(busy, celsius, gpu=gpu) > value(idle, celsius, gpu=gpu)
    used = "towerbox_gpu_memory_used_bytes"
    assert value(busy, used, gpu=gpu, instance=claim_start) > 0

    # The vRAN slice vanishes behind the node's back (a driver reset): drift shows.
    sim = appliance.gpus.backend
    assert isinstance(sim, SimulatedGpuBackend)
    [vran] = [i for i in sim.instances(gpu) if i.start == 4]
    sim.destroy_instance(gpu, vran.gpu_instance_id)
    appliance.monitor_job()
    gone = scrape(c, admin)
    assert value(gone, "towerbox_gpu_layout_drift", gpu=gpu) == 1
    assert value(gone, "towerbox_mig_instances_missing", gpu=gpu) == 1
    assert not [k for k in gone["towerbox_mig_instance_info"] if ("instance", "4") in k]


def test_vnets_count_attached_vms_and_their_n6_counters(node: Node) -> None:
    appliance, c, admin, acme = node.app, node.c, node.admin, node.acme
    appliance.monitor_job()
    m = scrape(c, admin)
    assert value(m, "towerbox_vnet_attached_vms", tenant="acme", vnet="llm") == 1
    assert value(m, "towerbox_vnet_attached_vms", tenant="beta", vnet="cams") == 0
    # The simulated N6 backend's interfaces count nothing; the series are there.
    for name in ("receive_bytes", "transmit_bytes", "receive_packets", "transmit_packets"):
        assert value(m, f"towerbox_vnet_{name}_total", tenant="beta", vnet="cams") == 0
    # A second VM on the VNet counts at once (the store says so, not the switch).
    ok(c.post("/api/v1/vms", headers=acme, json=vnet_vm("web2")), 201)
    m = scrape(c, admin)
    assert value(m, "towerbox_vnet_attached_vms", tenant="acme", vnet="llm") == 2


def _count_calls(monkeypatch: pytest.MonkeyPatch, target: object, calls: Counter[str]) -> None:
    """Count every call of target's public methods (the object's own attributes)."""
    for name in dir(target):
        if name.startswith("_"):
            continue
        attr = getattr(target, name, None)
        if not callable(attr):
            continue

        def counted(*args: Any, _fn: Any = attr, _name: str = name, **kw: Any) -> Any:
            calls[f"{type(target).__name__}.{_name}"] += 1
            return _fn(*args, **kw)

        monkeypatch.setattr(target, name, counted)


def test_a_scrape_reads_the_snapshot_and_calls_no_backend(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    appliance, c, admin = node.app, node.c, node.admin
    calls: Counter[str] = Counter()
    backends = [appliance.backend, appliance.gpus.backend, *appliance.n6._backends.values()]
    for backend in backends:
        _count_calls(monkeypatch, backend, calls)
    appliance.monitor_job()
    # The counting sees the sweep's reads: libvirt's bulk stats, NVML's telemetry, N6.
    swept = set(calls)
    assert {"LibvirtBackend.bulk_stats", "SimulatedGpuBackend.telemetry"} <= swept
    assert any(name.endswith(".counters") for name in swept), swept
    calls.clear()
    for _ in range(3):
        assert "towerbox_vm_state" in scrape(c, admin)
    assert calls == Counter(), "a scrape called a backend"


def test_the_node_writes_what_prometheus_client_writes(node: Node) -> None:
    """The node's own text writer, on a populated node: the same bytes as
    prometheus_client's, both writing one collection (figures such as ages and free
    disk move between two reads)."""
    collected = list(node.app.metrics.registry.collect())

    class Frozen(Collector):
        def collect(self) -> Iterator[Metric]:
            yield from collected

    assert metrics_text.render(Frozen()) == generate_latest(Frozen())


@pytest.fixture
def two_gpus(tmp_path: Path) -> Iterator[Appliance]:
    # An H100 with MIG on, and an L40S (no MIG) to pass through.
    yield from tenant_node(tmp_path, TOWERBOX_GPU_SIMULATED_MODELS="H100-80GB,L40S-48GB")


def test_a_gpu_passed_through_is_held_while_its_vm_runs(two_gpus: Appliance) -> None:
    for c, admin, acme in clients(two_gpus):
        l40s = ok(c.get("/api/v1/gpus", headers=admin))["gpus"][1]["uuid"]
        ok(c.put("/api/v1/tenants/acme/quotas", headers=admin, json={"whole_gpus": 1}))
        spec = {"role": "b2b", "gpu": {"attach": "passthrough", "gpu": l40s}}
        body = {"name": "render", "appliance": "demo", "spec": spec, "start": True}
        ok(c.post("/api/v1/vms", headers=acme, json=body), 201)
        two_gpus.monitor_job()
        held = [dict(k) for k in scrape(c, admin)["towerbox_vm_gpu_slice"]]
        whole = {"vm": "render", "tenant": "acme", "gpu": l40s, "profile": "", "instance": ""}
        assert held == [whole]
        # No MIG on the L40S: its utilization is the whole GPU's.
        m = scrape(c, admin)
        assert value(m, "towerbox_gpu_utilization_ratio", gpu=l40s, instance="", scope="gpu") == 0
        ok(c.post("/api/v1/vms/render/stop", headers=acme))
        two_gpus.monitor_job()
        assert "towerbox_vm_gpu_slice" not in scrape(c, admin)
