"""GPU routes: the node's GPUs, MIG layouts (plan, apply), schedules and slice claims.

``MigRole``, ``Instance``, ``Layout`` and ``LayoutRequest`` are both the wire shapes
and the appliance's domain values: the planner works on the same structs the API
takes and returns.
"""

from __future__ import annotations

import enum

import msgspec

from towerbox_core.errors import InvalidInput


class MigRole(enum.StrEnum):
    VRAN = "vran"  # the RAN slice: protected, never destroyed or moved by a plan
    B2B = "b2b"  # best-effort inference for business tenants


class Instance(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    profile: str
    start: int
    role: MigRole = MigRole.B2B
    owner: str | None = None

    @property
    def placement(self) -> tuple[str, int]:
        """What identifies the instance on the GPU: profile and start slot."""
        return (self.profile, self.start)

    @property
    def label(self) -> str:
        return f"{self.profile} at slot {self.start}"

    @property
    def protected(self) -> bool:
        return self.role is MigRole.VRAN


class Layout(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    gpu_model: str
    instances: tuple[Instance, ...] = ()

    def by_placement(self) -> dict[tuple[str, int], Instance]:
        return {inst.placement: inst for inst in self.instances}

    def in_slot_order(self) -> Layout:
        """The same layout with its instances in slot order (stable for equality)."""
        ordered = tuple(sorted(self.instances, key=lambda i: (i.start, i.profile)))
        return Layout(self.gpu_model, ordered)


class LayoutRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What an operator, a schedule or the configuration asks a GPU to become.

    Exactly one of: exact instances, B2B profile counts solved around the vRAN slice,
    or the name of a layout from the ``[gpu.layouts]`` configuration table.
    """

    instances: tuple[Instance, ...] | None = None
    counts: dict[str, int] | None = None
    layout: str | None = None

    def check(self, *, named: bool = True) -> None:
        """Refuse a request that gives none or several kinds of target."""
        given = [k for k in ("instances", "counts", "layout") if getattr(self, k) is not None]
        kinds = "instances, counts or layout" if named else "instances or counts"
        if len(given) != 1 or (not named and self.layout is not None):
            raise InvalidInput(f"give exactly one of {kinds}", code="invalid_layout_request")


class LayoutApply(LayoutRequest, frozen=True, forbid_unknown_fields=True):
    """POST /api/v1/gpus/{uuid}/apply: a target, and optionally the layout its dry-run
    saw (the plan's ``current``). When the GPU has changed since, the apply is refused
    with ``gpu_changed_since_plan`` and what changed, rather than doing something the
    operator did not see planned."""

    expect: Layout | None = None


class MigState(msgspec.Struct, frozen=True):
    supported: bool
    current: bool
    pending: bool  # what the mode becomes at the next GPU reset


class GpuView(msgspec.Struct, frozen=True):
    uuid: str
    name: str
    model: str | None  # catalog key; None for a board the catalog lacks
    pci_address: str
    numa_node: int | None
    memory_mib: int
    mig: MigState
    layout: Layout | None  # what the GPU has now, roles and owners included
    # Where it differs from the committed layout the node re-creates (empty: none).
    drift: list[str] = msgspec.field(default_factory=list)


class GpuList(msgspec.Struct, frozen=True):
    backend: str  # the GPU backend line: "nvml (...)" or "simulated H100 (...)"
    gpus: list[GpuView]


class MigProfileView(msgspec.Struct, frozen=True):
    name: str  # "3g.40gb"
    profile_id: int
    compute_slices: int
    memory_mib: int
    size: int  # memory slots covered
    starts: tuple[int, ...]  # possible placements (start slots), free or not
    max_count: int
    remaining: int  # how many more could be created now


class MigModeRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    enabled: bool


class MigModeAnswer(msgspec.Struct, frozen=True):
    current: bool
    pending: bool
    reset_needed: bool


class PlanOp(msgspec.Struct, frozen=True):
    op: str  # "destroy" or "create"
    profile: str
    start: int
    role: MigRole
    owner: str | None


class ProblemBrief(msgspec.Struct, frozen=True):
    code: str
    detail: str


class WorkloadPlan(msgspec.Struct, frozen=True):
    """What an apply does to one workload on an instance it changes."""

    owner: str  # a VM name, or process:NAME for a process's claim
    kind: str  # "vm" or "process"
    instance: str  # the slice it holds now
    effect: str  # "restart" (on the slice in detail), "wait" (left off), "blocks" (the apply)
    detail: str


class LayoutPlan(msgspec.Struct, frozen=True):
    ops: list[PlanOp]
    kept: list[Instance]
    drain: list[Instance]  # instances whose workloads stop first
    empty: bool
    workloads: list[WorkloadPlan] = msgspec.field(default_factory=list)
    # Set when the apply would be refused as things stand (e.g. a process's claim).
    blocked: ProblemBrief | None = None
    current: Layout | None = None  # what the plan starts from: send it back as ``expect``


class WaitingVm(msgspec.Struct, frozen=True):
    vm: str
    code: str
    detail: str


class ResumeReport(msgspec.Struct, frozen=True):
    restarted: list[str]
    waiting: list[WaitingVm]  # VMs with no place in the new layout yet


class DrainReport(msgspec.Struct, frozen=True):
    """Who was moved off the changed instances, and how they came back."""

    owners: list[str]
    drained: bool
    note: str | msgspec.UnsetType = msgspec.UNSET
    restarted: list[str] | msgspec.UnsetType = msgspec.UNSET
    waiting: list[WaitingVm] | msgspec.UnsetType = msgspec.UNSET
    resume_error: ProblemBrief | msgspec.UnsetType = msgspec.UNSET


class LayoutApplied(msgspec.Struct, frozen=True):
    plan: LayoutPlan
    layout: Layout
    drain: DrainReport


class Schedule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    gpu: str  # GPU UUID
    cron: str  # five fields, UTC: "0 22 * * *" is 22:00 every day
    target: LayoutRequest


class ScheduleView(msgspec.Struct, frozen=True):
    name: str
    source: str  # "config" or "api"
    gpu: str
    cron: str
    target: LayoutRequest
    next_run: str | None


class ClaimRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A slice for a process or container, which gets the MIG device UUID."""

    name: str
    profile: str | None = None
    role: MigRole = MigRole.B2B
    gpu: str | None = None
    # The tenant whose claim this is: a tenant's users claim for their own (the
    # default); an infra-admin may name one, or leave it out for the node's own claim.
    tenant: str | None = None


class GpuClaim(msgspec.Struct, frozen=True):
    owner: str | None  # a VM's name, "process:NAME", or a tenant's "process:TENANT/NAME"
    gpu: str
    pci_address: str
    profile: str
    start: int
    role: str
    mig_uuid: str | None
    # What a process or container sets to see only its slice.
    env: dict[str, str]
