"""Every valid MIG layout of a board: for benchmarks, tests and "what fits" answers.

A layout here is any set of correctly placed instances that share no memory slot and
keep the profile counts, media-extension count and compute slices within the board,
maximal or not, the empty one included. With the fixed instances given (a vRAN
slice, say) only the layouts that contain them are produced.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence

from appliance.domain.gpu.catalog import GpuModel, MigProfile
from appliance.domain.gpu.layout import Instance, Layout, validate_layout


def _candidates(model: GpuModel) -> list[tuple[MigProfile, int, int]]:
    """(profile, start, slot mask) for every allowed placement, in slot order."""
    found = [
        (profile, start, ((1 << profile.size) - 1) << start)
        for profile in model.profiles
        for start in profile.starts
    ]
    found.sort(key=lambda c: (c[1], c[0].name))
    return found


def iter_layouts(model: GpuModel, fixed: Sequence[Instance] = ()) -> Iterator[Layout]:
    """Yield each valid layout of model that contains the fixed instances once."""
    validate_layout(model, Layout(model.key, tuple(fixed)))
    candidates = _candidates(model)
    counts = Counter(inst.profile for inst in fixed)
    media = sum(1 for inst in fixed if model.profile(inst.profile).media)
    compute = sum(model.profile(inst.profile).compute_slices for inst in fixed)
    occupied = 0
    for inst in fixed:
        occupied |= ((1 << model.profile(inst.profile).size) - 1) << inst.start

    chosen: list[Instance] = list(fixed)

    def walk(index: int, occupied: int, compute: int, media: int) -> Iterator[Layout]:
        yield Layout(model.key, tuple(chosen))
        for i in range(index, len(candidates)):
            profile, start, mask = candidates[i]
            if occupied & mask or counts[profile.name] >= profile.max_count:
                continue
            if compute + profile.compute_slices > model.compute_slices:
                continue
            extra_media = 1 if profile.media else 0
            if media + extra_media > model.media_extended_max:
                continue
            counts[profile.name] += 1
            chosen.append(Instance(profile.name, start))
            yield from walk(
                i + 1, occupied | mask, compute + profile.compute_slices, media + extra_media
            )
            chosen.pop()
            counts[profile.name] -= 1

    yield from walk(0, occupied, compute, media)


def all_layouts(model: GpuModel, fixed: Sequence[Instance] = ()) -> list[Layout]:
    return list(iter_layouts(model, fixed))
