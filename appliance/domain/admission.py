"""Host admission: does a new VM fit the host's CPUs, memory and disk, whoever asks.

Pure. Hugepage-backed memory is the allocator's (it counts pages per NUMA node); the
rest of a VM's memory is counted here against the host's memory less its hugepage
pools and a reserve for the host itself, times an overcommit ratio (1.0: none).
Disks are counted at their full size against the free space where overlays grow.
One VM may not have more vCPUs than the host has threads (its vCPUs would only
contend with each other); vCPUs across VMs may be overcommitted.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.domain.host import HostInventory
from appliance.domain.vm_spec import HugepageSize, VmSpec
from towerbox_core.errors import InsufficientResources

GIB = 1 << 30


@dataclass(frozen=True)
class HostLimits:
    memory_reserve_mib: int
    memory_overcommit: float
    max_vm_disk_gib: int


def memory_budget_mib(host: HostInventory, limits: HostLimits) -> int:
    """What VMs without hugepages may be given in all."""
    pools_kib = sum(p.total * p.size_kib for node in host.nodes for p in node.hugepages)
    plain_mib = (host.memory_total_kib - pools_kib) // 1024 - limits.memory_reserve_mib
    return max(int(plain_mib * limits.memory_overcommit), 0)


def plain_memory_mib(memory_mib: int, hugepages: HugepageSize) -> int:
    """The memory of a VM that is not backed by hugepages."""
    return 0 if hugepages.kib else memory_mib


def check_vcpus(spec: VmSpec, host_threads: int) -> None:
    """One VM's own vCPUs against the host's threads (0: not known, not checked)."""
    if host_threads and spec.vcpus > host_threads:
        raise InsufficientResources(
            f"VM {spec.name} asks for {spec.vcpus} vCPUs; this host has "
            f"{host_threads} CPU threads, and one VM may have at most that many",
            code="insufficient_cpus",
            field="vcpus",
            asked_vcpus=spec.vcpus,
            host_threads=host_threads,
        )


def check_memory(spec: VmSpec, committed_mib: int, budget_mib: int, limits: HostLimits) -> None:
    asked = plain_memory_mib(spec.memory_mib, spec.hugepages)
    if asked:
        require_memory(f"VM {spec.name}", asked, committed_mib, budget_mib, limits)


def require_memory(
    who: str, asked_mib: int, committed_mib: int, budget_mib: int, limits: HostLimits
) -> None:
    """``asked_mib`` more of plain memory beside what VMs are given; ``who`` (a VM, or a
    service's new replicas together) begins the refusal."""
    if committed_mib + asked_mib > budget_mib:
        raise InsufficientResources(
            f"{who} needs {asked_mib} MiB of host memory; {committed_mib} of "
            f"{budget_mib} MiB are given to VMs already (host memory less hugepage pools "
            f"and a {limits.memory_reserve_mib} MiB reserve, overcommit "
            f"{limits.memory_overcommit:g})",
            code="insufficient_memory",
            field="memory_mib",
            asked_mib=asked_mib,
            committed_mib=committed_mib,
            budget_mib=budget_mib,
        )


def check_disk(spec: VmSpec, disk_gib: int, free_bytes: int, limits: HostLimits) -> None:
    if disk_gib > limits.max_vm_disk_gib:
        raise InsufficientResources(
            f"VM {spec.name} asks for {disk_gib} GiB of disk; a VM may have at most "
            f"{limits.max_vm_disk_gib} GiB on this node",
            code="disk_too_large",
            field="disks",
            asked_gib=disk_gib,
            max_gib=limits.max_vm_disk_gib,
        )
    free_gib = free_bytes // GIB
    if disk_gib > free_gib:
        raise InsufficientResources(
            f"VM {spec.name} asks for {disk_gib} GiB of disk; {free_gib} GiB are free "
            "where its disks are made",
            code="insufficient_disk",
            field="disks",
            asked_gib=disk_gib,
            free_gib=free_gib,
        )
