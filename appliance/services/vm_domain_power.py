"""A VM's domain switched on and off, with what goes with it: its GPU slice and seed.

Every start takes one path (an operator's, the reconciler's, a reshape's resume), so
the GPU slice is bound the same way each time and a failure is kept for the VM's view
until a start succeeds. Every power-off, whatever caused it, ends the same way too:
the seed is taken back and the slice freed.
"""

from __future__ import annotations

import logging

import msgspec

from appliance.backends.vm.protocol import VmBackend
from appliance.config import Config
from appliance.domain.vm_spec import VmSpec
from appliance.services.gpu_binding import GpuBinder
from appliance.services.vm_attention import StartFailures, journal_start_failure
from appliance.services.vm_gpu_drain import VmGpuDrain
from appliance.services.vm_provision import reclaim_seed
from appliance.store import journal
from appliance.store.models import Vm
from towerbox_core.errors import Conflict, TowerboxError

log = logging.getLogger(__name__)


class DomainPower:
    def __init__(self, cfg: Config, backend: VmBackend, gpus: GpuBinder | None) -> None:
        self._cfg = cfg
        self._backend = backend
        self._gpus = gpus
        self.start_failures = StartFailures()
        self.gpu_drain = VmGpuDrain(backend, gpus, cfg.gpu.drain_timeout_s, self.start)

    def start(self, vm: Vm) -> None:
        """Start the domain; a failure is kept for the VM's view until a start succeeds."""
        try:
            self._start_bound(vm)
        except TowerboxError as err:
            if self.start_failures.failed(vm.name, err):
                journal_start_failure(vm.id, vm.name, err)
            raise
        self.start_failures.started(vm.name)

    def after_off(self, vm: Vm) -> None:
        """After the domain is off: take its seed back, remove its vGPU, free its slice."""
        reclaim_seed(self._cfg, vm.id)
        spec = msgspec.json.decode(vm.spec, type=VmSpec)
        if self._gpus is None or spec.gpu is None:
            return
        try:
            self._gpus.unbind(vm.id, spec, release=True)
        except TowerboxError as err:
            log.error(
                "VM %s: GPU slice not released: %s", vm.name, err.message, extra={"vm": vm.name}
            )

    def _start_bound(self, vm: Vm) -> None:
        """Start the domain, with its GPU slice bound first; nothing held on failure."""
        spec = msgspec.json.decode(vm.spec, type=VmSpec)
        if self._gpus is None or spec.gpu is None:
            self._backend.start(vm.id)
            return
        if self.gpu_drain.is_draining(vm.name):
            raise Conflict(
                f"VM {vm.name} is being moved off a GPU slice that changes; it restarts "
                "when the new layout is in place",
                code="vm_draining",
            )
        bound = self._gpus.bind(vm.id, spec)
        try:
            self._backend.start(vm.id)
        except BaseException:
            self._gpus.unbind(vm.id, spec, release=True)
            raise
        if bound:
            with journal.write_transaction():
                journal.append("vm.gpu_bound", "vm", vm.id, {"name": vm.name, **bound})
