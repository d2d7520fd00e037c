"""The GPU backend over NVML (nvidia-ml-py's ``pynvml``), for real nodes.

pynvml is imported only when this backend is built, so nodes and CI machines without
an NVIDIA driver never load it. Every NVML error is turned into a TowerboxError with
the simulator's codes (``nvml_errors``), raised from the original. NVML calls block;
one lock serialises them, so the daemon may call from worker threads.

This backend never resets a GPU: a MIG mode change is reported as pending until the
operator resets the GPU or reboots the node.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from appliance.backends.gpu.nvml_errors import (
    GPU_LOOKUP,
    INSTANCE_LOOKUP,
    PLACEMENT,
    Meaning,
    error_name,
    map_nvml_error,
)
from appliance.backends.gpu.nvml_read import (
    NvmlProfile,
    as_text,
    catalog_profiles,
    compute_instances,
    gpu_info,
    mig_devices,
    optional,
    read_profiles,
    read_telemetry,
)
from appliance.backends.gpu.protocol import (
    TIMES,
    GpuInfo,
    GpuInstanceInfo,
    GpuTelemetry,
    MigMode,
    ProfileInfo,
)
from appliance.backends.gpu.refusals import creation_refusal
from appliance.domain.gpu.catalog import GpuCatalog, GpuModel, default_catalog
from towerbox_core.errors import Conflict, InsufficientResources, InvalidInput, TowerboxError

log = logging.getLogger(__name__)
T = TypeVar("T")
# The compute-instance profile that fills a GPU instance of so many slices.
_FULL_COMPUTE_INSTANCE = {
    1: "NVML_COMPUTE_INSTANCE_PROFILE_1_SLICE",
    2: "NVML_COMPUTE_INSTANCE_PROFILE_2_SLICE",
    3: "NVML_COMPUTE_INSTANCE_PROFILE_3_SLICE",
    4: "NVML_COMPUTE_INSTANCE_PROFILE_4_SLICE",
    6: "NVML_COMPUTE_INSTANCE_PROFILE_6_SLICE",
    7: "NVML_COMPUTE_INSTANCE_PROFILE_7_SLICE",
    8: "NVML_COMPUTE_INSTANCE_PROFILE_8_SLICE",
}


def _import_pynvml() -> Any:
    import pynvml

    return pynvml


class NvmlGpuBackend:
    def __init__(self, catalog: GpuCatalog | None = None, *, nvml: Any | None = None) -> None:
        self._nvml = nvml if nvml is not None else _import_pynvml()
        self._catalog = catalog or default_catalog()
        self._lock = threading.RLock()
        self._profiles: dict[str, list[NvmlProfile]] = {}
        self._call(self._nvml.nvmlInit, "initialise NVML")

    @classmethod
    def probe(cls, nvml: Any | None = None) -> str | None:
        """None when NVML answers; otherwise why not ("NVML Shared Library Not Found")."""
        try:
            module = nvml if nvml is not None else _import_pynvml()
        except ImportError as err:
            return f"nvidia-ml-py is not installed ({err})"
        try:
            module.nvmlInit()
        except module.NVMLError as err:
            return str(err)
        try:
            module.nvmlShutdown()
        except module.NVMLError:
            log.debug("nvmlShutdown after a probe failed", exc_info=True)
        return None

    @classmethod
    def available(cls, nvml: Any | None = None) -> bool:
        return cls.probe(nvml) is None

    # -- plumbing ------------------------------------------------------------------

    def _call(
        self,
        fn: Callable[..., T],
        action: str,
        *args: Any,
        meanings: Mapping[str, Meaning] | None = None,
        **extra: object,
    ) -> T:
        try:
            return fn(*args)
        except self._nvml.NVMLError as err:
            raise map_nvml_error(self._nvml, err, action, meanings, **extra) from err

    def _handle(self, gpu: str) -> Any:
        find = self._nvml.nvmlDeviceGetHandleByUUID
        return self._call(find, f"find GPU {gpu}", gpu, meanings=GPU_LOOKUP, gpu=gpu)

    def _model(self, handle: Any) -> GpuModel | None:
        name = self._nvml.nvmlDeviceGetName(handle)
        pci = self._nvml.nvmlDeviceGetPciInfo(handle)
        return self._catalog.match(name=as_text(name), pci_device_id=pci.pciDeviceId)

    def _profile_table(self, gpu: str, handle: Any) -> list[NvmlProfile]:
        if gpu not in self._profiles:
            table = read_profiles(self._nvml, handle, self._model(handle))
            if not table:
                return table  # MIG off or unsupported: ask again next time
            self._profiles[gpu] = table
        return self._profiles[gpu]

    def _mig_mode(self, gpu: str, handle: Any) -> MigMode:
        mode = self._call(self._nvml.nvmlDeviceGetMigMode, f"read MIG mode of {gpu}", handle)
        return MigMode(current=bool(mode[0]), pending=bool(mode[1]))

    # -- GpuBackend ----------------------------------------------------------------

    @property
    def simulated(self) -> bool:
        return False

    def describe(self) -> str:
        gpus = self.list_gpus()
        if not gpus:
            return "nvml (no GPUs)"
        names = Counter(
            self._catalog.model(g.model).display_name if g.model else g.name for g in gpus
        )
        return "nvml (" + ", ".join(f"{n} {TIMES} {name}" for name, n in names.items()) + ")"

    def driver_version(self) -> str:
        with self._lock:
            raw = self._call(self._nvml.nvmlSystemGetDriverVersion, "read the driver version")
        return as_text(raw).strip()

    def list_gpus(self) -> list[GpuInfo]:
        with self._lock:
            count = self._call(self._nvml.nvmlDeviceGetCount, "count GPUs")
            found = []
            for index in range(count):
                handle = self._call(
                    self._nvml.nvmlDeviceGetHandleByIndex, f"open GPU {index}", index
                )
                try:
                    found.append(gpu_info(self._nvml, handle, index, self._model(handle)))
                except self._nvml.NVMLError as err:
                    raise map_nvml_error(self._nvml, err, f"describe GPU {index}") from err
            return found

    def profiles(self, gpu: str) -> list[ProfileInfo]:
        with self._lock:
            handle = self._handle(gpu)
            try:
                table = self._profile_table(gpu, handle)
                if table:
                    return [p.info(self._nvml, handle) for p in table]
                model = self._model(handle)
            except self._nvml.NVMLError as err:
                raise map_nvml_error(self._nvml, err, f"read MIG profiles of {gpu}") from err
            # The driver lists profiles only while MIG is on; the catalog knows them anyway.
            return catalog_profiles(model)

    def instances(self, gpu: str) -> list[GpuInstanceInfo]:
        with self._lock:
            handle = self._handle(gpu)
            try:
                mode = optional(self._nvml, self._nvml.nvmlDeviceGetMigMode, handle)
                if not mode or not mode[0]:
                    return []
                return self._instances(gpu, handle)
            except self._nvml.NVMLError as err:
                raise map_nvml_error(self._nvml, err, f"list MIG instances of {gpu}") from err

    def _instances(self, gpu: str, handle: Any) -> list[GpuInstanceInfo]:
        devices = mig_devices(self._nvml, handle)
        found = []
        for profile in self._profile_table(gpu, handle):
            for gi in profile.gpu_instances(self._nvml, handle):
                info = self._nvml.nvmlGpuInstanceGetInfo(gi)
                migs = devices.get(info.id, [])
                found.append(
                    GpuInstanceInfo(
                        gpu_instance_id=info.id,
                        profile=profile.name,
                        profile_id=profile.smi_id,
                        start=info.placement.start,
                        size=info.placement.size,
                        compute_instance_ids=tuple(m.compute_instance_id for m in migs),
                        mig_uuid=migs[0].uuid if migs else None,
                    )
                )
        return sorted(found, key=lambda i: i.gpu_instance_id)

    def create_instance(self, gpu: str, profile: str, start: int) -> GpuInstanceInfo:
        with self._lock:
            handle = self._handle(gpu)
            mode = self._mig_mode(gpu, handle)
            if not mode.current:
                raise Conflict(
                    f"MIG mode is off on GPU {gpu}"
                    + (" (on after the next GPU reset)" if mode.pending else ""),
                    code="mig_disabled",
                    gpu=gpu,
                )
            wanted = self._find_profile(gpu, handle, profile)
            if start not in wanted.starts:
                allowed = ", ".join(str(s) for s in wanted.starts)
                raise InvalidInput(
                    f"{profile} cannot start at slot {start}; allowed: {allowed}",
                    code="invalid_mig_placement",
                    profile=profile,
                    start=start,
                    allowed=list(wanted.starts),
                )
            placement = self._nvml.c_nvmlGpuInstancePlacement_t()
            placement.start, placement.size = start, wanted.size
            action = f"create {profile} at slot {start} on GPU {gpu}"
            try:
                gi = self._nvml.nvmlDeviceCreateGpuInstanceWithPlacement(
                    handle, wanted.smi_id, ctypes.byref(placement)
                )
            except self._nvml.NVMLError as err:
                if error_name(self._nvml, err) == "NVML_ERROR_INSUFFICIENT_RESOURCES":
                    raise self._why_full(gpu, handle, profile, start, action) from err
                raise map_nvml_error(self._nvml, err, action, PLACEMENT, gpu=gpu) from err
            gi_id = self._fill_with_compute_instance(gpu, gi, wanted, action)
            log.info(
                "MIG instance created",
                extra={"gpu": gpu, "gpu_instance": gi_id, "profile": profile, "start": start},
            )
            for inst in self.instances(gpu):
                if inst.gpu_instance_id == gi_id:
                    return inst
            raise TowerboxError(f"{action}: GPU instance {gi_id} vanished after creation")

    def _find_profile(self, gpu: str, handle: Any, name: str) -> NvmlProfile:
        try:
            table = self._profile_table(gpu, handle)
        except self._nvml.NVMLError as err:
            raise map_nvml_error(self._nvml, err, f"read MIG profiles of {gpu}") from err
        for profile in table:
            if profile.name == name:
                return profile
        known = [p.name for p in table]
        raise InvalidInput(
            f"unknown MIG profile {name!r} for GPU {gpu}; known: {', '.join(known)}",
            code="unknown_mig_profile",
            profile=name,
            known=known,
        )

    def _why_full(
        self, gpu: str, handle: Any, profile: str, start: int, action: str
    ) -> TowerboxError:
        """Name the resource NVML found short (slots, count or compute slices)."""
        model = self._model(handle)
        if model is not None and model.mig_supported:
            existing = [(model.profile(i.profile), i.start) for i in self._instances(gpu, handle)]
            refusal = creation_refusal(model, existing, model.profile(profile), start)
            if refusal is not None:
                refusal.extra["gpu"] = gpu
                return refusal
        return InsufficientResources(
            f"{action}: the GPU has no room for it", code="mig_slot_occupied", gpu=gpu
        )

    def _fill_with_compute_instance(
        self, gpu: str, gi: Any, profile: NvmlProfile, action: str
    ) -> int:
        nvml = self._nvml
        try:
            gi_id = int(nvml.nvmlGpuInstanceGetInfo(gi).id)
            ci_index = getattr(nvml, _FULL_COMPUTE_INSTANCE[profile.compute_slices])
            ci_profile = nvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(
                gi, ci_index, nvml.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED
            )
            nvml.nvmlGpuInstanceCreateComputeInstance(gi, ci_profile.id)
        except nvml.NVMLError as err:
            # A GPU instance without a compute instance is of no use to anyone.
            try:
                nvml.nvmlGpuInstanceDestroy(gi)
            except nvml.NVMLError:
                log.warning("could not undo a half-made GPU instance", extra={"gpu": gpu})
            raise map_nvml_error(nvml, err, f"{action}: compute instance", gpu=gpu) from err
        return gi_id

    def destroy_instance(self, gpu: str, instance_id: int) -> None:
        with self._lock:
            handle = self._handle(gpu)
            action = f"destroy GPU instance {instance_id} on GPU {gpu}"
            gi = self._call(
                self._nvml.nvmlDeviceGetGpuInstanceById,
                action,
                handle,
                instance_id,
                meanings=INSTANCE_LOOKUP,
                gpu=gpu,
                instance_id=instance_id,
            )
            try:
                for ci in compute_instances(self._nvml, gi):
                    self._nvml.nvmlComputeInstanceDestroy(ci)
                self._nvml.nvmlGpuInstanceDestroy(gi)
            except self._nvml.NVMLError as err:
                raise map_nvml_error(
                    self._nvml, err, action, INSTANCE_LOOKUP, gpu=gpu, instance_id=instance_id
                ) from err
            log.info("MIG instance destroyed", extra={"gpu": gpu, "gpu_instance": instance_id})

    def set_mig_mode(self, gpu: str, enabled: bool) -> MigMode:
        with self._lock:
            handle = self._handle(gpu)
            nvml = self._nvml
            value = nvml.NVML_DEVICE_MIG_ENABLE if enabled else nvml.NVML_DEVICE_MIG_DISABLE
            action = f"turn MIG {'on' if enabled else 'off'} on GPU {gpu}"
            self._call(nvml.nvmlDeviceSetMigMode, action, handle, value, gpu=gpu)
            self._profiles.pop(gpu, None)
            mode = self._mig_mode(gpu, handle)
            if mode.current != mode.pending:
                log.warning(
                    "MIG mode change pending until the GPU is reset",
                    extra={"gpu": gpu, "mig_pending": mode.pending},
                )
            return mode

    def telemetry(self, gpu: str) -> GpuTelemetry:
        with self._lock:
            handle = self._handle(gpu)
            try:
                return read_telemetry(self._nvml, handle)
            except self._nvml.NVMLError as err:
                raise map_nvml_error(self._nvml, err, f"read telemetry of {gpu}") from err

    def close(self) -> None:
        with self._lock:
            self._call(self._nvml.nvmlShutdown, "shut NVML down")
