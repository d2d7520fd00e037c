"""Whether a VM may be made: who asks for what, the tenant's quotas, the host's room.

The VM service calls ``check_privileges`` on the final spec before it makes
anything, ``admit`` under its create lock before it makes disks or a domain, and
``recheck`` in the write transaction that inserts the VM's row, so a quota holds
even against a writer that is not this process's VM service.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from appliance.backends.vm import disks
from appliance.config import HostConfig
from appliance.domain.admission import (
    HostLimits,
    check_disk,
    check_memory,
    memory_budget_mib,
    plain_memory_mib,
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
from appliance.services.tenants import TenantService
from appliance.store.models import Vm
from towerbox_core.api.tenants import Grants


class _Memory(msgspec.Struct):
    memory_mib: int = 512
    hugepages: HugepageSize = HugepageSize.NONE


class VmAdmission:
    def __init__(self, host_cfg: HostConfig, host: HostInventory, tenants: TenantService) -> None:
        self.tenants = tenants
        self.limits = HostLimits(
            memory_reserve_mib=host_cfg.memory_reserve_mib,
            memory_overcommit=host_cfg.memory_overcommit,
            max_vm_disk_gib=host_cfg.max_vm_disk_gib,
        )
        self.memory_budget_mib = memory_budget_mib(host, self.limits)

    def check_privileges(self, principal: Principal, spec: VmSpec) -> None:
        """Refuse what the caller may not ask for; before anything is made."""
        check_countable_gpu(spec)
        if principal.is_infra_admin:
            check_vran_slice(spec, infra_admin=True)
            return
        grants = self.tenants.grants(spec.tenant) if spec.tenant else Grants()
        check_privileges(
            spec, grants, infra_admin=False, gpu_addresses=self.tenants.gpu_addresses()
        )

    def admit(self, spec: VmSpec, alloc: Allocation, disk_gib: int, disk_dir: Path) -> None:
        """Host room and the tenant's quotas; under the VM service's create lock."""
        if disk_gib:
            check_disk(spec, disk_gib, disks.free_bytes(disk_dir), self.limits)
        self.recheck(spec, alloc, disk_gib)

    def recheck(self, spec: VmSpec, alloc: Allocation, disk_gib: int) -> None:
        """Host memory and the tenant's quotas, from the rows as they are now."""
        if plain_memory_mib(spec.memory_mib, spec.hugepages):
            committed = 0
            for row in Vm.select(Vm.spec):
                mem = msgspec.json.decode(row.spec, type=_Memory)
                committed += plain_memory_mib(mem.memory_mib, mem.hugepages)
            check_memory(spec, committed, self.memory_budget_mib, self.limits)
        if spec.tenant is None:
            return
        quotas, _ = self.tenants.quotas(spec.tenant)
        check_fits(
            spec.tenant,
            quotas,
            self.tenants.grants(spec.tenant),
            self.tenants.usage(spec.tenant),
            self.tenants.charge(spec, alloc, disk_gib),
        )
