"""What the allocator hands a VM: host CPUs, hugepages and devices it may use.

Stored with the VM in the database (as JSON) so the allocator can be rebuilt at
start, and read by the domain XML builder to emit pinning and NUMA placement.
"""

from __future__ import annotations

import msgspec


class Allocation(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # NUMA node the VM's vCPUs and memory are bound to; None for an unbound shared VM.
    numa_node: int | None = None
    # Pinned VMs: host CPU for each vCPU, in vCPU order. Empty for shared VMs.
    vcpu_pins: tuple[int, ...] = ()
    # Every host CPU held exclusively (whole cores, so idle siblings count too).
    cpus: tuple[int, ...] = ()
    # Where QEMU's emulator threads may run; empty means wherever the vCPUs run.
    emulator_cpus: tuple[int, ...] = ()
    # Shared VMs: the CPUs their vCPUs may float over (the shared pool at define time).
    shared_cpus: tuple[int, ...] = ()
    hugepage_size_kib: int = 0
    hugepages: int = 0  # count of pages of hugepage_size_kib on numa_node
    # PCI addresses held exclusively: passthrough devices and SR-IOV VFs, in NIC order
    # for VFs (sriov_vfs[i] backs the i-th sriov NIC).
    pci_devices: tuple[str, ...] = ()
    sriov_vfs: tuple[str, ...] = ()


def encode_allocation(alloc: Allocation) -> str:
    return msgspec.json.encode(alloc).decode()


def decode_allocation(raw: str) -> Allocation:
    return msgspec.json.decode(raw, type=Allocation)
