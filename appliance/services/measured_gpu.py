"""Measured GPU usage: energy and engine busy time from each sweep's GPU telemetry.

Per GPU (subject ``gpu:<uuid>``), charged to the tenant of the running VM it is
passed through to, else to the node:

- ``gpu_energy_mj``: the driver's energy counter (millijoules since it loaded; a
  smaller value is a reload and counts from zero), or, where the driver has none,
  its power integrated over the time since the previous sweep.
- ``gpu_busy_us``: the whole GPU's utilization (the share of time an engine was
  busy) times the time since the previous sweep, where the driver reports it. NVML
  reports none while MIG is on.

Per MIG instance (subject ``mig:<uuid>/<start>``), charged to the slice's owner: the
instance's utilization as ``gpu_busy_us``, where the driver reports it per instance
(most drivers do not). Where it does not, nothing is split or guessed: the GPU's
own figures stay with the node. A GPU's busy time is counted once: per instance
where any instance reports it, else for the whole GPU. Energy is never split.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import msgspec

from appliance.domain.gpu.binding import is_process_owner, process_claim_tenant
from appliance.domain.gpu.layout import Layout
from appliance.services.gpu_activity import passthrough_holders
from appliance.services.gpu_telemetry import GpuSample
from appliance.services.measured import Integrator, Reading
from appliance.services.monitor import NodeSnapshot
from appliance.store.models import GpuLayout, Vm
from towerbox_core.metering.fold import NODE_TENANT

ENERGY = "gpu_energy_mj"
BUSY = "gpu_busy_us"


@dataclass(frozen=True)
class GpuTenants:
    """Who each GPU and MIG slice is charged to now; absent means the node."""

    whole: dict[str, str] = field(default_factory=dict)  # GPU UUID -> tenant
    slices: dict[tuple[str, int], str] = field(default_factory=dict)  # (GPU, start)


def owner_tenant(owner: str, vm_tenants: Mapping[str, str]) -> str:
    """A slice owner's tenant: a VM's (by name), a tenant's process claim's, or the
    node (the operator's own process claim, an owner no longer known)."""
    if is_process_owner(owner):
        return process_claim_tenant(owner) or NODE_TENANT
    return vm_tenants.get(owner, NODE_TENANT)


def _busy_per_s(pct: float) -> float:
    """Busy microseconds per second at this utilization (percent)."""
    return min(max(pct, 0.0), 100.0) * 10_000


def gpu_readings(
    now_us: int, samples: Mapping[str, GpuSample], tenants: GpuTenants, integrator: Integrator
) -> list[Reading]:
    """One sweep's GPU counters, through the integrator."""
    found: list[Reading] = []
    for uuid, sample in sorted(samples.items()):
        t = sample.telemetry
        whole = tenants.whole.get(uuid, NODE_TENANT)
        subject = f"gpu:{uuid}"
        if t.energy_j is not None:
            found.append(integrator.counter((whole, ENERGY, subject), round(t.energy_j * 1000)))
        elif t.power_w is not None:
            found.append(integrator.rate(now_us, (whole, ENERGY, subject), t.power_w * 1000))
        per_instance = []
        for inst in t.instances:
            placement = sample.placements.get(inst.gpu_instance_id)
            if inst.utilization_pct is None or placement is None:
                continue  # not reported, or not placed (a layout change under way)
            start = placement[1]
            tenant = tenants.slices.get((uuid, start), NODE_TENANT)
            key = (tenant, BUSY, f"mig:{uuid}/{start}")
            per_instance.append(integrator.rate(now_us, key, _busy_per_s(inst.utilization_pct)))
        found += per_instance
        if not per_instance and t.utilization_pct is not None:
            key = (whole, BUSY, subject)
            found.append(integrator.rate(now_us, key, _busy_per_s(t.utilization_pct)))
    return found


def gpu_tenants(snapshot: NodeSnapshot) -> GpuTenants:
    """From the node's store: the running VMs GPUs are passed through to, and the
    owners of the MIG slices in each GPU's committed layout."""
    vm_tenants = {vm.name: vm.tenant or NODE_TENANT for vm in Vm.select(Vm.name, Vm.tenant)}
    whole = {uuid: vm.tenant or NODE_TENANT for uuid, vm in passthrough_holders(snapshot).items()}
    slices: dict[tuple[str, int], str] = {}
    named = [uuid for uuid, s in snapshot.gpus.items() if s.placements]
    if named:
        for row in GpuLayout.select().where(GpuLayout.gpu_uuid.in_(named)):
            placed = set(snapshot.gpus[row.gpu_uuid].placements.values())
            for inst in msgspec.json.decode(row.layout, type=Layout).instances:
                if inst.owner and inst.placement in placed:
                    slices[(row.gpu_uuid, inst.start)] = owner_tenant(inst.owner, vm_tenants)
    return GpuTenants(whole, slices)


class GpuMeter:
    """The monitor job's GPU readings: owners from the store, counters kept here."""

    def __init__(self, max_gap_s: float = 60.0) -> None:
        self._integrator = Integrator(max_gap_s)

    def readings(self, now_us: int, snapshot: NodeSnapshot) -> list[Reading]:
        if not snapshot.gpus:
            return []
        return gpu_readings(now_us, snapshot.gpus, gpu_tenants(snapshot), self._integrator)
