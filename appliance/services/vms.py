"""VM use cases: create, start, shut down, delete... each one all-or-nothing.

A create either ends with a defined domain, its disks, its allocation and its row
plus journal entry, or with none of them. The service never touches a domain it
did not make (the reconciler reads ownership from the domain's metadata).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid as uuidlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from appliance.backends.vm import disks
from appliance.backends.vm.domain_xml import DomainPaths, GpuDevice, Owner, build_domain_xml
from appliance.backends.vm.protocol import DomainState, VmBackend
from appliance.catalog import CatalogEntry, spec_for
from appliance.config import Config
from appliance.domain.allocation import Allocation, decode_allocation, encode_allocation
from appliance.domain.allocator import Allocator
from appliance.domain.gpu.layout import Instance
from appliance.domain.vm_spec import (
    CpuPolicy,
    NicKind,
    Role,
    VmSpec,
    parse_vm_spec,
    spec_to_dict,
)
from appliance.services.auth import Principal, aware_utc
from appliance.services.gpu_binding import GpuBinder
from appliance.services.monitor import Monitor, sample_to_dict
from appliance.store import journal
from appliance.store.models import Tenant, Vm, utcnow
from towerbox_core.errors import Conflict, Forbidden, InvalidInput, NotFound, TowerboxError
from upf_bridge.backends.base import Attachment

log = logging.getLogger(__name__)

# (VM's tenant, "name" or "tenant/name") -> where the NIC plugs in; from the N6 service.
VnetResolver = Callable[[str | None, str], Attachment]

RUNNING = "running"
STOPPED = "stopped"
# Who starts first when several VMs come up together: the RAN before the rest.
_ROLE_ORDER = {"vran": 0, "upf": 1, "b2b": 2, "other": 3}
_ACTIVE = (
    DomainState.RUNNING,
    DomainState.PAUSED,
    DomainState.SHUTTING_DOWN,
    DomainState.BLOCKED,
    DomainState.SUSPENDED,
)


class VmCreateRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    # Catalog entry whose default spec ``spec`` overrides; without one, ``spec`` is
    # the whole VM spec (any VmSpec field but name).
    appliance: str | None = None
    spec: dict[str, Any] = {}
    start: bool = False


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
    ) -> None:
        self._cfg = cfg
        self._vnets = vnets
        self._gpus = gpus
        # VMs an apply has shut down to change their GPU slice: the reconciler leaves
        # them alone until the apply restarts them (desired state stays "running").
        self._draining: set[str] = set()
        # VMs an apply could not place on the new layout; the next apply tries again.
        self._waiting: set[str] = set()
        self._backend = backend
        self._allocator = allocator
        self._catalog = catalog
        self._monitor = monitor
        # Serialises creates and deletes so the allocator, libvirt and the database
        # move together; start/stop of different VMs do not need it.
        self._lock = threading.Lock()
        self._image_dir = Path(cfg.image_dir)

    # -- reads -------------------------------------------------------------------

    def list_vms(self, principal: Principal) -> list[dict[str, Any]]:
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

    def get(self, principal: Principal, name: str) -> dict[str, Any]:
        vm = self._visible(principal, name)
        view = self._view(vm)
        view["spec"] = msgspec.json.decode(vm.spec)
        view["allocation"] = msgspec.json.decode(vm.allocation)
        view["gpu"] = (
            self._gpus.binding(vm.name) if self._gpus and view["spec"].get("gpu") else None
        )
        return view

    def stats(self, principal: Principal, name: str) -> dict[str, Any]:
        vm = self._visible(principal, name)
        history = self._monitor.history(vm.id)
        return {
            "name": vm.name,
            "current": sample_to_dict(history[-1]) if history else None,
            "history": [sample_to_dict(s) for s in history],
        }

    def console(self, principal: Principal, name: str, lines: int) -> str:
        vm = self._visible(principal, name)
        path = self._console_path(vm.id)
        if not path.exists():
            return ""
        with path.open("rb") as f:
            tail = deque(f, maxlen=max(1, min(lines, 10_000)))
        return b"".join(tail).decode("utf-8", errors="replace")

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

    def resolve_spec(self, principal: Principal, req: VmCreateRequest) -> VmSpec:
        if req.appliance is not None:
            entry = self._catalog.get(req.appliance)
            if entry is None:
                raise InvalidInput(
                    f"no appliance {req.appliance!r} in the catalog; known: "
                    f"{', '.join(sorted(self._catalog)) or 'none'}",
                    code="unknown_appliance",
                    field="appliance",
                )
            spec = spec_for(entry, req.name, dict(req.spec))
        else:
            spec = parse_vm_spec({**req.spec, "name": req.name})
        if principal.is_infra_admin:
            return spec
        if spec.tenant not in (None, principal.tenant):
            raise Forbidden(
                f"you can create VMs for tenant {principal.tenant!r} only",
                code="tenant_mismatch",
                field="tenant",
            )
        if spec.role not in (Role.B2B, Role.OTHER):
            raise Forbidden(
                f"role {spec.role.value!r} VMs need the infra-admin role",
                code="role_not_allowed",
                field="role",
            )
        return msgspec.structs.replace(spec, tenant=principal.tenant)

    def create(self, principal: Principal, req: VmCreateRequest) -> dict[str, Any]:
        principal.require_write()
        spec = self.resolve_spec(principal, req)
        self._check_references(spec)
        vm_id = str(uuidlib.uuid4())
        spec, gpu_device = self._prepare_gpu(spec, vm_id)
        # The row keeps the VNet names; libvirt gets the bridges and tags they map to.
        wired = self._wire_vnets(spec)
        made: list[Path] = []
        defined = False
        with self._lock:
            if Vm.select().where(Vm.name == spec.name).exists():
                raise Conflict(f"a VM named {spec.name!r} exists", code="vm_exists", field="name")
            alloc = self._allocator.allocate(spec.name, spec)
            try:
                paths = self._make_disks(vm_id, spec, made)
                xml = build_domain_xml(
                    wired,
                    alloc,
                    paths,
                    Owner(
                        node=self._cfg.node_name,
                        vm_id=vm_id,
                        role=spec.role.value,
                        tenant=spec.tenant,
                    ),
                    virt_type=self._backend.virt_type,
                    uuid=vm_id,
                    gpu=gpu_device,
                )
                self._backend.define(xml)
                defined = True
                # A VM on a MIG slice is started by the appliance at boot, after its
                # slice is re-created; libvirt's autostart would find no vGPU.
                if spec.autostart and spec.gpu is None:
                    self._backend.set_autostart(vm_id, True)
                with journal.write_transaction():
                    Vm.create(
                        id=vm_id,
                        name=spec.name,
                        spec=msgspec.json.encode(spec).decode(),
                        allocation=encode_allocation(alloc),
                        desired_state=STOPPED,
                        role=spec.role.value,
                        tenant=spec.tenant,
                        observed_state="shutoff",
                    )
                    journal.append("vm.created", "vm", vm_id, self._journal_state(spec, STOPPED))
            except BaseException:
                self._undo_create(vm_id, defined, made, spec.name)
                raise
        log.info("created VM %s (%s)", spec.name, vm_id, extra={"vm": spec.name})
        if alloc.vcpu_pins:
            self._repin_shared()
        if req.start:
            try:
                self.start(principal, spec.name)
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

    def _wire_vnets(self, spec: VmSpec) -> VmSpec:
        if not any(nic.kind is NicKind.VNET for nic in spec.nics):
            return spec
        if self._vnets is None:
            raise Conflict("this node has no N6 service to attach VNets", code="n6_unavailable")
        nics = []
        for nic in spec.nics:
            if nic.kind is NicKind.VNET and nic.vnet is not None:
                att = self._vnets(spec.tenant, nic.vnet)
                kind = NicKind.OVS if att.kind == "ovs" else NicKind.BRIDGE
                nics.append(
                    msgspec.structs.replace(
                        nic, kind=kind, bridge=att.bridge, vlan=att.vlan, vnet=None
                    )
                )
            else:
                nics.append(nic)
        return msgspec.structs.replace(spec, nics=tuple(nics))

    def _check_references(self, spec: VmSpec) -> None:
        if (
            spec.tenant is not None
            and not Tenant.select().where(Tenant.name == spec.tenant).exists()
        ):
            raise InvalidInput(
                f"no tenant {spec.tenant!r}; create it first", code="unknown_tenant", field="tenant"
            )
        wanted = [(f"disks[{i}].image", d.image) for i, d in enumerate(spec.disks) if d.image]
        if spec.boot is not None:
            wanted.append(("boot.kernel", spec.boot.kernel))
            if spec.boot.initrd:
                wanted.append(("boot.initrd", spec.boot.initrd))
        for field, name in wanted:
            if not (self._image_dir / name).is_file():
                raise InvalidInput(
                    f"image {name!r} is not in the image directory {self._image_dir}",
                    code="unknown_image",
                    field=field,
                )

    def _make_disks(self, vm_id: str, spec: VmSpec, made: list[Path]) -> DomainPaths:
        overlays = []
        for i, disk in enumerate(spec.disks):
            path = self._cfg.disk_dir / f"{vm_id}-{i}.qcow2"
            made.append(path)
            if disk.image:
                disks.create_overlay(self._image_dir / disk.image, path, disk.size_gib)
            elif disk.size_gib is not None:  # validate_spec makes this the only other case
                disks.create_blank(path, disk.size_gib)
            overlays.append(str(path))
        console = None
        if spec.serial_log:
            self._cfg.console_dir.mkdir(parents=True, exist_ok=True)
            console = str(self._console_path(vm_id))
            made.append(Path(console))
        boot = spec.boot
        return DomainPaths(
            disks=tuple(overlays),
            kernel=str(self._image_dir / boot.kernel) if boot else None,
            initrd=str(self._image_dir / boot.initrd) if boot and boot.initrd else None,
            console_log=console,
        )

    def _undo_create(self, vm_id: str, defined: bool, made: list[Path], name: str) -> None:
        log.warning("create of VM %s failed; undoing", name)
        if defined:
            try:
                self._backend.undefine(vm_id)
            except Exception:
                log.exception("could not undefine half-created domain %s", vm_id)
        disks.remove(made)
        self._allocator.release(name)

    # -- power -------------------------------------------------------------------

    def start(self, principal: Principal, name: str) -> dict[str, Any]:
        vm = self._writable(principal, name)
        self._set_desired(vm, RUNNING, "vm.start")
        status = self._backend.status(vm.id)
        if status is None:
            raise Conflict(
                f"VM {name} has no libvirt domain (drift); delete and re-create it",
                code="domain_missing",
            )
        if status.state not in _ACTIVE:
            self._start_domain(vm)
            log.info("started VM %s", name, extra={"vm": name})
        return self._after_action(vm.id)

    def _start_domain(self, vm: Vm) -> None:
        """Start the domain, with its GPU slice bound first; nothing held on failure."""
        spec = msgspec.json.decode(vm.spec, type=VmSpec)
        if self._gpus is None or spec.gpu is None:
            self._backend.start(vm.id)
            return
        if vm.name in self._draining:
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

    def prepare_restart(self, vm: Vm) -> None:
        """The reconciler's restart path: same GPU binding as an operator's start."""
        self._start_domain(vm)

    def _release_gpu(self, vm: Vm) -> None:
        """After the domain is off: remove its vGPU and give its slice back."""
        spec = msgspec.json.decode(vm.spec, type=VmSpec)
        if self._gpus is None or spec.gpu is None:
            return
        try:
            self._gpus.unbind(vm.id, spec, release=True)
        except TowerboxError as err:
            log.error(
                "VM %s: GPU slice not released: %s", vm.name, err.message, extra={"vm": vm.name}
            )

    # -- GPU reshapes ----------------------------------------------------------------

    def drain_gpu(self, gpu: str, instances: tuple[Instance, ...]) -> None:
        """Shut down the VMs on these instances before their slices change.

        Graceful (ACPI) with the configured deadline, all at once. A VM still running
        at the deadline stops the apply: the VMs already off start again on their
        slices and the GPU is left as it was.
        """
        owners = {i.owner for i in instances if i.owner}
        rows = list(Vm.select().where(Vm.name.in_(owners)))
        active = [vm for vm in rows if self._is_active(vm.id)]
        self._draining.update(vm.name for vm in rows)
        deadline = self._cfg.gpu.drain_timeout_s
        for vm in active:
            self._backend.shutdown(vm.id)
        end = time.monotonic() + deadline
        still = [vm for vm in active if not self._wait_off(vm.id, max(0.0, end - time.monotonic()))]
        if still:
            names = ", ".join(vm.name for vm in still)
            log.error("GPU %s: drain deadline of %.0f s missed by %s", gpu, deadline, names)
            self._draining.difference_update(vm.name for vm in rows)
            for vm in active:
                if vm not in still and not self._is_active(vm.id):
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

    def resume_gpu(self, gpu: str) -> dict[str, Any]:
        """After an apply (or its rollback): start every VM that should run on a slice.

        That is the drained VMs and any earlier one left waiting for a slice (and still
        meant to run). A VM with no place in the layout stays off, journalled as
        waiting, and starts after a later apply gives it one.
        """
        candidates = self._draining | self._waiting
        self._draining.clear()
        restarted: list[str] = []
        waiting: list[dict[str, str]] = []
        rows = Vm.select().where(Vm.desired_state == RUNNING)
        for vm in sorted(rows, key=lambda vm: (_ROLE_ORDER.get(vm.role, 9), vm.name)):
            if vm.name not in candidates or self._is_active(vm.id):
                self._waiting.discard(vm.name)
                continue
            try:
                self._start_domain(vm)
            except TowerboxError as err:
                self._waiting.add(vm.name)
                waiting.append({"vm": vm.name, "code": err.code, "detail": err.message})
                with journal.write_transaction():
                    journal.append(
                        "vm.gpu_waiting", "vm", vm.id, {"name": vm.name, "reason": err.message}
                    )
                continue
            self._waiting.discard(vm.name)
            restarted.append(vm.name)
            Vm.update(updated_at=utcnow()).where(Vm.id == vm.id).execute()
        if waiting:
            log.warning("GPU %s: VMs waiting for a slice: %s", gpu, waiting)
        return {"restarted": restarted, "waiting": waiting}

    def start_gpu_vms(self) -> dict[str, Any]:
        """At daemon start, after the GPU layouts are re-created: start the VMs on
        slices that should run and do not (a host reboot), vRAN first."""
        for vm in Vm.select().where(Vm.desired_state == RUNNING):
            if msgspec.json.decode(vm.spec, type=VmSpec).gpu is not None:
                self._waiting.add(vm.name)
        if not self._waiting:
            return {"restarted": [], "waiting": []}
        report = self.resume_gpu("")
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

    def shutdown(self, principal: Principal, name: str, timeout_s: float | None) -> dict[str, Any]:
        """ACPI power-off, then force after the deadline."""
        vm = self._writable(principal, name)
        deadline = self._cfg.libvirt.shutdown_timeout_s if timeout_s is None else timeout_s
        self._set_desired(vm, STOPPED, "vm.shutdown")
        forced = False
        if self._is_active(vm.id):
            self._backend.shutdown(vm.id)
            forced = not self._wait_off(vm.id, deadline)
            if forced:
                log.warning(
                    "VM %s ignored ACPI shutdown for %.0f s; forcing it off",
                    name,
                    deadline,
                    extra={"vm": name},
                )
                self._backend.destroy(vm.id)
        self._release_gpu(vm)
        view = self._after_action(vm.id)
        view["forced"] = forced
        return view

    def stop(self, principal: Principal, name: str) -> dict[str, Any]:
        vm = self._writable(principal, name)
        self._set_desired(vm, STOPPED, "vm.stop")
        if self._is_active(vm.id):
            self._backend.destroy(vm.id)
        self._release_gpu(vm)
        return self._after_action(vm.id)

    def reboot(self, principal: Principal, name: str) -> dict[str, Any]:
        vm = self._writable(principal, name)
        if not self._is_active(vm.id):
            raise Conflict(f"VM {name} is not running", code="vm_not_running")
        self._backend.reboot(vm.id)
        with journal.write_transaction():
            journal.append("vm.reboot", "vm", vm.id, {"name": name})
        return self._view(vm)

    def delete(self, principal: Principal, name: str) -> None:
        vm = self._writable(principal, name)
        with self._lock:
            if self._is_active(vm.id):
                self._backend.destroy(vm.id)
            self._release_gpu(vm)
            if self._backend.status(vm.id) is not None:
                self._backend.undefine(vm.id)
            spec = msgspec.json.decode(vm.spec, type=VmSpec)
            disks.remove(
                [self._cfg.disk_dir / f"{vm.id}-{i}.qcow2" for i in range(len(spec.disks))]
                + [self._console_path(vm.id)]
            )
            self._allocator.release(vm.name)
            with journal.write_transaction():
                vm.delete_instance()
                journal.append("vm.deleted", "vm", vm.id, None)
            if spec.cpu.policy is CpuPolicy.PINNED:
                self._repin_shared()
        log.info("deleted VM %s", name, extra={"vm": name})

    def _repin_shared(self) -> None:
        """Move shared VMs onto the shared pool as it is now.

        A pinned VM's cores are exclusive only if no shared VM may float onto them,
        and a deleted pinned VM's cores should return to the pool.
        """
        for vm in Vm.select():
            alloc = decode_allocation(vm.allocation)
            if alloc.vcpu_pins or not alloc.shared_cpus:
                continue
            pool = self._allocator.shared_pool(alloc.numa_node)
            if not pool or pool == alloc.shared_cpus:
                continue
            try:
                self._backend.pin_vcpus(vm.id, pool)
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

    def _after_action(self, vm_id: str) -> dict[str, Any]:
        # Marks the row as newer than any sweep that ran during the action, so lists
        # ask libvirt for this VM until the next sweep sees the new state.
        Vm.update(updated_at=utcnow()).where(Vm.id == vm_id).execute()
        return self._view(Vm.get_by_id(vm_id))

    def _is_active(self, vm_id: str) -> bool:
        status = self._backend.status(vm_id)
        return status is not None and status.state in _ACTIVE

    def _wait_off(self, vm_id: str, deadline_s: float) -> bool:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if not self._is_active(vm_id):
                return True
            time.sleep(0.25)
        return not self._is_active(vm_id)

    def _console_path(self, vm_id: str) -> Path:
        return self._cfg.console_dir / f"{vm_id}.log"

    def _view(self, vm: Vm, *, live: bool = True) -> dict[str, Any]:
        """The VM as clients see it; ``live`` asks libvirt instead of the snapshot."""
        sample = self._monitor.snapshot.vms.get(vm.id)
        state = sample.state if sample else vm.observed_state
        if live:
            status = self._backend.status(vm.id)
            state = status.state.value if status else "missing"
        spec = msgspec.json.decode(vm.spec)
        return {
            "id": vm.id,
            "name": vm.name,
            "role": vm.role,
            "tenant": vm.tenant,
            "appliance": spec.get("appliance"),
            "vcpus": spec["vcpus"],
            "memory_mib": spec["memory_mib"],
            "desired_state": vm.desired_state,
            "state": state,
            "cpu_pct": sample.cpu_pct if sample else None,
        }

    @staticmethod
    def _journal_state(spec: VmSpec, desired: str) -> dict[str, Any]:
        return {"spec": spec_to_dict(spec), "desired_state": desired}
