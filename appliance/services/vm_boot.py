"""Bringing the node back after a host reboot, in an order that is policy, not luck.

The appliance, not libvirtd's autostart, starts the node's VMs at boot. libvirtd
starts its autostart domains before the appliance runs, all at once and in no order,
and before any MIG slice exists: B2B VMs would boot beside (and compete with) the
vRAN, and a VM on a slice would not start at all. So the appliance defines every
domain with libvirt's autostart off and, once it sees a new boot id (uptime), runs:

1. the committed MIG layouts, vRAN slices first (GpuLayoutService.restore, which
   runs before this);
2. the N6 paths from the last applied document: a VM NIC on a tenant's bridge
   cannot start before that bridge exists;
3. the VMs meant to run (desired state ``running``, or marked ``autostart``), one
   after the other, by role: vRAN, then UPF, then B2B, then the rest. Each is running
   under libvirt before the next one is asked to start.

Each start is journalled ``vm.started`` with the reason ``restore after boot``; a VM
that cannot start is journalled (``vm.restore_failed``, or ``vm.gpu_waiting`` for a
VM whose slice is not there, which a later layout apply starts); ``node.restored``
closes the sequence with what started, what did not, and how long it took.

The cost of the policy: a node whose appliance does not start brings no VM back;
systemd restarts the appliance, and without it no MIG slice exists for the vRAN
anyway.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from appliance.backends.vm.protocol import VmBackend
from appliance.domain.vm_spec import VmSpec
from appliance.services.monitor import record_observed
from appliance.services.vm_gpu_drain import VmGpuDrain
from appliance.services.vm_power import ROLE_ORDER, RUNNING, is_active
from appliance.store import journal, space
from appliance.store.models import Vm, utcnow
from towerbox_core.errors import TowerboxError

log = logging.getLogger(__name__)

RESTORE_REASON = "restore after boot"

# Starts a VM's domain with its GPU slice bound; raises a TowerboxError when it cannot.
StartDomain = Callable[[Vm], None]
# Re-applies the last applied N6 document; what it changed, per backend kind.
ReapplyN6 = Callable[[], dict[str, list[str]]]


@dataclass
class BootReport:
    rebooted: bool
    started: list[str] = field(default_factory=list)  # in the order they were started
    failed: list[str] = field(default_factory=list)
    n6_changes: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0


class BootRestore:
    def __init__(
        self,
        backend: VmBackend,
        start_domain: StartDomain,
        gpu_drain: VmGpuDrain,
        reapply_n6: ReapplyN6,
    ) -> None:
        self._backend = backend
        self._start = start_domain
        self._gpu_drain = gpu_drain
        self._reapply_n6 = reapply_n6

    @space.uses_reserve  # bringing the node back is worth the disk's last reserve
    def run(self, rebooted: bool) -> BootReport:
        """At daemon start, after the GPU layouts are restored."""
        began = time.monotonic()
        self._no_libvirt_autostart()
        report = BootReport(rebooted=rebooted)
        if not rebooted:
            # A daemon restart: the VMs kept running under libvirtd; only VMs on slices
            # that an apply left waiting are started again.
            self._gpu_drain.start_all()
            return report
        report.n6_changes = self._n6()
        for vm in self._meant_to_run():
            if is_active(self._backend, vm.id):
                continue
            if self._start_one(vm):
                report.started.append(vm.name)
            else:
                report.failed.append(vm.name)
        report.seconds = time.monotonic() - began
        with journal.write_transaction():
            journal.append(
                "node.restored",
                "node",
                "node",
                {
                    "started": report.started,
                    "failed": report.failed,
                    "seconds": round(report.seconds, 3),
                },
            )
        log.warning(
            "node restored after a reboot in %.1f s: started %s%s",
            report.seconds,
            ", ".join(report.started) or "no VM",
            f"; could not start {', '.join(report.failed)}" if report.failed else "",
        )
        return report

    def _no_libvirt_autostart(self) -> None:
        # Domains defined by an older appliance may still carry libvirt's flag.
        for vm in Vm.select(Vm.id, Vm.name, Vm.spec):
            if not msgspec.json.decode(vm.spec, type=VmSpec).autostart:
                continue
            try:
                self._backend.set_autostart(vm.id, False)
            except TowerboxError as err:
                log.warning(
                    "VM %s: libvirt autostart not cleared: %s",
                    vm.name,
                    err.message,
                    extra={"vm": vm.name},
                )

    def _n6(self) -> dict[str, list[str]]:
        try:
            return self._reapply_n6()
        except TowerboxError as err:
            # The VMs start anyway: the vRAN needs no tenant VNet, and a VM that does
            # fails to start and is journalled.
            log.error("N6 paths not restored at boot: %s (%s)", err.message, err.code)
            with journal.write_transaction():
                journal.append(
                    "n6.restore_failed", "n6", "node", {"code": err.code, "detail": err.message}
                )
            return {}

    @staticmethod
    def _meant_to_run() -> list[Vm]:
        rows = [
            vm
            for vm in Vm.select()
            if vm.desired_state == RUNNING or msgspec.json.decode(vm.spec, type=VmSpec).autostart
        ]
        return sorted(rows, key=lambda vm: (ROLE_ORDER.get(vm.role, 9), vm.name))

    def _start_one(self, vm: Vm) -> bool:
        try:
            self._start(vm)
        except TowerboxError as err:
            log.error(
                "VM %s not restored after the reboot: %s",
                vm.name,
                err.message,
                extra={"vm": vm.name},
            )
            if msgspec.json.decode(vm.spec, type=VmSpec).gpu is not None:
                self._gpu_drain.hold(vm, err)
            else:
                with journal.write_transaction():
                    journal.append(
                        "vm.restore_failed",
                        "vm",
                        vm.id,
                        {"name": vm.name, "code": err.code, "reason": err.message},
                    )
            return False
        with journal.write_transaction():
            Vm.update(desired_state=RUNNING, updated_at=utcnow()).where(Vm.id == vm.id).execute()
            journal.append(
                "vm.started",
                "vm",
                vm.id,
                {"name": vm.name, "desired_state": RUNNING, "reason": RESTORE_REASON},
            )
        status = self._backend.status(vm.id)
        # Journalled now, not a sweep later: the order of these entries is the proof
        # that each VM ran before the next one was started, and metering bills from it.
        record_observed(vm.id, status.state.value if status else "missing")
        log.info("VM %s started (%s)", vm.name, RESTORE_REASON, extra={"vm": vm.name})
        return True
