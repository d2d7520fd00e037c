"""Quota math: what a VM charges its tenant, what a tenant uses, and whether it fits.

Pure. The VM service hands in the VMs' specs, allocations and disk sizes; nothing
here reads the database or the host. -1 (``UNLIMITED``) is no limit; 0 is none.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec

from appliance.domain.vm_spec import GpuAttach, NicKind, VmSpec, profile_compute_slices
from towerbox_core.api.tenants import (
    UNLIMITED,
    Grants,
    GrantsUpdate,
    Quotas,
    QuotasUpdate,
    TenantUsage,
)
from towerbox_core.errors import InsufficientResources, InvalidInput
from towerbox_core.tenant_rules import check_grant_counts, check_quota_counts


@dataclass(frozen=True)
class Charge:
    """What one VM holds against its tenant's quotas and grants."""

    vcpus: int = 0
    memory_mib: int = 0
    disk_gib: int = 0
    gpu_slices: dict[str, int] = field(default_factory=dict)
    gpu_compute_slices: int = 0
    whole_gpus: int = 0
    pinned_cores: int = 0
    hugepages: dict[str, int] = field(default_factory=dict)  # MiB per size
    sriov_pfs: dict[str, int] = field(default_factory=dict)  # VFs per PF
    pci_devices: tuple[str, ...] = ()


def charge_of(spec: VmSpec, *, disk_gib: int, pinned_cores: int) -> Charge:
    """A VM's charge; ``pinned_cores`` counts the whole cores its allocation holds."""
    slices: dict[str, int] = {}
    compute = whole = 0
    if spec.gpu is not None and spec.gpu.attach is GpuAttach.PASSTHROUGH:
        whole = 1
    elif spec.gpu is not None and spec.gpu.profile is not None:
        slices[spec.gpu.profile] = 1
        compute = profile_compute_slices(spec.gpu.profile, "gpu.profile")
    vfs: dict[str, int] = {}
    for nic in spec.nics:
        if nic.kind is NicKind.SRIOV and nic.pf:
            vfs[nic.pf] = vfs.get(nic.pf, 0) + 1
    pages = {spec.hugepages.value: spec.memory_mib} if spec.hugepages.kib else {}
    return Charge(
        vcpus=spec.vcpus,
        memory_mib=spec.memory_mib,
        disk_gib=disk_gib,
        gpu_slices=slices,
        gpu_compute_slices=compute,
        whole_gpus=whole,
        pinned_cores=pinned_cores,
        hugepages=pages,
        sriov_pfs=vfs,
        pci_devices=spec.pci_devices,
    )


def _add(into: dict[str, int], more: dict[str, int]) -> None:
    for key, value in more.items():
        into[key] = into.get(key, 0) + value


def claim_charge(profile: str) -> Charge:
    """What one process claim of a MIG slice holds against its tenant's quotas."""
    return Charge(
        gpu_slices={profile: 1}, gpu_compute_slices=profile_compute_slices(profile, "profile")
    )


def usage_of(
    charges: Iterable[Charge], *, vnets: int = 0, claims: Iterable[Charge] = ()
) -> TenantUsage:
    """Usage from the tenant's VMs' charges, its VNet count and its process claims."""
    claimed = list(claims)
    vms = vcpus = memory = disk = compute = whole = cores = 0
    slices: dict[str, int] = {}
    pages: dict[str, int] = {}
    vfs: dict[str, int] = {}
    pci: list[str] = []
    for c in charges:
        vms += 1
        vcpus += c.vcpus
        memory += c.memory_mib
        disk += c.disk_gib
        compute += c.gpu_compute_slices
        whole += c.whole_gpus
        cores += c.pinned_cores
        _add(slices, c.gpu_slices)
        _add(pages, c.hugepages)
        _add(vfs, c.sriov_pfs)
        pci.extend(c.pci_devices)
    for c in claimed:
        compute += c.gpu_compute_slices
        _add(slices, c.gpu_slices)
    return TenantUsage(
        vms=vms,
        vcpus=vcpus,
        memory_mib=memory,
        disk_gib=disk,
        gpu_slices=slices,
        gpu_compute_slices=compute,
        whole_gpus=whole,
        vnets=vnets,
        process_claims=len(claimed),
        pinned_cores=cores,
        hugepages=pages,
        sriov_pfs=vfs,
        pci_devices=sorted(pci),
    )


@dataclass(frozen=True)
class _Line:
    name: str  # "vcpus", "gpu_slices.1g.10gb", "grants.pinned_cores"
    limit: int
    used: int
    asked: int


def _lines(
    quotas: Quotas, grants: Grants, usage: TenantUsage, charge: Charge, vms: int = 1
) -> list[_Line]:
    lines = [
        _Line("vms", quotas.vms, usage.vms, vms),
        _Line("vcpus", quotas.vcpus, usage.vcpus, charge.vcpus),
        _Line("memory_mib", quotas.memory_mib, usage.memory_mib, charge.memory_mib),
        _Line("disk_gib", quotas.disk_gib, usage.disk_gib, charge.disk_gib),
    ]
    for profile, n in charge.gpu_slices.items():
        limit = quotas.gpu_slices.get(profile, 0)
        lines.append(_Line(f"gpu_slices.{profile}", limit, usage.gpu_slices.get(profile, 0), n))
    lines += [
        _Line(
            "gpu_compute_slices",
            quotas.gpu_compute_slices,
            usage.gpu_compute_slices,
            charge.gpu_compute_slices,
        ),
        _Line("whole_gpus", quotas.whole_gpus, usage.whole_gpus, charge.whole_gpus),
        _Line("grants.pinned_cores", grants.pinned_cores, usage.pinned_cores, charge.pinned_cores),
    ]
    for size, mib in charge.hugepages.items():
        limit = grants.hugepages.get(size, 0)
        lines.append(_Line(f"grants.hugepages.{size}", limit, usage.hugepages.get(size, 0), mib))
    for pf, n in charge.sriov_pfs.items():
        limit = grants.sriov_pfs.get(pf, 0)
        lines.append(_Line(f"grants.sriov_pfs.{pf}", limit, usage.sriov_pfs.get(pf, 0), n))
    return lines


def check_fits(
    tenant: str, quotas: Quotas, grants: Grants, usage: TenantUsage, charge: Charge, vms: int = 1
) -> None:
    """Refuse ``vms`` VMs charging ``charge`` in all (one VM by default) that take their
    tenant past a quota, with the numbers."""
    for line in _lines(quotas, grants, usage, charge, vms):
        _check_line(tenant, line)


def sum_charges(charges: Iterable[Charge]) -> Charge:
    """What several VMs hold together (a whole service, before any of it is made)."""
    total = usage_of(charges)
    return Charge(
        vcpus=total.vcpus,
        memory_mib=total.memory_mib,
        disk_gib=total.disk_gib,
        gpu_slices=total.gpu_slices,
        gpu_compute_slices=total.gpu_compute_slices,
        whole_gpus=total.whole_gpus,
        pinned_cores=total.pinned_cores,
        hugepages=total.hugepages,
        sriov_pfs=total.sriov_pfs,
        pci_devices=tuple(total.pci_devices),
    )


def check_claim_fits(tenant: str, quotas: Quotas, usage: TenantUsage, profile: str) -> None:
    """Refuse a process claim that takes its tenant past a quota, with the numbers."""
    charge = claim_charge(profile)
    _check_line(tenant, _Line("process_claims", quotas.process_claims, usage.process_claims, 1))
    limit = quotas.gpu_slices.get(profile, 0)
    used = usage.gpu_slices.get(profile, 0)
    _check_line(tenant, _Line(f"gpu_slices.{profile}", limit, used, 1))
    compute = usage.gpu_compute_slices
    line = _Line(
        "gpu_compute_slices", quotas.gpu_compute_slices, compute, charge.gpu_compute_slices
    )
    _check_line(tenant, line)


def check_vnet_fits(tenant: str, quotas: Quotas, used: int) -> None:
    _check_line(tenant, _Line("vnets", quotas.vnets, used, 1))


def _check_line(tenant: str, line: _Line) -> None:
    if line.asked and line.limit != UNLIMITED and line.used + line.asked > line.limit:
        raise InsufficientResources(
            f"tenant {tenant} would pass its {line.name} quota: {line.used} used + "
            f"{line.asked} asked > {line.limit}",
            code="quota_exceeded",
            quota=line.name,
            limit=line.limit,
            used=line.used,
            asked=line.asked,
        )


def over(quotas: Quotas, grants: Grants, usage: TenantUsage) -> list[str]:
    """The quotas and granted counts the usage is above (after one was lowered)."""
    everything = Charge(
        vcpus=1,
        memory_mib=1,
        disk_gib=1,
        gpu_slices=dict.fromkeys(usage.gpu_slices, 1),
        gpu_compute_slices=1,
        whole_gpus=1,
        pinned_cores=1,
        hugepages=dict.fromkeys(usage.hugepages, 1),
        sriov_pfs=dict.fromkeys(usage.sriov_pfs, 1),
    )
    found = [
        line.name
        for line in _lines(quotas, grants, usage, everything)
        if line.limit != UNLIMITED and line.used > line.limit
    ]
    if quotas.vnets != UNLIMITED and usage.vnets > quotas.vnets:
        found.append("vnets")
    if quotas.process_claims != UNLIMITED and usage.process_claims > quotas.process_claims:
        found.append("process_claims")
    return found


# -- validation and updates -------------------------------------------------------------


def check_quotas(quotas: Quotas) -> None:
    check_quota_counts(quotas)
    for profile in quotas.gpu_slices:
        try:
            profile_compute_slices(profile, f"gpu_slices.{profile}")
        except InvalidInput as err:
            raise InvalidInput(
                err.message, code="invalid_quota", field=f"gpu_slices.{profile}"
            ) from err


def _merged(current: dict[str, int], update: dict[str, int] | None) -> dict[str, int]:
    if update is None:
        return current
    merged = {**current, **update}
    return {k: v for k, v in sorted(merged.items()) if v != 0}


def update_quotas(quotas: Quotas, update: QuotasUpdate) -> Quotas:
    changes = {
        k: v
        for k, v in msgspec.structs.asdict(update).items()
        if v is not None and k != "gpu_slices"
    }
    result = msgspec.structs.replace(
        quotas, gpu_slices=_merged(quotas.gpu_slices, update.gpu_slices), **changes
    )
    check_quotas(result)
    return result


def update_grants(grants: Grants, update: GrantsUpdate) -> Grants:
    plain = ("pinned_cores", "isolated_cores", "numa_node_choice")
    changes = {k: getattr(update, k) for k in plain if getattr(update, k) is not None}
    result = msgspec.structs.replace(
        grants,
        hugepages=_merged(grants.hugepages, update.hugepages),
        sriov_pfs=_merged(grants.sriov_pfs, update.sriov_pfs),
        pci_devices=(
            sorted(set(update.pci_devices))
            if update.pci_devices is not None
            else grants.pci_devices
        ),
        **changes,
    )
    check_grant_counts(result)
    return result
