"""What is free now, said beside the create wizard's fields.

Where the user may read the host and the GPUs (an infra-admin, a tenant-less viewer),
hints come from ``GET /api/v1/host`` (inventory and what VMs hold) and
``GET /api/v1/gpus`` (free B2B slices); a tenant's users see what their tenant's quota
leaves (``GET /api/v1/tenants/{name}``). Hints inform the choice; the API decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from towerbox_core.api.tenants import UNLIMITED

# PCI classes offered for passthrough: network, display, processing accelerators.
# Bridges, storage controllers the host boots from and the like are not.
_PASSTHROUGH_CLASSES = ("0x02", "0x03", "0x12")


@dataclass(frozen=True)
class Capacity:
    hints: dict[str, str] = field(default_factory=dict)  # wizard field -> hint
    gpu_free: dict[str, int] = field(default_factory=dict)  # B2B profile -> free now
    gpus_seen: bool = False  # gpu_free was read from the node's GPUs
    sriov_pfs: list[str] = field(default_factory=list)  # PFs with VFs to hand out
    pci_devices: dict[str, str] = field(default_factory=dict)  # address -> label


def node_capacity(host: dict[str, Any], gpus: list[dict[str, Any]]) -> Capacity:
    """The host's and GPUs' free resources, for an infra-admin's wizard."""
    inventory = host.get("inventory") or {}
    nodes = (host.get("allocation") or {}).get("nodes") or []
    threads = int(inventory.get("thread_count") or len(inventory.get("threads") or []))
    cores = ", ".join(f"node {n['id']}: {n['cores']['free']}" for n in nodes)
    pages = "; ".join(
        f"node {n['id']}: "
        + (", ".join(f"{p['free']} of {size}" for size, p in n["hugepages"].items()) or "none")
        for n in nodes
    )
    total = int(inventory.get("memory_total_kib") or 0) // 1024
    available = int(inventory.get("memory_available_kib") or 0) // 1024
    free = gpu_free(gpus)
    hints = {
        "vcpus": f"{threads} CPU threads on this host",
        "memory_mib": f"{total} MiB on this host, {available} MiB available now",
        "hugepages": f"free pages: {pages}" if nodes else "",
        "cpu": f"free whole cores for pinning: {cores}" if nodes else "",
        "gpu": gpu_hint(free, bool(gpus)),
    }
    return Capacity(
        hints={k: v for k, v in hints.items() if v},
        gpu_free=free,
        gpus_seen=bool(gpus),
        sriov_pfs=sriov_pfs(inventory),
        pci_devices=pci_choices(inventory),
    )


def tenant_capacity(detail: dict[str, Any]) -> Capacity:
    """What the tenant's quota leaves, for its users' wizard."""
    quotas = detail.get("quotas") or {}
    usage = detail.get("usage") or {}
    hints = {}
    for key, unit in (("vcpus", "vCPUs"), ("memory_mib", "MiB"), ("disks", "GiB of disk")):
        quota_key = "disk_gib" if key == "disks" else key
        hints[key] = _left(quotas.get(quota_key, 0), usage.get(quota_key, 0), unit)
    slices = quotas.get("gpu_slices") or {}
    used = usage.get("gpu_slices") or {}
    if slices:
        hints["gpu"] = "quota left: " + ", ".join(
            f"{profile} {_count_left(n, used.get(profile, 0))}"
            for profile, n in sorted(slices.items())
        )
    grants = detail.get("grants") or {}
    return Capacity(
        hints={k: v for k, v in hints.items() if v},
        sriov_pfs=sorted(pf for pf, n in (grants.get("sriov_pfs") or {}).items() if n),
        pci_devices={a: a for a in grants.get("pci_devices") or []},
    )


def gpu_free(gpus: list[dict[str, Any]]) -> dict[str, int]:
    """Free B2B MIG instances per profile over the node's GPUs."""
    free: dict[str, int] = {}
    for gpu in gpus:
        for inst in (gpu.get("layout") or {}).get("instances") or []:
            if inst.get("owner") is None and inst.get("role", "b2b") == "b2b":
                free[inst["profile"]] = free.get(inst["profile"], 0) + 1
    return dict(sorted(free.items()))


def gpu_hint(free: dict[str, int], has_gpus: bool) -> str:
    if not has_gpus:
        return ""
    if not free:
        return "no free B2B slice now: a VM asking for one waits for a layout that has it"
    return "free now: " + ", ".join(f"{n} of {profile}" for profile, n in free.items())


def sriov_pfs(inventory: dict[str, Any]) -> list[str]:
    return sorted(
        str(d["netdev"])
        for d in inventory.get("pci") or []
        if int(d.get("sriov_totalvfs") or 0) > 0 and d.get("netdev")
    )


def pci_choices(inventory: dict[str, Any]) -> dict[str, str]:
    """Devices an infra-admin may pass through whole: not a PF with VFs, not a VF."""
    choices = {}
    for d in inventory.get("pci") or []:
        if not str(d.get("class_id", "")).startswith(_PASSTHROUGH_CLASSES):
            continue
        if int(d.get("sriov_totalvfs") or 0) > 0 or d.get("physfn"):
            continue
        what = d.get("netdev") or f"class {d.get('class_id')}"
        node = d.get("numa_node")
        choices[str(d["address"])] = f"{d['address']} ({what}, NUMA {node})"
    return choices


def _left(quota: int, used: int, unit: str) -> str:
    if quota == UNLIMITED:
        return f"quota: unlimited, {used} {unit} in use"
    return f"quota: {max(quota - used, 0)} of {quota} {unit} left"


def _count_left(quota: int, used: int) -> str:
    return "unlimited" if quota == UNLIMITED else f"{max(quota - used, 0)} of {quota} left"
