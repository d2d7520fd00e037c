"""GPUs for VMs: which device a VM's domain gets, and the slice behind it at start.

A VM that asks for a MIG slice gets one ``<hostdev type='mdev'>`` whose UUID is
derived from the VM's id, so the domain XML never changes when the VM moves to
another slice: at start the slice is claimed in the layout and the mediated device
is made on it, and when the VM stops the device is removed (an instance with a vGPU
on it cannot be destroyed) and the claim given back. A VM that asks for a whole GPU
gets a PCI ``<hostdev>`` of that board, which must have MIG off.
"""

from __future__ import annotations

import logging
import uuid as uuidlib
from typing import Any

import msgspec

from appliance.backends.gpu.protocol import GpuInfo
from appliance.backends.gpu.vgpu import VgpuHost
from appliance.backends.vm.domain_xml import GpuDevice
from appliance.domain.gpu.layout import MigRole
from appliance.domain.vm_spec import GpuAttach, GpuRequest, Role, VmSpec
from appliance.services.gpu_claims import GpuClaims
from appliance.store.models import Vm
from towerbox_core.api.gpus import GpuClaim
from towerbox_core.errors import Conflict, NotFound

log = logging.getLogger(__name__)

_MDEV_NAMESPACE = uuidlib.UUID("0b6f8a52-3c1d-4a7e-9f2b-5d8c7e1a4b90")


def mdev_uuid_for(vm_id: str) -> str:
    """The VM's vGPU UUID: stable for the VM's life, whichever slice it sits on."""
    return str(uuidlib.uuid5(_MDEV_NAMESPACE, vm_id))


def slice_role(spec: VmSpec, req: GpuRequest) -> MigRole:
    if req.role is not None:
        return MigRole(req.role)
    return MigRole.VRAN if spec.role is Role.VRAN else MigRole.B2B


class GpuBinder:
    def __init__(self, claims: GpuClaims, vgpu: VgpuHost) -> None:
        self.claims = claims
        self.vgpu = vgpu

    def describe(self) -> str:
        return self.vgpu.describe()

    # -- at create -------------------------------------------------------------------

    def prepare(self, spec: VmSpec, vm_id: str) -> tuple[VmSpec, GpuDevice | None]:
        """Check the request against this node; the spec to store and the device."""
        req = spec.gpu
        if req is None:
            return spec, None
        if req.attach is GpuAttach.PASSTHROUGH:
            info = self._passthrough_gpu(spec.name, req.gpu)
            pinned = msgspec.structs.replace(req, gpu=info.pci_address)
            return msgspec.structs.replace(spec, gpu=pinned), GpuDevice("pci", info.pci_address)
        self.claims.check_request(req.profile, slice_role(spec, req), req.gpu)
        gpus = [
            i
            for i in self.claims.backend.list_gpus()
            if i.mig_supported and (req.gpu is None or req.gpu in (i.uuid, i.pci_address))
        ]
        if not any(self.vgpu.available(i) for i in gpus):
            raise Conflict(
                "a MIG slice reaches a VM only as an NVIDIA vGPU, and there is none here: "
                f"{self.vgpu.describe()}; pass a whole GPU through (gpu.attach "
                "'passthrough') or run the workload as a process with a slice claim",
                code="vgpu_unavailable",
                field="gpu",
            )
        return spec, GpuDevice("mdev", mdev_uuid_for(vm_id))

    def _passthrough_gpu(self, vm_name: str, wanted: str | None) -> GpuInfo:
        taken = self._passed_through(exclude=vm_name)
        infos = self.claims.backend.list_gpus()
        if wanted is not None:
            infos = [i for i in infos if wanted in (i.uuid, i.pci_address)]
            if not infos:
                raise NotFound(
                    f"no GPU {wanted!r} on this node", code="gpu_not_found", field="gpu.gpu"
                )
        free = [i for i in infos if i.pci_address not in taken]
        if not free:
            raise Conflict(
                f"GPU {infos[0].uuid} is already passed through to VM {taken[infos[0].pci_address]}"
                if wanted and infos
                else "every GPU on this node is already passed through to a VM",
                code="gpu_in_use",
                field="gpu.gpu",
            )
        # Unnamed, any free GPU with MIG off will do: a MIG-mode one listed first must
        # not refuse the request while another could take it.
        whole = [i for i in free if not (i.mig.current or i.mig.pending)]
        info = (whole or free)[0]
        self._check_whole(info)
        return info

    @staticmethod
    def _check_whole(info: GpuInfo) -> None:
        if info.mig.current or info.mig.pending:
            raise Conflict(
                f"GPU {info.uuid} is in MIG mode (or will be after a reset); a whole-GPU "
                "passthrough needs MIG off: ask for it with the GPU's mig route and reset the GPU",
                code="gpu_in_mig_mode",
                field="gpu",
            )

    @staticmethod
    def _passed_through(exclude: str) -> dict[str, str]:
        taken = {}
        for vm in Vm.select(Vm.name, Vm.spec):
            spec = msgspec.json.decode(vm.spec, type=VmSpec)
            if vm.name != exclude and spec.gpu and spec.gpu.attach is GpuAttach.PASSTHROUGH:
                taken[spec.gpu.gpu or ""] = vm.name
        return taken

    # -- at start and stop -------------------------------------------------------------

    def bind(self, vm_id: str, spec: VmSpec) -> dict[str, Any] | None:
        """Claim the VM's slice and make its vGPU there; before the domain starts."""
        req = spec.gpu
        if req is None:
            return None
        if req.attach is GpuAttach.PASSTHROUGH:
            for info in self.claims.backend.list_gpus():
                if info.pci_address == req.gpu:
                    self._check_whole(info)
            return {"attach": "passthrough", "pci_address": req.gpu}
        info, inst, gi, profile = self.claims.claim(
            spec.name, req.profile, slice_role(spec, req), req.gpu
        )
        mdev = mdev_uuid_for(vm_id)
        try:
            self.vgpu.create(info, gi, profile, mdev)
        except Exception:
            self.claims.release(spec.name)
            raise
        log.info(
            "VM %s bound to %s on GPU %s (vGPU %s)",
            spec.name,
            inst.label,
            info.uuid,
            mdev,
            extra={"vm": spec.name},
        )
        return {
            "attach": "mig",
            "gpu": info.uuid,
            "profile": inst.profile,
            "start": inst.start,
            "mig_uuid": gi.mig_uuid,
            "mdev_uuid": mdev,
        }

    def unbind(self, vm_id: str, spec: VmSpec, *, release: bool) -> None:
        """After the domain is off: remove the vGPU; give the slice back if asked."""
        if spec.gpu is None or spec.gpu.attach is GpuAttach.PASSTHROUGH:
            return
        self.vgpu.remove(spec.gpu.gpu or "", mdev_uuid_for(vm_id))
        if release:
            self.claims.release(spec.name)

    def binding(self, vm_name: str) -> GpuClaim | None:
        for claim in self.claims.claims():
            if claim.owner == vm_name:
                return claim
        return None
