"""Tenants as Virtual Data Centers: their quotas, grants and usage.

A tenant's quotas are the node's ``[tenants]`` defaults until an infra-admin sets
its own; grants start empty. Usage is read from the VM rows (each VM charges its
tenant what ``appliance.domain.quotas.charge_of`` says) and the declared VNets.
Lowering a quota below usage is allowed: it blocks new allocations, and what runs
keeps running.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import NamedTuple

import msgspec

from appliance.domain.allocation import Allocation
from appliance.domain.host import HostInventory
from appliance.domain.quotas import (
    Charge,
    charge_of,
    check_claim_fits,
    check_quotas,
    check_vnet_fits,
    claim_charge,
    over,
    update_grants,
    update_quotas,
    usage_of,
)
from appliance.domain.vm_privileges import TENANT_ROLES
from appliance.domain.vm_spec import Role, VmSpec, check_pci_address
from appliance.services.auth import Principal, encode_labels, tenant_labels
from appliance.store import journal
from appliance.store.models import Tenant, TenantPolicy, User, Vm, db_proxy, utcnow
from towerbox_core.api.tenants import (
    Grants,
    GrantsAnswer,
    GrantsUpdate,
    Quotas,
    QuotasAnswer,
    QuotasUpdate,
    TenantDetail,
    TenantUsage,
    VmOptions,
)
from towerbox_core.errors import InvalidInput, NotFound
from towerbox_core.tenant_rules import check_grant_counts, within

log = logging.getLogger(__name__)

BELOW_USAGE_NOTE = (
    "usage is above {names}: new allocations of these are refused; what the tenant "
    "holds now keeps running"
)


_POLICY_SQL = "SELECT quotas, grants FROM tenant_policy WHERE tenant = ?"
_CHARGES_SQL = "SELECT spec, allocation, disk_gib FROM vm WHERE tenant = ?"
_decode_quotas = msgspec.json.Decoder(Quotas).decode
_decode_grants = msgspec.json.Decoder(Grants).decode
_decode_spec = msgspec.json.Decoder(VmSpec).decode
_decode_allocation = msgspec.json.Decoder(Allocation).decode


class Policy(NamedTuple):
    quotas: Quotas
    quotas_source: str  # "defaults" (the node's [tenants] section) or "set"
    grants: Grants


class TenantService:
    def __init__(
        self,
        defaults: Quotas,
        host: HostInventory,
        gpu_addresses: Callable[[], frozenset[str]],
        vnet_count: Callable[[str], int] | None = None,
        gpu_profiles: Callable[[], frozenset[str]] = frozenset,
        claim_profiles: Callable[[str], list[str]] | None = None,
    ) -> None:
        self._defaults = defaults
        self._host = host
        self.gpu_addresses = gpu_addresses
        self._vnet_count = vnet_count
        self._gpu_profiles = gpu_profiles
        # The MIG profile of each slice a tenant's process claims hold (GPU claims).
        self._claim_profiles = claim_profiles
        self._core_of = {t.cpu: (t.socket, t.core) for t in host.threads}

    # -- policy ------------------------------------------------------------------------

    def policy(self, tenant: str) -> Policy:
        """The tenant's quotas (and where they come from) and grants, in one read."""
        # Plain SQL on the create path: peewee's query building costs more than the read.
        row = db_proxy.execute_sql(_POLICY_SQL, (tenant,)).fetchone()
        if row is None:
            return Policy(self._defaults, "defaults", Grants())
        quotas, grants = row
        return Policy(
            self._defaults if quotas is None else _decode_quotas(quotas),
            "defaults" if quotas is None else "set",
            _decode_grants(grants),
        )

    def quotas(self, tenant: str) -> tuple[Quotas, str]:
        """The tenant's quotas and where they come from ("defaults" or "set")."""
        policy = self.policy(tenant)
        return policy.quotas, policy.quotas_source

    def grants(self, tenant: str) -> Grants:
        return self.policy(tenant).grants

    # -- usage -------------------------------------------------------------------------

    def pinned_cores(self, alloc: Allocation) -> int:
        """Whole physical cores an allocation holds exclusively."""
        return len({self._core_of.get(cpu, (-1, cpu)) for cpu in alloc.cpus})

    def charge(self, spec: VmSpec, alloc: Allocation, disk_gib: int) -> Charge:
        return charge_of(spec, disk_gib=disk_gib, pinned_cores=self.pinned_cores(alloc))

    def charges(self, tenant: str) -> Iterable[Charge]:
        rows = db_proxy.execute_sql(_CHARGES_SQL, (tenant,)).fetchall()
        for spec, alloc, disk_gib in rows:
            yield self.charge(_decode_spec(spec), _decode_allocation(alloc), disk_gib)

    def usage(self, tenant: str) -> TenantUsage:
        vnets = self._vnet_count(tenant) if self._vnet_count else 0
        claims = self._claim_profiles(tenant) if self._claim_profiles else []
        return usage_of(self.charges(tenant), vnets=vnets, claims=map(claim_charge, claims))

    def check_claim(self, tenant: str, profile: str) -> None:
        """Refuse one more process claim of ``profile`` past the tenant's quotas."""
        check_claim_fits(tenant, self.policy(tenant).quotas, self.usage(tenant), profile)

    def require_exists(self, name: str) -> None:
        if not Tenant.select().where(Tenant.name == name).exists():
            raise NotFound(f"no tenant {name!r}", code="tenant_not_found", field="tenant")

    def check_vnet(self, tenant: str, used: int) -> None:
        """Refuse one more VNet past the tenant's quota (the N6 service's hook)."""
        check_vnet_fits(tenant, self.quotas(tenant)[0], used)

    # -- the API -----------------------------------------------------------------------

    def _visible(self, principal: Principal, name: str) -> Tenant:
        row = Tenant.get_or_none(Tenant.name == name)
        # Another tenant is reported as absent, not as forbidden.
        if row is None or not principal.can_see(name):
            raise NotFound(f"no tenant {name!r}", code="tenant_not_found")
        return row

    def detail(self, principal: Principal, name: str) -> TenantDetail:
        row = self._visible(principal, name)
        quotas, source = self.quotas(name)
        grants = self.grants(name)
        usage = self.usage(name)
        return TenantDetail(
            name=name,
            description=row.description,
            quotas=quotas,
            quotas_source=source,
            grants=grants,
            usage=usage,
            over=over(quotas, grants, usage),
            labels=tenant_labels(row),
        )

    def vm_options(self, principal: Principal, name: str) -> VmOptions:
        """What the caller may ask for in a VM of tenant ``name``, for create forms."""
        self._visible(principal, name)
        quotas, grants = self.quotas(name)[0], self.grants(name)
        admin = principal.is_infra_admin
        roles = [r.value for r in (Role if admin else TENANT_ROLES)]
        profiles = sorted(p for p in self._gpu_profiles() if quotas.gpu_slices.get(p, 0) != 0)
        choose = admin or grants.numa_node_choice
        return VmOptions(
            tenant=name,
            roles=roles,
            grants=grants,
            gpu_profiles=profiles,
            numa_nodes=[n.id for n in self._host.nodes] if choose else [],
        )

    def set_quotas(self, principal: Principal, name: str, update: QuotasUpdate) -> QuotasAnswer:
        principal.require_infra_admin()
        self._visible(principal, name)
        with journal.write_transaction():
            quotas = update_quotas(self.quotas(name)[0], update)
            _write_quotas(name, quotas)
        grants, usage = self.grants(name), self.usage(name)
        found = over(quotas, grants, usage)
        log.info("tenant %s: quotas set", name, extra={"tenant": name})
        return QuotasAnswer(tenant=name, quotas=quotas, usage=usage, over=found, note=_note(found))

    def set_grants(self, principal: Principal, name: str, update: GrantsUpdate) -> GrantsAnswer:
        principal.require_infra_admin()
        self._visible(principal, name)
        with journal.write_transaction():
            grants = update_grants(self.grants(name), update)
            self._check_on_host(grants)
            _write_grants(name, grants)
        quotas, usage = self.quotas(name)[0], self.usage(name)
        found = over(quotas, grants, usage)
        log.info("tenant %s: grants set", name, extra={"tenant": name})
        return GrantsAnswer(tenant=name, grants=grants, usage=usage, over=found, note=_note(found))

    # -- central documents (appliance.services.desired_tenants) -------------------------

    def check_policy(self, quotas: Quotas | None, grants: Grants) -> None:
        """The checks the quota and grant routes make, on whole values."""
        if quotas is not None:
            with within("quotas"):
                check_quotas(quotas)
        with within("grants"):
            check_grant_counts(grants)
            self._check_on_host(grants)

    def put_policy(self, name: str, quotas: Quotas | None, grants: Grants) -> None:
        """Replace a tenant's quotas (None: the node's defaults) and grants; must run in
        a write transaction, after ``check_policy``."""
        current, source = self.quotas(name)
        if (source == "set") != (quotas is not None) or (quotas is not None and current != quotas):
            _write_quotas(name, quotas)
        if self.grants(name) != grants:
            _write_grants(name, grants)

    def holdings(self, name: str, vnets_leaving: int = 0) -> list[str]:
        """What a tenant still owns, in words; empty when it may be removed."""
        held = {
            "VMs": Vm.select().where(Vm.tenant == name).count(),
            "VNets": (self._vnet_count(name) if self._vnet_count else 0) - vnets_leaving,
            "users": User.select().where(User.tenant == name).count(),
            "process claims": len(self._claim_profiles(name)) if self._claim_profiles else 0,
        }
        return [f"{n} {what if n > 1 else what[:-1]}" for what, n in held.items() if n > 0]

    def update(self, name: str, description: str, labels: dict[str, str]) -> None:
        """Description and labels; must run in a write transaction."""
        Tenant.update(description=description, labels=encode_labels(labels)).where(
            Tenant.name == name
        ).execute()
        state = {"description": description, "labels": labels}
        journal.append("tenant.updated", "tenant", name, state)

    def delete(self, name: str) -> None:
        """An empty tenant and its policy; must run in a write transaction."""
        TenantPolicy.delete().where(TenantPolicy.tenant == name).execute()
        Tenant.delete().where(Tenant.name == name).execute()
        journal.append("tenant.deleted", "tenant", name, None)
        log.info("tenant %s removed", name, extra={"tenant": name})

    def _check_on_host(self, grants: Grants) -> None:
        """Granted PFs and devices exist here, and no GPU of the GPU service is one."""
        for pf in grants.sriov_pfs:
            if self._host.pf_by_netdev(pf) is None:
                raise InvalidInput(
                    f"{pf!r} is not an SR-IOV physical function on this host",
                    code="unknown_sriov_pf",
                    field=f"sriov_pfs.{pf}",
                )
        gpus = self.gpu_addresses()
        for i, address in enumerate(grants.pci_devices):
            field = f"pci_devices[{i}]"
            check_pci_address(address, field)
            if address in gpus:
                raise InvalidInput(
                    f"PCI device {address} is a GPU of the GPU service; grant GPU slices or "
                    "whole GPUs as quotas instead",
                    code="gpu_service_device",
                    field=field,
                )
            if self._host.pci_device(address) is None:
                raise InvalidInput(
                    f"PCI device {address} does not exist on this host",
                    code="unknown_pci_device",
                    field=field,
                )


def _write_quotas(name: str, quotas: Quotas | None) -> None:
    encoded = None if quotas is None else msgspec.json.encode(quotas).decode()
    TenantPolicy.insert(tenant=name, quotas=encoded).on_conflict(
        conflict_target=[TenantPolicy.tenant],
        update={TenantPolicy.quotas: encoded, TenantPolicy.updated_at: utcnow()},
    ).execute()
    state = None if quotas is None else msgspec.to_builtins(quotas)
    journal.append("tenant.quotas", "tenant", name, state)


def _write_grants(name: str, grants: Grants) -> None:
    encoded = msgspec.json.encode(grants).decode()
    TenantPolicy.insert(tenant=name, grants=encoded).on_conflict(
        conflict_target=[TenantPolicy.tenant],
        update={TenantPolicy.grants: encoded, TenantPolicy.updated_at: utcnow()},
    ).execute()
    journal.append("tenant.grants", "tenant", name, msgspec.to_builtins(grants))


def _note(found: list[str]) -> str:
    return BELOW_USAGE_NOTE.format(names=", ".join(found)) if found else ""
