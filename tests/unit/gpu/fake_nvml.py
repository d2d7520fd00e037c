# ruff: noqa: N802 - the methods carry pynvml's function names
"""A stand-in for the ``pynvml`` module, for mapping tests of the NVML backend.

It carries pynvml's real constants, ctypes structures and error classes, and fakes
the driver behind the calls with one GPU whose MIG rules come from the catalog. It
answers the way the NVML documentation says the driver answers (return codes, count
out-parameters, NULL arrays asking for a count), so the backend's parsing and error
mapping can be checked here. It is no proof of behaviour on hardware.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pynvml

from appliance.domain.gpu.catalog import MigProfile, default_catalog

GPU_UUID = "GPU-11111111-2222-3333-4444-555555555555"
SUCCESS: int = pynvml.NVML_SUCCESS
_CI_SLICES = {0: 1, 1: 2, 2: 3, 3: 4, 4: 7, 5: 8, 6: 6}


@dataclass
class _Gi:
    gi_id: int
    profile: MigProfile
    start: int
    cis: list[int] = field(default_factory=list)
    busy: bool = False


@dataclass(frozen=True)
class _MigHandle:
    gi_id: int
    ci_id: int


def _handle_of(gi_id: int, ci_id: int | None = None) -> Any:
    """An opaque NVML handle: a pointer value that encodes the ids, never dereferenced."""
    address = (gi_id << 8) | ((ci_id + 1) if ci_id is not None else 0)
    target = pynvml.c_nvmlComputeInstance_t if ci_id is not None else pynvml.c_nvmlGpuInstance_t
    return ctypes.cast(ctypes.c_void_p(address), target)


def _ids_of(handle: Any) -> tuple[int, int | None]:
    address = ctypes.cast(handle, ctypes.c_void_p).value or 0
    low = address & 0xFF
    return address >> 8, (low - 1) if low else None


def _fail(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


DRIVER_VERSION = "550.54.15"  # what a vGPU 17.1 host driver reports


class FakeNvml:
    def __init__(self, model_key: str = "H100-80GB", *, mig: bool = True) -> None:
        for name in dir(pynvml):
            if name.startswith(("NVML_", "c_nvml", "NVMLError", "nvmlPciInfo_t")):
                setattr(self, name, getattr(pynvml, name))
        self.model = default_catalog().model(model_key)
        self.mig_current = self.mig_pending = mig
        self.gis: dict[int, _Gi] = {}
        self.failures: dict[str, int] = {}
        self.init_error: int | None = None
        self.calls: list[str] = []
        self.device = object()

    def fail_next(self, function: str, code: int) -> None:
        self.failures[function] = code

    def _enter(self, function: str) -> None:
        self.calls.append(function)
        code = self.failures.pop(function, None)
        if code is not None:
            raise _fail(code)

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        if name.startswith("nvml") and callable(value):
            enter: Callable[[str], None] = object.__getattribute__(self, "_enter")

            def call(*args: Any) -> Any:
                enter(name)
                return value(*args)

            call.__name__ = name
            return call
        return value

    # -- library ---------------------------------------------------------------------

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise _fail(self.init_error)

    def nvmlShutdown(self) -> None:
        return None

    def nvmlSystemGetDriverVersion(self) -> str:
        return DRIVER_VERSION

    # -- device ----------------------------------------------------------------------

    def _device(self, handle: Any) -> None:
        if handle is not self.device:
            raise _fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)

    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        if index != 0:
            raise _fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self.device

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> Any:
        if uuid != GPU_UUID:
            raise _fail(pynvml.NVML_ERROR_NOT_FOUND)
        return self.device

    def nvmlDeviceGetName(self, handle: Any) -> str:
        return self.model.nvml_names[0]

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        if isinstance(handle, _MigHandle):
            return f"MIG-{handle.gi_id:08x}-{handle.ci_id:04x}"
        return GPU_UUID

    def nvmlDeviceGetPciInfo(self, handle: Any) -> Any:
        info = pynvml.nvmlPciInfo_t()
        info.busId = b"00000000:3B:00.0"
        info.pciDeviceId = (int(self.model.pci_device_ids[0], 16) << 16) | 0x10DE
        return info

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any:
        memory = pynvml.c_nvmlMemory_t()
        if isinstance(handle, _MigHandle):
            memory.total, memory.used = 10 * 1024**3, 512 * 1024**2
        else:
            memory.total, memory.used = self.model.memory_gb * 1024**3, 2048 * 1024**2
        return memory

    def nvmlDeviceGetNumaNodeId(self, handle: Any) -> int:
        return 1

    def nvmlDeviceGetMigMode(self, handle: Any) -> list[int]:
        if not self.model.mig_supported:
            raise _fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return [int(self.mig_current), int(self.mig_pending)]

    def nvmlDeviceSetMigMode(self, handle: Any, mode: int) -> int:
        if not self.model.mig_supported:
            raise _fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        if not mode and self.gis:
            raise _fail(pynvml.NVML_ERROR_IN_USE)
        self.mig_pending = bool(mode)
        return SUCCESS

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        return 123_456  # mW

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int:
        return 5_000_000  # mJ

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        return 41  # degrees Celsius

    def nvmlDeviceGetTotalEccErrors(self, handle: Any, kind: int, counter: int) -> int:
        if counter != pynvml.NVML_VOLATILE_ECC:
            raise _fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return 3 if kind == pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED else 0

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any:
        if self.mig_current:
            raise _fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return pynvml.c_nvmlUtilization_t(gpu=42, memory=7)

    # -- GPU instances -----------------------------------------------------------------

    def _profile(self, smi_id: int) -> MigProfile:
        profile = self.model.profile_by_smi_id(smi_id)
        if profile is None:
            raise _fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return profile

    def nvmlDeviceGetGpuInstanceProfileInfo(self, handle: Any, index: int) -> Any:
        if not self.mig_current:
            raise _fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        for profile in self.model.profiles:
            if profile.nvml_profile == index:
                info = pynvml.c_nvmlGpuInstanceProfileInfo_v2_t()
                info.id = profile.smi_id
                info.sliceCount = profile.compute_slices
                info.instanceCount = profile.max_count
                info.memorySizeMB = profile.memory_gb * 1000
                info.name = f"MIG {profile.name}".encode()
                return info
        raise _fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)

    def nvmlDeviceGetGpuInstancePossiblePlacements(
        self, handle: Any, smi_id: int, placements: Any, count_ref: Any
    ) -> int:
        profile = self._profile(smi_id)
        count = count_ref._obj
        if placements is not None:
            for i, start in enumerate(profile.starts):
                placements[i].start, placements[i].size = start, profile.size
        count.value = len(profile.starts)
        return SUCCESS

    def _taken(self) -> set[int]:
        return {s for gi in self.gis.values() for s in gi.profile.slots(gi.start)}

    def nvmlDeviceGetGpuInstanceRemainingCapacity(self, handle: Any, smi_id: int) -> int:
        profile = self._profile(smi_id)
        taken, count = set(self._taken()), 0
        same = sum(1 for gi in self.gis.values() if gi.profile is profile)
        for start in profile.starts:
            if same + count < profile.max_count and not taken & set(profile.slots(start)):
                taken |= set(profile.slots(start))
                count += 1
        return count

    def nvmlDeviceCreateGpuInstanceWithPlacement(
        self, handle: Any, smi_id: int, placement_ref: Any
    ) -> Any:
        if not self.mig_current:
            raise _fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        profile = self._profile(smi_id)
        placement = placement_ref._obj
        if placement.start not in profile.starts or placement.size != profile.size:
            raise _fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        same = sum(1 for gi in self.gis.values() if gi.profile.name == profile.name)
        media = sum(1 for gi in self.gis.values() if gi.profile.media)
        if (
            self._taken() & set(profile.slots(placement.start))
            or same >= profile.max_count
            or (profile.media and media >= self.model.media_extended_max)
        ):
            raise _fail(pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES)
        gi_id = min(set(range(1, 16)) - set(self.gis))
        self.gis[gi_id] = _Gi(gi_id, profile, placement.start)
        return _handle_of(gi_id)

    def _gi(self, handle: Any) -> _Gi:
        gi_id, _ = _ids_of(handle)
        if gi_id not in self.gis:
            raise _fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self.gis[gi_id]

    def nvmlDeviceGetGpuInstances(
        self, handle: Any, smi_id: int, array: Any, count_ref: Any
    ) -> int:
        found = [gi for gi in self.gis.values() if gi.profile.smi_id == smi_id]
        for i, gi in enumerate(found):
            array[i] = _handle_of(gi.gi_id)
        count_ref._obj.value = len(found)
        return SUCCESS

    def nvmlDeviceGetGpuInstanceById(self, handle: Any, gi_id: int) -> Any:
        if gi_id not in self.gis:
            raise _fail(pynvml.NVML_ERROR_NOT_FOUND)
        return _handle_of(gi_id)

    def nvmlGpuInstanceGetInfo(self, handle: Any) -> Any:
        gi = self._gi(handle)
        info = pynvml.c_nvmlGpuInstanceInfo_t()
        info.id, info.profileId = gi.gi_id, gi.profile.smi_id
        info.placement.start, info.placement.size = gi.start, gi.profile.size
        return info

    def nvmlGpuInstanceDestroy(self, handle: Any) -> int:
        gi = self._gi(handle)
        if gi.cis or gi.busy:
            raise _fail(pynvml.NVML_ERROR_IN_USE)
        del self.gis[gi.gi_id]
        return SUCCESS

    # -- compute instances -------------------------------------------------------------

    def nvmlGpuInstanceGetComputeInstanceProfileInfo(
        self, handle: Any, index: int, engine: int
    ) -> Any:
        gi = self._gi(handle)
        if _CI_SLICES.get(index) != gi.profile.compute_slices:
            raise _fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        info = pynvml.c_nvmlComputeInstanceProfileInfo_v2_t()
        info.id, info.sliceCount, info.instanceCount = index, gi.profile.compute_slices, 1
        return info

    def nvmlGpuInstanceCreateComputeInstance(self, handle: Any, ci_profile_id: int) -> Any:
        gi = self._gi(handle)
        if gi.cis:
            raise _fail(pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES)
        gi.cis.append(0)
        return _handle_of(gi.gi_id, 0)

    def nvmlGpuInstanceGetComputeInstances(
        self, handle: Any, ci_profile_id: int, array: Any, count_ref: Any
    ) -> int:
        gi = self._gi(handle)
        for i, ci in enumerate(gi.cis):
            array[i] = _handle_of(gi.gi_id, ci)
        count_ref._obj.value = len(gi.cis)
        return SUCCESS

    def nvmlComputeInstanceDestroy(self, handle: Any) -> int:
        gi_id, ci_id = _ids_of(handle)
        gi = self.gis[gi_id]
        if gi.busy:
            raise _fail(pynvml.NVML_ERROR_IN_USE)
        gi.cis.remove(ci_id if ci_id is not None else -1)
        return SUCCESS

    # -- MIG devices -----------------------------------------------------------------

    def _mig_handles(self) -> list[_MigHandle]:
        return [
            _MigHandle(gi.gi_id, ci) for gi in sorted(self.gis.values(), key=lambda g: g.gi_id)
            for ci in gi.cis
        ]  # fmt: skip

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Any) -> int:
        return self.model.compute_slices

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Any, index: int) -> Any:
        handles = self._mig_handles()
        if index >= len(handles):
            raise _fail(pynvml.NVML_ERROR_NOT_FOUND)
        return handles[index]

    def nvmlDeviceGetGpuInstanceId(self, handle: _MigHandle) -> int:
        return handle.gi_id

    def nvmlDeviceGetComputeInstanceId(self, handle: _MigHandle) -> int:
        return handle.ci_id
