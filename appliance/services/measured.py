"""Measured usage: what the hardware counts, integrated per window and journalled.

Beside what a tenant holds (from the journal's state changes), the node measures
what it used where the hardware says: N6 bytes and packets per VNet (the N6 sweep's
interface counters) and VM CPU time (libvirt's cputime). Each sweep adds the rise of
every counter since the last one to the current window; a counter that went down
was reset (an interface re-created, a QEMU restarted) and counts from zero again, so
a reset or a wrap loses at most what happened between two sweeps and never counts
anything twice or negative. Windows are aligned to ``window_s`` on the journal's
clock, so each lies in one hour; when one ends it is journalled as one
``usage.measured`` entry for the whole node, never one entry per sample.

And GPUs (``measured_gpu``, from the sweep's telemetry): energy per GPU, from the
driver's energy counter or, without one, its power integrated over the time between
sweeps; engine busy time (the sampled utilization times the time between sweeps)
per MIG instance, charged to the slice's owner, where the driver reports it per
instance, else for the whole GPU. Where the driver reports no per-instance figure
(NVML under MIG, on most drivers) nothing is split: the GPU's energy stays with the
node and no busy time is measured. The ``Integrator`` below makes sampled rates, and
counters of a subject whose tenant changes, into counters like the others.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable

from appliance.services.monitor import NodeSnapshot
from appliance.store import journal
from appliance.store.models import Vm
from towerbox_core.metering.fold import MEASURED_KIND, NODE_TENANT
from upf_bridge.backends.base import VNetCounters

log = logging.getLogger(__name__)

# One counter reading: (tenant, resource, subject) and its raw value.
Key = tuple[str, str, str]
Reading = tuple[Key, int]


class MeasuredUsage:
    def __init__(self, window_s: int = 300) -> None:
        if window_s <= 0 or 3600 % window_s:
            raise ValueError("the measuring window must divide an hour")
        self._window_us = window_s * 1_000_000
        self._last: dict[tuple[str, str, str], int] = {}
        self._sums: dict[tuple[str, str, str], int] = defaultdict(int)
        self._window_start: int | None = None

    def observe(self, now_us: int, readings: Iterable[Reading]) -> None:
        """Add one sweep's readings; journals the window they closed, if any."""
        window = now_us - now_us % self._window_us
        if self._window_start is not None and window > self._window_start:
            self.flush(self._window_start + self._window_us)
        if self._window_start is None or window > self._window_start:
            self._window_start = window
        for key, value in readings:
            last = self._last.get(key)
            self._last[key] = value
            if last is None:
                continue  # the first reading is the baseline
            rise = value - last if value >= last else value  # reset: counts from 0
            if rise:
                self._sums[key] += rise

    def flush(self, end_us: int) -> bool:
        """Journal the open window's sums (as of ``end_us``); True when it wrote one."""
        if self._window_start is None or not self._sums:
            self._sums.clear()
            return False
        values = [[t, r, s, v] for (t, r, s), v in sorted(self._sums.items())]
        state = {"from_us": self._window_start, "to_us": end_us, "values": values}
        with journal.write_transaction():
            # One object for every window: compaction keeps only the newest, after the
            # rollup before it has counted the others.
            journal.append(MEASURED_KIND, "usage", "measured", state)
        self._sums.clear()
        return True


class Integrator:
    """Counters per (tenant, resource, subject) from what the hardware reports as a
    sampled rate, or as a counter of the whole device, for a subject whose tenant can
    change (a MIG slice, a GPU passed through to one VM and later another).

    A rate (busy microseconds per second, millijoules per second) counts its value
    over the time since the subject's previous sample. A gap longer than ``max_gap_s``
    (a stalled daemon, a clock step, a subject that was gone) counts nothing and
    starts again: a sample says nothing of what happened that long before it. A
    device counter counts its rise since the previous sample, from zero after it went
    down (a driver reload). Either rise goes to the tenant the subject is charged to
    now, so each (tenant, resource, subject) counter rises only while the subject was
    that tenant's: a slice that passes to another tenant and back is never charged
    for what the other used.
    """

    def __init__(self, max_gap_s: float = 60.0) -> None:
        self._max_gap_us = int(max_gap_s * 1_000_000)
        self._at: dict[tuple[str, str], int] = {}  # (resource, subject) -> last rate
        self._raw: dict[tuple[str, str], int] = {}  # (resource, subject) -> last count
        self._totals: dict[Key, float] = defaultdict(float)

    def rate(self, now_us: int, key: Key, per_s: float) -> Reading:
        """Add one sample of a rate (units per second); the key's counter now."""
        _, resource, subject = key
        self._raw.pop((resource, subject), None)  # a board reports one or the other
        last = self._at.get((resource, subject))
        self._at[(resource, subject)] = now_us
        if last is not None and 0 < now_us - last <= self._max_gap_us:
            self._totals[key] += max(per_s, 0.0) * (now_us - last) / 1_000_000
        return key, math.floor(self._totals[key])

    def counter(self, key: Key, value: int) -> Reading:
        """Add one reading of a device counter; the key's counter now."""
        _, resource, subject = key
        self._at.pop((resource, subject), None)
        last = self._raw.get((resource, subject))
        self._raw[(resource, subject)] = value
        if last is not None:
            self._totals[key] += value - last if value >= last else value
        return key, math.floor(self._totals[key])


def vnet_readings(counters: dict[str, VNetCounters]) -> list[Reading]:
    """N6 bytes and packets per VNet interface, charged to the VNet's tenant."""
    found: list[Reading] = []
    for key, vnet in counters.items():
        tenant = key.partition("/")[0] or NODE_TENANT
        for iface in vnet.interfaces:
            subject = f"vnet:{key}/{iface.name}"
            found.append(((tenant, "n6_bytes", subject), iface.rx_bytes + iface.tx_bytes))
            found.append(((tenant, "n6_packets", subject), iface.rx_packets + iface.tx_packets))
    return found


def vm_cpu_readings(samples: dict[str, int], tenants: dict[str, str | None]) -> list[Reading]:
    """CPU time (ns) per VM by domain UUID, charged to the VM's tenant."""
    return [
        ((tenants.get(vm_id) or NODE_TENANT, "cpu_ns", f"vm:{vm_id}"), ns)
        for vm_id, ns in samples.items()
        if vm_id in tenants
    ]


def sweep_readings(snapshot: NodeSnapshot, counters: dict[str, VNetCounters]) -> list[Reading]:
    """One monitor sweep's readings: its VMs' CPU time and the N6 interface counters."""
    tenants = {vm.id: vm.tenant for vm in Vm.select(Vm.id, Vm.tenant)}
    cpu = {vm_id: sample.cpu_time_ns for vm_id, sample in snapshot.vms.items()}
    return vm_cpu_readings(cpu, tenants) + vnet_readings(counters)
