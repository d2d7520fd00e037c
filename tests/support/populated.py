"""A node with something of everything /metrics describes: tenant VMs running on the
libvirt test driver (one on a VNet, one on a MIG slice), a simulated H100 in MIG with
a vRAN slice and a tenant's process claim, applied VNets; and its /metrics parsed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from appliance.backends.gpu.simulated import SimulatedGpuBackend
from appliance.context import Appliance
from tests.support.tenancy import clients, tenant_node

# The vRAN slice of the simulated H100, two B2B ones beside it.
LAYOUT = {
    "instances": [
        {"profile": "3g.40gb", "start": 4, "role": "vran", "owner": "du1"},
        {"profile": "2g.20gb", "start": 0},
        {"profile": "2g.20gb", "start": 2},
    ]
}
ACME_QUOTAS = {"process_claims": 1, "gpu_slices": {"2g.20gb": 2}, "gpu_compute_slices": 4}

Labels = tuple[tuple[str, str], ...]
Series = dict[str, dict[Labels, float]]


def ok(resp: Any, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json()


def vnet_vm(name: str, **spec: Any) -> dict[str, Any]:
    """A tenant VM's create body with a NIC on the tenant's VNet ``llm``, started."""
    nics = [{"kind": "vnet", "vnet": "llm"}]
    base = {"role": "b2b", "vcpus": 1, "memory_mib": 256, "nics": nics}
    return {"name": name, "appliance": "demo", "spec": {**base, **spec}, "start": True}


def populate(c: TestClient[Any], admin: dict[str, str], acme: dict[str, str]) -> str:
    """Fill a ``tenant_node``; the simulated GPU's UUID."""
    gpu: str = ok(c.get("/api/v1/gpus", headers=admin))["gpus"][0]["uuid"]
    ok(c.post(f"/api/v1/gpus/{gpu}/apply", headers=admin, json=LAYOUT))
    ok(c.put("/api/v1/tenants/acme/quotas", headers=admin, json=ACME_QUOTAS))
    ok(c.post("/api/v1/vms", headers=acme, json=vnet_vm("web", restart="always")), 201)
    llm = {
        "name": "llm",
        "appliance": "demo",
        "spec": {"role": "b2b", "vcpus": 1, "memory_mib": 256, "gpu": {"profile": "2g.20gb"}},
        "start": True,
    }
    ok(c.post("/api/v1/vms", headers=acme, json=llm), 201)
    claim = {"name": "vllm", "profile": "2g.20gb"}
    ok(c.post("/api/v1/gpus/claims", headers=acme, json=claim), 201)
    return gpu


@dataclass(frozen=True)
class Node:
    app: Appliance
    c: TestClient[Any]
    admin: dict[str, str]  # the infra-admin's headers
    acme: dict[str, str]  # acme's tenant admin's
    gpu: str


def populated_node(tmp_path: Path) -> Iterator[Node]:
    """A ``tenant_node``, populated, its first sweep done."""
    for app in tenant_node(tmp_path):
        for c, admin, acme in clients(app):
            gpu = populate(c, admin, acme)
            app.monitor_job()
            yield Node(app, c, admin, acme, gpu)


def busy_claim(appliance: Appliance, gpu: str, start: int) -> None:
    """A workload on the slice at ``start`` (the simulator reports it busy)."""
    sim = appliance.gpus.backend
    assert isinstance(sim, SimulatedGpuBackend)
    [gi] = [i for i in sim.instances(gpu) if i.start == start]
    sim.attach_workload(gpu, gi.gpu_instance_id, "vllm")


def scrape(c: TestClient[Any], headers: dict[str, str]) -> Series:
    """/metrics as {sample name: {labels: value}}."""
    resp = c.get("/metrics", headers=headers)
    assert resp.status_code == 200, resp.text
    found: Series = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            found.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return found


def value(series: Series, name: str, **labels: str) -> float:
    """The one sample of ``name`` whose labels include these."""
    want = set(labels.items())
    hits = [v for k, v in series.get(name, {}).items() if want <= set(k)]
    assert len(hits) == 1, f"{name}{labels}: {len(hits)} samples in {series.get(name)}"
    return hits[0]
