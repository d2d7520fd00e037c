"""NVIDIA vGPU on the host: mediated devices that carry a MIG slice into a VM.

With NVIDIA's vGPU manager installed, each GPU (or each of its SR-IOV virtual
functions, on Ampere and later) is an mdev parent under /sys/class/mdev_bus, and its
``mdev_supported_types`` include MIG-backed vGPU types named for the slice they take:
"NVIDIA H100-3-40C" is 3 compute slices and 40 GB, i.e. a 3g.40gb instance ("ME" at
the end for a +me instance). Writing a UUID to a type's ``create`` file makes the
mediated device; libvirt hands it to the VM as ``<hostdev type='mdev'>`` by that UUID.
The vGPU manager places the device on a free GPU instance of the matching profile;
the layout service has reserved exactly one for the VM, so the counts agree.

Two implementations: sysfs (a real node; the root is configurable so tests can lay
out the same tree in a directory) and a simulated one that marks the simulated GPU
instance busy, so the simulator refuses to destroy it exactly as NVML would.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from appliance.backends.gpu.protocol import GpuInfo, GpuInstanceInfo
from appliance.backends.gpu.simulated import SimulatedGpuBackend
from appliance.domain.gpu.catalog import MigProfile
from towerbox_core.errors import BackendError, Conflict, TowerboxError

log = logging.getLogger(__name__)

# "GRID A100-3-20C", "NVIDIA H100-1-10CME": compute slices, memory GB, C(ompute), ME.
_MIG_TYPE_RE = re.compile(r"-(\d)-(\d+)C(ME)?$")


@dataclass(frozen=True)
class MdevType:
    parent: str  # PCI address of the mdev parent (the GPU or one of its VFs)
    type_id: str  # "nvidia-700"
    name: str  # "NVIDIA H100-3-40C"
    available: int


def mig_type_matches(type_name: str, profile: MigProfile) -> bool:
    """Whether a vGPU type's name is the MIG-backed type for this profile."""
    m = _MIG_TYPE_RE.search(type_name.strip())
    if m is None:
        return False
    media = m.group(3) is not None
    return (
        int(m.group(1)) == profile.compute_slices
        and int(m.group(2)) == profile.memory_gb
        and media == (profile.media == "me")
    )


class VgpuHost(Protocol):
    def describe(self) -> str: ...

    def available(self, gpu: GpuInfo) -> bool:
        """Whether this GPU can carry MIG slices into VMs as vGPUs."""
        ...

    def manager_version(self) -> str | None:
        """The vGPU manager's version, None where there is none; read once at start."""
        ...

    def create(
        self, gpu: GpuInfo, instance: GpuInstanceInfo, profile: MigProfile, mdev_uuid: str
    ) -> None:
        """Make the mediated device for this instance (no-op if it exists)."""
        ...

    def remove(self, gpu: str, mdev_uuid: str) -> None:
        """Remove the mediated device (no-op if it is gone)."""
        ...


NO_VGPU_MANAGER = "this host has no NVIDIA vGPU manager"
# Kernel modules, below the sysfs root.
VGPU_MODULE = "module/nvidia_vgpu_vfio"
NVIDIA_MODULE = "module/nvidia"


class NoVgpu:
    """No vGPUs for VMs here: MIG slices reach processes only."""

    def __init__(self, reason: str = NO_VGPU_MANAGER) -> None:
        self.reason = reason

    def describe(self) -> str:
        return f"none ({self.reason})"

    def manager_version(self) -> None:
        return None

    def available(self, gpu: GpuInfo) -> bool:
        return False

    def create(
        self, gpu: GpuInfo, instance: GpuInstanceInfo, profile: MigProfile, mdev_uuid: str
    ) -> None:
        raise Conflict(
            f"{self.reason}, so a MIG slice cannot reach a VM; pass the whole GPU through "
            "or run the workload as a process",
            code="vgpu_unavailable",
        )

    def remove(self, gpu: str, mdev_uuid: str) -> None:
        return None


class SysfsVgpu:
    def __init__(self, sysfs_root: Path = Path("/sys")) -> None:
        self._root = sysfs_root

    def describe(self) -> str:
        return "nvidia vgpu (mdev)"

    def manager_version(self) -> str | None:
        # The vGPU manager is the nvidia_vgpu_vfio module beside the host driver: None
        # unless it is loaded. The kernel shows a module's MODULE_VERSION in sysfs;
        # where this one declares none, the host driver's is the manager's (NVIDIA
        # ships the two together, of one version).
        module = self._root / VGPU_MODULE
        if not module.is_dir():
            return None
        for path in (module / "version", self._root / NVIDIA_MODULE / "version"):
            try:
                text = path.read_text().strip()
            except OSError:
                continue
            if text:
                return text
        return None

    def _parents(self, gpu: GpuInfo) -> list[Path]:
        bus = self._root / "class" / "mdev_bus"
        if not bus.is_dir():
            return []
        found = []
        for parent in sorted(bus.iterdir()):
            physfn = parent / "physfn"
            pf = physfn.resolve().name if physfn.exists() else parent.name
            if pf.lower() == gpu.pci_address.lower():
                found.append(parent)
        return found

    def types(self, gpu: GpuInfo) -> list[MdevType]:
        result = []
        for parent in self._parents(gpu):
            for tdir in sorted((parent / "mdev_supported_types").glob("*")):
                try:
                    name = (tdir / "name").read_text().strip()
                    available = int((tdir / "available_instances").read_text().strip() or 0)
                except (OSError, ValueError):
                    continue
                result.append(MdevType(parent.name, tdir.name, name, available))
        return result

    def available(self, gpu: GpuInfo) -> bool:
        return any(_MIG_TYPE_RE.search(t.name) for t in self.types(gpu))

    def _device(self, mdev_uuid: str) -> Path:
        return self._root / "bus" / "mdev" / "devices" / mdev_uuid

    def create(
        self, gpu: GpuInfo, instance: GpuInstanceInfo, profile: MigProfile, mdev_uuid: str
    ) -> None:
        if self._device(mdev_uuid).exists():
            return
        candidates = [t for t in self.types(gpu) if mig_type_matches(t.name, profile)]
        if not candidates:
            raise Conflict(
                f"GPU {gpu.uuid} offers no MIG-backed vGPU type for {profile.name}; "
                "check the vGPU manager and that SR-IOV is enabled on the GPU",
                code="vgpu_type_missing",
                gpu=gpu.uuid,
                profile=profile.name,
            )
        free = [t for t in candidates if t.available > 0]
        if not free:
            raise Conflict(
                f"every {profile.name} vGPU on GPU {gpu.uuid} is in use",
                code="vgpu_exhausted",
                gpu=gpu.uuid,
            )
        chosen = free[0]
        create = (
            (self._root / "class" / "mdev_bus" / chosen.parent / "mdev_supported_types")
            / chosen.type_id
            / "create"
        )
        try:
            create.write_text(mdev_uuid)
        except OSError as err:
            raise BackendError(
                f"could not create the {chosen.name} vGPU on {chosen.parent}: {err}",
                code="vgpu_create_failed",
            ) from err
        log.info("vGPU %s (%s) made on %s", mdev_uuid, chosen.name, chosen.parent)

    def remove(self, gpu: str, mdev_uuid: str) -> None:
        device = self._device(mdev_uuid)
        if not device.exists():
            return
        try:
            (device / "remove").write_text("1")
        except OSError as err:
            raise BackendError(
                f"could not remove vGPU {mdev_uuid}: {err}", code="vgpu_remove_failed"
            ) from err


class SimulatedVgpu:
    """vGPUs on the simulated GPUs: the instance a vGPU sits on is busy until removed."""

    def __init__(self, backend: SimulatedGpuBackend) -> None:
        self._backend = backend
        self._lock = threading.Lock()
        self._devices: dict[str, tuple[str, int]] = {}  # mdev UUID -> (GPU, instance id)

    def describe(self) -> str:
        return "simulated vgpu"

    def manager_version(self) -> str:
        # NVIDIA ships the vGPU manager with the host driver, of the same version.
        return self._backend.driver_version()

    def available(self, gpu: GpuInfo) -> bool:
        return gpu.mig_supported

    def devices(self) -> dict[str, tuple[str, int]]:
        with self._lock:
            return dict(self._devices)

    def create(
        self, gpu: GpuInfo, instance: GpuInstanceInfo, profile: MigProfile, mdev_uuid: str
    ) -> None:
        with self._lock:
            if mdev_uuid in self._devices:
                return
            self._backend.attach_workload(gpu.uuid, instance.gpu_instance_id, f"vgpu:{mdev_uuid}")
            self._devices[mdev_uuid] = (gpu.uuid, instance.gpu_instance_id)

    def remove(self, gpu: str, mdev_uuid: str) -> None:
        with self._lock:
            held = self._devices.pop(mdev_uuid, None)
            if held is None:
                return
            try:
                self._backend.detach_workload(*held)
            except TowerboxError as err:  # the instance went with a GPU reset
                log.warning("vGPU %s: %s", mdev_uuid, err.message)
