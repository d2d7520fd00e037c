"""Whether a VM may be made: who asks for what, the tenant's quotas, the host's room.

The VM service calls ``check_privileges`` on the final spec before it makes
anything, ``admit`` under its create lock before it makes disks or a domain, and
``recheck`` in the write transaction that inserts the VM's row, so a quota holds
even against a writer that is not this process's VM service.

The recheck is nearly free when nothing changed: every change to what admission
reads (VM rows, VNets, quotas, grants) is a journal entry in the same transaction,
so a journal head equal to the one seen before the first read proves the rows are
as they were; otherwise it reads them all again.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import msgspec

from appliance.backends.vm import disks
from appliance.config import HostConfig
from appliance.domain.admission import (
    HostLimits,
    check_disk,
    check_memory,
    check_vcpus,
    memory_budget_mib,
    plain_memory_mib,
    require_memory,
)
from appliance.domain.allocation import Allocation
from appliance.domain.host import HostInventory
from appliance.domain.quotas import check_fits
from appliance.domain.vm_privileges import (
    check_countable_gpu,
    check_privileges,
    check_vran_slice,
)
from appliance.domain.vm_spec import HugepageSize, VmSpec
from appliance.services.auth import Principal
from appliance.services.tenants import Policy, TenantService
from appliance.store import journal
from appliance.store.models import Vm
from towerbox_core.api.tenants import Grants


class _Memory(msgspec.Struct):
    memory_mib: int = 512
    hugepages: HugepageSize = HugepageSize.NONE


class Ticket(NamedTuple):
    """What ``check_privileges`` read, for ``admit`` and ``recheck`` to build on."""

    head: int  # the journal head before the first read
    policy: Policy | None  # the tenant's, or None for a VM without a tenant


class VmAdmission:
    def __init__(self, host_cfg: HostConfig, host: HostInventory, tenants: TenantService) -> None:
        self.tenants = tenants
        self.limits = HostLimits(
            memory_reserve_mib=host_cfg.memory_reserve_mib,
            memory_overcommit=host_cfg.memory_overcommit,
            max_vm_disk_gib=host_cfg.max_vm_disk_gib,
        )
        self.memory_budget_mib = memory_budget_mib(host, self.limits)
        self.host_threads = len(host.threads)

    def check_privileges(self, principal: Principal, spec: VmSpec) -> Ticket:
        """Refuse what the caller may not ask for; before anything is made."""
        # Nobody may: more vCPUs than threads is no VM this host can run.
        check_vcpus(spec, self.host_threads)
        ticket = Ticket(journal.head(), self.tenants.policy(spec.tenant) if spec.tenant else None)
        check_countable_gpu(spec)
        if principal.is_infra_admin:
            check_vran_slice(spec, infra_admin=True)
            return ticket
        grants = ticket.policy.grants if ticket.policy else Grants()
        check_privileges(
            spec, grants, infra_admin=False, gpu_addresses=self.tenants.gpu_addresses()
        )
        return ticket

    def admit(
        self, spec: VmSpec, alloc: Allocation, disk_gib: int, disk_dir: Path, ticket: Ticket
    ) -> int:
        """Host room and the tenant's quotas; under the VM service's create lock.

        Returns the journal head the checks hold as of, for ``recheck``.
        """
        if disk_gib:
            check_disk(spec, disk_gib, disks.free_bytes(disk_dir), self.limits)
        self._check_rows(spec, alloc, disk_gib, ticket.policy)
        return ticket.head

    def recheck(
        self, spec: VmSpec, alloc: Allocation, disk_gib: int, checked_at: int | None
    ) -> None:
        """``admit``'s checks in the transaction that writes the VM's row; read again
        unless the journal head is still ``checked_at`` (what ``admit`` returned)."""
        if checked_at is None or journal.head() != checked_at:
            self._check_rows(spec, alloc, disk_gib, None)

    def committed_memory_mib(self) -> int:
        """The plain memory every VM on the node is given, from the rows as they are."""
        committed = 0
        for row in Vm.select(Vm.spec):
            mem = msgspec.json.decode(row.spec, type=_Memory)
            committed += plain_memory_mib(mem.memory_mib, mem.hugepages)
        return committed

    def require_memory(self, who: str, asked_mib: int) -> None:
        """Refuse ``asked_mib`` more of plain memory for ``who`` when the host has not
        that much left for VMs (a service's replicas together, before any is made)."""
        if asked_mib:
            committed = self.committed_memory_mib()
            require_memory(who, asked_mib, committed, self.memory_budget_mib, self.limits)

    def _check_rows(
        self, spec: VmSpec, alloc: Allocation, disk_gib: int, policy: Policy | None
    ) -> None:
        """Host memory and the tenant's quotas, from the rows as they are now."""
        if plain_memory_mib(spec.memory_mib, spec.hugepages):
            check_memory(spec, self.committed_memory_mib(), self.memory_budget_mib, self.limits)
        if spec.tenant is None:
            return
        if policy is None:
            policy = self.tenants.policy(spec.tenant)
        check_fits(
            spec.tenant,
            policy.quotas,
            policy.grants,
            self.tenants.usage(spec.tenant),
            self.tenants.charge(spec, alloc, disk_gib),
        )
