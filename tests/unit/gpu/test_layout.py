"""validate_layout: what a board can hold, refused with precise messages and codes."""

from __future__ import annotations

import pytest

from appliance.domain.gpu.catalog import GpuModel, default_catalog, parse_catalog
from appliance.domain.gpu.layout import Instance, Layout, MigRole, validate_layout
from tests.unit.gpu.catalogs import VALID_MODEL
from towerbox_core.errors import InvalidInput

H100 = default_catalog().model("H100-80GB")
VRAN = Instance("3g.40gb", 4, MigRole.VRAN, "du-1")


def layout(*instances: Instance, model: GpuModel = H100) -> Layout:
    return Layout(model.key, instances)


def refusal(model: GpuModel, value: Layout) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        validate_layout(model, value)
    assert info.value.status == 422
    return info.value


def test_valid_layouts_pass() -> None:
    validate_layout(H100, layout())
    validate_layout(H100, layout(VRAN, Instance("4g.40gb", 0)))
    validate_layout(
        H100,
        layout(VRAN, Instance("1g.10gb+me", 0), Instance("1g.10gb", 1), Instance("1g.20gb", 2)),
    )
    a30 = default_catalog().model("A30-24GB")
    validate_layout(a30, layout(Instance("2g.12gb", 0), Instance("2g.12gb+me", 2), model=a30))


def test_unknown_profile_lists_known_ones() -> None:
    err = refusal(H100, layout(Instance("5g.50gb", 0)))
    assert err.code == "unknown_mig_profile"
    assert err.message == (
        "unknown MIG profile '5g.50gb' for H100 80GB; known: 1g.10gb, 1g.10gb+me, "
        "1g.20gb, 2g.20gb, 3g.40gb, 4g.40gb, 7g.80gb"
    )
    assert err.extra["known"][0] == "1g.10gb"


def test_misaligned_start() -> None:
    err = refusal(H100, layout(Instance("3g.40gb", 2)))
    assert err.code == "invalid_mig_placement"
    assert err.message == "3g.40gb cannot start at slot 2; allowed: 0, 4"
    assert err.extra["allowed"] == [0, 4]
    assert refusal(H100, layout(Instance("1g.10gb", 7))).code == "invalid_mig_placement"


def test_overlap_names_both_instances() -> None:
    err = refusal(H100, layout(VRAN, Instance("2g.20gb", 4)))
    assert err.code == "mig_overlap"
    assert err.message == "3g.40gb at slot 4 overlaps 2g.20gb at slot 4 on memory slot 4"
    assert sorted(err.extra["instances"]) == ["2g.20gb at slot 4", "3g.40gb at slot 4"]
    err = refusal(H100, layout(Instance("7g.80gb", 0), Instance("1g.10gb", 6)))
    assert err.code == "mig_overlap"
    assert "7g.80gb at slot 0" in err.message
    assert "1g.10gb at slot 6" in err.message


def test_count_over_max() -> None:
    err = refusal(H100, layout(Instance("1g.10gb+me", 0), Instance("1g.10gb+me", 1)))
    assert err.code == "mig_count_exceeded"
    assert err.message == ("at most 1 instance(s) of 1g.10gb+me fit on H100 80GB; the layout has 2")


def test_media_extensions_are_one_per_board() -> None:
    a30 = default_catalog().model("A30-24GB")
    err = refusal(a30, layout(Instance("1g.6gb+me", 0), Instance("2g.12gb+me", 2), model=a30))
    assert err.code == "mig_count_exceeded"
    assert "media extensions" in err.message


def test_compute_over_total() -> None:
    # The shipped boards run out of memory slots before compute slices; a test board
    # with two compute slices over four memory slots shows the check.
    small = parse_catalog(VALID_MODEL).model("T-4GB")
    err = refusal(
        small,
        layout(Instance("1g.1gb", 0), Instance("1g.1gb", 1), Instance("2g.2gb", 2), model=small),
    )
    assert err.code == "mig_compute_exceeded"
    assert err.message == "the layout uses 4 compute slices; Test 4GB has 2"


def test_model_mismatch_and_non_mig_board() -> None:
    assert refusal(H100, Layout("A30-24GB", ())).code == "mig_model_mismatch"
    l40s = default_catalog().model("L40S-48GB")
    assert refusal(l40s, Layout("L40S-48GB", ())).code == "mig_not_supported"


def test_layout_decodes_from_json() -> None:
    import msgspec

    doc = {"profile": "3g.40gb", "start": 4, "role": "vran", "owner": "du-1"}
    raw = msgspec.json.encode({"gpu_model": "H100-80GB", "instances": [doc]})
    decoded = msgspec.json.decode(raw, type=Layout)
    assert decoded.instances == (VRAN,)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(raw.replace(b'"vran"', b'"upf"'), type=Layout)
