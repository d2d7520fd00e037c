"""Process and VM claims on MIG slices: who owns which instance of the committed layout.

A workload (a VM by name, or ``process:NAME``) claims an instance of the profile and
role it asks for; the claim is recorded as the instance's ``owner`` in the committed
layout, under the layout service's lock, so a claim never races an apply.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import msgspec

from appliance.backends.gpu.protocol import GpuBackend, GpuInfo, GpuInstanceInfo
from appliance.domain.gpu.binding import (
    choose,
    process_claim_tenant,
    process_owner,
    with_owner,
    without_owner,
)
from appliance.domain.gpu.catalog import MigProfile
from appliance.domain.gpu.layout import Instance, Layout, MigRole
from appliance.services.auth import Principal
from appliance.services.gpu_layouts import GpuLayoutService
from appliance.services.tenants import TenantService
from appliance.store import journal
from appliance.store.models import GpuLayout
from towerbox_core.api.gpus import ClaimRequest, GpuClaim
from towerbox_core.errors import Conflict, Forbidden, InvalidInput, NotFound
from towerbox_core.names import check_name


class GpuClaims:
    def __init__(self, layouts: GpuLayoutService) -> None:
        self._layouts = layouts

    @property
    def backend(self) -> GpuBackend:
        return self._layouts.backend

    def check_request(self, profile: str | None, role: MigRole, gpu: str | None) -> None:
        """Refuse a slice request no GPU of this node could ever satisfy."""
        infos = self._candidates(gpu)
        mig = [i for i in infos if i.mig_supported and i.model is not None]
        if not mig:
            raise Conflict(
                "no GPU on this node supports MIG" + (f" ({gpu})" if gpu else ""),
                code="mig_not_supported",
                field="gpu",
            )
        if profile is None:
            return
        known: set[str] = set()
        for info in mig:
            known |= {p.name for p in self._layouts.model(info).profiles}
        if profile not in known:
            raise InvalidInput(
                f"no GPU of this node has MIG profile {profile!r}; known: "
                f"{', '.join(sorted(known))}",
                code="unknown_mig_profile",
                field="gpu.profile",
            )

    def _candidates(self, gpu: str | None) -> list[GpuInfo]:
        infos = self._layouts.backend.list_gpus()
        if gpu is None:
            return infos
        found = [i for i in infos if gpu in (i.uuid, i.pci_address)]
        if not found:
            raise NotFound(f"no GPU {gpu!r} on this node", code="gpu_not_found", field="gpu.gpu")
        return found

    def claim(
        self,
        owner: str,
        profile: str | None,
        role: MigRole,
        gpu: str | None = None,
        admit: Callable[[Instance], None] | None = None,
    ) -> tuple[GpuInfo, Instance, GpuInstanceInfo, MigProfile]:
        """The instance this owner uses: the one it holds, else a free matching one.

        ``admit`` sees an instance before the owner newly takes it, under the layout
        lock (so two claims cannot both pass a quota), and refuses by raising.
        """
        with self._layouts.lock:
            self.check_request(profile, role, gpu)
            free: list[str] = []
            for info in self._candidates(gpu):
                if not (info.mig_supported and info.mig.current and info.model):
                    continue
                layout = self._layouts.current_layout(info)
                inst = choose(layout, owner, profile, role)
                if inst is None:
                    free += [
                        f"{i.profile} ({i.role.value})" for i in layout.instances if not i.owner
                    ]
                    continue
                if inst.owner != owner:
                    if admit is not None:
                        admit(inst)
                    claimed = with_owner(without_owner(layout, owner), inst.placement, owner)
                    self._save(info.uuid, claimed, "gpu.instance_bound", inst, owner)
                    inst = msgspec.structs.replace(inst, owner=owner)
                live = {(g.profile, g.start): g for g in self._layouts.backend.instances(info.uuid)}
                return (
                    info,
                    inst,
                    live[inst.placement],
                    self._layouts.model(info).profile(inst.profile),
                )
            wanted = f"{profile or 'any'} {role.value}"
            raise Conflict(
                f"no free {wanted} MIG slice on this node (unowned slices: "
                f"{', '.join(free) or 'none'}); apply a layout that has one or stop the "
                "workload holding one",
                code="no_free_gpu_slice",
                profile=profile,
                role=role.value,
            )

    def release(self, owner: str) -> bool:
        """Give back every instance this owner holds; False when it held none."""
        released = False
        with self._layouts.lock:
            for info in self._layouts.backend.list_gpus():
                layout = self._layouts.committed(info.uuid)
                held = [i for i in layout.instances if i.owner == owner] if layout else []
                if layout is None or not held:
                    continue
                self._save(
                    info.uuid, without_owner(layout, owner), "gpu.instance_released", held[0], owner
                )
                released = True
        return released

    def process_claim_profiles(self, tenant: str) -> list[str]:
        """The MIG profile of each slice the tenant's process claims hold."""
        # On every create's quota check: read only the layouts that name the tenant's
        # claims (the owner string is in the stored JSON), and no GPU at all.
        owner = msgspec.json.encode(process_owner("", tenant)).decode()[:-1]
        rows = GpuLayout.select(GpuLayout.layout).where(GpuLayout.layout.contains(owner))
        profiles = []
        for row in rows:
            for inst in msgspec.json.decode(row.layout, type=Layout).instances:
                if process_claim_tenant(inst.owner) == tenant:
                    profiles.append(inst.profile)
        return profiles

    def claims(self) -> list[GpuClaim]:
        result = []
        for info in self._layouts.backend.list_gpus():
            layout = self._layouts.committed(info.uuid)
            if layout is None:
                continue
            live = {(g.profile, g.start): g for g in self._layouts.backend.instances(info.uuid)}
            for inst in layout.instances:
                if inst.owner:
                    gi = live.get(inst.placement)
                    result.append(claim_view(info, inst, gi))
        return result

    @staticmethod
    def _save(gpu: str, layout: Layout, kind: str, inst: Instance, owner: str) -> None:
        with journal.write_transaction():
            GpuLayout.insert(
                gpu_uuid=gpu,
                gpu_model=layout.gpu_model,
                layout=msgspec.json.encode(layout).decode(),
            ).on_conflict_replace().execute()
            journal.append(
                kind, "gpu", gpu, {"profile": inst.profile, "start": inst.start, "owner": owner}
            )


def claim_view(info: GpuInfo, inst: Instance, gi: GpuInstanceInfo | None) -> GpuClaim:
    mig_uuid = gi.mig_uuid if gi else None
    return GpuClaim(
        owner=inst.owner,
        gpu=info.uuid,
        pci_address=info.pci_address,
        profile=inst.profile,
        start=inst.start,
        role=inst.role.value,
        mig_uuid=mig_uuid,
        env={"CUDA_VISIBLE_DEVICES": mig_uuid} if mig_uuid else {},
    )


def claim_for_process(
    claims: GpuClaims, tenants: TenantService, principal: Principal, req: ClaimRequest
) -> GpuClaim:
    """A slice for a process or container: the MIG device it may use.

    The operator's own claims (infra-admin, no tenant) may take any role; a tenant's
    (made by its admins and users, or by an infra-admin for it) are B2B slices that
    count against the tenant's process-claim and GPU quotas.
    """
    principal.require_write()
    check_name("process", req.name)
    tenant = _claim_tenant(tenants, principal, req.tenant)
    admit = None
    if tenant is not None:
        if req.role is not MigRole.B2B:
            raise Forbidden(
                f"a {req.role.value} slice: only an infra-admin's own claims may take one",
                code="infra_admin_required",
                field="role",
            )
        admit = partial(_admit_claim, tenants, tenant)
    owner = process_owner(req.name, tenant)
    info, inst, gi, _ = claims.claim(owner, req.profile, req.role, req.gpu, admit=admit)
    return claim_view(info, inst, gi)


def _admit_claim(tenants: TenantService, tenant: str, inst: Instance) -> None:
    tenants.check_claim(tenant, inst.profile)


def release_for_process(
    claims: GpuClaims,
    tenants: TenantService,
    principal: Principal,
    name: str,
    tenant: str | None = None,
) -> None:
    principal.require_write()
    check_name("process", name)
    owner_tenant = _claim_tenant(tenants, principal, tenant)
    if not claims.release(process_owner(name, owner_tenant)):
        raise NotFound(f"process {name!r} holds no GPU slice", code="claim_not_found")


def visible_claims(claims: GpuClaims, principal: Principal) -> list[GpuClaim]:
    """Every claim for the node's readers; a tenant's own process claims for its users."""
    everything = claims.claims()
    if principal.can_see(None):
        return everything
    principal.refuse_sync_agent()
    if principal.tenant is None:
        raise Forbidden(
            "the node's claims need infra-admin or a tenant-less viewer", code="node_scope_required"
        )
    return [c for c in everything if process_claim_tenant(c.owner) == principal.tenant]


def _claim_tenant(tenants: TenantService, principal: Principal, asked: str | None) -> str | None:
    """Whose claim this is: the caller's tenant, or the one an infra-admin names."""
    if principal.is_infra_admin:
        if asked is not None:
            tenants.require_exists(asked)
        return asked
    if principal.tenant is None or asked not in (None, principal.tenant):
        # Another tenant is reported as absent, not as forbidden.
        raise NotFound(f"no tenant {asked!r}", code="tenant_not_found", field="tenant")
    return principal.tenant
