"""Each GPU and MIG slice's activity in the last sweep, and who holds it.

Figures come from the sweep's GPU telemetry (``NodeSnapshot.gpus``); holders from
the store: the owners of each GPU's committed layout (a VM by name, or a process
claim) and the running VMs a whole GPU is passed through to. No GPU is called here.

A slice's utilization is its own where the driver reports it per MIG instance
(scope "mig"); where it does not, the whole GPU's figure stands in (scope "gpu"),
and NVML reports none at all while MIG is on on most drivers (None): nothing is
split or guessed. Each VM's share is kept for its chart (``GpuHistory``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from threading import Lock

import msgspec

from appliance.domain.gpu.binding import is_process_owner, process_claim_tenant
from appliance.domain.gpu.layout import Instance, Layout
from appliance.domain.vm_spec import GpuAttach, VmSpec
from appliance.services.gpu_telemetry import GpuSample
from appliance.services.monitor import NodeSnapshot
from appliance.store.models import GpuLayout, Vm
from towerbox_core.api.top import GpuPoint, TopSlice
from towerbox_core.metering.fold import ACTIVE_STATES

MIB = 1024 * 1024


def passthrough_holders(snapshot: NodeSnapshot) -> dict[str, Vm]:
    """GPU UUID -> the running VM it is passed through to (a stopped VM holds none)."""
    by_address = {s.pci_address: s.uuid for s in snapshot.gpus.values()}
    held: dict[str, Vm] = {}
    rows = Vm.select(Vm.id, Vm.name, Vm.tenant, Vm.spec).where(
        Vm.spec.contains(f'"{GpuAttach.PASSTHROUGH.value}"')
    )
    for vm in rows:
        spec = msgspec.json.decode(vm.spec, type=VmSpec)
        sample = snapshot.vms.get(vm.id)
        if spec.gpu is None or spec.gpu.attach is not GpuAttach.PASSTHROUGH:
            continue
        if sample is None or sample.state not in ACTIVE_STATES or not spec.gpu.gpu:
            continue
        # The spec names the GPU by PCI address once placed (by UUID when asked so).
        held[by_address.get(spec.gpu.gpu, spec.gpu.gpu)] = vm
    return held


def _layouts(snapshot: NodeSnapshot) -> dict[tuple[str, tuple[str, int]], Instance]:
    """(GPU UUID, placement) -> the committed layout's instance, owners included."""
    found: dict[tuple[str, tuple[str, int]], Instance] = {}
    named = [uuid for uuid, s in snapshot.gpus.items() if s.placements]
    if named:
        for row in GpuLayout.select().where(GpuLayout.gpu_uuid.in_(named)):
            for inst in msgspec.json.decode(row.layout, type=Layout).instances:
                found[(row.gpu_uuid, inst.placement)] = inst
    return found


def holder_tenant(owner: str | None, vm_tenants: Mapping[str, str | None]) -> str | None:
    """A holder's tenant: its VM's, its process claim's; None for the node's own."""
    if owner is None:
        return None
    if is_process_owner(owner):
        return process_claim_tenant(owner)
    return vm_tenants.get(owner)


def slices(snapshot: NodeSnapshot) -> list[TopSlice]:
    """Every slice the sweep read (every GPU with MIG off as one), in GPU order."""
    if not snapshot.gpus:
        return []
    vm_tenants = {vm.name: vm.tenant for vm in Vm.select(Vm.name, Vm.tenant)}
    layouts = _layouts(snapshot)
    whole = passthrough_holders(snapshot)
    found: list[TopSlice] = []
    for uuid, sample in sorted(snapshot.gpus.items()):
        if sample.placements:
            found += mig_slices(sample, layouts, vm_tenants)
            continue
        t = sample.telemetry
        holder = whole.get(uuid)
        found.append(
            TopSlice(
                gpu=uuid,
                pci_address=sample.pci_address,
                profile=None,
                start=None,
                utilization_pct=t.utilization_pct,
                scope="gpu",
                memory_used_bytes=_bytes(t.memory_used_mib),
                role=None,
                owner=holder.name if holder else None,
                tenant=holder.tenant if holder else None,
            )
        )
    return found


def mig_slices(
    sample: GpuSample,
    layouts: Mapping[tuple[str, tuple[str, int]], Instance],
    vm_tenants: Mapping[str, str | None],
) -> list[TopSlice]:
    found = []
    t = sample.telemetry
    for inst in t.instances:
        placement = sample.placements.get(inst.gpu_instance_id)
        if placement is None:
            continue  # not placed: a layout change under way
        declared = layouts.get((sample.uuid, placement))
        owner = declared.owner if declared else None
        own = inst.utilization_pct is not None
        found.append(
            TopSlice(
                gpu=sample.uuid,
                pci_address=sample.pci_address,
                profile=placement[0],
                start=placement[1],
                utilization_pct=inst.utilization_pct if own else t.utilization_pct,
                scope="mig" if own else "gpu",
                memory_used_bytes=_bytes(inst.memory_used_mib),
                role=declared.role.value if declared else None,
                owner=owner,
                tenant=holder_tenant(owner, vm_tenants),
            )
        )
    return sorted(found, key=lambda s: s.start or 0)


def _bytes(mib: int | None) -> int | None:
    return None if mib is None else mib * MIB


def by_vm(found: list[TopSlice]) -> dict[str, TopSlice]:
    """VM name -> the slice (or whole GPU) it holds; process claims are not VMs."""
    return {s.owner: s for s in found if s.owner is not None and not is_process_owner(s.owner)}


class GpuHistory:
    """Each VM's slice activity, one point per sweep, as long as the monitor's VM
    history; a VM holding none has no points, one deleted loses its own."""

    def __init__(self, samples: int) -> None:
        self._len = samples
        self._points: dict[str, deque[GpuPoint]] = {}
        self._lock = Lock()

    def observe(self, snapshot: NodeSnapshot) -> None:
        if not snapshot.gpus and not self._points:
            return  # a node without GPUs: no store reads each sweep
        held = by_vm(slices(snapshot))
        names = {vm.name for vm in Vm.select(Vm.name)}
        with self._lock:
            for name, s in held.items():
                points = self._points.get(name)
                if points is None:
                    points = self._points[name] = deque(maxlen=self._len)
                points.append(GpuPoint(snapshot.taken_at, s.utilization_pct, s.memory_used_bytes))
            for gone in self._points.keys() - names:
                del self._points[gone]

    def history(self, name: str) -> list[GpuPoint]:
        with self._lock:
            return list(self._points.get(name, ()))
