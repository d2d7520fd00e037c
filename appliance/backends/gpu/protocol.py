"""The GPU backend interface and the records it returns.

Two implementations: NVML on a real node, and an in-memory twin built from the GPU
catalog for development, demos and tests. Both raise the same TowerboxError codes
for the same refusals, so callers never see which one they talk to:

- ``mig_disabled``            Conflict: instances asked for while MIG mode is off
- ``mig_not_supported``       Conflict: MIG asked of a board without it
- ``mig_slot_occupied``       InsufficientResources: the memory slots are taken
- ``mig_count_exceeded``      InsufficientResources: no more of that profile fit
- ``mig_compute_exceeded``    InsufficientResources: no compute slices left
- ``invalid_mig_placement``   InvalidInput: the profile cannot start at that slot
- ``unknown_mig_profile``     InvalidInput: the board has no such profile
- ``mig_instance_in_use``     Conflict: a workload still uses the instance (or GPU)
- ``mig_instance_not_found``  NotFound; ``gpu_not_found`` NotFound

Every call blocks (NVML is a C library); async callers run them in a worker thread.
Implementations are safe to call from several threads at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# The multiplication sign of operator-facing counts ("nvml (2 x H100 80GB)").
TIMES = "\u00d7"


@dataclass(frozen=True)
class MigMode:
    current: bool
    # What the mode becomes at the next GPU reset; equal to current when nothing waits.
    pending: bool


@dataclass(frozen=True)
class GpuInfo:
    index: int
    uuid: str
    name: str  # as NVML reports it, e.g. "NVIDIA H100 80GB HBM3"
    model: str | None  # catalog key ("H100-80GB"); None for a board the catalog lacks
    pci_address: str  # "0000:3b:00.0"
    numa_node: int | None
    memory_mib: int
    mig_supported: bool
    mig: MigMode


@dataclass(frozen=True)
class ProfileInfo:
    name: str  # "3g.40gb"
    profile_id: int  # the `nvidia-smi mig -lgip` ID
    compute_slices: int
    memory_mib: int
    size: int  # memory slots covered
    starts: tuple[int, ...]  # possible placements (start slots), free or not
    max_count: int
    remaining: int  # how many more could be created now


@dataclass(frozen=True)
class GpuInstanceInfo:
    gpu_instance_id: int
    profile: str
    profile_id: int
    start: int
    size: int
    compute_instance_ids: tuple[int, ...]
    mig_uuid: str | None  # "MIG-..." once a compute instance exists


@dataclass(frozen=True)
class InstanceTelemetry:
    gpu_instance_id: int
    memory_used_mib: int | None
    utilization_pct: float | None  # NVML reports none per MIG instance on most drivers
    memory_total_mib: int | None = None


@dataclass(frozen=True)
class GpuTelemetry:
    power_w: float | None
    energy_j: float | None  # since the driver loaded
    utilization_pct: float | None  # whole GPU; NVML reports none while MIG is on
    memory_used_mib: int | None
    instances: tuple[InstanceTelemetry, ...] = ()
    memory_total_mib: int | None = None
    temperature_c: float | None = None  # the GPU die
    # Memory ECC errors since the driver loaded; None where the board has no ECC.
    ecc_corrected: int | None = None
    ecc_uncorrected: int | None = None
    # MIG mode now, read with the figures so that the sweep knows an instance-less GPU
    # from one with MIG off; None where the board has no MIG mode.
    mig_enabled: bool | None = None


class GpuBackend(Protocol):
    """One node's GPUs; ``gpu`` arguments are GPU UUIDs as ``list_gpus`` reports them."""

    @property
    def simulated(self) -> bool: ...

    def describe(self) -> str:
        """What the operator sees: "nvml (2 x H100 80GB)", "simulated H100 80GB x1" (with
        a multiplication sign, ``TIMES``)."""
        ...

    def driver_version(self) -> str | None:
        """The NVIDIA driver's version ("550.90.07"), None where the node has none.
        Read once at start by the caller: the driver cannot change under a running
        daemon without its GPUs going away first."""
        ...

    def list_gpus(self) -> list[GpuInfo]: ...

    def profiles(self, gpu: str) -> list[ProfileInfo]: ...

    def instances(self, gpu: str) -> list[GpuInstanceInfo]: ...

    def create_instance(self, gpu: str, profile: str, start: int) -> GpuInstanceInfo:
        """Create a GPU instance at this placement and one compute instance filling it."""
        ...

    def destroy_instance(self, gpu: str, instance_id: int) -> None:
        """Destroy the compute instances of a GPU instance, then the GPU instance."""
        ...

    def set_mig_mode(self, gpu: str, enabled: bool) -> MigMode:
        """Ask for MIG on or off. Never resets the GPU: the change stays pending until
        the GPU is reset or the node reboots, which the returned mode tells."""
        ...

    def telemetry(self, gpu: str) -> GpuTelemetry: ...

    def close(self) -> None: ...
