"""The host as the appliance sees it: CPU topology, NUMA memory, hugepages, PCI.

Pure data. Filled by ``appliance.backends.host`` from sysfs and psutil; read by the
allocator and the VM service to place VMs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HUGEPAGE_2M_KIB = 2048
HUGEPAGE_1G_KIB = 1048576


@dataclass(frozen=True)
class CpuThread:
    """One logical CPU (hardware thread) as Linux numbers it."""

    cpu: int
    core: int  # core_id, unique within its socket only
    socket: int
    node: int


@dataclass(frozen=True)
class Hugepages:
    size_kib: int
    total: int
    free: int


@dataclass(frozen=True)
class NumaNode:
    id: int
    cpus: tuple[int, ...]
    memory_total_kib: int
    memory_free_kib: int
    hugepages: tuple[Hugepages, ...] = ()

    def hugepages_of(self, size_kib: int) -> Hugepages:
        for pages in self.hugepages:
            if pages.size_kib == size_kib:
                return pages
        return Hugepages(size_kib=size_kib, total=0, free=0)


@dataclass(frozen=True)
class PciDevice:
    address: str  # domain:bus:slot.function, e.g. 0000:3b:00.0
    vendor_id: str  # "0x10de"
    device_id: str
    class_id: str  # "0x030200"
    numa_node: int | None  # None where firmware reports -1
    iommu_group: int | None
    driver: str | None = None
    netdev: str | None = None  # interface name for NICs
    sriov_totalvfs: int = 0
    sriov_numvfs: int = 0
    vfs: tuple[str, ...] = ()  # PCI addresses of this PF's virtual functions
    physfn: str | None = None  # for a VF: its PF's address

    @property
    def is_sriov_pf(self) -> bool:
        return self.sriov_totalvfs > 0


@dataclass(frozen=True)
class HostInventory:
    hostname: str
    cpu_model: str
    threads: tuple[CpuThread, ...]
    nodes: tuple[NumaNode, ...]
    pci: tuple[PciDevice, ...]
    has_vmx: bool
    has_svm: bool
    memory_total_kib: int
    memory_available_kib: int
    kvm_device: bool = False  # /dev/kvm present
    sockets: int = field(default=1)

    @property
    def hw_virt(self) -> bool:
        return self.has_vmx or self.has_svm

    def node(self, node_id: int) -> NumaNode | None:
        return next((n for n in self.nodes if n.id == node_id), None)

    def pci_device(self, address: str) -> PciDevice | None:
        return next((d for d in self.pci if d.address == address), None)

    def pf_by_netdev(self, netdev: str) -> PciDevice | None:
        return next((d for d in self.pci if d.netdev == netdev and d.is_sriov_pf), None)

    def cores(self) -> dict[tuple[int, int], tuple[int, ...]]:
        """Physical cores keyed by (socket, core_id), each with its thread CPU ids."""
        cores: dict[tuple[int, int], list[int]] = {}
        for t in self.threads:
            cores.setdefault((t.socket, t.core), []).append(t.cpu)
        return {k: tuple(sorted(v)) for k, v in sorted(cores.items())}
