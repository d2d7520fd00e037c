"""Whether a whole service (or the replicas a scale or an update adds) may be made.

Before anything is created: each role's replica spec passes the same privilege and
reference checks a VM create makes, and the sum of every replica's charge must fit
the tenant's quotas; their memory together must fit what the host has left for VMs,
and GPU roles need a free MIG slice of their profile per replica. Several services
(a ``services`` document's) are checked together too: each tenant's against its
quotas, and everyone's against the host. Host room, pinned
cores and slices are checked again per replica as it is made and started
(VmService.create); a refusal there rolls the whole operation back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from appliance.catalog.model import CatalogEntry
from appliance.domain.admission import plain_memory_mib
from appliance.domain.quotas import Charge, charge_of, check_fits, sum_charges
from appliance.services.auth import Principal
from appliance.services.gpu_layouts import GpuLayoutService
from appliance.services.service_templates import replica_request
from appliance.services.vm_admission import VmAdmission
from appliance.services.vm_provision import check_references, disk_gib, resolve_spec
from towerbox_core.api.gpus import MigRole
from towerbox_core.api.services import RoleTemplate
from towerbox_core.errors import Conflict

# A service's new replicas: its name, its tenant, and how many more of each role.
Wanted = tuple[str, str, list[tuple[RoleTemplate, int]]]


def admit_services(
    principal: Principal,
    services: list[Wanted],
    *,
    catalog: dict[str, CatalogEntry],
    admission: VmAdmission,
    image_dir: Path,
    free_gpu_slices: Callable[[str], int] | None = None,
) -> None:
    """Refuse the new replicas of several services unless they fit together: each
    tenant's within its quotas, and all of them, whoever's, in the host's room."""
    several = len(services) > 1
    charges: dict[str, list[Charge]] = {}  # tenant: one charge per replica
    memory: list[tuple[str, int, int]] = []  # role, replicas, plain MiB each
    slices: dict[str, list[tuple[str, int]]] = {}  # MIG profile: role, replicas
    for service, tenant, wanted in services:
        for role, n in wanted:
            if n <= 0:
                continue
            spec = resolve_spec(catalog, principal, replica_request(service, role, 1, tenant))
            admission.check_privileges(principal, spec)
            check_references(spec, image_dir)
            # Pinned cores depend on the cores an allocation gets; they are counted
            # when each replica is made.
            charge = charge_of(spec, disk_gib=disk_gib(spec, image_dir), pinned_cores=0)
            charges.setdefault(tenant, []).extend([charge] * n)
            label = f"{service}/{role.name}" if several else role.name
            if mib := plain_memory_mib(spec.memory_mib, spec.hugepages):
                memory.append((label, n, mib))
            if role.gpu is not None:
                slices.setdefault(role.gpu, []).append((label, n))
    if not charges:
        return
    for tenant, tenant_charges in sorted(charges.items()):
        policy = admission.tenants.policy(tenant)
        usage = admission.tenants.usage(tenant)
        check_fits(
            tenant,
            policy.quotas,
            policy.grants,
            usage,
            sum_charges(tenant_charges),
            vms=len(tenant_charges),
        )
    # The host's memory for every new replica together: a deploy that cannot fit is
    # refused before its first VM is made, not rolled back after its last one that did.
    vms = sum(len(c) for c in charges.values())
    replicas = f"{vms} new replica{'s' if vms > 1 else ''}"
    each = ", ".join(f"{role}: {n} at {mib} MiB" for role, n, mib in memory)
    if several:  # one subject for the refusal: the document that asks for them all
        adding = sorted({s for s, _, wanted in services if any(n > 0 for _, n in wanted)})
        who = f"a services document (services {', '.join(adding)})"
        asking = f"a services document (services {', '.join(adding)}; {replicas}: {each})"
    else:
        who = f"service {services[0][0]}"
        asking = f"{who} ({replicas}: {each})"
    admission.require_memory(asking, sum(n * mib for _, n, mib in memory))
    if free_gpu_slices is not None:
        for profile, roles in sorted(slices.items()):
            _require_slices(who, profile, roles, free_gpu_slices(profile))


def _require_slices(who: str, profile: str, roles: list[tuple[str, int]], free: int) -> None:
    """Each new replica of a GPU role takes a free MIG slice of its profile as it
    starts: a service that asks for more than are free could only be rolled back."""
    wanted = sum(n for _, n in roles)
    if wanted <= free:
        return
    each = ", ".join(f"{role}: {n}" for role, n in roles)
    raise Conflict(
        f"{who} needs {wanted} free {profile} MIG slice"
        f"{'s' if wanted > 1 else ''} for its new replicas ({each}); this node has {free} "
        "free: apply a GPU layout with more, or ask for fewer replicas",
        code="no_free_gpu_slice",
        field="gpu",
        profile=profile,
        wanted=wanted,
        free=free,
    )


def free_gpu_slices(layouts: GpuLayoutService, profile: str) -> int:
    """Unowned B2B MIG slices of ``profile`` in the GPUs' current layouts."""
    free = 0
    with layouts.lock:
        for info in layouts.backend.list_gpus():
            if not (info.mig_supported and info.mig.current and info.model):
                continue
            free += sum(
                1
                for inst in layouts.current_layout(info).instances
                if inst.owner is None and inst.profile == profile and inst.role is MigRole.B2B
            )
    return free
