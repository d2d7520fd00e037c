"""What the create wizard offers the signed-in user, and the spec it sends.

A tenant's user gets what ``GET /api/v1/tenants/{name}/vm-options`` says (its roles,
grants, the GPU profiles its quota names and the node has); an infra-admin gets every
role and field, the node's MIG profiles and NUMA nodes. Host facts (threads, memory)
come from ``GET /api/v1/host`` where the user may read it, for the form's own checks;
otherwise only the API's answer judges. The body is a ``VmCreateRequest`` whose spec
holds VmSpec fields only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from towerbox_core.api.tenants import VmOptions
from towerbox_core.api.vms import VmCreateRequest
from ui.api import ApiError, tenant_path
from ui.session import UserApi
from ui.vm_capacity import Capacity, node_capacity, tenant_capacity

ALL_ROLES = ("other", "b2b", "vran", "upf")
HUGEPAGE_MIB = {"2M": 2, "1G": 1024}


@dataclass(frozen=True)
class HostFacts:
    threads: int
    memory_mib: int


@dataclass(frozen=True)
class Offer:
    tenants: list[str]  # to choose from; one, fixed, for a tenant's user
    tenant_fixed: bool
    roles: list[str]
    pinned: bool
    isolated: bool
    hugepages: list[str]
    numa_nodes: list[int]
    gpu_profiles: list[str]
    vnets: dict[str, list[str]]  # tenant -> its VNets' names
    host: HostFacts | None
    capacity: Capacity = field(default_factory=Capacity)  # what is free, and devices


@dataclass
class WizardInput:
    """What the form holds, as typed."""

    name: str = ""
    appliance: str | None = None
    vcpus: float | None = None
    memory_mib: float | None = None
    tenant: str = ""
    role: str = "other"
    pinned: bool = False
    isolated: bool = False
    hugepages: str = "none"
    numa_node: int | None = None
    gpu_profile: str = ""  # a MIG profile, or "role:vran" for the protected slice
    vnet: str = ""
    sriov_pf: str = ""  # a VF of this PF as a second NIC
    pci_devices: list[str] = field(default_factory=list)
    disk_gib: float | None = None
    start: bool = True
    catalog_disks: list[dict[str, Any]] = field(default_factory=list)
    # The appliance's declared values as typed (see typed_values); empty ones are left
    # to the entry's defaults.
    values: dict[str, Any] = field(default_factory=dict)


def host_facts(host: dict[str, Any]) -> HostFacts:
    inv = host.get("inventory") or {}
    kib = sum(int(n.get("memory_total_kib") or 0) for n in inv.get("nodes") or [])
    return HostFacts(threads=len(inv.get("threads") or []), memory_mib=kib // 1024)


def vnets_by_tenant(vnets: list[dict[str, Any]]) -> dict[str, list[str]]:
    table: dict[str, list[str]] = {}
    for vnet in vnets:
        table.setdefault(str(vnet.get("tenant")), []).append(str(vnet.get("name")))
    return {t: sorted(names) for t, names in table.items()}


def tenant_offer(
    options: VmOptions,
    vnets: list[dict[str, Any]],
    host: dict[str, Any] | None,
    capacity: Capacity | None = None,
) -> Offer:
    g = options.grants
    return Offer(
        tenants=[options.tenant],
        tenant_fixed=True,
        roles=[r for r in ALL_ROLES if r in options.roles],
        pinned=g.pinned_cores != 0,
        isolated=g.isolated_cores and g.pinned_cores != 0,
        hugepages=[size for size in HUGEPAGE_MIB if g.hugepages.get(size, 0) != 0],
        numa_nodes=list(options.numa_nodes),
        gpu_profiles=list(options.gpu_profiles),
        vnets={options.tenant: vnets_by_tenant(vnets).get(options.tenant, [])},
        host=host_facts(host) if host is not None else None,
        capacity=capacity or Capacity(),
    )


def admin_offer(
    tenants: list[str],
    profiles: list[str],
    vnets: list[dict[str, Any]],
    host: dict[str, Any],
    gpus: list[dict[str, Any]] | None = None,
) -> Offer:
    nodes = (host.get("inventory") or {}).get("nodes") or []
    return Offer(
        tenants=tenants,
        tenant_fixed=False,
        roles=list(ALL_ROLES),
        pinned=True,
        isolated=True,
        hugepages=list(HUGEPAGE_MIB),
        numa_nodes=[int(n["id"]) for n in nodes],
        gpu_profiles=sorted(set(profiles)),
        vnets=vnets_by_tenant(vnets),
        host=host_facts(host),
        capacity=node_capacity(host, gpus or []),
    )


async def load_offer(user: UserApi) -> Offer:
    """The offer for this session; ApiError when the appliance refuses a needed read."""
    me = user.session
    vnets = await user.get("/api/v1/n6/vnets")
    if not me.infra_admin and me.tenant:
        options = msgspec.convert(await user.get(tenant_path(me.tenant, "vm-options")), VmOptions)
        try:
            host = await user.get("/api/v1/host")
        except ApiError:
            host = None  # a tenant's user may not read the host: the API judges alone
        detail = await user.get(tenant_path(me.tenant))
        return tenant_offer(options, vnets, host, tenant_capacity(detail))
    tenants = [t["name"] for t in await user.get("/api/v1/tenants")]
    profiles: list[str] = []
    gpus = (await user.get("/api/v1/gpus"))["gpus"]
    for gpu in gpus:
        profiles += [p["name"] for p in await user.get(f"/api/v1/gpus/{gpu['uuid']}/profiles")]
    return admin_offer(tenants, profiles, vnets, await user.get("/api/v1/host"), gpus)


def problems(form: WizardInput, offer: Offer) -> dict[str, str]:
    """Obviously bad input, by VmSpec field, before anything is sent."""
    found: dict[str, str] = {}
    if not form.name.strip():
        found["name"] = "Give the VM a name."
    host = offer.host
    if form.vcpus is not None and host is not None and form.vcpus > host.threads:
        found["vcpus"] = f"This host has {host.threads} CPU threads."
    if form.memory_mib is not None and host is not None and form.memory_mib > host.memory_mib:
        found["memory_mib"] = f"This host has {host.memory_mib} MiB of memory."
    page = HUGEPAGE_MIB.get(form.hugepages)
    if page and form.memory_mib is not None and int(form.memory_mib) % page:
        found["memory_mib"] = f"With {form.hugepages} pages, memory is a multiple of {page} MiB."
    if form.isolated and not form.pinned:
        found["cpu"] = "Isolated emulator threads need pinned cores."
    return found


def create_body(form: WizardInput) -> dict[str, Any]:
    """The POST /api/v1/vms body: VmCreateRequest, its spec VmSpec fields only."""
    spec: dict[str, Any] = {"role": form.role}
    if form.vcpus is not None:
        spec["vcpus"] = int(form.vcpus)
    if form.memory_mib is not None:
        spec["memory_mib"] = int(form.memory_mib)
    if form.tenant:
        spec["tenant"] = form.tenant
    if form.pinned:
        spec["cpu"] = {"policy": "pinned", "isolated": form.isolated}
    if form.hugepages != "none":
        spec["hugepages"] = form.hugepages
    if form.numa_node is not None:
        spec["numa_node"] = form.numa_node
    if form.gpu_profile.startswith("role:"):
        spec["gpu"] = {"attach": "mig", "role": form.gpu_profile.removeprefix("role:")}
    elif form.gpu_profile:
        spec["gpu"] = {"attach": "mig", "profile": form.gpu_profile}
    nics = [{"kind": "vnet", "vnet": form.vnet}] if form.vnet else []
    if form.sriov_pf:
        nics.append({"kind": "sriov", "pf": form.sriov_pf})
    if nics:
        spec["nics"] = nics
    if form.pci_devices:
        spec["pci_devices"] = list(form.pci_devices)
    if form.disk_gib:
        # A list replaces the entry's disks: keep them, add the data disk after them.
        spec["disks"] = [*form.catalog_disks, {"size_gib": int(form.disk_gib)}]
    body = VmCreateRequest(
        name=form.name.strip(),
        appliance=form.appliance,
        spec=spec,
        start=form.start,
        values=non_empty(form.values),
    )
    return msgspec.to_builtins(body)  # type: ignore[no-any-return]


def catalog_disks(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The disks a catalog entry's VM gets: its image (disk kind) and its extra disks."""
    image = entry.get("image") or {}
    disks = [{"image": image["file"]}] if image.get("kind") == "disk" else []
    extra = (entry.get("default_spec") or {}).get("disks")
    return disks + (list(extra) if isinstance(extra, list) else [])


def typed_value(decl: dict[str, Any], typed: Any) -> Any:
    """A value input's content as the request carries it: a list value is typed one
    item per line, a number comes back from the input as a float."""
    kind = decl.get("type", "string")
    if kind == "list":
        return [line.strip() for line in str(typed or "").splitlines() if line.strip()]
    if kind == "integer":
        return None if typed is None else int(typed)
    if kind == "boolean":
        return bool(typed)
    return str(typed or "").strip()


def value_label(name: str, decl: dict[str, Any]) -> str:
    """The value's name as the catalog declares it and the CLI and API take it
    (``--value model=...``): "model", "ssh_authorized_key *" for a required one."""
    return f"{name} *" if decl.get("required") else name


def non_empty(values: dict[str, Any]) -> dict[str, Any]:
    """Values left empty take the entry's default: they are not sent."""
    return {k: v for k, v in values.items() if v not in (None, "", [])}
