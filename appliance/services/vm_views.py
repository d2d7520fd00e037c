"""The VM as clients see it: its state (from the monitor's last sweep, or libvirt
asked now), what needs attention, the detail view, its console tail, and the state
its ``vm.created`` journal entry carries."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from appliance.backends.vm.protocol import VmBackend
from appliance.domain.vm_spec import VmSpec, spec_to_dict
from appliance.services.gpu_binding import GpuBinder
from appliance.services.monitor import Monitor
from appliance.services.service_rows import replica_of
from appliance.services.vm_attention import StartFailures, attention, unresponsive
from appliance.services.vm_power import DEFINED, STOPPED
from appliance.services.vm_seed import SeedPlan
from appliance.store.models import Vm
from towerbox_core.api.vms import VmDetail, VmSummary

CONSOLE_LINES_MAX = 10_000


class VmViews:
    def __init__(
        self,
        backend: VmBackend,
        monitor: Monitor,
        gpus: GpuBinder | None,
        start_failures: StartFailures,
        is_draining: Callable[[str], bool],
    ) -> None:
        self._backend = backend
        self._monitor = monitor
        self._gpus = gpus
        self._failures = start_failures
        self._is_draining = is_draining

    def summary(self, vm: Vm, *, live: bool = True) -> VmSummary:
        """``live`` asks libvirt for the state instead of the last sweep."""
        sample = self._monitor.snapshot.vms.get(vm.id)
        state = sample.state if sample else vm.observed_state
        since = sample.unresponsive_since if sample else None
        if live:
            state, since = self._monitor.shown_state(vm.id, self._backend.status(vm.id))
        spec = msgspec.json.decode(vm.spec)
        return VmSummary(
            id=vm.id,
            name=vm.name,
            role=vm.role,
            tenant=vm.tenant,
            appliance=spec.get("appliance"),
            vcpus=spec["vcpus"],
            memory_mib=spec["memory_mib"],
            desired_state=vm.desired_state,
            state=state,
            cpu_pct=sample.cpu_pct if sample else None,
            unresponsive_since=since,
            attention=unresponsive(since)
            or attention(vm, state, self._failures.get(vm.name), self._is_draining(vm.name)),
        )

    def detail(self, vm: Vm) -> VmDetail:
        spec = msgspec.json.decode(vm.spec)
        service, role = replica_of(vm.id) or (None, None)
        return VmDetail(
            **msgspec.structs.asdict(self.summary(vm)),
            spec=spec,
            allocation=msgspec.json.decode(vm.allocation),
            gpu=self._gpus.binding(vm.name) if self._gpus and spec.get("gpu") else None,
            service=service,
            service_role=role,
        )


def console_tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of the VM's serial console log ("" before it has one)."""
    if not path.exists():
        return ""
    with path.open("rb") as f:
        tail = deque(f, maxlen=max(1, min(lines, CONSOLE_LINES_MAX)))
    return b"".join(tail).decode("utf-8", errors="replace")


def created_state(spec: VmSpec, disk_gib: int, seed: SeedPlan | None) -> dict[str, Any]:
    """What ``vm.created`` records: the spec and the observed state too (a VM never
    started has no ``vm.state`` entry to give one)."""
    state = {
        "spec": spec_to_dict(spec),
        "desired_state": STOPPED,
        "state": DEFINED,
        "disk_gib": disk_gib,
    }
    if seed is not None:  # its values with secrets redacted: the journal leaves the node
        state["values"] = seed.shown
    return state
