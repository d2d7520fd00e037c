"""Shared VMs follow the shared CPU pool as pinned VMs come and go."""

from __future__ import annotations

import logging

import msgspec

from appliance.backends.vm.protocol import VmBackend
from appliance.domain.allocation import decode_allocation, encode_allocation
from appliance.domain.allocator import Allocator
from appliance.store import journal
from appliance.store.models import Vm
from towerbox_core.errors import TowerboxError

log = logging.getLogger(__name__)


def repin_shared(allocator: Allocator, backend: VmBackend) -> None:
    """Move shared VMs onto the shared pool as it is now.

    A pinned VM's cores are exclusive only if no shared VM may float onto them,
    and a deleted pinned VM's cores should return to the pool.
    """
    for vm in Vm.select():
        alloc = decode_allocation(vm.allocation)
        if alloc.vcpu_pins or not alloc.shared_cpus:
            continue
        pool = allocator.shared_pool(alloc.numa_node)
        if not pool or pool == alloc.shared_cpus:
            continue
        try:
            backend.pin_vcpus(vm.id, pool)
        except TowerboxError as err:
            log.error(
                "could not move VM %s to the shared CPU pool: %s",
                vm.name,
                err.message,
                extra={"vm": vm.name},
            )
            continue
        new = msgspec.structs.replace(alloc, shared_cpus=pool)
        with journal.write_transaction():
            Vm.update(allocation=encode_allocation(new)).where(Vm.id == vm.id).execute()
            journal.append("vm.repinned", "vm", vm.id, {"name": vm.name, "cpus": list(pool)})
