"""Who may ask for what in a VM spec: the boundary between the node and its tenants.

Pure rules on the final spec (after a catalog entry's defaults are merged in, so an
entry's pinned cores or OVS NICs count as asked for). An infra-admin may ask for
anything but a vRAN slice on a VM that is not a vRAN VM. A tenant's users ask for
plain shared VMs on their VNets, and for what an infra-admin granted their tenant;
raw bridges, OVS ports and VLAN tags, and the PCI address of a GPU the GPU service
manages, are never theirs (roles vran and upf are refused before this, with
``role_not_allowed``). Counts (how many cores, pages, VFs) are quotas, checked later.
"""

from __future__ import annotations

from collections.abc import Collection

from appliance.domain.vm_spec import CpuPolicy, GpuAttach, HugepageSize, NicKind, Role, VmSpec
from towerbox_core.api.tenants import Grants
from towerbox_core.errors import Forbidden, InvalidInput

# The roles a tenant's users may give a VM; vRAN and UPF VMs are the node's own.
TENANT_ROLES = (Role.B2B, Role.OTHER)


def _infra_only(what: str, field: str) -> Forbidden:
    return Forbidden(
        f"{what}: only an infra-admin may ask for this", code="infra_admin_required", field=field
    )


def _grant(what: str, grant: str, field: str, tenant: str | None) -> Forbidden:
    return Forbidden(
        f"{what} needs the {grant!r} grant, which tenant {tenant!r} does not hold; "
        "an infra-admin grants it",
        code="grant_required",
        grant=grant,
        field=field,
    )


def check_vran_slice(spec: VmSpec, *, infra_admin: bool) -> None:
    """The protected vRAN slice goes to vRAN VMs made by an infra-admin, as claims do."""
    if spec.gpu is None or spec.gpu.role != "vran":
        return
    if not infra_admin:
        raise _infra_only("a vRAN GPU slice", "gpu.role")
    if spec.role is not Role.VRAN:
        raise Forbidden(
            f"the vRAN GPU slice is for vRAN VMs; VM {spec.name} has role {spec.role.value}",
            code="vran_slice_protected",
            field="gpu.role",
        )


def check_countable_gpu(spec: VmSpec) -> None:
    """A tenant's VM names its MIG profile, so that its GPU quota can count the slice."""
    gpu = spec.gpu
    if spec.tenant is None or gpu is None or gpu.attach is not GpuAttach.MIG:
        return
    if gpu.profile is None:
        raise InvalidInput(
            f"VM {spec.name} of tenant {spec.tenant} asks for a MIG slice without a "
            "profile; name one (gpu.profile) so the tenant's quota can count it",
            code="gpu_profile_required",
            field="gpu.profile",
        )


def check_privileges(
    spec: VmSpec, grants: Grants, *, infra_admin: bool, gpu_addresses: Collection[str]
) -> None:
    """Refuse the first field the caller may not ask for, naming the missing grant."""
    check_vran_slice(spec, infra_admin=infra_admin)
    if infra_admin:
        return
    tenant = spec.tenant
    for i, nic in enumerate(spec.nics):
        if nic.kind is NicKind.BRIDGE:
            raise _infra_only(f"a NIC on host bridge {nic.bridge}", f"nics[{i}].bridge")
        if nic.kind is NicKind.OVS:
            raise _infra_only(
                f"a raw Open vSwitch port on {nic.bridge}"
                + (f" VLAN {nic.vlan}" if nic.vlan is not None else "")
                + "; attach to a VNet by name",
                f"nics[{i}].bridge",
            )
        if nic.kind is NicKind.SRIOV and grants.sriov_pfs.get(nic.pf or "", 0) == 0:
            raise _grant(f"a VF of {nic.pf}", "sriov_pfs", f"nics[{i}].pf", tenant)
    for i, address in enumerate(spec.pci_devices):
        if address in gpu_addresses:
            raise _infra_only(
                f"PCI device {address} is a GPU of the GPU service; ask for it with the gpu field",
                f"pci_devices[{i}]",
            )
        if address not in grants.pci_devices:
            raise _grant(f"passthrough of {address}", "pci_devices", f"pci_devices[{i}]", tenant)
    if spec.cpu.policy is CpuPolicy.PINNED and grants.pinned_cores == 0:
        raise _grant("pinned cores", "pinned_cores", "cpu.policy", tenant)
    if spec.cpu.isolated and not grants.isolated_cores:
        raise _grant("isolated cores", "isolated_cores", "cpu.isolated", tenant)
    if spec.hugepages is not HugepageSize.NONE and not grants.hugepages.get(spec.hugepages.value):
        raise _grant(f"{spec.hugepages.value} hugepages", "hugepages", "hugepages", tenant)
    if spec.numa_node is not None and not grants.numa_node_choice:
        raise _grant("a NUMA node choice", "numa_node_choice", "numa_node", tenant)
