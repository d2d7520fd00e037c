"""Backends the GPU contract runs against.

- the simulator, on two boards;
- the NVML backend over FakeNvml (a mapping check: the backend's parsing and error
  codes against a fake driver that answers as NVML documents, not hardware);
- a real GPU through NVML, only when TOWERBOX_GPU_CONTRACT_NVML names the UUID of a
  GPU with MIG on whose instances the tests may destroy.

Tests that need what only the simulator can do (marking workloads, resetting a GPU,
injecting faults) take the ``sim`` fixture instead of ``board``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from appliance.backends.gpu.nvml import NvmlGpuBackend
from appliance.backends.gpu.protocol import GpuBackend
from appliance.backends.gpu.simulated import SimulatedGpuBackend
from appliance.domain.gpu.catalog import GpuModel, MigProfile, default_catalog
from tests.unit.gpu.fake_nvml import GPU_UUID, FakeNvml

NVML_GPU = os.environ.get("TOWERBOX_GPU_CONTRACT_NVML")


@dataclass
class Board:
    backend: GpuBackend
    gpu: str
    model: GpuModel

    def shape(self, size: int, compute: int, media: str = "") -> MigProfile:
        """The profile of this board with that many memory slots and compute slices."""
        for profile in self.model.profiles:
            if (profile.size, profile.compute_slices, profile.media) == (size, compute, media):
                return profile
        raise LookupError(f"{self.model.key} has no {compute}g profile over {size} slots")


def _clear(backend: GpuBackend, gpu: str) -> None:
    for inst in backend.instances(gpu):
        backend.destroy_instance(gpu, inst.gpu_instance_id)


@pytest.fixture(
    params=["simulated-H100-80GB", "simulated-A100-40GB", "nvml-over-fake-H200-141GB", "nvml"]
)
def board(request: pytest.FixtureRequest) -> Iterator[Board]:
    backend: GpuBackend
    if request.param.startswith("nvml-over-fake-"):
        backend = NvmlGpuBackend(nvml=FakeNvml(request.param.removeprefix("nvml-over-fake-")))
        gpu = GPU_UUID
    elif request.param == "nvml":
        if not NVML_GPU:
            pytest.skip("set TOWERBOX_GPU_CONTRACT_NVML to a GPU UUID the tests may reshape")
        backend = NvmlGpuBackend()
        gpu = NVML_GPU
    else:
        backend = SimulatedGpuBackend([request.param.removeprefix("simulated-")])
        gpu = backend.list_gpus()[0].uuid
    info = next(g for g in backend.list_gpus() if g.uuid == gpu)
    assert info.model is not None, f"the catalog does not know {info.name}"
    _clear(backend, gpu)
    yield Board(backend, gpu, default_catalog().model(info.model))
    _clear(backend, gpu)
    backend.close()


@pytest.fixture
def sim() -> SimulatedGpuBackend:
    return SimulatedGpuBackend(["H100-80GB", "A30-24GB", "L40S-48GB"])
