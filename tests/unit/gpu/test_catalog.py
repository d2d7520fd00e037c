"""The shipped GPU catalog and the loader's refusals."""

from __future__ import annotations

import re
from pathlib import Path

import pynvml
import pytest

from appliance.domain.gpu.catalog import default_catalog, load_catalog, parse_catalog
from tests.unit.gpu.catalogs import VALID_MODEL
from towerbox_core.errors import ConfigError, InvalidInput

EIGHT_SLOT = ["A100-40GB", "A100-80GB", "H100-80GB", "H100-NVL-94GB", "H200-141GB"]

# NVIDIA's H100 80GB table: name, smi id, NVML profile constant, compute slices,
# memory slices, starts, size, max count.
H100_REFERENCE = [
    ("1g.10gb", 19, "NVML_GPU_INSTANCE_PROFILE_1_SLICE", 1, 1, (0, 1, 2, 3, 4, 5, 6), 1, 7),
    ("1g.10gb+me", 20, "NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1", 1, 1, (0, 1, 2, 3, 4, 5, 6), 1, 1),
    ("1g.20gb", 15, "NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV2", 1, 2, (0, 2, 4, 6), 2, 4),
    ("2g.20gb", 14, "NVML_GPU_INSTANCE_PROFILE_2_SLICE", 2, 2, (0, 2, 4), 2, 3),
    ("3g.40gb", 9, "NVML_GPU_INSTANCE_PROFILE_3_SLICE", 3, 4, (0, 4), 4, 2),
    ("4g.40gb", 5, "NVML_GPU_INSTANCE_PROFILE_4_SLICE", 4, 4, (0,), 4, 1),
    ("7g.80gb", 0, "NVML_GPU_INSTANCE_PROFILE_7_SLICE", 7, 8, (0,), 8, 1),
]


def test_every_model_loads() -> None:
    catalog = default_catalog()
    assert set(catalog.models) == {*EIGHT_SLOT, "A30-24GB", "L40S-48GB", "L4-24GB"}
    for key in EIGHT_SLOT:
        model = catalog.model(key)
        assert (model.memory_slots, model.compute_slices, len(model.profiles)) == (8, 7, 7)
        assert [p.smi_id for p in model.profiles] == [19, 20, 15, 14, 9, 5, 0]
    a30 = catalog.model("A30-24GB")
    assert (a30.memory_slots, a30.compute_slices) == (4, 4)
    assert [(p.name, p.smi_id) for p in a30.profiles] == [
        ("1g.6gb", 14), ("1g.6gb+me", 21), ("2g.12gb", 5), ("2g.12gb+me", 6), ("4g.24gb", 0),
    ]  # fmt: skip
    assert not catalog.model("L40S-48GB").mig_supported


def test_h100_matches_the_reference_table() -> None:
    model = default_catalog().model("H100-80GB")
    got = [
        (p.name, p.smi_id, p.nvml_profile, p.compute_slices, p.memory_slices, p.starts, p.size,
         p.max_count)
        for p in model.profiles
    ]  # fmt: skip
    want = [(n, s, getattr(pynvml, c), *rest) for n, s, c, *rest in H100_REFERENCE]
    assert got == want
    assert model.profile("1g.10gb+me").media == "me"


@pytest.mark.parametrize("key", EIGHT_SLOT)
def test_profile_names_follow_memory(key: str) -> None:
    model = default_catalog().model(key)
    for profile in model.profiles:
        assert re.fullmatch(
            rf"{profile.compute_slices}g\.{profile.memory_gb}gb(\+me)?", profile.name
        )
    seventh = model.profile(model.profiles[-1].name)
    assert seventh.memory_gb == model.memory_gb


def test_match_by_name_and_pci_id() -> None:
    catalog = default_catalog()
    assert catalog.match(name="NVIDIA H100 80GB HBM3").key == "H100-80GB"  # type: ignore[union-attr]
    assert catalog.match(name="A100-SXM4-40GB").key == "A100-40GB"  # type: ignore[union-attr]
    assert catalog.match(name="NVIDIA H200 NVL").key == "H200-141GB"  # type: ignore[union-attr]
    assert catalog.match(pci_device_id=0x233110DE).key == "H100-80GB"  # type: ignore[union-attr]
    assert catalog.match(pci_device_id=0x20B7).key == "A30-24GB"  # type: ignore[union-attr]
    assert catalog.match(name="NVIDIA GeForce RTX 4090", pci_device_id=0x2684) is None


def test_unknown_model_and_profile() -> None:
    catalog = default_catalog()
    with pytest.raises(InvalidInput) as info:
        catalog.model("B200")
    assert info.value.code == "unknown_gpu_model"
    with pytest.raises(InvalidInput) as info:
        catalog.model("H100-80GB").profile("5g.50gb")
    assert info.value.code == "unknown_mig_profile"
    assert "1g.10gb, 1g.10gb+me" in info.value.message


def test_valid_custom_catalog_loads() -> None:
    assert parse_catalog(VALID_MODEL).model("T-4GB").profile("2g.2gb").starts == (2,)


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        ("max_count = 1\n", "max_count = 1\ncolour = 1\n", "unknown field"),
        ("starts = [2]", "starts = [3]", "runs past 4 memory slots"),
        ('name = "2g.2gb"', 'name = "2g.3gb"', "name disagrees"),
        ("smi_id = 14", "smi_id = 19", "smi_id values repeat"),
        ("schema = 1", "schema = 2", "schema 2"),
        ("starts = [0, 1, 2, 3]", "starts = [0]", "max_count must be"),
        ("starts = [0, 1, 2, 3]", "starts = [3, 1, 2]", "sorted"),
        ("mig_supported = true", "mig_supported = false", "without MIG"),
        ("compute_slices = 2\n", "compute_slices = 1\n", "exceed the compute slices"),
        ('pci_device_ids = ["0x1234"]', 'pci_device_ids = ["1234"]', "not like 0x2330"),
        ("memory_gb = 4\n", 'memory_gb = 4\nkey = "other"\n', "comes from the table name"),
    ],
)  # fmt: skip
def test_inconsistent_entries_are_refused(old: str, new: str, why: str) -> None:
    assert old in VALID_MODEL
    with pytest.raises(ConfigError) as info:
        parse_catalog(VALID_MODEL.replace(old, new, 1))
    assert info.value.code == "invalid_gpu_catalog"
    assert why in info.value.message


def test_two_models_claiming_one_pci_id_are_refused() -> None:
    twin = VALID_MODEL.split("schema = 1")[1].replace("T-4GB", "U-4GB")
    twin = twin.replace('"NVIDIA Test"', '"NVIDIA Twin"')
    with pytest.raises(ConfigError, match="PCI id 0x1234 claimed by T-4GB and U-4GB"):
        parse_catalog(VALID_MODEL + twin)


def test_load_catalog_from_file(tmp_path: Path) -> None:
    path = tmp_path / "gpus.toml"
    path.write_text(VALID_MODEL)
    assert set(load_catalog(path).models) == {"T-4GB"}
    with pytest.raises(ConfigError) as info:
        load_catalog(tmp_path / "missing.toml")
    assert info.value.extra["path"].endswith("missing.toml")
