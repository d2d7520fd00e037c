"""Held usage worked out from journal entries the plain way, as a check on the product.

Deliberately naive and independent of ``towerbox_core.metering``: after each entry it
lists everything held at that moment (a VM's vCPUs and memory while it runs, its disk
while it exists, each MIG slice by its owner's tenant, each VNet) and charges that
whole list for the time until the next entry, cut at the hours. No intervals are
opened or closed, so nothing can be lost or counted twice between two entries.

Only what the crash test uses is understood: a VM on hugepages or a whole GPU is
refused rather than guessed at.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

HOUR_US = 3_600_000_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# libvirt's states in which a VM holds its vCPUs and memory.
_RUNS = {"running", "blocked", "paused"}
# resource as journalled -> as reported, held units per reported unit, unit
_BILLING = {
    "vcpu": ("vcpu", 1, "vCPU-hour"),
    "memory_mib": ("memory_gib", 1024, "GiB-hour"),
    "disk_gib": ("disk_gib", 1, "GiB-hour"),
    "vnet": ("vnet", 1, "VNet-hour"),
}
# Measured counts: as reported, counted units per reported unit, unit
_MEASURED = {
    "n6_bytes": ("n6_gb", 1_000_000_000, "GB"),
    "n6_packets": ("n6_packets", 1, "packet"),
    "cpu_ns": ("cpu_time", 3_600_000_000_000, "CPU-hour"),
    "gpu_energy_mj": ("gpu_energy_kwh", 3_600_000_000, "kWh"),
    "gpu_busy_us": ("gpu_busy_time", 3_600_000_000, "GPU busy-hour"),
}
Key = tuple[str, str]  # (tenant, resource as journalled)


def time_us(text: str) -> int:
    when = dt.datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return (when - _EPOCH) // dt.timedelta(microseconds=1)


@dataclass
class _Vm:
    name: str
    tenant: str
    vcpus: int
    memory_mib: int
    disk_gib: int
    state: str = "shutoff"


@dataclass
class Node:
    """What the entries so far say the node holds."""

    vms: dict[str, _Vm] = field(default_factory=dict)  # by VM id
    slices: dict[tuple[str, int], tuple[str, str]] = field(default_factory=dict)
    vnets: set[str] = field(default_factory=set)  # "tenant/name"

    def apply(self, kind: str, object_id: str, state: Any) -> None:
        s = state if isinstance(state, dict) else {}
        family = kind.partition(".")[0]
        if family == "vm":
            self._vm(kind, object_id, s)
        elif family == "gpu":
            self._gpu(kind, object_id, s)
        elif kind == "n6.vnet_declared":
            self.vnets.add(object_id)
        elif kind == "n6.vnet_removed":
            self.vnets.discard(object_id)

    def _vm(self, kind: str, vm_id: str, s: dict[str, Any]) -> None:
        if kind == "vm.created":
            spec = s["spec"]
            gpu = spec.get("gpu") or {}
            if spec.get("hugepages") not in (None, "none") or gpu.get("attach") == "passthrough":
                raise AssertionError(f"the reference does not count {spec}")
            tenant = spec.get("tenant") or ""
            self.vms[vm_id] = _Vm(
                spec["name"], tenant, spec["vcpus"], spec["memory_mib"], s.get("disk_gib", 0)
            )
        elif kind == "vm.state" and vm_id in self.vms:
            self.vms[vm_id].state = s["state"]
        elif kind == "vm.deleted":
            self.vms.pop(vm_id, None)

    def _gpu(self, kind: str, gpu: str, s: dict[str, Any]) -> None:
        if kind == "gpu.instance_bound":
            # The committed layout gives an owner one instance per GPU: a claim moves it.
            self._drop_owner(gpu, s["owner"])
            self.slices[gpu, s["start"]] = (s["profile"], s["owner"])
        elif kind == "gpu.instance_released":
            self._drop_owner(gpu, s["owner"])
        elif kind == "gpu.instance_destroyed":
            self.slices.pop((gpu, s["start"]), None)
        elif kind in ("gpu.layout_applied", "gpu.layout_restored"):
            for key in [k for k in self.slices if k[0] == gpu]:
                del self.slices[key]
            for inst in s["layout"]["instances"]:
                if inst.get("owner"):
                    self.slices[gpu, inst["start"]] = (inst["profile"], inst["owner"])

    def _drop_owner(self, gpu: str, owner: str) -> None:
        for key in [k for k, (_, o) in self.slices.items() if k[0] == gpu and o == owner]:
            del self.slices[key]

    def held(self) -> dict[Key, int]:
        found: dict[Key, int] = {}

        def add(tenant: str, resource: str, amount: int) -> None:
            if amount:
                found[tenant, resource] = found.get((tenant, resource), 0) + amount

        for vm in self.vms.values():
            add(vm.tenant, "disk_gib", vm.disk_gib)
            if vm.state in _RUNS:
                add(vm.tenant, "vcpu", vm.vcpus)
                add(vm.tenant, "memory_mib", vm.memory_mib)
        for profile, owner in self.slices.values():
            add(self._tenant_of(owner), f"mig:{profile}", 1)
        for vnet in self.vnets:
            add(vnet.partition("/")[0], "vnet", 1)
        return found

    def _tenant_of(self, owner: str) -> str:
        if owner.startswith("process:"):
            tenant, slash, _ = owner.removeprefix("process:").partition("/")
            return tenant if slash else ""
        return next((vm.tenant for vm in self.vms.values() if vm.name == owner), "")


@dataclass
class Usage:
    held: dict[tuple[str, str, int], int]  # (tenant, resource, hour) -> unit-µs
    measured: dict[tuple[str, str, int], int]  # (tenant, resource, hour) -> count
    still_held: dict[Key, int]  # after the last entry


def usage(entries: Iterable[dict[str, Any]]) -> Usage:
    """Entries in seq order, every one of them (a gap would hide a change)."""
    node = Node()
    held: dict[tuple[str, str, int], int] = {}
    measured: dict[tuple[str, str, int], int] = {}
    now: dict[Key, int] = {}
    last: int | None = None
    for e in entries:
        at = time_us(e["created_at"])
        if last is not None:
            if at < last:
                raise AssertionError(f"entry {e['seq']} is older than the one before it")
            for key, amount in now.items():
                _charge(held, key, amount, last, at)
        last = at
        if e["kind"] == "usage.measured":
            start = e["state"]["from_us"]
            for tenant, resource, _, value in e["state"]["values"]:
                bucket = (tenant, resource, start - start % HOUR_US)
                measured[bucket] = measured.get(bucket, 0) + value
        node.apply(e["kind"], e["object_id"], e["state"])
        now = node.held()
    return Usage(held, measured, now)


def _charge(
    into: dict[tuple[str, str, int], int], key: Key, amount: int, start: int, end: int
) -> None:
    while start < end:
        hour = start - start % HOUR_US
        upto = min(end, hour + HOUR_US)
        bucket = (*key, hour)
        into[bucket] = into.get(bucket, 0) + amount * (upto - start)
        start = upto


def lines(found: Usage, by_hour: bool) -> list[dict[str, Any]]:
    """The report's lines for this usage (no price book), in the report's order."""
    totals: dict[tuple[str, str, int | None], int] = {}
    # resource as reported -> unit, its amount per unit of quantity, per unit-second
    scale: dict[str, tuple[str, int, int | None]] = {}
    for buckets, measured in ((found.held, False), (found.measured, True)):
        for (tenant, resource, hour), amount in buckets.items():
            if measured:
                billed, per, unit = _MEASURED[resource]
                scale[billed] = (unit, per, None)
            else:
                billed, divisor, unit = (
                    (resource, 1, "slice-hour")
                    if resource.startswith("mig:")
                    else _BILLING[resource]
                )
                scale[billed] = (unit, divisor * HOUR_US, divisor * 1_000_000)
            key = (tenant, billed, hour if by_hour else None)
            totals[key] = totals.get(key, 0) + amount
    found_lines = []
    for (tenant, billed, hour), total in sorted(totals.items(), key=lambda kv: _order(kv[0])):
        unit, per, per_second = scale[billed]
        found_lines.append(
            {
                "tenant": tenant or None,
                "resource": billed,
                "unit": unit,
                "period": None if hour is None else _iso(hour),
                "quantity": round(total / per, 6),
                "seconds": None if per_second is None else round(total / per_second, 6),
                "cost": None,
                "currency": None,
            }
        )
    return found_lines


def _order(key: tuple[str, str, int | None]) -> tuple[str, str, int]:
    return key[0], key[1], key[2] or 0


def _iso(hour_us: int) -> str:
    return (_EPOCH + dt.timedelta(microseconds=hour_us)).isoformat()
