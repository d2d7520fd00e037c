"""GPU layouts on the node: see them, dry-run a target, apply it with rollback.

The node keeps each GPU's last committed layout (roles and owners included) in the
``gpu_layout`` table; MIG instances do not survive a host reboot, so the daemon
re-creates the committed layout at start, vRAN first.

Workloads own instances through the layout's ``owner`` field: ``claim`` gives a
workload (a VM by name, or ``process:NAME``) an instance of the profile and role it
asks for and records it in the committed layout. An apply first drains the workloads
on the instances it changes through the ``drain`` hook (the VM service shuts the VMs
down with a deadline; a process claim must be released by its owner first), runs the
operations, commits, and then calls the ``resume`` hook, which binds the drained VMs
again and restarts those that have a place in the new layout; after a rollback the
same hook restarts them on the old one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

import msgspec

from appliance.backends.gpu.protocol import GpuBackend, GpuInfo
from appliance.domain.gpu.binding import is_process_owner
from appliance.domain.gpu.catalog import GpuCatalog, GpuModel
from appliance.domain.gpu.effects import (
    blocked_by_process,
    layout_drift,
)
from appliance.domain.gpu.layout import Instance, Layout, MigRole, validate_layout
from appliance.domain.gpu.planner import OpKind, Plan, plan
from appliance.domain.gpu.solver import solve_counts
from appliance.domain.gpu.target import LayoutRequest
from appliance.services.auth import Principal
from appliance.services.gpu_plan_view import check_unchanged, plan_target, plan_view
from appliance.store import journal
from appliance.store.models import GpuLayout
from towerbox_core.api.gpus import (
    DrainReport,
    GpuView,
    LayoutApplied,
    LayoutApply,
    LayoutPlan,
    MigModeAnswer,
    MigProfileView,
    MigState,
    ProblemBrief,
    ResumeReport,
)
from towerbox_core.errors import BackendError, Conflict, InvalidInput, NotFound, TowerboxError
from towerbox_core.faults import fault_point

log = logging.getLogger(__name__)


# Stops the workloads on these instances of this GPU before their slices change;
# raises a TowerboxError when it cannot, and the apply stops before any GPU change.
DrainHook = Callable[[str, tuple[Instance, ...]], None]
# After an apply or its rollback: bind and restart what was drained; returns a report
ResumeHook = Callable[[str], ResumeReport]

_OP_KINDS = {OpKind.DESTROY: "gpu.instance_destroyed", OpKind.CREATE: "gpu.instance_created"}

DRAIN_NOT_WIRED = "VM drain is not wired yet: workloads on changed instances were not stopped first"


class GpuLayoutService:
    def __init__(
        self,
        backend: GpuBackend,
        line: str,
        catalog: GpuCatalog,
        *,
        layouts: Mapping[str, LayoutRequest] | None = None,
        drain: DrainHook | None = None,
        resume: ResumeHook | None = None,
    ) -> None:
        self.backend = backend
        self.line = line
        self._catalog = catalog
        self.layouts = dict(layouts or {})  # named targets from [gpu.layouts]
        self._drain = drain
        self._resume = resume
        # One layout change on the node at a time. Re-entrant: an apply's hooks stop
        # and bind VMs, which claim and release instances under the same lock.
        self.lock = threading.RLock()

    def set_hooks(self, drain: DrainHook, resume: ResumeHook) -> None:
        """Wire the VM service in (it is built after this service)."""
        self._drain = drain
        self._resume = resume

    # -- reads -------------------------------------------------------------------

    def list_gpus(self) -> list[GpuView]:
        return [self._view(info) for info in self.backend.list_gpus()]

    def get(self, gpu: str) -> GpuView:
        return self._view(self._info(gpu))

    def _info(self, gpu: str) -> GpuInfo:
        for info in self.backend.list_gpus():
            if info.uuid == gpu:
                return info
        raise NotFound(f"no GPU {gpu!r} on this node", code="gpu_not_found")

    def model(self, info: GpuInfo) -> GpuModel:
        if info.model is None:
            raise Conflict(f"{info.name} is not in the GPU catalog", code="gpu_not_in_catalog")
        return self._catalog.model(info.model)

    def _view(self, info: GpuInfo) -> GpuView:
        return GpuView(
            uuid=info.uuid,
            name=info.name,
            model=info.model,
            pci_address=info.pci_address,
            numa_node=info.numa_node,
            memory_mib=info.memory_mib,
            mig=MigState(
                supported=info.mig_supported, current=info.mig.current, pending=info.mig.pending
            ),
            layout=self.current_layout(info) if info.model else None,
            drift=self._drift(info),
        )

    def _drift(self, info: GpuInfo) -> list[str]:
        committed = self.committed(info.uuid) if info.model else None
        if committed is None or not info.mig.current:
            return []
        return layout_drift(committed, self.current_layout(info))

    def profiles(self, gpu: str) -> list[MigProfileView]:
        info = self._info(gpu)
        if not info.mig_supported:
            return []
        return [MigProfileView(**asdict(p)) for p in self.backend.profiles(gpu)]

    def committed(self, gpu: str) -> Layout | None:
        row = GpuLayout.get_or_none(GpuLayout.gpu_uuid == gpu)
        return msgspec.json.decode(row.layout, type=Layout) if row else None

    def current_layout(self, info: GpuInfo) -> Layout:
        """What the GPU has now, with roles and owners from the committed layout."""
        model = self.model(info)
        known = self.committed(info.uuid)
        meta = known.by_placement() if known else {}
        instances = []
        for gi in self.backend.instances(info.uuid):
            was = meta.get((gi.profile, gi.start))
            instances.append(
                Instance(
                    profile=gi.profile,
                    start=gi.start,
                    role=was.role if was else MigRole.B2B,
                    owner=was.owner if was else None,
                )
            )
        return Layout(gpu_model=model.key, instances=tuple(instances)).in_slot_order()

    # -- plan and apply ----------------------------------------------------------

    def plan(self, gpu: str, req: LayoutRequest) -> LayoutPlan:
        with self.lock:
            info = self._info(gpu)
            return self._plan_view(info, self._plan(info, req))

    def resolve(self, req: LayoutRequest) -> LayoutRequest:
        """The request itself, or the configured layout it names."""
        req.check()
        if req.layout is None:
            return req
        named = self.layouts.get(req.layout)
        if named is None:
            raise InvalidInput(
                f"no layout {req.layout!r} in the configuration; known: "
                f"{', '.join(sorted(self.layouts)) or 'none'}",
                code="unknown_layout",
                layout=req.layout,
            )
        return named

    def _plan(self, info: GpuInfo, req: LayoutRequest) -> Plan:
        model = self.model(info)
        if not model.mig_supported:
            raise Conflict(f"{model.display_name} does not support MIG", code="mig_not_supported")
        req = self.resolve(req)
        current = self.current_layout(info)
        if req.counts is not None:
            target = solve_counts(model, current, req.counts)
        else:
            target = Layout(gpu_model=model.key, instances=req.instances or ())
            validate_layout(model, target)
        return plan(model, current, target)

    def _plan_view(self, info: GpuInfo, p: Plan) -> LayoutPlan:
        elsewhere = [
            (other.uuid, self.current_layout(other))
            for other in self.backend.list_gpus()
            if other.uuid != info.uuid and other.mig_supported and other.mig.current
        ]
        return plan_view(p, self.current_layout(info), elsewhere)

    def _drain_workloads(self, gpu: str, p: Plan) -> DrainReport:
        owners = sorted({inst.owner for inst in p.drain if inst.owner})
        claimed = [i for i in p.drain if is_process_owner(i.owner)]
        if claimed:
            raise Conflict(
                blocked_by_process(claimed[0]),
                code="gpu_claimed_by_process",
                owner=claimed[0].owner,
            )
        if not p.drain:
            return DrainReport(owners=owners, drained=True)
        if self._drain is None:
            log.warning("GPU %s: %s (%s)", gpu, DRAIN_NOT_WIRED, ", ".join(owners))
            return DrainReport(owners=owners, drained=False, note=DRAIN_NOT_WIRED)
        self._drain(gpu, p.drain)
        return DrainReport(owners=owners, drained=True)

    def apply(self, principal: Principal, gpu: str, req: LayoutRequest) -> LayoutApplied:
        principal.require_infra_admin()
        return self._apply(gpu, req)

    def apply_as_node(self, gpu: str, req: LayoutRequest) -> dict[str, Any]:
        """Apply on the node's own behalf (schedules); API callers go through apply.

        The report comes back as plain data, as schedules log and journal it.
        """
        report: dict[str, Any] = msgspec.to_builtins(self._apply(gpu, req))
        return report

    def _apply(self, gpu: str, req: LayoutRequest) -> LayoutApplied:
        with self.lock:
            info = self._info(gpu)
            if isinstance(req, LayoutApply) and req.expect is not None:
                check_unchanged(info.uuid, req.expect, self.current_layout(info))
            p = self._plan(info, req)
            target = plan_target(p)
            try:
                drained = self._drain_workloads(gpu, p)
            except TowerboxError as err:
                self._journal_failure(gpu, err)
                raise
            fault_point("gpu.apply.after_drain")
            try:
                self._run(gpu, p)
            except TowerboxError:
                self._resume_workloads(gpu)  # back on the old layout
                raise
            fault_point("gpu.apply.before_commit")
            self._commit(gpu, target, p)
            fault_point("gpu.apply.after_commit")
            drained = self._resume_workloads(gpu, drained)
        log.info("GPU %s: layout applied (%d operations)", gpu, len(p.ops), extra={"gpu": gpu})
        return LayoutApplied(plan=self._plan_view(info, p), layout=target, drain=drained)

    def _resume_workloads(self, gpu: str, drained: DrainReport | None = None) -> DrainReport:
        """Bind and restart what was drained; the drain report with how it went."""
        report = drained or DrainReport(owners=[], drained=False)
        if self._resume is None:
            return report
        try:
            resumed = self._resume(gpu)
        except TowerboxError as err:
            log.error("GPU %s: workloads not resumed: %s", gpu, err.message, extra={"gpu": gpu})
            return msgspec.structs.replace(
                report, resume_error=ProblemBrief(code=err.code, detail=err.message)
            )
        return msgspec.structs.replace(report, restarted=resumed.restarted, waiting=resumed.waiting)

    @staticmethod
    def _commit(gpu: str, target: Layout, p: Plan) -> None:
        """The new last good layout, its journal entry and one entry per operation."""
        with journal.write_transaction():
            GpuLayout.insert(
                gpu_uuid=gpu,
                gpu_model=target.gpu_model,
                layout=msgspec.json.encode(target).decode(),
            ).on_conflict_replace().execute()
            for op in p.ops:
                journal.append(_OP_KINDS[op.kind], "gpu", gpu, msgspec.to_builtins(op.instance))
            journal.append(
                "gpu.layout_applied",
                "gpu",
                gpu,
                {"layout": msgspec.to_builtins(target), "ops": len(p.ops)},
            )

    @staticmethod
    def _journal_failure(gpu: str, err: TowerboxError) -> None:
        with journal.write_transaction():
            journal.append(
                "gpu.layout_failed", "gpu", gpu, {"code": err.code, "detail": err.message}
            )

    def _run(self, gpu: str, p: Plan) -> None:
        """Run the operations; on a failure undo those done, in reverse, and re-raise."""
        done: list[tuple[OpKind, Instance, int | None]] = []
        ids = {(gi.profile, gi.start): gi.gpu_instance_id for gi in self.backend.instances(gpu)}
        try:
            for op in p.ops:
                inst = op.instance
                if op.kind is OpKind.DESTROY:
                    self.backend.destroy_instance(gpu, ids[inst.placement])
                    done.append((op.kind, inst, None))
                    fault_point("gpu.apply.after_destroy")  # between destroy and create
                else:
                    made = self.backend.create_instance(gpu, inst.profile, inst.start)
                    done.append((op.kind, inst, made.gpu_instance_id))
        except TowerboxError as err:
            self._undo(gpu, done)
            self._journal_failure(gpu, err)
            raise BackendError(
                f"applying the layout failed ({err.message}); the GPU is back on its last "
                "good layout",
                code="mig_apply_rolled_back",
                cause=err.code,
            ) from err

    def _undo(self, gpu: str, done: list[tuple[OpKind, Instance, int | None]]) -> None:
        for kind, inst, made_id in reversed(done):
            try:
                if kind is OpKind.CREATE and made_id is not None:
                    self.backend.destroy_instance(gpu, made_id)
                elif kind is OpKind.DESTROY:
                    self.backend.create_instance(gpu, inst.profile, inst.start)
            except TowerboxError as err:
                log.error(
                    "GPU %s: could not undo %s of %s: %s",
                    gpu,
                    kind.value,
                    inst.label,
                    err.message,
                    extra={"gpu": gpu},
                )

    def set_mig_mode(self, principal: Principal, gpu: str, enabled: bool) -> MigModeAnswer:
        """Ask for MIG on or off; the change waits for a GPU reset, which we never do."""
        principal.require_infra_admin()
        self._info(gpu)
        with self.lock:
            mode = self.backend.set_mig_mode(gpu, enabled)
            with journal.write_transaction():
                journal.append(
                    "gpu.mig_mode", "gpu", gpu, {"current": mode.current, "pending": mode.pending}
                )
        return MigModeAnswer(
            current=mode.current, pending=mode.pending, reset_needed=mode.current != mode.pending
        )

    def restore(self) -> None:
        """At start: bring every GPU back to its committed layout. A reboot (or GPU
        reset) lost all its instances: re-create them, vRAN first. An apply cut off by
        a crash left some of the plan done and nothing committed: undo that part, as
        the apply's own rollback would have."""
        for info in self.backend.list_gpus():
            layout = self.committed(info.uuid)
            if layout is None or not info.mig.current:
                continue
            have = {(gi.profile, gi.start): gi for gi in self.backend.instances(info.uuid)}
            want = {inst.placement for inst in layout.instances}
            if set(have) == want:
                continue
            for placement, gi in have.items():
                if placement not in want:
                    self._restore_op(
                        info.uuid, f"{placement[0]}@{placement[1]}", gi.gpu_instance_id
                    )
            ordered = sorted(layout.instances, key=lambda i: (not i.protected, i.start))
            for inst in ordered:
                if inst.placement not in have:
                    self._restore_op(info.uuid, inst.label, None, inst)
            why = "reset" if not have else "interrupted_apply"
            with journal.write_transaction():
                journal.append(
                    "gpu.layout_restored",
                    "gpu",
                    info.uuid,
                    {"layout": msgspec.to_builtins(layout), "after": why},
                )
            log.warning("GPU %s: committed layout restored (after a %s)", info.uuid, why)

    def _restore_op(
        self, gpu: str, label: str, destroy_id: int | None, create: Instance | None = None
    ) -> None:
        try:
            if create is not None:
                self.backend.create_instance(gpu, create.profile, create.start)
            elif destroy_id is not None:
                self.backend.destroy_instance(gpu, destroy_id)
        except TowerboxError as err:
            log.error(
                "GPU %s: could not restore %s: %s", gpu, label, err.message, extra={"gpu": gpu}
            )
