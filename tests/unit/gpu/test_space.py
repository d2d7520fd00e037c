"""Listing every valid layout, checked against brute force over all placement subsets."""

from __future__ import annotations

import itertools

import pytest

from appliance.domain.gpu.catalog import GpuModel, default_catalog
from appliance.domain.gpu.layout import Instance, Layout, MigRole, validate_layout
from appliance.domain.gpu.space import all_layouts
from towerbox_core.errors import InvalidInput

CATALOG = default_catalog()


def brute_force(model: GpuModel, fixed: tuple[Instance, ...]) -> set[frozenset[tuple[str, int]]]:
    taken = set()
    for inst in fixed:
        taken |= set(model.profile(inst.profile).slots(inst.start))
    candidates = [
        Instance(p.name, s) for p in model.profiles for s in p.starts if not taken & set(p.slots(s))
    ]
    found = set()
    for n in range(len(candidates) + 1):
        for subset in itertools.combinations(candidates, n):
            value = Layout(model.key, fixed + subset)
            try:
                validate_layout(model, value)
            except InvalidInput:
                continue
            found.add(frozenset(value.by_placement()))
    return found


@pytest.mark.parametrize(
    ("key", "fixed", "expected"),
    [
        ("A30-24GB", (), 76),
        ("H100-80GB", (Instance("3g.40gb", 4, MigRole.VRAN),), 86),
        ("A100-40GB", (Instance("3g.20gb", 4, MigRole.VRAN),), 86),
    ],
)
def test_listing_matches_brute_force(key: str, fixed: tuple[Instance, ...], expected: int) -> None:
    model = CATALOG.model(key)
    listed = all_layouts(model, fixed)
    assert len(listed) == expected
    as_sets = {frozenset(layout.by_placement()) for layout in listed}
    assert len(as_sets) == len(listed)  # no layout twice
    assert as_sets == brute_force(model, fixed)


def test_every_listed_layout_is_valid_and_keeps_the_fixed_instance() -> None:
    model = CATALOG.model("H200-141GB")
    vran = Instance("3g.71gb", 4, MigRole.VRAN, "du")
    listed = all_layouts(model, [vran])
    for layout in listed:
        validate_layout(model, layout)
        assert layout.instances[0] == vran
    assert len(all_layouts(model)) == 2319


def test_invalid_fixed_instances_are_refused() -> None:
    with pytest.raises(InvalidInput):
        all_layouts(CATALOG.model("H100-80GB"), [Instance("3g.40gb", 2)])
