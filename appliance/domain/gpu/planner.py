"""Turn the current MIG layout and a target layout into the fewest safe operations.

An instance is identified on the GPU by profile and start slot; one present in both
layouts is kept and never touched. Everything else in the current layout is
destroyed and everything else in the target is created, which is the smallest set
of operations that reaches the target. Destroys come first so that the slots they
free are there for the creates. The vRAN instance is protected: a plan that would
destroy, move, demote or hand it to another owner is refused.

The plan is pure data: the service that applies it drains the workloads listed in
``drain``, runs ``ops`` in order through a GPU backend and rolls back on failure.
"""

from __future__ import annotations

import enum

import msgspec

from appliance.domain.gpu.catalog import GpuModel
from appliance.domain.gpu.layout import Instance, Layout, MigRole, validate_layout
from appliance.domain.gpu.solver import solve_counts
from towerbox_core.errors import Conflict

__all__ = ["MigOp", "OpKind", "Plan", "check_protected", "plan", "solve_counts"]


class OpKind(enum.StrEnum):
    DESTROY = "destroy"
    CREATE = "create"


class MigOp(msgspec.Struct, frozen=True):
    kind: OpKind
    instance: Instance


class Plan(msgspec.Struct, frozen=True):
    gpu_model: str
    # Destroys first, then creates; run them in this order.
    ops: tuple[MigOp, ...]
    # Instances present in both layouts (target side): untouched on the GPU.
    kept: tuple[Instance, ...]
    # Kept instances whose owner changes (target side): the GPU is untouched, the
    # workload on it is not.
    reassigned: tuple[Instance, ...]
    # Current instances whose workloads must stop before the ops run: every
    # destroyed or reassigned instance that has an owner. Never a vRAN instance.
    drain: tuple[Instance, ...]

    @property
    def destroys(self) -> tuple[Instance, ...]:
        return tuple(op.instance for op in self.ops if op.kind is OpKind.DESTROY)

    @property
    def creates(self) -> tuple[Instance, ...]:
        return tuple(op.instance for op in self.ops if op.kind is OpKind.CREATE)

    @property
    def empty(self) -> bool:
        return not self.ops and not self.reassigned


def _protected_refusal(inst: Instance, reason: str) -> Conflict:
    owner = f" (owner {inst.owner})" if inst.owner else ""
    return Conflict(
        f"the vRAN instance {inst.label}{owner} is protected: the target would {reason}",
        code="vran_protected",
        instance=inst.label,
        owner=inst.owner,
        reason=reason,
    )


def check_protected(current: Layout, target: Layout) -> None:
    """Refuse a target that does not keep every vRAN instance exactly as it is."""
    wanted = target.by_placement()
    for inst in current.instances:
        if not inst.protected:
            continue
        same = wanted.get(inst.placement)
        if same is None:
            moved = [
                t
                for t in target.instances
                if t.protected and t.profile == inst.profile and t.owner == inst.owner
            ]
            if moved:
                raise _protected_refusal(inst, f"move it to slot {moved[0].start}")
            raise _protected_refusal(inst, "destroy it")
        if same.role is not MigRole.VRAN:
            raise _protected_refusal(inst, f"change its role to {same.role}")
        if same.owner != inst.owner:
            raise _protected_refusal(inst, f"hand it to owner {same.owner}")


def plan(model: GpuModel, current: Layout, target: Layout) -> Plan:
    """The operations that turn current into target; both must be valid layouts."""
    validate_layout(model, current)
    validate_layout(model, target)
    check_protected(current, target)

    have = current.by_placement()
    want = target.by_placement()
    kept = [inst for key, inst in want.items() if key in have]
    destroyed = sorted(
        (inst for key, inst in have.items() if key not in want),
        key=lambda i: (i.start, i.profile),
    )
    # Larger instances first, as nvidia-smi users do; with explicit placements the
    # order among creates does not change the outcome.
    created = sorted(
        (inst for key, inst in want.items() if key not in have),
        key=lambda i: (-model.profile(i.profile).size, i.start, i.profile),
    )
    reassigned = [inst for inst in kept if have[inst.placement].owner != inst.owner]
    drain = [inst for inst in destroyed if inst.owner is not None]
    drain += [have[i.placement] for i in reassigned if have[i.placement].owner is not None]

    ops = [MigOp(OpKind.DESTROY, inst) for inst in destroyed]
    ops += [MigOp(OpKind.CREATE, inst) for inst in created]
    return Plan(
        gpu_model=model.key,
        ops=tuple(ops),
        kept=tuple(sorted(kept, key=lambda i: (i.start, i.profile))),
        reassigned=tuple(sorted(reassigned, key=lambda i: (i.start, i.profile))),
        drain=tuple(drain),
    )
