"""Property tests: random pairs of valid layouts, planned and applied to the simulator."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.backends.gpu.simulated import SimulatedGpuBackend
from appliance.domain.gpu.catalog import default_catalog
from appliance.domain.gpu.layout import Instance, Layout, MigRole, validate_layout
from appliance.domain.gpu.planner import plan, solve_counts
from appliance.domain.gpu.space import all_layouts
from tests.unit.gpu.apply import apply_plan, build, ids_by_placement
from towerbox_core.errors import Conflict, TowerboxError

CATALOG = default_catalog()
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Pool:
    key: str
    vran: Instance | None
    layouts: tuple[Layout, ...]


def _pool(key: str, vran: Instance | None) -> Pool:
    return Pool(key, vran, tuple(all_layouts(CATALOG.model(key), [vran] if vran else [])))


POOLS = [
    _pool("H100-80GB", Instance("3g.40gb", 4, MigRole.VRAN, "du")),
    _pool("A100-40GB", Instance("3g.20gb", 4, MigRole.VRAN, "du")),
    _pool("H200-141GB", Instance("3g.71gb", 4, MigRole.VRAN, "du")),
    _pool("A30-24GB", Instance("2g.12gb", 2, MigRole.VRAN, "du")),
    _pool("H100-NVL-94GB", None),
]
FULL_H100 = _pool("H100-80GB", None)


def with_owners(data: st.DataObject, layout: Layout, tag: str) -> Layout:
    """Give some B2B instances an owner (a workload running on them)."""
    instances = []
    for n, inst in enumerate(layout.instances):
        owned = not inst.protected and data.draw(st.booleans())
        instances.append(
            Instance(inst.profile, inst.start, inst.role, f"{tag}{n}") if owned else inst
        )
    return Layout(layout.gpu_model, tuple(instances))


def placements(layout: Layout) -> set[tuple[str, int]]:
    return set(layout.by_placement())


@SETTINGS
@given(data=st.data())
def test_applying_a_plan_reaches_the_target(data: st.DataObject) -> None:
    pool = data.draw(st.sampled_from(POOLS))
    model = CATALOG.model(pool.key)
    current = with_owners(data, data.draw(st.sampled_from(pool.layouts)), "old")
    target = with_owners(data, data.draw(st.sampled_from(pool.layouts)), "new")
    sim = SimulatedGpuBackend([pool.key])
    gpu = sim.list_gpus()[0].uuid
    before = build(sim, gpu, current)

    result = plan(model, current, target)
    shared = placements(current) & placements(target)
    assert len(result.destroys) == len(placements(current) - shared)
    assert len(result.creates) == len(placements(target) - shared)
    assert not {i.placement for i in result.destroys} & shared
    assert all(not i.protected for i in result.destroys + result.drain)

    apply_plan(sim, gpu, result)  # a destroy of a busy instance would raise here
    after = ids_by_placement(sim, gpu)
    assert set(after) == placements(target)
    for key in shared:
        assert after[key] == before[key]  # kept instances are the same GPU instances
    if pool.vran is not None:
        vran_id = after[pool.vran.placement]
        assert vran_id == before[pool.vran.placement]
        with pytest.raises(Conflict) as info:
            sim.destroy_instance(gpu, vran_id)  # its workload never stopped
        assert info.value.code == "mig_instance_in_use"


@SETTINGS
@given(data=st.data())
def test_a_target_without_the_vran_instance_is_refused(data: st.DataObject) -> None:
    model = CATALOG.model("H100-80GB")
    vran = POOLS[0].vran
    assert vran is not None
    current = data.draw(st.sampled_from(POOLS[0].layouts))
    target = data.draw(st.sampled_from(FULL_H100.layouts))
    if vran.placement in placements(target):
        # In the full list every instance is B2B: keeping the slot but not the role.
        with pytest.raises(Conflict, match="change its role"):
            plan(model, current, target)
        return
    with pytest.raises(Conflict) as info:
        plan(model, current, target)
    assert info.value.code == "vran_protected"


@SETTINGS
@given(data=st.data())
def test_counts_are_solved_and_applied(data: st.DataObject) -> None:
    pool = data.draw(st.sampled_from(POOLS))
    model = CATALOG.model(pool.key)
    current = with_owners(data, data.draw(st.sampled_from(pool.layouts)), "old")
    wanted_layout = data.draw(st.sampled_from(pool.layouts))
    counts = Counter(i.profile for i in wanted_layout.instances if not i.protected)

    solved = solve_counts(model, current, counts)
    validate_layout(model, solved)
    assert Counter(i.profile for i in solved.instances if not i.protected) == counts
    if pool.vran is not None:
        assert pool.vran in solved.instances
    # The explicit layout is one answer; the solver's keeps at least as many.
    here = placements(current)
    assert len(here & placements(solved)) >= len(here & placements(wanted_layout))

    sim = SimulatedGpuBackend([pool.key])
    gpu = sim.list_gpus()[0].uuid
    build(sim, gpu, current)
    try:
        apply_plan(sim, gpu, plan(model, current, solved))
    except TowerboxError as err:  # pragma: no cover - shown with the failing example
        pytest.fail(f"applying the solved plan failed: {err.code}: {err}")
    assert set(ids_by_placement(sim, gpu)) == placements(solved)
