"""vGPU hosts: the sysfs one on a tree laid out as NVIDIA's vGPU manager lays it out
(SR-IOV virtual functions as mdev parents), and the simulated one's refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.backends.gpu.protocol import GpuInfo, GpuInstanceInfo, MigMode
from appliance.backends.gpu.simulated import SimulatedGpuBackend
from appliance.backends.gpu.vgpu import (
    NoVgpu,
    SimulatedVgpu,
    SysfsVgpu,
    mig_type_matches,
)
from appliance.domain.gpu.catalog import default_catalog
from towerbox_core.errors import Conflict

PF = "0000:3b:00.0"
GPU = GpuInfo(
    index=0,
    uuid="GPU-5b1f7a1e-0000-0000-0000-000000000001",
    name="NVIDIA H100 80GB HBM3",
    model="H100-80GB",
    pci_address=PF,
    numa_node=0,
    memory_mib=81559,
    mig_supported=True,
    mig=MigMode(True, True),
)
INSTANCE = GpuInstanceInfo(1, "3g.40gb", 9, 4, 4, (0,), "MIG-1")
H100 = default_catalog().model("H100-80GB")
MDEV = "0c5a8d2e-6f1b-4b3a-9c7d-2e4f6a8b0c1d"


def _tree(root: Path, types: dict[str, tuple[str, int]], vfs: int = 2) -> None:
    """/sys as the vGPU manager shows an H100: VFs under the PF, types on each VF."""
    pf_dir = root / "bus" / "pci" / "devices" / PF
    pf_dir.mkdir(parents=True)
    (root / "bus" / "mdev" / "devices").mkdir(parents=True)
    bus = root / "class" / "mdev_bus"
    bus.mkdir(parents=True)
    for n in range(vfs):
        vf = f"0000:3b:00.{4 + n}"
        vf_dir = root / "bus" / "pci" / "devices" / vf
        vf_dir.mkdir(parents=True)
        (vf_dir / "physfn").symlink_to(pf_dir)
        (bus / vf).symlink_to(vf_dir)
        for type_id, (name, available) in types.items():
            t = vf_dir / "mdev_supported_types" / type_id
            t.mkdir(parents=True)
            (t / "name").write_text(name + "\n")
            (t / "available_instances").write_text(f"{available}\n")
            (t / "create").write_text("")


@pytest.mark.parametrize(
    ("name", "profile", "expected"),
    [
        ("NVIDIA H100-3-40C", "3g.40gb", True),
        ("NVIDIA H100-1-10C", "1g.10gb", True),
        ("NVIDIA H100-1-10CME", "1g.10gb+me", True),
        ("NVIDIA H100-1-10CME", "1g.10gb", False),
        ("NVIDIA H100-1-20C", "1g.10gb", False),
        ("NVIDIA H100-80C", "7g.80gb", False),  # a time-sliced type, not MIG-backed
        ("GRID H100-4-40C", "4g.40gb", True),
    ],
)
def test_mig_backed_types_are_matched_by_slices_and_memory(
    name: str, profile: str, expected: bool
) -> None:
    assert mig_type_matches(name, H100.profile(profile)) is expected


def test_sysfs_makes_the_vgpu_on_a_vf_with_a_free_matching_type(tmp_path: Path) -> None:
    _tree(tmp_path, {"nvidia-1": ("NVIDIA H100-80C", 1), "nvidia-7": ("NVIDIA H100-3-40C", 1)})
    host = SysfsVgpu(tmp_path)
    assert host.available(GPU)
    host.create(GPU, INSTANCE, H100.profile("3g.40gb"), MDEV)
    created = tmp_path / "bus/pci/devices/0000:3b:00.4/mdev_supported_types/nvidia-7/create"
    assert created.read_text() == MDEV
    other = tmp_path / "bus/pci/devices/0000:3b:00.4/mdev_supported_types/nvidia-1/create"
    assert other.read_text() == ""


def test_sysfs_skips_vfs_with_no_instance_left(tmp_path: Path) -> None:
    _tree(tmp_path, {"nvidia-7": ("NVIDIA H100-3-40C", 0)})
    (
        tmp_path / "bus/pci/devices/0000:3b:00.5/mdev_supported_types/nvidia-7/available_instances"
    ).write_text("1")
    SysfsVgpu(tmp_path).create(GPU, INSTANCE, H100.profile("3g.40gb"), MDEV)
    vf5 = tmp_path / "bus/pci/devices/0000:3b:00.5/mdev_supported_types/nvidia-7/create"
    assert vf5.read_text() == MDEV


@pytest.mark.parametrize(
    ("types", "code"),
    [
        ({"nvidia-1": ("NVIDIA H100-80C", 1)}, "vgpu_type_missing"),
        ({"nvidia-7": ("NVIDIA H100-3-40C", 0)}, "vgpu_exhausted"),
    ],
)
def test_sysfs_refusals_name_the_problem(
    tmp_path: Path, types: dict[str, tuple[str, int]], code: str
) -> None:
    _tree(tmp_path, types)
    with pytest.raises(Conflict) as caught:
        SysfsVgpu(tmp_path).create(GPU, INSTANCE, H100.profile("3g.40gb"), MDEV)
    assert caught.value.code == code


def test_sysfs_removes_through_the_devices_remove_file(tmp_path: Path) -> None:
    _tree(tmp_path, {"nvidia-7": ("NVIDIA H100-3-40C", 1)})
    device = tmp_path / "bus" / "mdev" / "devices" / MDEV
    device.mkdir()
    (device / "remove").write_text("")
    host = SysfsVgpu(tmp_path)
    host.create(GPU, INSTANCE, H100.profile("3g.40gb"), MDEV)  # exists: nothing written
    assert not (
        tmp_path / "bus/pci/devices/0000:3b:00.4/mdev_supported_types/nvidia-7/create"
    ).read_text()
    host.remove(GPU.uuid, MDEV)
    assert (device / "remove").read_text() == "1"
    host.remove(GPU.uuid, "00000000-0000-0000-0000-000000000000")  # gone: no error


def test_a_host_without_the_vgpu_manager(tmp_path: Path) -> None:
    assert not SysfsVgpu(tmp_path).available(GPU)
    assert not NoVgpu().available(GPU)
    with pytest.raises(Conflict, match="no NVIDIA vGPU manager"):
        NoVgpu().create(GPU, INSTANCE, H100.profile("3g.40gb"), MDEV)


def test_simulated_vgpu_holds_its_instance_until_removed() -> None:
    sim = SimulatedGpuBackend(("H100-80GB",))
    info = sim.list_gpus()[0]
    inst = sim.create_instance(info.uuid, "3g.40gb", 0)
    host = SimulatedVgpu(sim)
    host.create(info, inst, H100.profile("3g.40gb"), MDEV)
    host.create(info, inst, H100.profile("3g.40gb"), MDEV)  # idempotent
    with pytest.raises(Conflict) as caught:
        sim.destroy_instance(info.uuid, inst.gpu_instance_id)
    assert caught.value.code == "mig_instance_in_use"
    with pytest.raises(Conflict):  # one vGPU per instance
        host.create(info, inst, H100.profile("3g.40gb"), "11111111-2222-3333-4444-555555555555")
    host.remove(info.uuid, MDEV)
    sim.destroy_instance(info.uuid, inst.gpu_instance_id)
    assert host.devices() == {}


def test_simulated_gpus_offer_vgpus_only_to_the_simulated_libvirt(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from appliance.context.builders import vgpu_host
    from tests.support.appliance import make_config

    cfg = make_config(tmp_path)
    sim = SimulatedGpuBackend(("H100-80GB",))
    test_driver = SimpleNamespace(simulated=True)
    qemu = SimpleNamespace(simulated=False)
    assert isinstance(vgpu_host(cfg, sim, test_driver), SimulatedVgpu)  # type: ignore[arg-type]
    real = vgpu_host(cfg, sim, qemu)  # type: ignore[arg-type]
    assert isinstance(real, NoVgpu)
    assert "libvirt is real" in real.describe()
    with pytest.raises(Conflict) as caught:
        real.create(GPU, INSTANCE, H100.profile("3g.40gb"), MDEV)
    assert caught.value.code == "vgpu_unavailable"
    assert isinstance(vgpu_host(cfg, object(), qemu), SysfsVgpu)  # type: ignore[arg-type]
