"""MIG layouts: which instances a GPU is split into, and the rules a layout must keep.

A layout names each instance by profile and start slot, with its role (the protected
vRAN slice or a best-effort B2B slice) and the workload that owns it. The checks here
are the ones the hardware makes, stated in the operator's terms before anything is
sent to a GPU.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from appliance.domain.gpu.catalog import GpuModel
from towerbox_core.api.gpus import Instance, Layout, MigRole
from towerbox_core.errors import InvalidInput


def _refuse(message: str, code: str, **extra: object) -> InvalidInput:
    return InvalidInput(message, code=code, **extra)


def check_placement(model: GpuModel, instance: Instance) -> None:
    """The profile exists on this board and may start at this slot."""
    profile = model.profile(instance.profile)
    if instance.start not in profile.starts:
        allowed = ", ".join(str(s) for s in profile.starts)
        raise _refuse(
            f"{profile.name} cannot start at slot {instance.start}; allowed: {allowed}",
            "invalid_mig_placement",
            profile=profile.name,
            start=instance.start,
            allowed=list(profile.starts),
        )


def check_counts(model: GpuModel, instances: Iterable[Instance]) -> None:
    """No profile over its max count, no more media-extended instances than the board has."""
    instances = list(instances)
    counts = Counter(inst.profile for inst in instances)
    for name, count in sorted(counts.items()):
        profile = model.profile(name)
        if count > profile.max_count:
            raise _refuse(
                f"at most {profile.max_count} instance(s) of {name} fit on "
                f"{model.display_name}; the layout has {count}",
                "mig_count_exceeded",
                profile=name,
                count=count,
                max_count=profile.max_count,
            )
    media = [inst for inst in instances if model.profile(inst.profile).media]
    if len(media) > model.media_extended_max:
        names = ", ".join(inst.label for inst in media)
        raise _refuse(
            f"at most {model.media_extended_max} instance(s) with media extensions fit on "
            f"{model.display_name}; the layout has {len(media)}: {names}",
            "mig_count_exceeded",
            count=len(media),
            max_count=model.media_extended_max,
        )


def check_overlaps(model: GpuModel, instances: Iterable[Instance]) -> None:
    """No two instances share a memory slot."""
    owner_of: dict[int, Instance] = {}
    for inst in sorted(instances, key=lambda i: (i.start, i.profile)):
        for slot in model.profile(inst.profile).slots(inst.start):
            other = owner_of.get(slot)
            if other is not None:
                raise _refuse(
                    f"{inst.label} overlaps {other.label} on memory slot {slot}",
                    "mig_overlap",
                    instances=[other.label, inst.label],
                    slot=slot,
                )
            owner_of[slot] = inst


def check_compute(model: GpuModel, instances: Iterable[Instance]) -> None:
    used = sum(model.profile(inst.profile).compute_slices for inst in instances)
    if used > model.compute_slices:
        raise _refuse(
            f"the layout uses {used} compute slices; {model.display_name} has "
            f"{model.compute_slices}",
            "mig_compute_exceeded",
            used=used,
            total=model.compute_slices,
        )


def validate_layout(model: GpuModel, layout: Layout) -> None:
    """Refuse a layout the board cannot hold; every refusal is InvalidInput (422)."""
    if layout.gpu_model != model.key:
        raise _refuse(
            f"layout is for {layout.gpu_model!r}, the GPU is {model.key!r}",
            "mig_model_mismatch",
            gpu_model=layout.gpu_model,
            expected=model.key,
        )
    if not model.mig_supported:
        raise _refuse(
            f"{model.display_name} does not support MIG",
            "mig_not_supported",
            gpu_model=model.key,
        )
    for inst in layout.instances:
        check_placement(model, inst)
    check_counts(model, layout.instances)
    check_overlaps(model, layout.instances)
    check_compute(model, layout.instances)


__all__ = ["Instance", "Layout", "MigRole", "check_counts", "check_placement", "validate_layout"]
