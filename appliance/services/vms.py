"""VM use cases: create, start, shut down, delete... each one all-or-nothing.

A create either ends with a defined domain, its disks, its allocation and its row
plus journal entry, or with none of them. The service never touches a domain it
did not make (the reconciler reads ownership from the domain's metadata).
"""

from __future__ import annotations

import logging
import threading
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path

import msgspec

from appliance.backends.vm import disks
from appliance.backends.vm.domain_xml import GpuDevice
from appliance.backends.vm.protocol import VmBackend
from appliance.catalog.cloud_init import cloud_init_dir
from appliance.catalog.model import CatalogEntry
from appliance.config import Config
from appliance.domain.allocation import Allocation, decode_allocation, encode_allocation
from appliance.domain.allocator import Allocator
from appliance.domain.vm_spec import CpuPolicy, Role, VmSpec
from appliance.services.auth import Principal, aware_utc
from appliance.services.gpu_binding import GpuBinder
from appliance.services.monitor import Monitor, record_observed
from appliance.services.service_rows import refuse_replica
from appliance.services.vm_admission import VmAdmission
from appliance.services.vm_domain_power import DomainPower
from appliance.services.vm_intents import begin_create, end_create, undo_interrupted_creates
from appliance.services.vm_power import ACTIVE, DEFINED, RUNNING, STOPPED, is_active, wait_off
from appliance.services.vm_provision import (
    PlannedDomain,
    VnetResolver,
    check_references,
    console_path,
    define_domain,
    disk_gib,
    disk_paths,
    resolve_spec,
    wire_vnets,
)
from appliance.services.vm_repin import repin_shared
from appliance.services.vm_seed import plan_seed, request_values
from appliance.services.vm_views import VmViews, console_tail, created_state
from appliance.store import journal, space
from appliance.store.models import Vm, utcnow
from towerbox_core.api.vms import VmCreateRequest, VmDetail, VmShutdown, VmStats, VmSummary
from towerbox_core.errors import Conflict, Forbidden, NotFound, TowerboxError
from towerbox_core.faults import fault_point

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VmRecord:
    id: str
    spec: VmSpec
    allocation: Allocation
    desired_state: str


class VmService:
    def __init__(
        self,
        cfg: Config,
        backend: VmBackend,
        allocator: Allocator,
        catalog: dict[str, CatalogEntry],
        monitor: Monitor,
        vnets: VnetResolver | None = None,
        gpus: GpuBinder | None = None,
        admission: VmAdmission | None = None,
    ) -> None:
        self._cfg = cfg
        self._admission = admission
        self._vnets = vnets
        self._gpus = gpus
        self._backend = backend
        self._allocator = allocator
        self._catalog = catalog
        self._monitor = monitor
        # Serialises creates and deletes so the allocator, libvirt and the database
        # move together; start/stop of different VMs do not need it.
        self._lock = threading.Lock()
        self._image_dir = Path(cfg.image_dir)
        self._templates_dir = cloud_init_dir(cfg.resolved_catalog_dir())
        self._power = DomainPower(cfg, backend, gpus)
        self.start_failures = self._power.start_failures
        self.gpu_drain = self._power.gpu_drain
        self.views = VmViews(
            backend, monitor, gpus, self.start_failures, self.gpu_drain.is_draining
        )

    @property
    def lifecycle_lock(self) -> threading.Lock:
        """Held by every create and delete; whoever holds it sees domains and rows agree."""
        return self._lock

    # -- reads -------------------------------------------------------------------

    def list_vms(self, principal: Principal) -> list[VmSummary]:
        swept = self._monitor.snapshot.taken_at
        # The snapshot answers for every VM but those acted on since the last sweep:
        # a list right after "start" must not say "shutoff".
        return [
            self._view(
                vm,
                live=vm.id not in self._monitor.snapshot.vms
                or aware_utc(vm.updated_at).timestamp() > swept,
            )
            for vm in Vm.select().order_by(Vm.name)
            if principal.can_see(vm.tenant)
        ]

    def get(self, principal: Principal, name: str) -> VmDetail:
        return self.views.detail(self._visible(principal, name))

    def stats(self, principal: Principal, name: str) -> VmStats:
        vm = self._visible(principal, name)
        history = self._monitor.history(vm.id)
        return VmStats(name=vm.name, current=history[-1] if history else None, history=history)

    def console(self, principal: Principal, name: str, lines: int) -> str:
        vm = self._visible(principal, name)
        return console_tail(console_path(self._cfg, vm.id), lines)

    def load_records(self) -> list[VmRecord]:
        return [
            VmRecord(
                vm.id,
                msgspec.json.decode(vm.spec, type=VmSpec),
                decode_allocation(vm.allocation),
                vm.desired_state,
            )
            for vm in Vm.select()
        ]

    # -- create ------------------------------------------------------------------

    def create(self, principal: Principal, req: VmCreateRequest) -> VmDetail:
        principal.require_write()
        spec = resolve_spec(self._catalog, principal, req)
        values = request_values(self._catalog, req)
        admission = self._admission
        ticket = admission.check_privileges(principal, spec) if admission else None
        check_references(spec, self._image_dir)
        size_gib = disk_gib(spec, self._image_dir)
        vm_id = str(uuidlib.uuid4())
        # The seed is rendered before anything is made.
        spec, seed = plan_seed(self._catalog, self._templates_dir, req, spec, vm_id, values)
        spec, gpu_device = self._prepare_gpu(spec, vm_id)
        # The row keeps the VNet names; libvirt gets the bridges and tags they map to.
        wired = wire_vnets(spec, self._vnets)
        made: list[Path] = []
        with self._lock:
            if Vm.select().where(Vm.name == spec.name).exists():
                raise Conflict(f"a VM named {spec.name!r} exists", code="vm_exists", field="name")
            alloc = self._allocator.allocate(spec.name, spec)
            try:
                checked_at = None
                if admission and ticket:
                    checked_at = admission.admit(spec, alloc, size_gib, self._cfg.disk_dir, ticket)
            except TowerboxError:
                self._allocator.release(spec.name)
                raise
            try:
                begin_create(vm_id, spec.name)
                planned = PlannedDomain(
                    vm_id, spec, wired, alloc, gpu_device, seed.files if seed else None
                )
                define_domain(self._cfg, self._backend, planned, made)
                with journal.write_transaction():
                    if admission:  # the quota check and the row in one transaction
                        admission.recheck(spec, alloc, size_gib, checked_at)
                    Vm.create(
                        id=vm_id,
                        name=spec.name,
                        spec=msgspec.json.encode(spec).decode(),
                        allocation=encode_allocation(alloc),
                        desired_state=STOPPED,
                        role=spec.role.value,
                        tenant=spec.tenant,
                        observed_state=DEFINED,
                        disk_gib=size_gib,
                    )
                    created = created_state(spec, size_gib, seed)
                    journal.append("vm.created", "vm", vm_id, created)
                    end_create(vm_id)
                    fault_point("vm.create.before_commit")
                fault_point("vm.create.after_commit")
            except BaseException:
                self._undo_create(vm_id, made, spec.name)
                raise
        log.info("created VM %s (%s)", spec.name, vm_id, extra={"vm": spec.name})
        if alloc.vcpu_pins:
            repin_shared(self._allocator, self._backend)
        if req.start:
            try:
                self.start(principal, spec.name)
                fault_point("vm.create.after_start")
            except TowerboxError:
                # "Create and start" is one request: a VM that cannot start is not left
                # behind for the operator to find after an error.
                log.warning("VM %s did not start; removing it again", spec.name)
                self.delete(principal, spec.name)
                raise
        return self.get(principal, spec.name)

    def _prepare_gpu(self, spec: VmSpec, vm_id: str) -> tuple[VmSpec, GpuDevice | None]:
        if spec.gpu is None:
            return spec, None
        if self._gpus is None:
            raise Conflict("this node has no GPU service", code="gpu_unavailable", field="gpu")
        return self._gpus.prepare(spec, vm_id)

    def _undo_create(self, vm_id: str, made: list[Path], name: str) -> None:
        log.warning("create of VM %s failed; undoing", name)
        try:
            if self._backend.status(vm_id) is not None:  # the domain was defined
                self._backend.undefine(vm_id)
        except Exception:
            log.exception("could not undefine half-created domain %s", vm_id)
        disks.remove(made)
        self._allocator.release(name)
        try:
            with journal.write_transaction():
                end_create(vm_id)
        except TowerboxError as err:  # the next start finds the intent with nothing left
            log.warning("create intent of VM %s kept: %s", name, err.message)

    def undo_interrupted_creates(self) -> list[str]:
        """At start: take away what creates cut off by a crash made (vm_intents)."""
        with self._lock:
            return undo_interrupted_creates(
                self._backend, [self._cfg.disk_dir, self._cfg.console_dir]
            )

    # -- power -------------------------------------------------------------------

    def start(self, principal: Principal, name: str) -> VmSummary:
        vm = self._writable(principal, name)
        self._set_desired(vm, RUNNING, "vm.start")
        status = self._backend.status(vm.id)
        if status is None:
            raise Conflict(
                f"VM {name} has no libvirt domain (drift); delete and re-create it",
                code="domain_missing",
            )
        if status.state not in ACTIVE:
            self._power.start(vm)
            log.info("started VM %s", name, extra={"vm": name})
        return self._after_action(vm.id)

    def prepare_restart(self, vm: Vm) -> None:
        """The reconciler's restart path: same GPU binding as an operator's start."""
        self._power.start(vm)

    @space.uses_reserve
    def shutdown(self, principal: Principal, name: str, timeout_s: float | None) -> VmShutdown:
        """ACPI power-off, then force after the deadline."""
        vm = self._writable(principal, name)
        self._monitor.refuse_if_unresponsive(vm.id, vm.name, "shut down")
        deadline = self._cfg.libvirt.shutdown_timeout_s if timeout_s is None else timeout_s
        self._set_desired(vm, STOPPED, "vm.shutdown")
        forced = False
        if is_active(self._backend, vm.id):
            self._backend.shutdown(vm.id)
            forced = not wait_off(self._backend, vm.id, deadline)
            if forced:
                log.warning(
                    "VM %s ignored ACPI shutdown for %.0f s; forcing it off",
                    name,
                    deadline,
                    extra={"vm": name},
                )
                self._backend.destroy(vm.id)
        self._power.after_off(vm)
        view = self._after_action(vm.id)
        return VmShutdown(**msgspec.structs.asdict(view), forced=forced)

    @space.uses_reserve
    def stop(self, principal: Principal, name: str) -> VmSummary:
        vm = self._writable(principal, name)
        self._set_desired(vm, STOPPED, "vm.stop")
        if is_active(self._backend, vm.id):
            self._backend.destroy(vm.id)
        self._power.after_off(vm)
        return self._after_action(vm.id)

    def reboot(self, principal: Principal, name: str) -> VmSummary:
        vm = self._writable(principal, name)
        if not is_active(self._backend, vm.id):
            raise Conflict(f"VM {name} is not running", code="vm_not_running")
        self._monitor.refuse_if_unresponsive(vm.id, vm.name, "reboot")
        self._backend.reboot(vm.id)
        with journal.write_transaction():
            journal.append("vm.reboot", "vm", vm.id, {"name": name})
        return self._view(vm)

    @space.uses_reserve
    def delete(self, principal: Principal, name: str, *, for_service: bool = False) -> None:
        """Destroy the VM and its disks. A service's replica is its service's to delete
        (``for_service``): deleted on its own it would only leave its role short."""
        vm = self._writable(principal, name)
        if not for_service:
            refuse_replica(vm.id, name)
        # Refused before it destroys anything when not even the reserve is left.
        space.check_writable()
        with self._lock:
            if is_active(self._backend, vm.id):
                self._backend.destroy(vm.id)
            self._power.after_off(vm)
            fault_point("vm.delete.after_destroy")
            if self._backend.status(vm.id) is not None:
                self._backend.undefine(vm.id)
            fault_point("vm.delete.after_undefine")
            spec = msgspec.json.decode(vm.spec, type=VmSpec)
            disks.remove(disk_paths(self._cfg, vm.id, spec))
            fault_point("vm.delete.after_disks")
            self._allocator.release(vm.name)
            with journal.write_transaction():
                vm.delete_instance()
                journal.append("vm.deleted", "vm", vm.id, None)
            if spec.cpu.policy is CpuPolicy.PINNED:
                repin_shared(self._allocator, self._backend)
        self.start_failures.started(name)  # a new VM of this name starts afresh
        log.info("deleted VM %s", name, extra={"vm": name})

    # -- helpers -----------------------------------------------------------------

    def _visible(self, principal: Principal, name: str) -> Vm:
        vm = Vm.get_or_none(Vm.name == name)
        # Another tenant's VM is reported as absent, not as forbidden.
        if vm is None or not principal.can_see(vm.tenant):
            raise NotFound(f"no VM named {name!r}", code="vm_not_found")
        return vm

    def _writable(self, principal: Principal, name: str) -> Vm:
        principal.require_write()
        vm = self._visible(principal, name)
        if not principal.is_infra_admin and vm.role not in (Role.B2B.value, Role.OTHER.value):
            raise Forbidden(
                f"VM {name} has role {vm.role}; only infra-admins may change it",
                code="role_not_allowed",
            )
        return vm

    def _set_desired(self, vm: Vm, desired: str, kind: str) -> None:
        with journal.write_transaction():
            Vm.update(desired_state=desired, updated_at=utcnow()).where(Vm.id == vm.id).execute()
            journal.append(kind, "vm", vm.id, {"name": vm.name, "desired_state": desired})

    def _after_action(self, vm_id: str) -> VmSummary:
        # Marks the row as newer than any sweep that ran during the action, so lists
        # ask libvirt for this VM until the next sweep sees the new state. The state the
        # action reached is journalled now, not a sweep later: metering bills from it.
        Vm.update(updated_at=utcnow()).where(Vm.id == vm_id).execute()
        state, since = self._monitor.shown_state(vm_id, self._backend.status(vm_id))
        record_observed(vm_id, state, unresponsive_since=since)
        return self._view(Vm.get_by_id(vm_id))

    def _view(self, vm: Vm, *, live: bool = True) -> VmSummary:
        return self.views.summary(vm, live=live)
