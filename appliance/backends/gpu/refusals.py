"""What a GPU refuses when asked for one more MIG instance, named the same way for
both backends: the simulator raises these itself, the NVML backend uses them to say
which resource NVML_ERROR_INSUFFICIENT_RESOURCES was about.
"""

from __future__ import annotations

from collections.abc import Iterable

from appliance.domain.gpu.catalog import GpuModel, MigProfile
from towerbox_core.errors import InsufficientResources, InvalidInput, TowerboxError


def placement_refusal(model: GpuModel, profile: MigProfile, start: int) -> InvalidInput | None:
    if start in profile.starts:
        return None
    allowed = ", ".join(str(s) for s in profile.starts)
    return InvalidInput(
        f"{profile.name} cannot start at slot {start}; allowed: {allowed}",
        code="invalid_mig_placement",
        profile=profile.name,
        start=start,
        allowed=list(profile.starts),
        gpu_model=model.key,
    )


def creation_refusal(
    model: GpuModel,
    existing: Iterable[tuple[MigProfile, int]],
    profile: MigProfile,
    start: int,
) -> TowerboxError | None:
    """Why profile at start cannot join the existing (profile, start) instances, if it cannot."""
    refusal: TowerboxError | None = placement_refusal(model, profile, start)
    if refusal is not None:
        return refusal
    existing = list(existing)
    wanted = set(profile.slots(start))
    for other, other_start in existing:
        shared = wanted & set(other.slots(other_start))
        if shared:
            return InsufficientResources(
                f"cannot create {profile.name} at slot {start}: memory slot "
                f"{min(shared)} is taken by {other.name} at slot {other_start}",
                code="mig_slot_occupied",
                profile=profile.name,
                start=start,
                occupied_by=f"{other.name} at slot {other_start}",
            )
    same = sum(1 for other, _ in existing if other.name == profile.name)
    if same >= profile.max_count:
        return InsufficientResources(
            f"cannot create {profile.name}: {same} of at most {profile.max_count} exist",
            code="mig_count_exceeded",
            profile=profile.name,
            max_count=profile.max_count,
        )
    media = sum(1 for other, _ in existing if other.media)
    if profile.media and media >= model.media_extended_max:
        return InsufficientResources(
            f"cannot create {profile.name}: the media extensions are taken",
            code="mig_count_exceeded",
            profile=profile.name,
            max_count=model.media_extended_max,
        )
    used = sum(other.compute_slices for other, _ in existing)
    if used + profile.compute_slices > model.compute_slices:
        return InsufficientResources(
            f"cannot create {profile.name}: {model.compute_slices - used} of "
            f"{model.compute_slices} compute slices are free",
            code="mig_compute_exceeded",
            profile=profile.name,
            free=model.compute_slices - used,
        )
    return None
