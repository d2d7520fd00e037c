"""Places VMs on host CPUs, hugepages and PCI devices: pure bookkeeping, no I/O.

The allocator keeps what each VM was given (an ``Allocation``) and answers whether a
new spec fits beside them. At start it is rebuilt from the allocations stored with the
VMs (``restore``). Pinned VMs get whole physical cores, so a vRAN DU never shares a
core's caches and execution units with a neighbour through an SMT sibling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from appliance.domain.allocation import Allocation
from appliance.domain.host import HostInventory, PciDevice
from appliance.domain.vm_spec import CpuPolicy, NicKind, PinUnit, VmSpec
from towerbox_core.errors import ConfigError, Conflict, InsufficientResources, InvalidInput

Core = tuple[int, ...]  # CPU ids of one physical core's threads, ascending


@dataclass
class _Holdings:
    """What the live allocations hold, derived from them on demand."""

    pinned: dict[int, str] = field(default_factory=dict)  # cpu -> vm
    pci: dict[str, str] = field(default_factory=dict)  # PCI address (device or VF) -> vm
    pages: dict[tuple[int | None, int], int] = field(default_factory=dict)  # (node, kib)


@dataclass(frozen=True)
class _Shortfall:
    """Why a spec does not fit on one node; ``reason`` completes "VM <name> ..."."""

    code: str
    field: str
    reason: str


@dataclass(frozen=True)
class _Fit:
    vcpu_pins: tuple[int, ...] = ()
    cpus: tuple[int, ...] = ()
    shared_cpus: tuple[int, ...] = ()
    hugepages: int = 0


@dataclass(frozen=True)
class _Devices:
    pci: tuple[str, ...]
    vfs: tuple[str, ...]
    node: int | None  # the node the devices sit on; None when none reports one


def page_label(size_kib: int) -> str:
    """2048 -> "2M", 1048576 -> "1G", as the spec and operators write sizes."""
    if size_kib >= 1048576 and size_kib % 1048576 == 0:
        return f"{size_kib // 1048576}G"
    return f"{size_kib // 1024}M" if size_kib % 1024 == 0 else f"{size_kib}K"


class Allocator:
    """Hands out host CPUs, hugepages and PCI devices so that nothing is double-booked."""

    def __init__(self, host: HostInventory, reserved_cpus: frozenset[int] = frozenset()) -> None:
        known = {t.cpu for t in host.threads}
        if unknown := sorted(set(reserved_cpus) - known):
            msg = f"reserved CPUs {unknown} do not exist on this host ({len(known)} CPUs)"
            raise ConfigError(msg, code="invalid_reserved_cpus")
        self._host = host
        self._reserved = frozenset(reserved_cpus)
        self._node_ids = tuple(sorted(n.id for n in host.nodes))
        node_of = {t.cpu: t.node for t in host.threads}
        self._cores: dict[int, list[Core]] = {}
        for threads in sorted(host.cores().values()):
            self._cores.setdefault(node_of[threads[0]], []).append(threads)
        self._node_cpus: dict[int, list[int]] = {}
        for cpu, node in sorted(node_of.items()):
            self._node_cpus.setdefault(node, []).append(cpu)
        self._pci_node: dict[str, int | None] = {}
        for dev in host.pci:
            self._pci_node[dev.address] = dev.numa_node
            for vf in dev.vfs:
                self._pci_node.setdefault(vf, dev.numa_node)
        self._held: dict[str, Allocation] = {}

    # -- public API -------------------------------------------------------------------

    def plan(self, vm: str, spec: VmSpec) -> Allocation:
        """What ``allocate`` would hand ``vm``, without recording it; raises on misfit."""
        if vm in self._held:
            msg = f"VM {vm} already holds host resources; release them first"
            raise Conflict(msg, code="already_allocated", vm=vm)
        if spec.numa_node is not None and spec.numa_node not in self._node_ids:
            nodes = ", ".join(map(str, self._node_ids)) or "none"
            msg = f"NUMA node {spec.numa_node} does not exist on this host; nodes: {nodes}"
            allowed = list(self._node_ids)
            raise InvalidInput(msg, code="unknown_numa_node", field="numa_node", allowed=allowed)
        pinned = spec.cpu.policy is CpuPolicy.PINNED
        if pinned and spec.cpu.isolated and not self._reserved:
            msg = (
                f"VM {vm} asks for cpu.isolated, but no CPUs are reserved for the host to run "
                "its emulator threads on; set reserved CPUs in the daemon configuration"
            )
            raise InvalidInput(msg, code="invalid_cpu_policy", field="cpu.isolated")
        holdings = self._holdings()
        devices = self._claim_devices(vm, spec, holdings)
        node, fit = self._place(vm, spec, devices.node, holdings)
        emulator: tuple[int, ...] = ()
        if pinned:
            emulator = self._emulator_cpus(node) if spec.cpu.isolated else fit.cpus
        return Allocation(
            numa_node=node,
            vcpu_pins=fit.vcpu_pins,
            cpus=fit.cpus,
            emulator_cpus=emulator,
            shared_cpus=fit.shared_cpus,
            hugepage_size_kib=spec.hugepages.kib if fit.hugepages else 0,
            hugepages=fit.hugepages,
            pci_devices=devices.pci,
            sriov_vfs=devices.vfs,
        )

    def allocate(self, vm: str, spec: VmSpec) -> Allocation:
        """Plan and record; on refusal nothing is held."""
        allocation = self.plan(vm, spec)
        self._held[vm] = allocation
        return allocation

    def restore(self, vm: str, allocation: Allocation) -> None:
        """Record an allocation loaded from the database; refuse one that overlaps."""
        if vm in self._held:
            msg = f"VM {vm} already holds host resources"
            raise Conflict(msg, code="already_allocated", vm=vm)
        holdings = self._holdings()
        clashes: list[str] = []
        for cpu in allocation.cpus:
            if cpu in self._reserved:
                clashes.append(f"CPU {cpu} is reserved for the host")
            elif cpu in holdings.pinned:
                clashes.append(f"CPU {cpu} is pinned by VM {holdings.pinned[cpu]}")
            holdings.pinned[cpu] = vm
        for address in (*allocation.pci_devices, *allocation.sriov_vfs):
            if address in holdings.pci:
                clashes.append(f"PCI device {address} is held by VM {holdings.pci[address]}")
            holdings.pci[address] = vm
        if allocation.hugepages:
            node, size = allocation.numa_node, allocation.hugepage_size_kib
            total = self._pages_total(node, size)
            free = total - holdings.pages.get((node, size), 0)
            if allocation.hugepages > free:
                clashes.append(
                    f"{allocation.hugepages} {page_label(size)} hugepages on NUMA node {node} "
                    f"do not fit: {max(free, 0)} of {total} are free"
                )
        if clashes:
            msg = f"cannot restore the allocation of VM {vm}: " + "; ".join(clashes)
            raise Conflict(msg, code="allocation_conflict", vm=vm)
        self._held[vm] = allocation

    def release(self, vm: str) -> None:
        self._held.pop(vm, None)

    def held(self, vm: str) -> Allocation | None:
        return self._held.get(vm)

    def shared_pool(self, numa_node: int | None = None) -> tuple[int, ...]:
        """CPUs shared VMs may float over now: neither reserved nor pinned by a VM.

        A shared VM's ``shared_cpus`` is this pool at define time; after a pinned VM
        takes cores, running shared VMs should be moved to the new pool.
        """
        return self._shared_pool(numa_node, self._holdings())

    def usage(self) -> dict[str, Any]:
        """Per NUMA node: CPUs, whole cores, hugepages and held PCI devices (JSON-able)."""
        holdings = self._holdings()
        nodes = [self._node_usage(node, holdings) for node in self._node_ids]
        pci = sorted(holdings.pci.items())
        elsewhere = {a: v for a, v in pci if self._pci_node.get(a) not in self._node_ids}
        return {"nodes": nodes, "pci_held_without_node": elsewhere, "vms": sorted(self._held)}

    def _node_usage(self, node: int, holdings: _Holdings) -> dict[str, Any]:
        cpus = self._cpus(node)
        reserved = sum(c in self._reserved for c in cpus)
        pinned = sum(c in holdings.pinned for c in cpus)
        numa = self._host.node(node)
        sizes = {p.size_kib for p in numa.hugepages} if numa is not None else set()
        sizes |= {kib for (n, kib) in holdings.pages if n == node}
        pages: dict[str, Any] = {}
        for kib in sorted(sizes):
            total, held = self._pages_total(node, kib), holdings.pages.get((node, kib), 0)
            free = max(total - held, 0)
            pages[page_label(kib)] = {"size_kib": kib, "total": total, "held": held, "free": free}
        free_cpus = len(cpus) - reserved - pinned
        free_cores = len(self._free_cores(node, holdings))
        return {
            "id": node,
            "cpus": {"total": len(cpus), "reserved": reserved, "pinned": pinned, "free": free_cpus},
            "cores": {"total": len(self._cores.get(node, [])), "free": free_cores},
            "hugepages": pages,
            "pci_held": {
                a: v for a, v in sorted(holdings.pci.items()) if self._pci_node.get(a) == node
            },
        }

    # -- devices ----------------------------------------------------------------------

    def _claim_devices(self, vm: str, spec: VmSpec, holdings: _Holdings) -> _Devices:
        located: list[tuple[str, str, int]] = []  # (what, spec field, node)
        for i, address in enumerate(spec.pci_devices):
            device = self._host.pci_device(address)
            if device is None:
                msg = f"PCI device {address} does not exist on this host"
                raise InvalidInput(msg, code="unknown_pci_device", field=f"pci_devices[{i}]")
            if device.numa_node is not None:
                located.append((address, f"pci_devices[{i}]", device.numa_node))
        sriov = [(i, nic.pf or "") for i, nic in enumerate(spec.nics) if nic.kind is NicKind.SRIOV]
        pfs: dict[int, PciDevice] = {}
        for i, netdev in sriov:
            pf = self._host.pf_by_netdev(netdev)
            if pf is None:
                msg = f"{netdev!r} is not an SR-IOV physical function on this host"
                raise InvalidInput(msg, code="unknown_sriov_pf", field=f"nics[{i}].pf")
            pfs[i] = pf
            if pf.numa_node is not None:
                located.append((netdev, f"nics[{i}].pf", pf.numa_node))
        if len({node for _, _, node in located}) > 1:
            where = ", ".join(f"{what} on node {node}" for what, _, node in located)
            first = next(f for _, f, node in located if node != located[0][2])
            msg = f"the devices of VM {vm} sit on different NUMA nodes: {where}"
            raise InvalidInput(msg, code="numa_conflict", field=first)
        for i, address in enumerate(spec.pci_devices):
            if owner := holdings.pci.get(address):
                msg = f"PCI device {address} is in use by VM {owner}"
                raise Conflict(msg, code="pci_device_in_use", field=f"pci_devices[{i}]", vm=owner)
        taken = set(spec.pci_devices)
        vfs: list[str] = []
        for i, netdev in sriov:
            vf = next((v for v in pfs[i].vfs if v not in holdings.pci and v not in taken), None)
            if vf is None:
                count = len(pfs[i].vfs)
                state = f"all {count} of its VFs are in use" if count else "it has no VFs enabled"
                msg = f"VM {vm} needs a free VF of {netdev} for nics[{i}]; {state}"
                raise InsufficientResources(msg, code="insufficient_vfs", field=f"nics[{i}]", vm=vm)
            taken.add(vf)
            vfs.append(vf)
        node = located[0][2] if located else None
        return _Devices(pci=tuple(spec.pci_devices), vfs=tuple(vfs), node=node)

    # -- node choice and fit ----------------------------------------------------------

    def _place(
        self, vm: str, spec: VmSpec, device_node: int | None, holdings: _Holdings
    ) -> tuple[int | None, _Fit]:
        if spec.numa_node is not None and device_node not in (None, spec.numa_node):
            msg = f"VM {vm} asks for NUMA node {spec.numa_node}; its devices are on {device_node}"
            raise InvalidInput(msg, code="numa_conflict", field="numa_node")
        target = spec.numa_node if spec.numa_node is not None else device_node
        unbound = spec.cpu.policy is CpuPolicy.SHARED and not spec.hugepages.kib
        if target is not None or unbound:
            fit = self._fit(spec, target, holdings)
            if isinstance(fit, _Shortfall):
                raise _refusal(vm, fit)
            return target, fit
        ranked = sorted(self._node_ids, key=lambda n: (-len(self._free_cores(n, holdings)), n))
        shortfalls: list[_Shortfall] = []
        for node in ranked:
            fit = self._fit(spec, node, holdings)
            if isinstance(fit, _Fit):
                return node, fit
            shortfalls.append(fit)
        if len(shortfalls) == 1:
            raise _refusal(vm, shortfalls[0])
        reasons = " / ".join(s.reason for s in shortfalls) or "the host reports no NUMA nodes"
        first = shortfalls[0] if shortfalls else _Shortfall("insufficient_cpus", "vcpus", "")
        msg = f"VM {vm} fits on no NUMA node: {reasons}"
        raise InsufficientResources(msg, code=first.code, field=first.field, vm=vm)

    def _fit(self, spec: VmSpec, node: int | None, holdings: _Holdings) -> _Fit | _Shortfall:
        where = f"NUMA node {node}" if node is not None else "this host"
        if spec.cpu.policy is CpuPolicy.PINNED and node is not None:
            cpu_fit = self._pick_cores(spec, node, holdings)
        else:
            pool = self._shared_pool(node, holdings)
            if not pool:
                msg = f"needs shared CPUs on {where}; all are reserved or pinned by VMs"
                return _Shortfall("insufficient_cpus", "cpu.policy", msg)
            cpu_fit = _Fit(shared_cpus=pool)
        if isinstance(cpu_fit, _Shortfall) or not spec.hugepages.kib:
            return cpu_fit
        size, label = spec.hugepages.kib, spec.hugepages.value
        needed = -(-spec.memory_mib * 1024 // size)
        # Budget: the pages configured on the node less what this allocator handed out.
        # Pages taken by anything outside Towerbox are not tracked here: QEMU then fails
        # to start the VM, which is reported at start rather than at allocation.
        total = self._pages_total(node, size)
        held = holdings.pages.get((node, size), 0)
        if total == 0:
            msg = f"needs {needed} {label} hugepages on {where}; none of that size are configured"
            return _Shortfall("insufficient_hugepages", "hugepages", msg)
        if needed > total - held:
            msg = (
                f"needs {needed} {label} hugepages ({spec.memory_mib} MiB) on {where}; "
                f"{max(total - held, 0)} are free ({total} total, {held} held by other VMs)"
            )
            return _Shortfall("insufficient_hugepages", "hugepages", msg)
        return _Fit(cpu_fit.vcpu_pins, cpu_fit.cpus, cpu_fit.shared_cpus, needed)

    def _pick_cores(self, spec: VmSpec, node: int, holdings: _Holdings) -> _Fit | _Shortfall:
        cores = self._cores.get(node, [])
        free = self._free_cores(node, holdings)
        if spec.cpu.pin_unit is PinUnit.CORE:
            needed, detail = spec.vcpus, ""
        else:
            # Server CPUs have one SMT width per node; the widest core sets the count.
            per_core = max((len(c) for c in cores), default=1)
            needed = -(-spec.vcpus // per_core)
            detail = f" ({spec.vcpus} vCPUs on sibling threads)"
        chosen = free[:needed]
        if spec.cpu.pin_unit is PinUnit.CORE:
            pins = tuple(core[0] for core in chosen)
        else:
            pins = tuple(cpu for core in chosen for cpu in core)[: spec.vcpus]
        if len(chosen) < needed or len(pins) < spec.vcpus:
            # A core counts once: as reserved if any of its threads is.
            blocked = [any(c in self._reserved for c in core) for core in cores]
            pinned = sum(
                not b and any(c in holdings.pinned for c in core)
                for core, b in zip(cores, blocked, strict=True)
            )
            reserved = sum(blocked)
            msg = (
                f"needs {needed} exclusive {_cores(needed)}{detail} on NUMA node {node}; "
                f"{len(free)} free ({len(cores)} total, {reserved} reserved, {pinned} pinned "
                "by other VMs)"
            )
            return _Shortfall("insufficient_cpus", "vcpus", msg)
        return _Fit(vcpu_pins=pins, cpus=tuple(sorted(c for core in chosen for c in core)))

    # -- small lookups ----------------------------------------------------------------

    def _holdings(self) -> _Holdings:
        holdings = _Holdings()
        for vm, alloc in self._held.items():
            holdings.pinned.update(dict.fromkeys(alloc.cpus, vm))
            holdings.pci.update(dict.fromkeys((*alloc.pci_devices, *alloc.sriov_vfs), vm))
            if alloc.hugepages:
                key = (alloc.numa_node, alloc.hugepage_size_kib)
                holdings.pages[key] = holdings.pages.get(key, 0) + alloc.hugepages
        return holdings

    def _free_cores(self, node: int, holdings: _Holdings) -> list[Core]:
        """Whole cores with no thread reserved for the host or pinned by a VM."""
        return [
            core
            for core in self._cores.get(node, [])
            if not any(c in self._reserved or c in holdings.pinned for c in core)
        ]

    def _cpus(self, node: int | None) -> list[int]:
        if node is None:
            return sorted(t.cpu for t in self._host.threads)
        return self._node_cpus.get(node, [])

    def _shared_pool(self, node: int | None, holdings: _Holdings) -> tuple[int, ...]:
        return tuple(
            c for c in self._cpus(node) if c not in self._reserved and c not in holdings.pinned
        )

    def _emulator_cpus(self, node: int | None) -> tuple[int, ...]:
        local = tuple(c for c in self._cpus(node) if c in self._reserved)
        return local or tuple(sorted(self._reserved))

    def _pages_total(self, node: int | None, size_kib: int) -> int:
        numa = self._host.node(node) if node is not None else None
        return numa.hugepages_of(size_kib).total if numa is not None else 0


def _refusal(vm: str, shortfall: _Shortfall) -> InsufficientResources:
    return InsufficientResources(
        f"VM {vm} {shortfall.reason}", code=shortfall.code, field=shortfall.field, vm=vm
    )


def _cores(count: int) -> str:
    return "core" if count == 1 else "cores"
