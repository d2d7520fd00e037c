"""The driver and vGPU manager versions a node reports with its heartbeats."""

from __future__ import annotations

from pathlib import Path

import pynvml
import pytest

from appliance.backends.gpu.nvml import NvmlGpuBackend
from appliance.backends.gpu.simulated import SimulatedGpuBackend
from appliance.backends.gpu.vgpu import (
    NVIDIA_MODULE,
    VGPU_MODULE,
    NoVgpu,
    SimulatedVgpu,
    SysfsVgpu,
)
from appliance.context.builders import node_versions
from tests.contract.gpu.conftest import Board
from tests.unit.gpu.fake_nvml import DRIVER_VERSION, FakeNvml
from towerbox_core import __version__
from towerbox_core.api.versions import NodeVersions, valid_version


def test_every_backend_reports_a_driver_version(board: Board) -> None:
    version = board.backend.driver_version()
    assert version is not None
    assert valid_version(version), version


def test_nvml_reports_the_driver_nvml_reads() -> None:
    assert NvmlGpuBackend(nvml=FakeNvml()).driver_version() == DRIVER_VERSION


def test_the_simulator_says_its_versions_are_simulated() -> None:
    sim = SimulatedGpuBackend()
    assert sim.driver_version().endswith("-simulated")
    assert SimulatedVgpu(sim).manager_version() == sim.driver_version()


def test_vgpu_manager_version_comes_from_its_kernel_module(tmp_path: Path) -> None:
    driver = tmp_path / NVIDIA_MODULE / "version"
    driver.parent.mkdir(parents=True)
    driver.write_text("550.54.15\n")
    assert SysfsVgpu(tmp_path).manager_version() is None  # a driver, no vGPU manager
    module = tmp_path / VGPU_MODULE
    module.mkdir(parents=True)
    assert SysfsVgpu(tmp_path).manager_version() == "550.54.15"  # the host driver's
    (module / "version").write_text("550.54.16\n")
    assert SysfsVgpu(tmp_path).manager_version() == "550.54.16"
    assert NoVgpu().manager_version() is None


def test_node_versions_read_once_and_survive_a_driver_that_does_not_answer() -> None:
    fake = FakeNvml()
    backend = NvmlGpuBackend(nvml=fake)
    assert node_versions(backend, NoVgpu()) == NodeVersions(
        towerbox=__version__, gpu_driver=DRIVER_VERSION, vgpu_manager=None
    )
    fake.fail_next("nvmlSystemGetDriverVersion", pynvml.NVML_ERROR_UNKNOWN)
    assert node_versions(backend, NoVgpu()).gpu_driver is None


@pytest.mark.parametrize("text", ["550.54.15", "535.183.01", "0.1.0", "1.2.3-rc1+g1234"])
def test_real_versions_are_valid(text: str) -> None:
    assert valid_version(text)
