"""The node's "top": its VMs and GPU slices by current use, busiest first.

Everything comes from the monitor's memory (the last sweep's snapshot and the two
last samples of each VM's history, for rates from its counters) and the store: a
page that refreshes it every second costs no libvirt or NVML call.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from appliance.domain.vm_spec import VmSpec
from appliance.services import gpu_activity
from appliance.services.auth import Principal
from appliance.services.monitor import Monitor, NodeSnapshot
from appliance.store.models import Vm
from towerbox_core.api.top import SORT_KEYS, NodeTop, SliceActivity, TopSlice, TopVm
from towerbox_core.api.vms import VmSample
from towerbox_core.errors import InvalidInput

KIB = 1024


def rate(before: VmSample | None, after: VmSample, counter: str) -> float:
    """Bytes per second between two samples of a counter; 0 without two, or across a
    reset (a restarted QEMU counts from zero again)."""
    if before is None or after.at <= before.at:
        return 0.0
    grown: int = getattr(after, counter) - getattr(before, counter)
    return max(0.0, grown / (after.at - before.at))


def _vm_row(vm: Vm, history: list[VmSample], held: SliceActivity | None) -> TopVm:
    vcpus = _vcpus(vm)
    if not history:
        # Not swept since it was made: the state last seen (actions record theirs).
        state = vm.observed_state
        return TopVm(vm.name, vm.tenant, vm.role, state, vcpus, 0.0, 0, 0, 0, 0, 0, 0, held)
    now = history[-1]
    before = history[-2] if len(history) > 1 else None
    memory = now.guest_used_kib if now.guest_used_kib is not None else now.memory_kib
    return TopVm(
        name=vm.name,
        tenant=vm.tenant,
        role=vm.role,
        state=now.state,
        vcpus=vcpus,
        cpu_pct=now.cpu_pct,
        memory_bytes=memory * KIB,
        rss_bytes=now.rss_kib * KIB,
        net_rx_bps=rate(before, now, "net_rx_bytes"),
        net_tx_bps=rate(before, now, "net_tx_bytes"),
        disk_read_bps=rate(before, now, "disk_read_bytes"),
        disk_write_bps=rate(before, now, "disk_write_bytes"),
        gpu=held,
    )


def _vcpus(vm: Vm) -> int:
    return msgspec.json.decode(vm.spec, type=VmSpec).vcpus


def _gpu_use(s: SliceActivity | None) -> float:
    if s is None:
        return -2.0
    return -1.0 if s.utilization_pct is None else s.utilization_pct


# Sort keys, busiest first: each returns what is larger for the busier VM.
_VM_USE: dict[str, Callable[[TopVm], float]] = {
    "cpu": lambda v: v.cpu_pct,
    "memory": lambda v: float(v.memory_bytes),
    "net": lambda v: v.net_rx_bps + v.net_tx_bps,
    "disk": lambda v: v.disk_read_bps + v.disk_write_bps,
    "gpu": lambda v: _gpu_use(v.gpu),
}


def sorted_vms(rows: list[TopVm], sort: str) -> list[TopVm]:
    by_name = sorted(rows, key=lambda v: v.name)
    if sort == "name":
        return by_name
    return sorted(by_name, key=_VM_USE[sort], reverse=True)  # stable: ties by name


def sorted_slices(rows: list[TopSlice], sort: str) -> list[TopSlice]:
    placed = sorted(rows, key=lambda s: (s.gpu, s.start or 0))
    if sort == "memory":
        return sorted(placed, key=lambda s: s.memory_used_bytes or 0, reverse=True)
    if sort == "name":
        return placed
    return sorted(placed, key=_gpu_use, reverse=True)


def check_sort(sort: str) -> str:
    if sort not in SORT_KEYS:
        raise InvalidInput(
            f"cannot sort by {sort!r}; sort by one of: {', '.join(SORT_KEYS)}",
            code="invalid_sort",
            field="sort",
        )
    return sort


class TopView:
    def __init__(self, monitor: Monitor, history_samples: int) -> None:
        self._monitor = monitor
        self.gpu_history = gpu_activity.GpuHistory(history_samples)

    def observe(self, snapshot: NodeSnapshot) -> None:
        """After each sweep: keep each VM's slice activity for its chart."""
        self.gpu_history.observe(snapshot)

    def top(self, principal: Principal, sort: str = "cpu") -> NodeTop:
        check_sort(sort)
        snapshot = self._monitor.snapshot
        found = gpu_activity.slices(snapshot)
        held = gpu_activity.by_vm(found)
        vms = [
            _vm_row(vm, self._monitor.history(vm.id)[-2:], _activity(held.get(vm.name)))
            for vm in Vm.select(Vm.id, Vm.name, Vm.tenant, Vm.role, Vm.spec, Vm.observed_state)
            if principal.can_see(vm.tenant)
        ]
        visible = [s for s in found if principal.can_see(s.tenant)]
        return NodeTop(
            taken_at=snapshot.taken_at,
            sort=sort,
            vms=sorted_vms(vms, sort),
            slices=sorted_slices(visible, sort),
        )


def _activity(s: TopSlice | None) -> SliceActivity | None:
    """The slice's figures without its holder (the VM row already is the holder)."""
    if s is None:
        return None
    return SliceActivity(
        s.gpu, s.pci_address, s.profile, s.start, s.utilization_pct, s.scope, s.memory_used_bytes
    )
