"""VMs on GPU slices while a layout changes: shut them down first, start them after.

An apply drains the VMs on the instances it changes, reshapes the GPU, then resumes
them on the new layout (or, after a rollback, on the old one). A VM with no place in
the new layout waits, journalled, until a later apply gives it one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import msgspec

from appliance.backends.vm.protocol import VmBackend
from appliance.domain.gpu.layout import Instance
from appliance.domain.vm_spec import VmSpec
from appliance.services.gpu_binding import GpuBinder
from appliance.services.vm_power import ROLE_ORDER, RUNNING, is_active, wait_off
from appliance.store import journal
from appliance.store.models import Vm, utcnow
from towerbox_core.api.gpus import ResumeReport, WaitingVm
from towerbox_core.errors import Conflict, TowerboxError

log = logging.getLogger(__name__)

# Starts a VM's domain with its GPU slice bound; raises a TowerboxError when it cannot.
StartDomain = Callable[[Vm], None]


class VmGpuDrain:
    def __init__(
        self,
        backend: VmBackend,
        gpus: GpuBinder | None,
        drain_timeout_s: float,
        start_domain: StartDomain,
    ) -> None:
        self._backend = backend
        self._gpus = gpus
        self._deadline = drain_timeout_s
        self._start_domain = start_domain
        # VMs an apply has shut down to change their GPU slice: the reconciler leaves
        # them alone until the apply restarts them (desired state stays "running").
        self._draining: set[str] = set()
        # VMs an apply could not place on the new layout; the next apply tries again.
        self._waiting: set[str] = set()

    def is_draining(self, name: str) -> bool:
        return name in self._draining

    def drain(self, gpu: str, instances: tuple[Instance, ...]) -> None:
        """Shut down the VMs on these instances before their slices change.

        Graceful (ACPI) with the configured deadline, all at once. A VM still running
        at the deadline stops the apply: the VMs already off start again on their
        slices and the GPU is left as it was.
        """
        owners = {i.owner for i in instances if i.owner}
        rows = list(Vm.select().where(Vm.name.in_(owners)))
        active = [vm for vm in rows if is_active(self._backend, vm.id)]
        self._draining.update(vm.name for vm in rows)
        deadline = self._deadline
        for vm in active:
            self._backend.shutdown(vm.id)
        end = time.monotonic() + deadline
        still = [
            vm
            for vm in active
            if not wait_off(self._backend, vm.id, max(0.0, end - time.monotonic()))
        ]
        if still:
            names = ", ".join(vm.name for vm in still)
            log.error("GPU %s: drain deadline of %.0f s missed by %s", gpu, deadline, names)
            self._draining.difference_update(vm.name for vm in rows)
            for vm in active:
                if vm not in still and not is_active(self._backend, vm.id):
                    self._restart_after_drain(vm)
            raise Conflict(
                f"VM {names} did not shut down within the {deadline:.0f} s drain deadline; "
                "the GPU keeps its last good layout",
                code="drain_deadline",
                vms=[vm.name for vm in still],
            )
        for vm in rows:
            spec = msgspec.json.decode(vm.spec, type=VmSpec)
            if self._gpus is not None and spec.gpu is not None:
                self._gpus.unbind(vm.id, spec, release=False)
            with journal.write_transaction():
                journal.append("vm.drained", "vm", vm.id, {"name": vm.name, "gpu": gpu})
        log.info("GPU %s: drained %s", gpu, ", ".join(sorted(owners)) or "nothing")

    def resume(self, gpu: str) -> ResumeReport:
        """After an apply (or its rollback): start every VM that should run on a slice.

        That is the drained VMs and any earlier one left waiting for a slice (and still
        meant to run). A VM with no place in the layout stays off, journalled as
        waiting, and starts after a later apply gives it one.
        """
        candidates = self._draining | self._waiting
        self._draining.clear()
        restarted: list[str] = []
        waiting: list[WaitingVm] = []
        rows = Vm.select().where(Vm.desired_state == RUNNING)
        for vm in sorted(rows, key=lambda vm: (ROLE_ORDER.get(vm.role, 9), vm.name)):
            if vm.name not in candidates or is_active(self._backend, vm.id):
                self._waiting.discard(vm.name)
                continue
            try:
                self._start_domain(vm)
            except TowerboxError as err:
                waiting.append(self.hold(vm, err))
                continue
            self._waiting.discard(vm.name)
            restarted.append(vm.name)
            Vm.update(updated_at=utcnow()).where(Vm.id == vm.id).execute()
        if waiting:
            log.warning("GPU %s: VMs waiting for a slice: %s", gpu, waiting)
        return ResumeReport(restarted=restarted, waiting=waiting)

    def hold(self, vm: Vm, err: TowerboxError) -> WaitingVm:
        """A VM that could not start on a slice: journalled, it starts after a later
        apply gives it one."""
        self._waiting.add(vm.name)
        with journal.write_transaction():
            journal.append(
                "vm.gpu_waiting",
                "vm",
                vm.id,
                {"name": vm.name, "code": err.code, "reason": err.message},
            )
        return WaitingVm(vm=vm.name, code=err.code, detail=err.message)

    def start_all(self) -> ResumeReport:
        """At a daemon start on the same boot, after any GPU layout lost to a GPU reset
        is re-created: start the VMs on slices that should run and do not, vRAN first.
        (After a host reboot, vm_boot starts every VM, these included.)"""
        for vm in Vm.select().where(Vm.desired_state == RUNNING):
            if msgspec.json.decode(vm.spec, type=VmSpec).gpu is not None:
                self._waiting.add(vm.name)
        if not self._waiting:
            return ResumeReport(restarted=[], waiting=[])
        report = self.resume("")
        log.info("VMs on GPU slices after start: %s", report)
        return report

    def _restart_after_drain(self, vm: Vm) -> None:
        try:
            self._start_domain(vm)
        except TowerboxError as err:
            log.error(
                "VM %s could not restart after a failed drain: %s",
                vm.name,
                err.message,
                extra={"vm": vm.name},
            )
