"""Place a target given only as profile counts, keeping the most running instances.

An operator (or a schedule) may ask for "four 1g.10gb and one 2g.20gb" without
saying where. The solver finds start slots for them beside the protected instances,
preferring placements that already exist on the GPU so that the plan destroys as
little as possible; among equally good answers it keeps instances that have an
owner. The answer is deterministic: the search tries existing placements first, then
free slots from the lowest. A GPU has at most eight memory slots, so an exhaustive
search with pruning answers in well under a millisecond.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from appliance.domain.gpu.catalog import GpuModel, MigProfile
from appliance.domain.gpu.layout import (
    Instance,
    Layout,
    MigRole,
    check_compute,
    check_counts,
    validate_layout,
)
from towerbox_core.errors import InvalidInput


def _is_protected(inst: Instance) -> bool:
    return inst.protected


class _Search:
    def __init__(self, items: list[MigProfile], reusable: Mapping[tuple[str, int], Instance]):
        self.items = items
        self.reusable = reusable
        self.best: list[int] | None = None
        self.best_score = (-1, -1)
        # No answer can keep more than this; reaching it ends the search.
        self.ceiling = (
            min(len(items), len(reusable)),
            sum(1 for inst in reusable.values() if inst.owner is not None),
        )

    def _starts(self, profile: MigProfile, lowest: int) -> list[int]:
        starts = [s for s in profile.starts if s >= lowest]
        # Existing placements first: the first complete answer is then a good bound.
        return sorted(starts, key=lambda s: ((profile.name, s) not in self.reusable, s))

    def run(self, index: int, occupied: int, chosen: list[int], score: tuple[int, int]) -> None:
        if self.best_score >= self.ceiling:
            return
        if score[0] + len(self.items) - index < self.best_score[0]:
            return
        if index == len(self.items):
            if score > self.best_score:
                self.best, self.best_score = list(chosen), score
            return
        profile = self.items[index]
        same_as_previous = index > 0 and self.items[index - 1] is profile
        lowest = chosen[-1] + 1 if same_as_previous else 0
        for start in self._starts(profile, lowest):
            mask = ((1 << profile.size) - 1) << start
            if occupied & mask:
                continue
            kept = self.reusable.get((profile.name, start))
            gain = (1, int(kept.owner is not None)) if kept is not None else (0, 0)
            chosen.append(start)
            self.run(index + 1, occupied | mask, chosen, (score[0] + gain[0], score[1] + gain[1]))
            chosen.pop()


def _wanted_profiles(model: GpuModel, counts: Mapping[str, int]) -> list[MigProfile]:
    wanted: list[MigProfile] = []
    for name, count in sorted(counts.items()):
        profile = model.profile(name)
        if count < 0:
            raise InvalidInput(
                f"count for {name} must not be negative (got {count})",
                code="invalid_mig_count",
                profile=name,
                count=count,
            )
        wanted += [profile] * count
    # Big instances first: they have the fewest places to go, so the search fails early.
    wanted.sort(key=lambda p: (-p.size, p.starts, p.name))
    return wanted


def solve_counts(
    model: GpuModel,
    current: Layout,
    counts: Mapping[str, int],
    *,
    protected: Callable[[Instance], bool] = _is_protected,
) -> Layout:
    """A layout with the protected instances of current plus ``counts`` more instances.

    ``counts`` maps profile name to how many instances are wanted besides the
    protected ones (by default the vRAN instances, which stay exactly where they
    are). New instances are B2B and unowned; reused ones keep their owner.
    Raises InvalidInput: unknown_mig_profile, mig_count_exceeded,
    mig_compute_exceeded, or mig_layout_unsolvable when no placement fits.
    """
    validate_layout(model, current)
    fixed = [inst for inst in current.instances if protected(inst)]
    items = _wanted_profiles(model, counts)
    probe = fixed + [Instance(p.name, p.starts[0]) for p in items]
    check_counts(model, probe)
    check_compute(model, probe)

    occupied = 0
    for inst in fixed:
        size = model.profile(inst.profile).size
        occupied |= ((1 << size) - 1) << inst.start
    reusable = {inst.placement: inst for inst in current.instances if not protected(inst)}
    search = _Search(items, reusable)
    search.run(0, occupied, [], (0, 0))
    if search.best is None:
        wanted = ", ".join(f"{n} of {name}" for name, n in sorted(counts.items()) if n) or "nothing"
        beside = ", ".join(inst.label for inst in fixed) or "nothing"
        raise InvalidInput(
            f"no placement of {wanted} fits on {model.display_name} beside {beside}",
            code="mig_layout_unsolvable",
            counts=dict(counts),
            protected=[inst.label for inst in fixed],
        )
    placed = [
        reusable.get((profile.name, start)) or Instance(profile.name, start, MigRole.B2B)
        for profile, start in zip(items, search.best, strict=True)
    ]
    return Layout(model.key, tuple(fixed + placed)).in_slot_order()
