"""Choosing the GPU backend by probing NVML (with a fake pynvml: no GPU here)."""

from __future__ import annotations

from pathlib import Path

import pynvml
import pytest

from appliance.backends.gpu.nvml import NvmlGpuBackend
from appliance.backends.gpu.probe import open_gpu_backend
from appliance.backends.gpu.simulated import SimulatedGpuBackend
from tests.unit.gpu.fake_nvml import FakeNvml
from towerbox_core.errors import BackendUnavailable


def without_driver() -> FakeNvml:
    fake = FakeNvml()
    fake.init_error = pynvml.NVML_ERROR_LIBRARY_NOT_FOUND
    return fake


def test_auto_uses_nvml_when_it_answers() -> None:
    backend, line = open_gpu_backend(nvml=FakeNvml("H200-141GB"))
    assert isinstance(backend, NvmlGpuBackend)
    assert line == "nvml (1 \u00d7 H200 141GB)"


def test_auto_falls_back_to_the_simulator_and_says_why(tmp_path: Path) -> None:
    backend, line = open_gpu_backend(
        nvml=without_driver(), simulated_models=["A30-24GB"], simulated_state=tmp_path / "s.json"
    )
    assert isinstance(backend, SimulatedGpuBackend)
    assert line.startswith("simulated A30 24GB \u00d71 (no NVIDIA driver: ")
    assert (tmp_path / "s.json").exists()


def test_nvml_required_but_missing_is_unavailable() -> None:
    with pytest.raises(BackendUnavailable) as info:
        open_gpu_backend("nvml", nvml=without_driver())
    assert info.value.code == "nvml_unavailable"


def test_simulated_never_probes() -> None:
    fake = FakeNvml()
    backend, line = open_gpu_backend("simulated", nvml=fake)
    assert backend.simulated
    assert line == "simulated H100 80GB \u00d71 (chosen in the configuration)"
    assert fake.calls == []
