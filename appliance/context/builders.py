"""The parts of the appliance whose building takes a decision: which N6 and GPU
backends the configuration picks (or the probe finds), which vGPU host fits them,
the service manager with the node's facts, and which VMs use which image files.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Literal, cast

from appliance.backends.gpu.probe import open_gpu_backend
from appliance.backends.gpu.protocol import GpuBackend
from appliance.backends.gpu.simulated import SimulatedGpuBackend
from appliance.backends.gpu.vgpu import NoVgpu, SimulatedVgpu, SysfsVgpu, VgpuHost
from appliance.backends.vm.libvirt_backend import LibvirtBackend
from appliance.catalog.model import CatalogEntry
from appliance.config import Config
from appliance.domain.gpu.catalog import default_catalog
from appliance.services.gpu_layouts import GpuLayoutService
from appliance.services.n6 import N6Service
from appliance.services.service_admission import free_gpu_slices
from appliance.services.service_health import HealthProber
from appliance.services.service_manager import ServiceDeps, ServiceManager
from appliance.services.service_replicas import Replicas
from appliance.services.service_templates import NodeFacts, services_dir
from appliance.services.tenants import TenantService
from appliance.services.vm_admission import VmAdmission
from appliance.services.vms import VmService
from towerbox_core import __version__
from towerbox_core.api.versions import NodeVersions
from towerbox_core.errors import ConfigError, TowerboxError
from upf_bridge.backends import backend_for as n6_backend_for
from upf_bridge.backends import probe as n6_probe
from upf_bridge.backends.base import NetBackend
from upf_bridge.model import TrunkKind

log = logging.getLogger(__name__)


def n6_backends(cfg: Config) -> Callable[[TrunkKind], NetBackend]:
    choice = cfg.n6.backend
    if choice not in ("auto", "real", "simulated"):
        raise ConfigError(
            f"n6.backend must be auto, real or simulated, not {choice!r}", field="n6.backend"
        )

    def make(kind: TrunkKind) -> NetBackend:
        if choice == "auto":
            return n6_probe(kind, owner=cfg.n6.owner)
        return n6_backend_for(kind, owner=cfg.n6.owner, simulated=choice == "simulated")

    return make


def gpu_service(cfg: Config) -> GpuLayoutService:
    choice = cfg.gpu.backend
    if choice not in ("auto", "nvml", "simulated"):  # narrowed for the Literal below
        raise ConfigError(
            f"gpu.backend must be auto, nvml or simulated, not {choice!r}", field="gpu.backend"
        )
    models = tuple(m.strip() for m in cfg.gpu.simulated_models.split(",") if m.strip())
    backend, line = open_gpu_backend(
        cast(Literal["auto", "nvml", "simulated"], choice),
        simulated_models=models,
        # A demo node keeps its simulated layout across daemon restarts.
        simulated_state=Path(cfg.state_dir) / "gpu-simulator.json",
    )
    # The drain and resume hooks come from the VM service, built after this one.
    service = GpuLayoutService(backend, line, default_catalog(), layouts=cfg.gpu.layouts)
    service.restore()
    return service


def gpu_profile_names(gpus: GpuLayoutService) -> frozenset[str]:
    """The MIG profiles the node's GPUs offer now (none while MIG is off)."""
    return frozenset(p.name for g in gpus.backend.list_gpus() for p in gpus.profiles(g.uuid))


def vgpu_host(cfg: Config, backend: GpuBackend, libvirt: LibvirtBackend) -> VgpuHost:
    if not isinstance(backend, SimulatedGpuBackend):
        return SysfsVgpu(Path(cfg.host.sysfs_root))
    if not cfg.gpu.simulated_vgpu:
        return NoVgpu("simulated vGPUs are off ([gpu] simulated_vgpu)")
    if not libvirt.simulated:
        # A real QEMU would look for the mediated device on the host and not start.
        return NoVgpu(
            "the GPUs are simulated but libvirt is real, and QEMU cannot attach a "
            "simulated vGPU; use the libvirt test driver for a GPU demo"
        )
    return SimulatedVgpu(backend)


def node_versions(backend: GpuBackend, vgpu: VgpuHost) -> NodeVersions:
    """What this daemon runs, read once: the heartbeats repeat it, NVML is asked once."""
    try:
        driver = backend.driver_version()
    except TowerboxError as err:
        log.warning("GPU driver version unknown: %s", err.message)
        driver = None
    return NodeVersions(
        towerbox=__version__, gpu_driver=driver, vgpu_manager=vgpu.manager_version()
    )


def service_manager(
    cfg: Config,
    backend: LibvirtBackend,
    vms: VmService,
    catalog: dict[str, CatalogEntry],
    gpus: GpuLayoutService,
    n6: N6Service,
    admission: VmAdmission,
    tenants: TenantService,
) -> ServiceManager:
    facts = NodeFacts(
        catalog=catalog,
        gpu_profiles=functools.partial(gpu_profile_names, gpus),
        vnet_exists=lambda tenant, name: any(
            (v.tenant, v.name) == (tenant, name) for v in n6.declared().vnets
        ),
        agent_unsupported=backend.guest_agent_unsupported,
    )
    deps = ServiceDeps(
        catalog=catalog,
        facts=facts,
        admission=admission,
        tenants=tenants,
        image_dir=Path(cfg.image_dir),
        templates_dir=services_dir(cfg.resolved_catalog_dir()),
        free_gpu_slices=functools.partial(free_gpu_slices, gpus),
    )
    manager = ServiceManager(deps, Replicas(vms, HealthProber(cfg, backend)))
    manager.recover()
    return manager


def vm_files(vms: VmService) -> dict[str, list[str]]:
    """Which VMs use which files of the image folder (base disks, kernels, initrds,
    model disks)."""
    used: dict[str, list[str]] = {}
    for record in vms.load_records():
        spec = record.spec
        names = [d.image for d in spec.disks if d.image is not None]
        if spec.boot is not None:
            names += [spec.boot.kernel, *([spec.boot.initrd] if spec.boot.initrd else [])]
        if spec.model_disk is not None:
            names.append(spec.model_disk)
        for name in names:
            used.setdefault(name, []).append(spec.name)
    return used
