"""Journal entries to usage intervals: who held what, from when to when.

A ``Meter`` keeps what it needs of the node's objects (each VM's size and state,
the owner of each MIG slice, the declared VNets) and, for each subject, the
holdings open now. An entry recomputes its subject's holdings: what no longer holds
closes as an interval at the entry's time, what newly holds opens there.

Times are integer microseconds since the epoch (the journal's ``created_at``), so
sums are exact. A node clock that steps back never makes an interval negative: an
entry earlier than the last one counts at the last one's time.

Its whole state is a msgspec struct, so compaction can write it into the journal
(a ``usage.rollup`` entry) and a fold can resume from it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

ROLLUP_KIND = "usage.rollup"
# Measured usage: one entry per window with what the hardware counted (see
# appliance/services/measured.py). Its values are counts, not holdings: N6 bytes and
# packets, VM CPU time in nanoseconds, GPU energy in millijoules and GPU engine busy
# time in microseconds.
MEASURED_KIND = "usage.measured"
MEASURED_RESOURCES = ("n6_bytes", "n6_packets", "cpu_ns", "gpu_energy_mj", "gpu_busy_us")
# The node's own entries that change time for everything it holds: the wall clock
# stepped forward (nothing is billed in the gap), and the node started after a reboot
# (its VMs stopped when it went down, at its last sign of life; see docs/metering.md).
CLOCK_STEPPED = "clock.stepped"
NODE_STARTED = "node.started"
NODE_TENANT = ""  # what the operator's own VMs, claims and VNets are charged to
# libvirt's states in which a VM holds its vCPUs and memory, and the node's word for
# a running VM whose QEMU stopped answering (it still holds them).
ACTIVE_STATES = frozenset({"running", "blocked", "paused", "unresponsive"})
_PROCESS = "process:"


class Interval(msgspec.Struct, frozen=True, array_like=True):
    tenant: str
    resource: str  # vcpu, memory_mib, disk_gib, hugepages:1G, gpu, mig:1g.10gb, vnet
    subject: str  # vm:<id>, mig:<gpu>/<start>, vnet:<tenant>/<name>
    amount: int  # units held: vCPUs, MiB, GiB, slices, GPUs, VNets
    start_us: int
    end_us: int


class Holding(msgspec.Struct, frozen=True, array_like=True):
    tenant: str
    resource: str
    amount: int
    since_us: int


class VmFacts(msgspec.Struct, frozen=True):
    name: str
    tenant: str
    vcpus: int
    memory_mib: int
    disk_gib: int
    hugepages: str | None  # "2M" / "1G" when hugepage-backed
    whole_gpu: bool
    state: str = "shutoff"


class MigSlice(msgspec.Struct, frozen=True):
    profile: str
    owner: str


class MeterState(msgspec.Struct):
    """Everything a fold needs to resume; journalled whole in a rollup."""

    seq: int = 0  # the last entry folded
    at_us: int = 0  # its time
    vms: dict[str, VmFacts] = {}
    mig: dict[str, MigSlice] = {}  # "<gpu>/<start>"
    vnets: list[str] = []  # "<tenant>/<name>"
    open: dict[str, list[Holding]] = {}  # subject -> its holdings now


def parse_time_us(text: str | None) -> int | None:
    if not text:
        return None
    when = dt.datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    delta = when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def owner_tenant(owner: str, vms: dict[str, VmFacts]) -> str:
    """The tenant a MIG slice's owner charges: a VM's, or a tenant's process claim."""
    if owner.startswith(_PROCESS):
        tenant, slash, _ = owner.removeprefix(_PROCESS).partition("/")
        return tenant if slash else NODE_TENANT
    for facts in vms.values():
        if facts.name == owner:
            return facts.tenant
    return NODE_TENANT


class Meter:
    def __init__(self, state: MeterState | None = None) -> None:
        self.state = state if state is not None else MeterState()

    def feed(
        self, seq: int, kind: str, object_id: str, state: Any, at: str | None
    ) -> list[Interval]:
        """Fold one entry; returns the intervals it closed."""
        s = self.state
        if kind == MEASURED_KIND:
            s.seq = max(s.seq, seq)
            return _measured(state)
        if kind == CLOCK_STEPPED and isinstance(state, dict):
            return self._clock_stepped(seq, state)
        if kind == NODE_STARTED and isinstance(state, dict):
            return self._node_started(seq, state, at)
        handler = _HANDLERS.get(kind)
        if handler is None:
            s.seq = max(s.seq, seq)
            return []
        now = max(parse_time_us(at) or s.at_us, s.at_us)
        s.seq, s.at_us = seq, now
        subjects = handler(s, object_id, state if isinstance(state, dict) else {})
        closed: list[Interval] = []
        for subject in subjects:
            closed += self._recompute(subject, now)
        return closed

    def _clock_stepped(self, seq: int, state: dict[str, Any]) -> list[Interval]:
        """Every holding closes where the clock left and opens again where it landed."""
        s = self.state
        left = max(parse_time_us(state.get("from")) or s.at_us, s.at_us)
        landed = max(parse_time_us(state.get("to")) or left, left)
        closed: list[Interval] = []
        for subject, holdings in s.open.items():
            closed += [
                Interval(h.tenant, h.resource, subject, h.amount, h.since_us, left)
                for h in holdings
                if left > h.since_us
            ]
            s.open[subject] = [msgspec.structs.replace(h, since_us=landed) for h in holdings]
        s.seq, s.at_us = seq, landed
        return closed

    def _node_started(self, seq: int, state: dict[str, Any], at: str | None) -> list[Interval]:
        """After a reboot: the VMs that ran stopped at the node's last sign of life."""
        s = self.state
        now = max(parse_time_us(at) or s.at_us, s.at_us)
        closed: list[Interval] = []
        if state.get("rebooted"):
            down = min(max(parse_time_us(state.get("last_alive")) or now, s.at_us), now)
            for vm_id, vm in list(s.vms.items()):
                if vm.state in ACTIVE_STATES:
                    s.vms[vm_id] = msgspec.structs.replace(vm, state="shutoff")
                    closed += self._recompute(f"vm:{vm_id}", down)
        s.seq, s.at_us = seq, now
        return closed

    def open_intervals(self, until_us: int) -> Iterator[Interval]:
        """The holdings open now, as intervals that end at ``until_us``."""
        for subject, holdings in self.state.open.items():
            for h in holdings:
                if until_us > h.since_us:
                    yield Interval(h.tenant, h.resource, subject, h.amount, h.since_us, until_us)

    def _recompute(self, subject: str, now: int) -> list[Interval]:
        wanted = _holdings(self.state, subject)
        held = self.state.open.get(subject, [])
        keep = {(h.tenant, h.resource, h.amount) for h in held} & wanted
        closed = [
            Interval(h.tenant, h.resource, subject, h.amount, h.since_us, now)
            for h in held
            if (h.tenant, h.resource, h.amount) not in keep and now > h.since_us
        ]
        still = [h for h in held if (h.tenant, h.resource, h.amount) in keep]
        still += [Holding(t, r, a, now) for t, r, a in sorted(wanted - keep)]
        if still:
            self.state.open[subject] = still
        else:
            self.state.open.pop(subject, None)
        return closed


def _measured(state: Any) -> list[Interval]:
    """A window's counts as one-microsecond intervals at its start: a count of V is V
    unit-microseconds in the hour the window lies in (windows never cross an hour)."""
    if not isinstance(state, dict):
        return []
    start = state.get("from_us")
    found = []
    for row in state.get("values", []):
        tenant, resource, subject, value = row
        if resource in MEASURED_RESOURCES and isinstance(start, int) and value > 0:
            found.append(Interval(tenant, resource, subject, int(value), start, start + 1))
    return found


def _holdings(s: MeterState, subject: str) -> set[tuple[str, str, int]]:
    kind, _, key = subject.partition(":")
    if kind == "vm":
        vm = s.vms.get(key)
        if vm is None:
            return set()
        held = {(vm.tenant, "disk_gib", vm.disk_gib)} if vm.disk_gib else set()
        if vm.state in ACTIVE_STATES:
            held |= {(vm.tenant, "vcpu", vm.vcpus), (vm.tenant, "memory_mib", vm.memory_mib)}
            if vm.hugepages:
                held.add((vm.tenant, f"hugepages:{vm.hugepages}", vm.memory_mib))
            if vm.whole_gpu:
                held.add((vm.tenant, "gpu", 1))
        return held
    if kind == "mig":
        piece = s.mig.get(key)
        if piece is None:
            return set()
        return {(owner_tenant(piece.owner, s.vms), f"mig:{piece.profile}", 1)}
    if kind == "vnet" and key in s.vnets:
        return {(key.partition("/")[0], "vnet", 1)}
    return set()


def _vm_created(s: MeterState, vm_id: str, state: dict[str, Any]) -> list[str]:
    spec = state.get("spec") or {}
    gpu = spec.get("gpu") or {}
    hugepages = spec.get("hugepages")
    s.vms[vm_id] = VmFacts(
        name=str(spec.get("name", "")),
        tenant=spec.get("tenant") or NODE_TENANT,
        vcpus=int(spec.get("vcpus", 0)),
        memory_mib=int(spec.get("memory_mib", 0)),
        disk_gib=int(state.get("disk_gib", 0)),
        hugepages=hugepages if hugepages and hugepages != "none" else None,
        whole_gpu=gpu.get("attach") == "passthrough",
    )
    if isinstance(state.get("state"), str):  # nodes before it was journalled: "shutoff"
        s.vms[vm_id] = msgspec.structs.replace(s.vms[vm_id], state=state["state"])
    return [f"vm:{vm_id}", *_owned_slices(s, str(spec.get("name", "")))]


def _vm_state(s: MeterState, vm_id: str, state: dict[str, Any]) -> list[str]:
    vm = s.vms.get(vm_id)
    if vm is not None and isinstance(state.get("state"), str):
        s.vms[vm_id] = msgspec.structs.replace(vm, state=state["state"])
    return [f"vm:{vm_id}"]


def _vm_deleted(s: MeterState, vm_id: str, _: dict[str, Any]) -> list[str]:
    vm = s.vms.pop(vm_id, None)
    return [f"vm:{vm_id}", *(_owned_slices(s, vm.name) if vm else [])]


def _owned_slices(s: MeterState, owner: str) -> list[str]:
    return [f"mig:{key}" for key, piece in s.mig.items() if piece.owner == owner]


def _slice_bound(s: MeterState, gpu: str, state: dict[str, Any]) -> list[str]:
    # An owner holds one instance per GPU: a claim that lands on another instance
    # (its own is gone after a cut-short apply, or a process asks for another
    # profile) takes the owner off the old one in the same write, with no release.
    key = f"{gpu}/{state.get('start')}"
    owner = str(state.get("owner"))
    moved = [k for k, p in s.mig.items() if k.startswith(f"{gpu}/") and p.owner == owner]
    for old in moved:
        del s.mig[old]
    s.mig[key] = MigSlice(str(state.get("profile")), owner)
    return sorted({f"mig:{key}", *(f"mig:{old}" for old in moved)})


def _slice_released(s: MeterState, gpu: str, state: dict[str, Any]) -> list[str]:
    # One entry stands for every slice the owner held on this GPU.
    owner = state.get("owner")
    gone = [k for k, p in s.mig.items() if k.startswith(f"{gpu}/") and p.owner == owner]
    for key in gone:
        del s.mig[key]
    return [f"mig:{key}" for key in gone]


def _slice_destroyed(s: MeterState, gpu: str, state: dict[str, Any]) -> list[str]:
    key = f"{gpu}/{state.get('start')}"
    s.mig.pop(key, None)
    return [f"mig:{key}"]


def _layout(s: MeterState, gpu: str, state: dict[str, Any]) -> list[str]:
    """A whole layout (applied or restored): its owners are the truth for this GPU."""
    before = [k for k in s.mig if k.startswith(f"{gpu}/")]
    for key in before:
        del s.mig[key]
    for inst in (state.get("layout") or {}).get("instances", []):
        if inst.get("owner"):
            key = f"{gpu}/{inst.get('start')}"
            s.mig[key] = MigSlice(str(inst.get("profile")), str(inst["owner"]))
    return sorted(
        {*(f"mig:{k}" for k in before), *(f"mig:{k}" for k in s.mig if k.startswith(f"{gpu}/"))}
    )


def _vnet_declared(s: MeterState, key: str, _: dict[str, Any]) -> list[str]:
    if key not in s.vnets:
        s.vnets = sorted([*s.vnets, key])
    return [f"vnet:{key}"]


def _vnet_removed(s: MeterState, key: str, _: dict[str, Any]) -> list[str]:
    s.vnets = [v for v in s.vnets if v != key]
    return [f"vnet:{key}"]


_HANDLERS = {
    "vm.created": _vm_created,
    "vm.state": _vm_state,
    "vm.deleted": _vm_deleted,
    "gpu.instance_bound": _slice_bound,
    "gpu.instance_released": _slice_released,
    "gpu.instance_destroyed": _slice_destroyed,
    "gpu.layout_applied": _layout,
    "gpu.layout_restored": _layout,
    "n6.vnet_declared": _vnet_declared,
    "n6.vnet_removed": _vnet_removed,
}


def fold(
    entries: Iterable[tuple[int, str, str, Any, str | None]], state: MeterState | None = None
) -> tuple[Meter, list[Interval]]:
    """Fold (seq, kind, object_id, state, created_at) entries in seq order."""
    meter = Meter(state)
    closed: list[Interval] = []
    for seq, kind, object_id, entry_state, at in entries:
        if seq <= meter.state.seq or kind == ROLLUP_KIND:
            continue
        closed += meter.feed(seq, kind, object_id, entry_state, at)
    return meter, closed


# The entry kinds a fold reads; readers may fetch only these.
METERED_KINDS = (*_HANDLERS, ROLLUP_KIND, MEASURED_KIND, CLOCK_STEPPED, NODE_STARTED)
