"""A tenant as a Virtual Data Center: its quotas, its grants and what it uses.

Every count is a plain integer: 0 means none, and ``UNLIMITED`` (-1) means no limit;
unlimited exists only where an infra-admin (or the node's ``[tenants]`` defaults)
writes it. In the update bodies a field left out (or null) keeps its value, and a
map merges key by key: a key set to 0 removes that entry.
"""

from __future__ import annotations

from typing import Any

import msgspec

UNLIMITED = -1


class Quotas(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a tenant's VMs, VNets and claims may hold in all."""

    vms: int = 0
    vcpus: int = 0
    memory_mib: int = 0
    disk_gib: int = 0
    # Per MIG profile ("1g.10gb": 2); a profile not listed allows no slice.
    gpu_slices: dict[str, int] = {}
    # Over every profile, in compute slices ("3g.40gb" counts 3).
    gpu_compute_slices: int = 0
    whole_gpus: int = 0
    vnets: int = 0
    process_claims: int = 0


class Grants(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a tenant may ask for beyond plain shared VMs, each granted by an infra-admin."""

    # Exclusive physical cores its pinned VMs may hold in all; 0: no pinning at all.
    pinned_cores: int = 0
    isolated_cores: bool = False  # emulator threads kept off the VM's cores
    # Hugepage size ("2M", "1G") -> MiB of VM memory it may back; a size not listed
    # is not granted.
    hugepages: dict[str, int] = {}
    numa_node_choice: bool = False
    # SR-IOV physical function (interface name) -> VFs it may hold of it.
    sriov_pfs: dict[str, int] = {}
    # Host PCI addresses it may pass through whole (never a GPU the GPU service owns).
    pci_devices: list[str] = []


class QuotasUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """PUT /api/v1/tenants/{name}/quotas (infra-admin): the quotas to change."""

    vms: int | None = None
    vcpus: int | None = None
    memory_mib: int | None = None
    disk_gib: int | None = None
    gpu_slices: dict[str, int] | None = None
    gpu_compute_slices: int | None = None
    whole_gpus: int | None = None
    vnets: int | None = None
    process_claims: int | None = None


class GrantsUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """PUT /api/v1/tenants/{name}/grants (infra-admin): the grants to change.

    ``pci_devices`` replaces the list; the maps merge (0 revokes a key).
    """

    pinned_cores: int | None = None
    isolated_cores: bool | None = None
    hugepages: dict[str, int] | None = None
    numa_node_choice: bool | None = None
    sriov_pfs: dict[str, int] | None = None
    pci_devices: list[str] | None = None


class TenantUsage(msgspec.Struct, frozen=True):
    """What the tenant holds now, in the units of its quotas and grants."""

    vms: int = 0
    vcpus: int = 0
    memory_mib: int = 0
    disk_gib: int = 0
    gpu_slices: dict[str, int] = {}
    gpu_compute_slices: int = 0
    whole_gpus: int = 0
    vnets: int = 0
    process_claims: int = 0
    pinned_cores: int = 0
    hugepages: dict[str, int] = {}  # MiB per size
    sriov_pfs: dict[str, int] = {}  # VFs per PF
    pci_devices: list[str] = []


class TenantDetail(msgspec.Struct, frozen=True):
    """GET /api/v1/tenants/{name}."""

    name: str
    description: str
    quotas: Quotas
    # "defaults": the node's [tenants] defaults (never set for this tenant); "set".
    quotas_source: str
    grants: Grants
    usage: TenantUsage
    # Quotas or grants the usage is above (after one was lowered): new allocations of
    # these are refused; what runs keeps running.
    over: list[str]
    labels: dict[str, str] = {}


class QuotasAnswer(msgspec.Struct, frozen=True):
    tenant: str
    quotas: Quotas
    usage: TenantUsage
    over: list[str]
    note: str  # set when a quota is below usage: it blocks new allocations only


class GrantsAnswer(msgspec.Struct, frozen=True):
    tenant: str
    grants: Grants
    usage: TenantUsage
    over: list[str]
    note: str


class VmOptions(msgspec.Struct, frozen=True):
    """GET /api/v1/tenants/{name}/vm-options: what the caller may ask for in a VM of
    this tenant on this node, for a create form to offer (the API still decides)."""

    tenant: str
    roles: list[str]  # VM roles the caller may give it ("vran" and "upf": infra-admin only)
    grants: Grants
    # MIG profiles the node's GPUs offer and the tenant's quota names (not 0).
    gpu_profiles: list[str]
    # The host's NUMA nodes, where the caller may choose one; empty otherwise.
    numa_nodes: list[int]


class TenantEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One tenant of a ``tenants`` desired-state document (docs/sync-protocol.md).

    ``quotas`` null (or left out): the node's ``[tenants]`` defaults. ``vnets``: the
    tenant's VNets, each shaped like an entry of the ``vnets`` document; their
    ``tenant`` may be left out and otherwise must be this tenant.
    """

    description: str = ""
    labels: dict[str, str] = {}
    quotas: Quotas | None = None
    grants: Grants = msgspec.field(default_factory=Grants)
    vnets: list[dict[str, Any]] = []


class TenantsDocument(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The ``tenants`` desired-state document: tenant name -> what it holds."""

    tenants: dict[str, TenantEntry] = {}
