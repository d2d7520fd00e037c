"""The GPU backend contract: what every backend does and refuses, with which code."""

from __future__ import annotations

import pytest

from tests.contract.gpu.conftest import Board
from towerbox_core.errors import Conflict, InsufficientResources, InvalidInput, NotFound


def placed(board: Board) -> list[tuple[str, int]]:
    return sorted((i.profile, i.start) for i in board.backend.instances(board.gpu))


def test_lists_the_gpu_with_mig_on(board: Board) -> None:
    info = next(g for g in board.backend.list_gpus() if g.uuid == board.gpu)
    assert info.mig_supported
    assert info.mig.current
    assert info.memory_mib >= board.model.memory_gb * 1000
    assert info.pci_address.count(":") == 2
    assert board.backend.describe()


def test_profiles_offer_the_catalog_placements(board: Board) -> None:
    offered = {p.name: p for p in board.backend.profiles(board.gpu)}
    for profile in board.model.profiles:
        got = offered[profile.name]
        assert (got.profile_id, got.starts, got.size) == (
            profile.smi_id, profile.starts, profile.size,
        )  # fmt: skip
        assert got.compute_slices == profile.compute_slices
    media = board.shape(1, 1, "me")
    assert offered[media.name].remaining == 1


def test_create_list_destroy_round_trip(board: Board) -> None:
    half = board.shape(4, 3)
    small = board.shape(1, 1)
    made = board.backend.create_instance(board.gpu, half.name, 4)
    assert (made.profile, made.profile_id, made.start, made.size) == (
        half.name, half.smi_id, 4, 4,
    )  # fmt: skip
    assert made.compute_instance_ids
    assert made.mig_uuid
    other = board.backend.create_instance(board.gpu, small.name, 0)
    assert placed(board) == sorted([(half.name, 4), (small.name, 0)])
    board.backend.destroy_instance(board.gpu, made.gpu_instance_id)
    assert placed(board) == [(small.name, 0)]
    board.backend.destroy_instance(board.gpu, other.gpu_instance_id)
    assert placed(board) == []


def test_occupied_slots_are_refused(board: Board) -> None:
    half = board.shape(4, 3)
    board.backend.create_instance(board.gpu, half.name, 4)
    with pytest.raises(InsufficientResources) as info:
        board.backend.create_instance(board.gpu, board.shape(2, 2).name, 4)
    assert isinstance(info.value, Conflict)
    assert info.value.code == "mig_slot_occupied"
    with pytest.raises(InsufficientResources) as info:
        board.backend.create_instance(board.gpu, board.shape(1, 1).name, 6)
    assert info.value.code == "mig_slot_occupied"


def test_misaligned_start_is_refused(board: Board) -> None:
    half = board.shape(4, 3)
    with pytest.raises(InvalidInput) as info:
        board.backend.create_instance(board.gpu, half.name, 2)
    assert info.value.code == "invalid_mig_placement"
    assert info.value.message == f"{half.name} cannot start at slot 2; allowed: 0, 4"


def test_count_over_max_is_refused(board: Board) -> None:
    media = board.shape(1, 1, "me")
    board.backend.create_instance(board.gpu, media.name, 0)
    with pytest.raises(InsufficientResources) as info:
        board.backend.create_instance(board.gpu, media.name, 1)
    assert info.value.code == "mig_count_exceeded"


def test_unknown_profile_gpu_and_instance(board: Board) -> None:
    with pytest.raises(InvalidInput) as info:
        board.backend.create_instance(board.gpu, "5g.50gb", 0)
    assert info.value.code == "unknown_mig_profile"
    with pytest.raises(NotFound) as not_found:
        board.backend.destroy_instance(board.gpu, 99)
    assert not_found.value.code == "mig_instance_not_found"
    with pytest.raises(NotFound) as not_found:
        board.backend.instances("GPU-00000000-0000-0000-0000-000000000000")
    assert not_found.value.code == "gpu_not_found"


def test_telemetry_reports_power_and_instances(board: Board) -> None:
    made = board.backend.create_instance(board.gpu, board.shape(2, 2).name, 0)
    sample = board.backend.telemetry(board.gpu)
    assert sample.power_w is not None
    assert sample.power_w > 0
    assert [i.gpu_instance_id for i in sample.instances] == [made.gpu_instance_id]
    assert sample.mig_enabled is True  # as list_gpus tells it: the sweep's MIG mode
