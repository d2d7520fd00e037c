"""What a layout change does to the workloads on the instances it changes, said before
it runs: the dry-run's answer per workload, by the same rules the apply follows.

A process's claim blocks the apply (a process cannot be drained: it must release the
slice itself). A drained VM is started again on the slice it gets by the binding rules
(``binding.choose``) in the new layout, or on another GPU's free slice, or it waits,
off, until a later layout gives it one. A VM is taken to ask for the profile and role
of the slice it holds now, as it got that slice by asking for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from appliance.domain.gpu.binding import choose, is_process_owner, with_owner, without_owner
from appliance.domain.gpu.layout import Instance, Layout

Effect = Literal["restart", "wait", "blocks"]


@dataclass(frozen=True)
class WorkloadEffect:
    owner: str
    kind: Literal["vm", "process"]
    instance: str  # the slice it holds now, e.g. "1g.10gb at slot 3"
    effect: Effect
    detail: str


def blocked_by_process(inst: Instance) -> str:
    """Why a process's claim stops a layout change; the apply's refusal says the same."""
    return (
        f"{inst.label} is claimed by {inst.owner}; the process must stop and release its "
        "claim before the slice can change"
    )


def workload_effects(
    drain: Sequence[Instance], target: Layout, elsewhere: Sequence[tuple[str, Layout]] = ()
) -> list[WorkloadEffect]:
    """Per owner of a drained instance: what the apply will do to it.

    ``elsewhere``: the other GPUs' current layouts (name, layout), where a VM with no
    slice left here may start instead.
    """
    drained = [i for i in drain if i.owner]
    after = target
    for inst in drained:
        after = without_owner(after, str(inst.owner))
    others = list(elsewhere)
    effects: list[WorkloadEffect] = []
    for inst in sorted(drained, key=lambda i: str(i.owner)):
        owner = str(inst.owner)
        if is_process_owner(owner):
            effects.append(
                WorkloadEffect(owner, "process", inst.label, "blocks", blocked_by_process(inst))
            )
            continue
        here = choose(after, owner, inst.profile, inst.role)
        if here is not None:
            after = with_owner(after, here.placement, owner)
            effects.append(
                WorkloadEffect(
                    owner, "vm", inst.label, "restart", f"shut down, then restarted on {here.label}"
                )
            )
            continue
        effects.append(_elsewhere_or_wait(owner, inst, others))
    return effects


def _elsewhere_or_wait(
    owner: str, inst: Instance, others: list[tuple[str, Layout]]
) -> WorkloadEffect:
    for n, (gpu, layout) in enumerate(others):
        there = choose(layout, owner, inst.profile, inst.role)
        if there is not None:
            others[n] = (gpu, with_owner(layout, there.placement, owner))
            return WorkloadEffect(
                owner,
                "vm",
                inst.label,
                "restart",
                f"shut down, then restarted on {there.label} of GPU {gpu}",
            )
    return WorkloadEffect(
        owner,
        "vm",
        inst.label,
        "wait",
        f"shut down and left off: no free {inst.profile} {inst.role.value} slice after the "
        "apply; it waits (journalled) until a later layout gives it one",
    )


def changed_since(expected: Layout, current: Layout) -> list[str]:
    """How the GPU's layout differs from the one a dry-run saw, one line per change."""
    was = expected.by_placement()
    now = current.by_placement()
    lines = [f"{now[p].label} was created" for p in sorted(now.keys() - was.keys())]
    lines += [f"{was[p].label} was destroyed" for p in sorted(was.keys() - now.keys())]
    for p in sorted(was.keys() & now.keys()):
        before, after = was[p], now[p]
        if before.owner != after.owner:
            lines.append(
                f"{after.label} is now held by {after.owner or 'nobody'} "
                f"(was {before.owner or 'free'})"
            )
        elif before.role is not after.role:
            lines.append(f"{after.label} is now {after.role.value} (was {before.role.value})")
    return lines


def layout_drift(committed: Layout, current: Layout) -> list[str]:
    """Where the GPU no longer has the layout the node committed (a driver reset, a
    change made past Towerbox), one line per instance."""
    want = committed.by_placement()
    have = current.by_placement()
    lines = [
        f"{want[p].label} is committed but missing on the GPU"
        for p in sorted(want.keys() - have.keys())
    ]
    lines += [
        f"{have[p].label} is on the GPU but not committed"
        for p in sorted(have.keys() - want.keys())
    ]
    return lines
