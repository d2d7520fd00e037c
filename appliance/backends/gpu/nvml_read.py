"""Reading NVML's structures into plain records: GPUs, MIG profiles, MIG devices.

Functions here let NVMLError through (except for reads a board may simply not
offer); the backend maps it with the context of the call it was serving.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from appliance.backends.gpu.nvml_errors import error_name
from appliance.backends.gpu.protocol import (
    GpuInfo,
    GpuTelemetry,
    InstanceTelemetry,
    MigMode,
    ProfileInfo,
)
from appliance.domain.gpu.catalog import GpuModel

log = logging.getLogger(__name__)
_MIB = 1024 * 1024
_ABSENT = (
    "NVML_ERROR_NOT_SUPPORTED",
    "NVML_ERROR_NOT_FOUND",
    "NVML_ERROR_INVALID_ARGUMENT",
    "NVML_ERROR_NO_DATA",
)


def _absent(nvml: Any, err: BaseException) -> bool:
    return error_name(nvml, err) in _ABSENT


def as_text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def pci_address(bus_id: str | bytes) -> str:
    """NVML's "00000000:3B:00.0" as the kernel writes it: "0000:3b:00.0"."""
    domain, bus, rest = as_text(bus_id).strip().split(":", 2)
    return f"{domain[-4:]}:{bus}:{rest}".lower()


@dataclass(frozen=True)
class NvmlProfile:
    name: str
    smi_id: int  # nvmlGpuInstanceProfileInfo_t.id
    nvml_profile: int  # the NVML_GPU_INSTANCE_PROFILE_* index it was read with
    compute_slices: int
    memory_mib: int
    max_count: int
    size: int  # memory slots covered
    starts: tuple[int, ...]

    def gpu_instances(self, nvml: Any, handle: Any) -> list[Any]:
        array = (nvml.c_nvmlGpuInstance_t * max(self.max_count, 1))()
        count = ctypes.c_uint(len(array))
        nvml.nvmlDeviceGetGpuInstances(handle, self.smi_id, array, ctypes.byref(count))
        return [array[i] for i in range(count.value)]

    def info(self, nvml: Any, handle: Any) -> ProfileInfo:
        return ProfileInfo(
            name=self.name,
            profile_id=self.smi_id,
            compute_slices=self.compute_slices,
            memory_mib=self.memory_mib,
            size=self.size,
            starts=self.starts,
            max_count=self.max_count,
            remaining=nvml.nvmlDeviceGetGpuInstanceRemainingCapacity(handle, self.smi_id),
        )


def _placements(nvml: Any, handle: Any, smi_id: int) -> tuple[tuple[int, ...], int]:
    """Possible start slots of a profile, and how many slots it covers."""
    count = ctypes.c_uint(0)
    # A NULL array asks for the number of placements first.
    nvml.nvmlDeviceGetGpuInstancePossiblePlacements(handle, smi_id, None, ctypes.byref(count))
    array = (nvml.c_nvmlGpuInstancePlacement_t * max(count.value, 1))()
    nvml.nvmlDeviceGetGpuInstancePossiblePlacements(handle, smi_id, array, ctypes.byref(count))
    placed = [array[i] for i in range(count.value)]
    size = int(placed[0].size) if placed else 0
    return tuple(sorted(int(p.start) for p in placed)), size


def _profile_name(info: Any, model: GpuModel | None) -> str:
    known = model.profile_by_smi_id(info.id) if model is not None else None
    if known is not None:
        return known.name
    raw = as_text(getattr(info, "name", b"")).strip()
    return raw.removeprefix("MIG ").strip() or f"profile-{info.id}"


def read_profiles(nvml: Any, handle: Any, model: GpuModel | None) -> list[NvmlProfile]:
    """The GPU-instance profiles the driver offers; empty while MIG is off."""
    found = []
    for index in range(nvml.NVML_GPU_INSTANCE_PROFILE_COUNT):
        try:
            info = nvml.nvmlDeviceGetGpuInstanceProfileInfo(handle, index)
        except nvml.NVMLError as err:
            if _absent(nvml, err):
                continue
            raise
        name = _profile_name(info, model)
        known = model.profile_by_smi_id(info.id) if model is not None else None
        if known is not None and known.nvml_profile != index:
            log.warning(
                "GPU catalog and driver disagree on a MIG profile",
                extra={"profile": name, "catalog_nvml_profile": known.nvml_profile},
            )
        starts, size = _placements(nvml, handle, int(info.id))
        found.append(
            NvmlProfile(
                name=name,
                smi_id=int(info.id),
                nvml_profile=index,
                compute_slices=int(info.sliceCount),
                memory_mib=int(info.memorySizeMB),
                max_count=int(info.instanceCount),
                size=size,
                starts=starts,
            )
        )
    return found


@dataclass(frozen=True)
class MigDevice:
    compute_instance_id: int
    uuid: str
    handle: Any


def mig_devices(nvml: Any, handle: Any) -> dict[int, list[MigDevice]]:
    """MIG devices (one per compute instance), by GPU instance id."""
    found: dict[int, list[MigDevice]] = {}
    for index in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, index)
        except nvml.NVMLError as err:
            if _absent(nvml, err):
                continue  # an empty MIG device slot
            raise
        gi_id = nvml.nvmlDeviceGetGpuInstanceId(mig)
        device = MigDevice(
            compute_instance_id=nvml.nvmlDeviceGetComputeInstanceId(mig),
            uuid=as_text(nvml.nvmlDeviceGetUUID(mig)),
            handle=mig,
        )
        found.setdefault(gi_id, []).append(device)
    for devices in found.values():
        devices.sort(key=lambda d: d.compute_instance_id)
    return found


def compute_instances(nvml: Any, gpu_instance: Any) -> Iterator[Any]:
    """Every compute instance on a GPU instance, of whatever compute profile."""
    shared = nvml.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED
    for index in range(nvml.NVML_COMPUTE_INSTANCE_PROFILE_COUNT):
        try:
            profile = nvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(gpu_instance, index, shared)
        except nvml.NVMLError as err:
            if _absent(nvml, err):
                continue
            raise
        array = (nvml.c_nvmlComputeInstance_t * max(profile.instanceCount, 1))()
        count = ctypes.c_uint(len(array))
        nvml.nvmlGpuInstanceGetComputeInstances(
            gpu_instance, profile.id, array, ctypes.byref(count)
        )
        yield from (array[i] for i in range(count.value))


def optional(nvml: Any, fn: Any, *args: Any) -> Any:
    """fn(*args), or None when the board or driver does not offer that reading."""
    try:
        return fn(*args)
    except nvml.NVMLError as err:
        if _absent(nvml, err):
            return None
        raise


def gpu_info(nvml: Any, handle: Any, index: int, model: GpuModel | None) -> GpuInfo:
    pci = nvml.nvmlDeviceGetPciInfo(handle)
    numa = optional(nvml, nvml.nvmlDeviceGetNumaNodeId, handle)
    mode = optional(nvml, nvml.nvmlDeviceGetMigMode, handle)
    return GpuInfo(
        index=index,
        uuid=as_text(nvml.nvmlDeviceGetUUID(handle)),
        name=as_text(nvml.nvmlDeviceGetName(handle)),
        model=model.key if model is not None else None,
        pci_address=pci_address(pci.busId),
        numa_node=numa if numa is not None and numa >= 0 else None,
        memory_mib=int(nvml.nvmlDeviceGetMemoryInfo(handle).total) // _MIB,
        mig_supported=mode is not None,
        mig=MigMode(bool(mode[0]), bool(mode[1])) if mode is not None else MigMode(False, False),
    )


def catalog_profiles(model: GpuModel | None) -> list[ProfileInfo]:
    """A board's profiles from the catalog, for when MIG is off and NVML lists none."""
    return [
        ProfileInfo(
            name=p.name,
            profile_id=p.smi_id,
            compute_slices=p.compute_slices,
            memory_mib=p.memory_gb * 1024,
            size=p.size,
            starts=p.starts,
            max_count=p.max_count,
            remaining=0,
        )
        for p in (model.profiles if model is not None else ())
    ]


def _ecc(nvml: Any, handle: Any, kind: int) -> int | None:
    """Memory ECC errors of one kind since the driver loaded (volatile), where the
    board has ECC on."""
    counter = nvml.NVML_VOLATILE_ECC
    errors = optional(nvml, nvml.nvmlDeviceGetTotalEccErrors, handle, kind, counter)
    return int(errors) if errors is not None else None


def read_telemetry(nvml: Any, handle: Any) -> GpuTelemetry:
    power = optional(nvml, nvml.nvmlDeviceGetPowerUsage, handle)  # mW
    energy = optional(nvml, nvml.nvmlDeviceGetTotalEnergyConsumption, handle)  # mJ
    util = optional(nvml, nvml.nvmlDeviceGetUtilizationRates, handle)
    memory = optional(nvml, nvml.nvmlDeviceGetMemoryInfo, handle)
    temperature = optional(nvml, nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)
    mode = optional(nvml, nvml.nvmlDeviceGetMigMode, handle)
    per_instance = []
    if mode and mode[0]:
        for gi_id, devices in sorted(mig_devices(nvml, handle).items()):
            mig = devices[0].handle
            mig_memory = optional(nvml, nvml.nvmlDeviceGetMemoryInfo, mig)
            # Most drivers refuse utilisation per MIG device; DCGM has it.
            mig_util = optional(nvml, nvml.nvmlDeviceGetUtilizationRates, mig)
            per_instance.append(
                InstanceTelemetry(
                    gpu_instance_id=gi_id,
                    memory_used_mib=int(mig_memory.used) // _MIB if mig_memory else None,
                    utilization_pct=float(mig_util.gpu) if mig_util else None,
                    memory_total_mib=int(mig_memory.total) // _MIB if mig_memory else None,
                )
            )
    return GpuTelemetry(
        power_w=power / 1000 if power is not None else None,
        energy_j=energy / 1000 if energy is not None else None,
        utilization_pct=float(util.gpu) if util else None,
        memory_used_mib=int(memory.used) // _MIB if memory else None,
        instances=tuple(per_instance),
        memory_total_mib=int(memory.total) // _MIB if memory else None,
        temperature_c=float(temperature) if temperature is not None else None,
        ecc_corrected=_ecc(nvml, handle, nvml.NVML_MEMORY_ERROR_TYPE_CORRECTED),
        ecc_uncorrected=_ecc(nvml, handle, nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED),
        mig_enabled=bool(mode[0]) if mode is not None else None,
    )
