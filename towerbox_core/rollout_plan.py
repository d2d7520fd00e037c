"""The rolling-update planner: which replica to create, await and delete, in order.

Pure. Each round deletes up to ``max_unavailable`` old replicas first, creates as
many new ones as the surge and those deletions allow, waits for every new one to be
healthy, then deletes the old ones the new ones replace. With surge 1 and
unavailable 0, a role of N replicas never has fewer than N healthy.

A GPU-bound role needs a free MIG slice for each surge replica; with none free it
replaces in place (surge 0, unavailable 1), and the plan says so.
"""

from __future__ import annotations

from towerbox_core.api.services import PlanStep, RolloutPlan
from towerbox_core.errors import InvalidInput

_MAX_STEP = 32
_STEP_WORDS = {"create": "make", "await_health": "wait for the health check of", "delete": "delete"}


def plan_rollout(
    replicas: int,
    *,
    max_surge: int = 1,
    max_unavailable: int = 0,
    gpu_bound: bool = False,
    free_gpu_slices: int = 0,
) -> RolloutPlan:
    """The steps that replace ``replicas`` old replicas by as many new ones."""
    for value, field in ((max_surge, "max_surge"), (max_unavailable, "max_unavailable")):
        if not 0 <= value <= _MAX_STEP:
            raise InvalidInput(
                f"{field} must be between 0 and {_MAX_STEP}", code="invalid_rollout", field=field
            )
    if max_surge + max_unavailable == 0:
        raise InvalidInput(
            "max_surge and max_unavailable cannot both be 0: nothing could move",
            code="invalid_rollout",
            field="max_surge",
        )
    surge, unavailable, note = max_surge, max_unavailable, ""
    if gpu_bound and surge > free_gpu_slices:
        surge = free_gpu_slices
        if surge == 0:
            unavailable = max(unavailable, 1)
            note = (
                "the role is GPU-bound and no MIG slice of its profile is free for a surge "
                "replica: replicas are replaced in place, one at a time (max_unavailable 1)"
            )
        else:
            note = f"the role is GPU-bound: surge limited to the {surge} free MIG slice(s)"
    steps: list[PlanStep] = []
    old = [f"old-{i}" for i in range(replicas)]
    made = 0
    while old:
        down = old[: min(unavailable, len(old))]
        old = old[len(down) :]
        steps += [PlanStep("delete", r) for r in down]
        n = min(surge + len(down), len(down) + len(old))
        new = [f"new-{made + i}" for i in range(n)]
        made += n
        steps += [PlanStep("create", r) for r in new]
        steps += [PlanStep("await_health", r) for r in new]
        replaced = old[: n - len(down)]
        old = old[len(replaced) :]
        steps += [PlanStep("delete", r) for r in replaced]
    return RolloutPlan(
        replicas=replicas,
        max_surge=surge,
        max_unavailable=unavailable,
        min_healthy=max(0, replicas - unavailable),
        steps=steps,
        note=note,
    )


def plan_in_words(plan: RolloutPlan) -> list[str]:
    """A plan for a person, one line per step after the rule it keeps, for the CLI
    and the UI alike."""
    head = (
        f"{plan.replicas} replica(s), surge {plan.max_surge}, unavailable "
        f"{plan.max_unavailable}: at least {plan.min_healthy} healthy at every moment"
    )
    lines = [head] + ([plan.note] if plan.note else [])
    for n, step in enumerate(plan.steps, 1):
        lines.append(f"{n}. {_STEP_WORDS.get(step.action, step.action)} {_replica(step.replica)}")
    return lines


def _replica(handle: str) -> str:
    """``new-0`` (the plan counts from 0) as "new replica 1"."""
    age, _, index = handle.partition("-")
    return f"{age} replica {int(index) + 1}" if index.isdigit() else handle
