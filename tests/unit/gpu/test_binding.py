"""Which instance a workload gets: its own first, then the lowest free match."""

from __future__ import annotations

from appliance.domain.gpu.binding import (
    choose,
    is_process_owner,
    owned_by,
    process_owner,
    with_owner,
    without_owner,
)
from appliance.domain.gpu.layout import Instance, Layout, MigRole

VRAN = Instance("3g.40gb", 4, MigRole.VRAN, "du1")
LAYOUT = Layout(
    "H100-80GB",
    (Instance("1g.10gb", 0), Instance("1g.10gb", 1, owner="a"), Instance("2g.20gb", 2), VRAN),
)


def test_a_workload_keeps_the_instance_it_owns() -> None:
    assert choose(LAYOUT, "a", None, MigRole.B2B) == Instance("1g.10gb", 1, owner="a")


def test_a_new_workload_gets_the_lowest_free_match() -> None:
    assert choose(LAYOUT, "b", None, MigRole.B2B) == Instance("1g.10gb", 0)
    assert choose(LAYOUT, "b", "2g.20gb", MigRole.B2B) == Instance("2g.20gb", 2)
    assert choose(LAYOUT, "b", "7g.80gb", MigRole.B2B) is None


def test_an_owned_instance_of_another_profile_is_not_kept() -> None:
    assert choose(LAYOUT, "a", "2g.20gb", MigRole.B2B) == Instance("2g.20gb", 2)


def test_the_vran_slice_goes_only_to_a_vran_request_and_its_owner() -> None:
    assert choose(LAYOUT, "b", "3g.40gb", MigRole.B2B) is None
    assert choose(LAYOUT, "b", "3g.40gb", MigRole.VRAN) is None  # owned by du1
    assert choose(LAYOUT, "du1", None, MigRole.VRAN) == VRAN


def test_owner_edits() -> None:
    claimed = with_owner(LAYOUT, ("1g.10gb", 0), "b")
    assert owned_by(claimed, "b") == Instance("1g.10gb", 0, owner="b")
    assert owned_by(without_owner(claimed, "b"), "b") is None
    assert without_owner(claimed, "b").instances[1].owner == "a"


def test_process_owners_are_told_apart_from_vm_names() -> None:
    assert process_owner("vllm") == "process:vllm"
    assert is_process_owner("process:vllm")
    assert not is_process_owner("vllm")
    assert not is_process_owner(None)
