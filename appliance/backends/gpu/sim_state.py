"""The simulated GPUs' state, and how it is kept on disk between daemon runs."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from appliance.domain.gpu.catalog import GpuCatalog
from towerbox_core.errors import ConfigError, InvalidInput

STATE_VERSION = 1


class SimInstance(msgspec.Struct, forbid_unknown_fields=True):
    gpu_instance_id: int
    profile: str
    start: int
    mig_uuid: str
    compute_instance_ids: list[int] = msgspec.field(default_factory=lambda: [0])
    workload: str | None = None


class SimGpu(msgspec.Struct, forbid_unknown_fields=True):
    index: int
    uuid: str
    model: str
    mig_current: bool
    mig_pending: bool
    instances: list[SimInstance] = msgspec.field(default_factory=list)
    energy_j: float = 0.0


class SimState(msgspec.Struct, forbid_unknown_fields=True):
    version: int
    gpus: list[SimGpu]
    created: int = 0  # instances ever created: seeds MIG device UUIDs


def _unusable(path: Path, why: object) -> ConfigError:
    return ConfigError(
        f"simulated GPU state {path} is unusable: {why}",
        code="invalid_gpu_state",
        path=str(path),
    )


def load_state(path: Path, catalog: GpuCatalog) -> SimState:
    try:
        state = msgspec.json.decode(path.read_bytes(), type=SimState)
    except (OSError, msgspec.DecodeError) as err:
        raise _unusable(path, err) from err
    if state.version != STATE_VERSION:
        raise _unusable(path, f"version {state.version} is not {STATE_VERSION}")
    for gpu in state.gpus:
        try:
            catalog.model(gpu.model)
        except InvalidInput as err:
            raise _unusable(path, err) from err
    return state


def reset_gpu(gpu: SimGpu) -> None:
    """What a GPU reset does: the pending MIG mode takes effect, instances are gone."""
    gpu.mig_current = gpu.mig_pending
    gpu.instances.clear()


def power_cycle(path: Path, catalog: GpuCatalog) -> None:
    """What a host power cycle does to the saved simulated GPUs, with no daemon running.

    The hardware loses its MIG instances (and the workloads on them) and its energy
    counter; a pending MIG mode takes effect, as at any GPU reset. The boards and
    their MIG mode setting stay (NVIDIA keeps the mode across reboots), and so does the
    count of instances ever made, so new MIG device UUIDs never repeat old ones.
    """
    state = load_state(path, catalog)
    for gpu in state.gpus:
        reset_gpu(gpu)
        gpu.energy_j = 0.0
    save_state(path, state)


def save_state(path: Path, state: SimState) -> None:
    """Write atomically: a crash leaves the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(msgspec.json.encode(state))
    os.replace(tmp, path)
