"""The planner: kept instances, protection of the vRAN slice, order, fewest ops."""

from __future__ import annotations

import pytest

from appliance.domain.gpu.catalog import default_catalog
from appliance.domain.gpu.layout import Instance, Layout, MigRole
from appliance.domain.gpu.planner import OpKind, plan
from towerbox_core.errors import Conflict, InvalidInput

H100 = default_catalog().model("H100-80GB")
VRAN = Instance("3g.40gb", 4, MigRole.VRAN, "du-1")


def layout(*instances: Instance) -> Layout:
    return Layout("H100-80GB", instances)


DAY = layout(VRAN, Instance("2g.20gb", 0, owner="t1"), Instance("2g.20gb", 2, owner="t2"))
NIGHT = layout(VRAN, Instance("4g.40gb", 0, owner="batch"))


def test_kept_instances_are_untouched() -> None:
    current = layout(VRAN, Instance("2g.20gb", 0, owner="t1"), Instance("1g.10gb", 2))
    target = layout(VRAN, Instance("2g.20gb", 0, owner="t1"), Instance("1g.10gb", 3))
    result = plan(H100, current, target)
    assert result.kept == (Instance("2g.20gb", 0, owner="t1"), VRAN)
    assert result.destroys == (Instance("1g.10gb", 2),)
    assert result.creates == (Instance("1g.10gb", 3),)
    assert result.drain == ()


def test_destroys_come_before_creates() -> None:
    result = plan(H100, DAY, NIGHT)
    kinds = [op.kind for op in result.ops]
    assert kinds == [OpKind.DESTROY, OpKind.DESTROY, OpKind.CREATE]
    assert result.creates == (Instance("4g.40gb", 0, owner="batch"),)
    assert [i.owner for i in result.drain] == ["t1", "t2"]
    assert all(not i.protected for i in result.drain)


def test_same_layout_is_an_empty_plan() -> None:
    result = plan(H100, DAY, DAY)
    assert result.empty
    assert result.ops == ()
    assert len(result.kept) == 3


def test_owner_change_is_a_reassignment_not_an_op() -> None:
    target = layout(VRAN, Instance("2g.20gb", 0, owner="t9"), Instance("2g.20gb", 2, owner="t2"))
    result = plan(H100, DAY, target)
    assert result.ops == ()
    assert result.reassigned == (Instance("2g.20gb", 0, owner="t9"),)
    assert result.drain == (Instance("2g.20gb", 0, owner="t1"),)
    assert not result.empty


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        (layout(Instance("7g.80gb", 0)), "destroy it"),
        (layout(Instance("3g.40gb", 0, MigRole.VRAN, "du-1")), "move it to slot 0"),
        (layout(Instance("3g.40gb", 4, MigRole.B2B, "du-1")), "change its role to b2b"),
        (layout(Instance("3g.40gb", 4, MigRole.VRAN, "du-2")), "hand it to owner du-2"),
    ],
)
def test_vran_instance_is_protected(target: Layout, reason: str) -> None:
    with pytest.raises(Conflict) as info:
        plan(H100, DAY, target)
    err = info.value
    assert err.code == "vran_protected"
    assert err.status == 409
    assert err.extra["reason"] == reason
    assert err.message == (
        f"the vRAN instance 3g.40gb at slot 4 (owner du-1) is protected: the target would {reason}"
    )


def test_new_vran_instance_may_be_created() -> None:
    result = plan(H100, layout(), layout(VRAN))
    assert result.creates == (VRAN,)


def test_invalid_layouts_are_refused_before_planning() -> None:
    with pytest.raises(InvalidInput) as info:
        plan(H100, DAY, layout(VRAN, Instance("3g.40gb", 2)))
    assert info.value.code == "invalid_mig_placement"
    with pytest.raises(InvalidInput) as info:
        plan(H100, layout(VRAN, Instance("4g.40gb", 0), Instance("1g.10gb", 3)), NIGHT)
    assert info.value.code == "mig_overlap"


def test_creates_place_larger_instances_first() -> None:
    target = layout(VRAN, Instance("1g.10gb", 0), Instance("1g.10gb", 1), Instance("2g.20gb", 2))
    assert [i.profile for i in plan(H100, layout(VRAN), target).creates] == [
        "2g.20gb", "1g.10gb", "1g.10gb",
    ]  # fmt: skip


def test_plan_encodes_for_a_dry_run() -> None:
    import msgspec

    doc = msgspec.json.decode(msgspec.json.encode(plan(H100, DAY, NIGHT)))
    assert doc["ops"][0] == {
        "kind": "destroy",
        "instance": {"profile": "2g.20gb", "start": 0, "role": "b2b", "owner": "t1"},
    }
