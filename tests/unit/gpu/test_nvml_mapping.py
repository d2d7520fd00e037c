"""Mapping tests of the NVML backend: parsing and error mapping against a fake pynvml.

No GPU is involved. FakeNvml answers as the NVML documentation describes; these tests
prove the backend reads NVML's structures and turns its return codes into the
simulator's error codes, not that a driver behaves so.
"""

from __future__ import annotations

import pynvml
import pytest

from appliance.backends.gpu.nvml import NvmlGpuBackend
from appliance.backends.gpu.nvml_errors import map_nvml_error
from appliance.backends.gpu.nvml_read import pci_address
from tests.unit.gpu.fake_nvml import GPU_UUID, FakeNvml
from towerbox_core.errors import (
    BackendError,
    BackendUnavailable,
    Conflict,
    InsufficientResources,
    InvalidInput,
    NotFound,
)


@pytest.fixture
def fake() -> FakeNvml:
    return FakeNvml("H100-80GB")


@pytest.fixture
def backend(fake: FakeNvml) -> NvmlGpuBackend:
    return NvmlGpuBackend(nvml=fake)


@pytest.mark.parametrize(
    ("code", "cls", "expected"),
    [
        (pynvml.NVML_ERROR_IN_USE, Conflict, "mig_instance_in_use"),
        (pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES, InsufficientResources, "mig_slot_occupied"),
        (pynvml.NVML_ERROR_NOT_SUPPORTED, Conflict, "mig_not_supported"),
        (pynvml.NVML_ERROR_NO_PERMISSION, BackendError, "nvml_no_permission"),
        (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, BackendUnavailable, "nvml_unavailable"),
        (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, BackendUnavailable, "nvml_unavailable"),
        (pynvml.NVML_ERROR_GPU_IS_LOST, BackendUnavailable, "gpu_lost"),
        (pynvml.NVML_ERROR_NOT_FOUND, NotFound, "nvml_not_found"),
        (pynvml.NVML_ERROR_UNKNOWN, BackendError, "nvml_error"),
    ],
)
def test_error_table(code: int, cls: type, expected: str) -> None:
    err = pynvml.NVMLError(code)
    mapped = map_nvml_error(pynvml, err, "do a thing", gpu="GPU-x")
    assert type(mapped) is cls
    assert mapped.code == expected
    assert mapped.message.startswith("do a thing: ")
    assert mapped.extra["gpu"] == "GPU-x"


def test_probe_reports_why_nvml_is_missing(fake: FakeNvml) -> None:
    fake.init_error = pynvml.NVML_ERROR_LIBRARY_NOT_FOUND
    assert NvmlGpuBackend.probe(fake) is not None
    assert not NvmlGpuBackend.available(fake)
    fake.init_error = None
    assert NvmlGpuBackend.available(fake)


@pytest.mark.skipif(NvmlGpuBackend.available(), reason="this machine has an NVIDIA driver")
def test_real_pynvml_without_driver_is_unavailable() -> None:
    assert NvmlGpuBackend.probe() is not None
    with pytest.raises(BackendUnavailable) as info:
        NvmlGpuBackend()
    assert info.value.code == "nvml_unavailable"
    assert isinstance(info.value.__cause__, pynvml.NVMLError)


def test_pci_address_is_normalised() -> None:
    assert pci_address("00000000:3B:00.0") == "0000:3b:00.0"
    assert pci_address(b"0001:C1:00.1") == "0001:c1:00.1"


def test_list_gpus_parses_device(backend: NvmlGpuBackend) -> None:
    (gpu,) = backend.list_gpus()
    assert gpu.uuid == GPU_UUID
    assert gpu.name == "NVIDIA H100 80GB HBM3"
    assert gpu.model == "H100-80GB"
    assert gpu.pci_address == "0000:3b:00.0"
    assert gpu.numa_node == 1
    assert gpu.memory_mib == 80 * 1024
    assert gpu.mig_supported
    assert gpu.mig.current
    assert gpu.mig.pending
    assert backend.describe() == "nvml (1 \u00d7 H100 80GB)"
    assert not backend.simulated


def test_non_mig_board_reports_no_mig() -> None:
    backend = NvmlGpuBackend(nvml=FakeNvml("L40S-48GB", mig=False))
    (gpu,) = backend.list_gpus()
    assert gpu.model == "L40S-48GB"
    assert not gpu.mig_supported
    assert backend.instances(GPU_UUID) == []
    with pytest.raises(Conflict) as info:
        backend.set_mig_mode(GPU_UUID, True)
    assert info.value.code == "mig_not_supported"


def test_profiles_read_placements_through_ctypes(backend: NvmlGpuBackend) -> None:
    profiles = {p.name: p for p in backend.profiles(GPU_UUID)}
    assert set(profiles) == {
        "1g.10gb", "1g.10gb+me", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb",
    }  # fmt: skip
    three = profiles["3g.40gb"]
    assert (three.profile_id, three.starts, three.size, three.max_count) == (9, (0, 4), 4, 2)
    assert profiles["1g.10gb"].starts == (0, 1, 2, 3, 4, 5, 6)
    assert profiles["1g.10gb+me"].remaining == 1


def test_profiles_fall_back_to_catalog_while_mig_is_off() -> None:
    backend = NvmlGpuBackend(nvml=FakeNvml("H100-80GB", mig=False))
    profiles = {p.name: p for p in backend.profiles(GPU_UUID)}
    assert profiles["3g.40gb"].starts == (0, 4)
    assert all(p.remaining == 0 for p in profiles.values())


def test_create_list_destroy_round_trip(backend: NvmlGpuBackend, fake: FakeNvml) -> None:
    made = backend.create_instance(GPU_UUID, "3g.40gb", 4)
    assert (made.profile, made.profile_id, made.start, made.size) == ("3g.40gb", 9, 4, 4)
    assert made.compute_instance_ids == (0,)
    assert made.mig_uuid is not None
    assert made.mig_uuid.startswith("MIG-")
    backend.create_instance(GPU_UUID, "1g.10gb", 0)
    listed = backend.instances(GPU_UUID)
    assert [(i.profile, i.start) for i in listed] == [("3g.40gb", 4), ("1g.10gb", 0)]
    backend.destroy_instance(GPU_UUID, made.gpu_instance_id)
    assert [(i.profile, i.start) for i in backend.instances(GPU_UUID)] == [("1g.10gb", 0)]
    assert "nvmlComputeInstanceDestroy" in fake.calls


def test_create_with_placement_passes_the_struct(backend: NvmlGpuBackend, fake: FakeNvml) -> None:
    backend.create_instance(GPU_UUID, "1g.20gb", 6)
    (gi,) = fake.gis.values()
    assert (gi.profile.name, gi.start) == ("1g.20gb", 6)


def test_insufficient_resources_is_explained(backend: NvmlGpuBackend) -> None:
    backend.create_instance(GPU_UUID, "3g.40gb", 4)
    with pytest.raises(InsufficientResources) as info:
        backend.create_instance(GPU_UUID, "1g.10gb", 5)
    assert info.value.code == "mig_slot_occupied"
    assert isinstance(info.value.__cause__, pynvml.NVMLError)
    backend.create_instance(GPU_UUID, "1g.10gb+me", 0)
    with pytest.raises(InsufficientResources) as info:
        backend.create_instance(GPU_UUID, "1g.10gb+me", 1)
    assert info.value.code == "mig_count_exceeded"


def test_misplaced_and_unknown_profiles_are_refused(backend: NvmlGpuBackend) -> None:
    with pytest.raises(InvalidInput) as info:
        backend.create_instance(GPU_UUID, "3g.40gb", 2)
    assert info.value.code == "invalid_mig_placement"
    assert info.value.message == "3g.40gb cannot start at slot 2; allowed: 0, 4"
    with pytest.raises(InvalidInput) as info:
        backend.create_instance(GPU_UUID, "5g.50gb", 0)
    assert info.value.code == "unknown_mig_profile"


def test_driver_placement_refusal_maps_to_invalid_placement(
    backend: NvmlGpuBackend, fake: FakeNvml
) -> None:
    fake.fail_next("nvmlDeviceCreateGpuInstanceWithPlacement", pynvml.NVML_ERROR_INVALID_ARGUMENT)
    with pytest.raises(InvalidInput) as info:
        backend.create_instance(GPU_UUID, "1g.10gb", 0)
    assert info.value.code == "invalid_mig_placement"


def test_create_while_mig_off_is_mig_disabled() -> None:
    fake = FakeNvml("H100-80GB", mig=False)
    fake.mig_pending = True
    backend = NvmlGpuBackend(nvml=fake)
    with pytest.raises(Conflict) as info:
        backend.create_instance(GPU_UUID, "1g.10gb", 0)
    assert info.value.code == "mig_disabled"
    assert "next GPU reset" in info.value.message


def test_no_permission_is_a_backend_error(backend: NvmlGpuBackend, fake: FakeNvml) -> None:
    fake.fail_next("nvmlDeviceCreateGpuInstanceWithPlacement", pynvml.NVML_ERROR_NO_PERMISSION)
    with pytest.raises(BackendError) as info:
        backend.create_instance(GPU_UUID, "1g.10gb", 0)
    assert info.value.code == "nvml_no_permission"


def test_failed_compute_instance_undoes_the_gpu_instance(
    backend: NvmlGpuBackend, fake: FakeNvml
) -> None:
    fake.fail_next("nvmlGpuInstanceCreateComputeInstance", pynvml.NVML_ERROR_UNKNOWN)
    with pytest.raises(BackendError) as info:
        backend.create_instance(GPU_UUID, "2g.20gb", 0)
    assert info.value.code == "nvml_error"
    assert fake.gis == {}


def test_busy_instance_is_in_use(backend: NvmlGpuBackend, fake: FakeNvml) -> None:
    made = backend.create_instance(GPU_UUID, "2g.20gb", 2)
    fake.gis[made.gpu_instance_id].busy = True
    with pytest.raises(Conflict) as info:
        backend.destroy_instance(GPU_UUID, made.gpu_instance_id)
    assert info.value.code == "mig_instance_in_use"


def test_lookups_map_not_found(backend: NvmlGpuBackend) -> None:
    with pytest.raises(NotFound) as info:
        backend.destroy_instance(GPU_UUID, 9)
    assert info.value.code == "mig_instance_not_found"
    with pytest.raises(NotFound) as info:
        backend.instances("GPU-nope")
    assert info.value.code == "gpu_not_found"


def test_set_mig_mode_reports_pending(backend: NvmlGpuBackend, fake: FakeNvml) -> None:
    mode = backend.set_mig_mode(GPU_UUID, False)
    assert (mode.current, mode.pending) == (True, False)
    assert not [c for c in fake.calls if "Reset" in c]


def test_set_mig_mode_off_with_instances_is_in_use(backend: NvmlGpuBackend) -> None:
    backend.create_instance(GPU_UUID, "1g.10gb", 0)
    with pytest.raises(Conflict) as info:
        backend.set_mig_mode(GPU_UUID, False)
    assert info.value.code == "mig_instance_in_use"


def test_telemetry_units(backend: NvmlGpuBackend) -> None:
    made = backend.create_instance(GPU_UUID, "1g.10gb", 3)
    sample = backend.telemetry(GPU_UUID)
    assert sample.power_w == pytest.approx(123.456)
    assert sample.energy_j == pytest.approx(5000.0)
    assert sample.utilization_pct is None  # NVML has none for the whole GPU under MIG
    assert sample.memory_used_mib == 2048
    assert sample.memory_total_mib == 80 * 1024
    assert sample.temperature_c == 41.0
    assert (sample.ecc_corrected, sample.ecc_uncorrected) == (3, 0)
    assert sample.mig_enabled is True
    (inst,) = sample.instances
    assert (inst.gpu_instance_id, inst.memory_used_mib) == (made.gpu_instance_id, 512)
    assert inst.memory_total_mib == 10 * 1024
    assert inst.utilization_pct is None


def test_telemetry_without_ecc_or_temperature_sensor(
    fake: FakeNvml, backend: NvmlGpuBackend
) -> None:
    # A board without ECC (or with it off) and a sensor that is not there: no figure,
    # never a zero that would read as "no errors".
    fake.fail_next("nvmlDeviceGetTotalEccErrors", pynvml.NVML_ERROR_NOT_SUPPORTED)
    fake.fail_next("nvmlDeviceGetTemperature", pynvml.NVML_ERROR_NOT_SUPPORTED)
    fake.fail_next("nvmlDeviceGetMigMode", pynvml.NVML_ERROR_NOT_SUPPORTED)
    sample = backend.telemetry(GPU_UUID)
    assert sample.mig_enabled is None  # no MIG mode read: not told, not "off"
    assert sample.temperature_c is None
    assert sample.ecc_corrected is None
    assert sample.ecc_uncorrected == 0
