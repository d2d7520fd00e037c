"""Domain power state as the VM use cases see it: on or off, and waiting for off."""

from __future__ import annotations

import time

from appliance.backends.vm.protocol import DomainState, VmBackend

RUNNING = "running"
STOPPED = "stopped"
# What libvirt reports for a domain just defined and never started.
DEFINED = DomainState.SHUTOFF.value
# Who starts first when several VMs come up together: the RAN before the rest.
ROLE_ORDER = {"vran": 0, "upf": 1, "b2b": 2, "other": 3}
ACTIVE = (
    DomainState.RUNNING,
    DomainState.PAUSED,
    DomainState.SHUTTING_DOWN,
    DomainState.BLOCKED,
    DomainState.SUSPENDED,
)


def is_active(backend: VmBackend, vm_id: str) -> bool:
    status = backend.status(vm_id)
    return status is not None and status.state in ACTIVE


def wait_off(backend: VmBackend, vm_id: str, deadline_s: float) -> bool:
    """Poll until the domain is off or the deadline passes; True when it is off."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if not is_active(backend, vm_id):
            return True
        time.sleep(0.25)
    return not is_active(backend, vm_id)
