"""A GPU layout plan as the API answers it: the operations, what each workload on a
changing instance will go through (restarted where, left waiting, or blocking the
apply), and the layout the plan starts from, for the apply to check it still holds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

from appliance.domain.gpu.effects import changed_since, workload_effects
from appliance.domain.gpu.layout import Layout
from appliance.domain.gpu.planner import Plan
from towerbox_core.api.gpus import LayoutPlan, PlanOp, ProblemBrief, WorkloadPlan
from towerbox_core.errors import Conflict


def plan_target(p: Plan) -> Layout:
    """The layout a plan leads to (kept and created instances, in slot order)."""
    instances = sorted(p.kept + p.creates, key=lambda i: (i.start, i.profile))
    return Layout(gpu_model=p.gpu_model, instances=tuple(instances))


def plan_view(p: Plan, current: Layout, elsewhere: Sequence[tuple[str, Layout]]) -> LayoutPlan:
    """``elsewhere``: the other GPUs' current layouts, where a drained VM may land."""
    effects = workload_effects(p.drain, plan_target(p), elsewhere)
    blocking = next((e for e in effects if e.effect == "blocks"), None)
    return LayoutPlan(
        ops=[
            PlanOp(
                op.kind.value,
                op.instance.profile,
                op.instance.start,
                op.instance.role,
                op.instance.owner,
            )
            for op in p.ops
        ],
        kept=list(p.kept),
        drain=list(p.drain),
        empty=p.empty,
        workloads=[WorkloadPlan(**asdict(e)) for e in effects],
        blocked=(
            None
            if blocking is None
            else ProblemBrief(code="gpu_claimed_by_process", detail=blocking.detail)
        ),
        current=current,
    )


def check_unchanged(gpu: str, expected: Layout, current: Layout) -> None:
    """Refuse an apply whose dry-run saw another layout, saying what changed."""
    changes = changed_since(expected.in_slot_order(), current)
    if changes:
        raise Conflict(
            f"GPU {gpu} changed since the dry-run: {'; '.join(changes)}; "
            "run the dry-run again and check its plan",
            code="gpu_changed_since_plan",
            changes=changes,
        )
