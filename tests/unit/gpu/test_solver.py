"""solve_counts: a target given as counts, placed to keep the most running instances."""

from __future__ import annotations

from collections import Counter

import pytest

from appliance.domain.gpu.catalog import default_catalog
from appliance.domain.gpu.layout import Instance, Layout, MigRole, validate_layout
from appliance.domain.gpu.planner import plan, solve_counts
from appliance.domain.gpu.space import all_layouts
from towerbox_core.errors import InvalidInput

H100 = default_catalog().model("H100-80GB")
VRAN = Instance("3g.40gb", 4, MigRole.VRAN, "du-1")


def layout(*instances: Instance) -> Layout:
    return Layout("H100-80GB", instances)


def counts(value: Layout) -> Counter[str]:
    return Counter(i.profile for i in value.instances if not i.protected)


def test_keeps_running_instances_where_they_are() -> None:
    current = layout(VRAN, Instance("1g.10gb", 2, owner="a"), Instance("1g.10gb", 3, owner="b"))
    target = solve_counts(H100, current, {"1g.10gb": 3})
    assert target == layout(
        Instance("1g.10gb", 0), Instance("1g.10gb", 2, owner="a"),
        Instance("1g.10gb", 3, owner="b"), VRAN,
    )  # fmt: skip
    assert plan(H100, current, target).destroys == ()


def test_vran_always_kept_and_new_instances_are_unowned_b2b() -> None:
    current = layout(VRAN, Instance("2g.20gb", 0, owner="t1"))
    target = solve_counts(H100, current, {"4g.40gb": 1})
    assert target == layout(Instance("4g.40gb", 0), VRAN)
    assert target.instances[0].role is MigRole.B2B


def test_prefers_owned_instances_on_a_tie() -> None:
    current = layout(VRAN, Instance("2g.20gb", 0), Instance("2g.20gb", 2, owner="t2"))
    target = solve_counts(H100, current, {"2g.20gb": 1, "1g.10gb": 2})
    assert Instance("2g.20gb", 2, owner="t2") in target.instances


def test_protected_predicate_can_be_widened() -> None:
    current = layout(VRAN, Instance("1g.10gb", 3, owner="pinned"))
    target = solve_counts(
        H100, current, {"1g.20gb": 1}, protected=lambda i: i.protected or i.owner == "pinned"
    )
    assert target == layout(Instance("1g.20gb", 0), Instance("1g.10gb", 3, owner="pinned"), VRAN)


@pytest.mark.parametrize(
    ("wanted", "code"),
    [
        ({"4g.40gb": 1, "1g.10gb": 1}, "mig_compute_exceeded"),
        ({"1g.20gb": 3}, "mig_layout_unsolvable"),
        ({"1g.10gb+me": 2}, "mig_count_exceeded"),
        ({"3g.40gb": 2}, "mig_count_exceeded"),
        ({"5g.50gb": 1}, "unknown_mig_profile"),
        ({"1g.10gb": -1}, "invalid_mig_count"),
    ],
)
def test_impossible_counts_are_refused(wanted: dict[str, int], code: str) -> None:
    with pytest.raises(InvalidInput) as info:
        solve_counts(H100, layout(VRAN), wanted)
    assert info.value.code == code


def test_unsolvable_message_names_counts_and_protected() -> None:
    with pytest.raises(InvalidInput) as info:
        solve_counts(H100, layout(VRAN), {"2g.20gb": 1, "1g.20gb": 1, "1g.10gb": 1})
    assert info.value.message == (
        "no placement of 1 of 1g.10gb, 1 of 1g.20gb, 1 of 2g.20gb fits on H100 80GB "
        "beside 3g.40gb at slot 4"
    )


@pytest.mark.parametrize("key", ["H100-80GB", "A30-24GB"])
def test_optimal_against_every_layout(key: str) -> None:
    """Over sampled (current, counts) pairs the solver keeps as many instances as the
    best layout with those counts does, found by listing every layout."""
    model = default_catalog().model(key)
    layouts = all_layouts(model)
    by_counts: dict[frozenset[tuple[str, int]], list[set[tuple[str, int]]]] = {}
    for other in layouts:
        by_counts.setdefault(frozenset(counts(other).items()), []).append(set(other.by_placement()))
    for current in layouts[:: max(1, len(layouts) // 100)]:
        here = set(current.by_placement())
        for wanted in layouts[:: max(1, len(layouts) // 60)]:
            want = counts(wanted)
            best = max(len(here & other) for other in by_counts[frozenset(want.items())])
            solved = solve_counts(model, current, want)
            validate_layout(model, solved)
            assert counts(solved) == want
            assert len(here & set(solved.by_placement())) == best
