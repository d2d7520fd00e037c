"""What a VM create needs before libvirt sees it: the spec, its references, disks, NICs.

Each step refuses with the field it is about; none of them holds a lock or writes a
row, so the VM service can run them before it takes its own.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from appliance.backends.vm import disks
from appliance.backends.vm.domain_xml import DomainPaths, GpuDevice, Owner, build_domain_xml
from appliance.backends.vm.protocol import VmBackend
from appliance.backends.vm.seed_iso import SeedFiles, write_seed_iso
from appliance.catalog.model import CatalogEntry, require_version, spec_for
from appliance.config import Config
from appliance.domain.allocation import Allocation
from appliance.domain.vm_privileges import TENANT_ROLES
from appliance.domain.vm_spec import NicKind, VmSpec, parse_vm_spec
from appliance.services.auth import Principal
from appliance.store import space
from appliance.store.models import Tenant
from towerbox_core.api.vms import VmCreateRequest
from towerbox_core.errors import Conflict, Forbidden, InvalidInput
from towerbox_core.faults import fault_point
from towerbox_core.service_rules import check_entry_version
from upf_bridge.backends.base import Attachment

log = logging.getLogger(__name__)

# (VM's tenant, "name" or "tenant/name") -> where the NIC plugs in; from the N6 service.
VnetResolver = Callable[[str | None, str], Attachment]


def resolve_spec(
    catalog: dict[str, CatalogEntry], principal: Principal, req: VmCreateRequest
) -> VmSpec:
    """The VM spec a create asks for, and what this caller may ask for."""
    if req.appliance is not None:
        entry = catalog.get(req.appliance)
        if entry is None:
            raise InvalidInput(
                f"no appliance {req.appliance!r} in the catalog; known: "
                f"{', '.join(sorted(catalog)) or 'none'}",
                code="unknown_appliance",
                field="appliance",
            )
        if req.appliance_version is not None:
            check_entry_version(req.appliance_version, "appliance_version")
        require_version(entry, req.appliance_version, "appliance_version")
        spec = spec_for(entry, req.name, dict(req.spec))
    elif req.appliance_version is not None:
        raise InvalidInput(
            "appliance_version names a version of the catalog entry in appliance: give both",
            code="invalid_argument",
            field="appliance_version",
        )
    else:
        spec = parse_vm_spec({**req.spec, "name": req.name})
    if principal.is_infra_admin:
        return spec
    if spec.tenant not in (None, principal.tenant):
        raise Forbidden(
            f"you can create VMs for tenant {principal.tenant!r} only",
            code="tenant_mismatch",
            field="tenant",
        )
    if spec.role not in TENANT_ROLES:
        raise Forbidden(
            f"role {spec.role.value!r} VMs need the infra-admin role",
            code="role_not_allowed",
            field="role",
        )
    return msgspec.structs.replace(spec, tenant=principal.tenant)


def check_references(spec: VmSpec, image_dir: Path) -> None:
    """The tenant exists and every image the spec names is in the image folder."""
    if spec.tenant is not None and not Tenant.select().where(Tenant.name == spec.tenant).exists():
        raise InvalidInput(
            f"no tenant {spec.tenant!r}; create it first", code="unknown_tenant", field="tenant"
        )
    if spec.model_disk is not None and not (image_dir / spec.model_disk).is_file():
        raise InvalidInput(
            f"model file {spec.model_disk!r} is not in the image directory {image_dir}: "
            f"fetch it (towerbox artifact fetch {spec.model_disk}, when the catalog names "
            "it as an artifact) or put it there",
            code="model_missing",
            field="model_disk",
        )
    wanted = [(f"disks[{i}].image", d.image) for i, d in enumerate(spec.disks) if d.image]
    if spec.boot is not None:
        wanted.append(("boot.kernel", spec.boot.kernel))
        if spec.boot.initrd:
            wanted.append(("boot.initrd", spec.boot.initrd))
    for field, name in wanted:
        if not (image_dir / name).is_file():
            raise InvalidInput(
                f"image {name!r} is not in the image directory {image_dir}",
                code="unknown_image",
                field=field,
            )


def disk_gib(spec: VmSpec, image_dir: Path) -> int:
    """The GiB a VM's disks may grow to: each one's size, or its base image's."""
    total = 0
    for disk in spec.disks:
        if disk.size_gib is not None:
            total += disk.size_gib
        elif disk.image is not None:
            total += disks.virtual_size_gib(image_dir / disk.image)
    return total


def wire_vnets(spec: VmSpec, vnets: VnetResolver | None) -> VmSpec:
    """The spec with each VNet NIC turned into the bridge and tag it maps to."""
    if not any(nic.kind is NicKind.VNET for nic in spec.nics):
        return spec
    if vnets is None:
        raise Conflict("this node has no N6 service to attach VNets", code="n6_unavailable")
    nics = []
    for nic in spec.nics:
        if nic.kind is NicKind.VNET and nic.vnet is not None:
            att = vnets(spec.tenant, nic.vnet)
            kind = NicKind.OVS if att.kind == "ovs" else NicKind.BRIDGE
            nics.append(
                msgspec.structs.replace(nic, kind=kind, bridge=att.bridge, vlan=att.vlan, vnet=None)
            )
        else:
            nics.append(nic)
    return msgspec.structs.replace(spec, nics=tuple(nics))


def console_path(cfg: Config, vm_id: str) -> Path:
    return cfg.console_dir / f"{vm_id}.log"


def seed_path(cfg: Config, vm_id: str) -> Path:
    return cfg.disk_dir / f"{vm_id}-seed.iso"


def reclaim_seed(cfg: Config, vm_id: str) -> None:
    """Give a stopped VM's seed back to the daemon's user, mode 0600.

    libvirt hands the seed to QEMU's user when the VM starts and, as with every
    read-only image (it may be shared), never takes it back; the seed may hold
    secrets. A guest that powers itself off keeps it lent until the node next stops,
    shuts down or deletes the VM.
    """
    path = seed_path(cfg, vm_id)
    try:
        os.chown(path, os.getuid(), os.getgid())
        path.chmod(0o600)
    except FileNotFoundError:
        return
    except OSError as err:
        log.warning("seed %s not taken back from QEMU's user: %s", path, err.strerror)


def disk_paths(cfg: Config, vm_id: str, spec: VmSpec) -> list[Path]:
    """Every file a VM's create makes: its disk overlays, its seed and its console log."""
    return [cfg.disk_dir / f"{vm_id}-{i}.qcow2" for i in range(len(spec.disks))] + [
        seed_path(cfg, vm_id),
        console_path(cfg, vm_id),
    ]


def make_disks(
    cfg: Config, vm_id: str, spec: VmSpec, made: list[Path], seed: SeedFiles | None = None
) -> DomainPaths:
    """Create the VM's disks and seed (each recorded in ``made`` first, for the undo).

    A full state disk refuses the create here, before anything is made or defined.
    """
    space.check_writable()
    image_dir = Path(cfg.image_dir)
    overlays = []
    for i, disk in enumerate(spec.disks):
        path = cfg.disk_dir / f"{vm_id}-{i}.qcow2"
        made.append(path)
        if disk.image:
            disks.create_overlay(image_dir / disk.image, path, disk.size_gib)
        elif disk.size_gib is not None:  # validate_spec makes this the only other case
            disks.create_blank(path, disk.size_gib)
        overlays.append(str(path))
    seed_iso = None
    if seed is not None:
        seed_iso = seed_path(cfg, vm_id)
        made.append(seed_iso)
        write_seed_iso(seed_iso, seed)
    console = None
    if spec.serial_log:
        cfg.console_dir.mkdir(parents=True, exist_ok=True)
        console = str(console_path(cfg, vm_id))
        made.append(Path(console))
    boot = spec.boot
    return DomainPaths(
        disks=tuple(overlays),
        kernel=str(image_dir / boot.kernel) if boot else None,
        initrd=str(image_dir / boot.initrd) if boot and boot.initrd else None,
        console_log=console,
        model=str(image_dir / spec.model_disk) if spec.model_disk else None,
        seed=str(seed_iso) if seed_iso else None,
    )


@dataclass(frozen=True)
class PlannedDomain:
    """A VM's domain as a create has worked it out, before anything is made."""

    vm_id: str
    spec: VmSpec
    wired: VmSpec  # the spec with its VNet NICs on their bridges and tags
    allocation: Allocation
    gpu: GpuDevice | None
    seed: SeedFiles | None


def define_domain(cfg: Config, backend: VmBackend, plan: PlannedDomain, made: list[Path]) -> None:
    """Make the VM's disks and seed (recorded in ``made``) and define its domain."""
    spec = plan.spec
    paths = make_disks(cfg, plan.vm_id, spec, made, plan.seed)
    fault_point("vm.create.after_overlay")
    owner = Owner(node=cfg.node_name, vm_id=plan.vm_id, role=spec.role.value, tenant=spec.tenant)
    xml = build_domain_xml(
        plan.wired,
        plan.allocation,
        paths,
        owner,
        virt_type=backend.virt_type,
        uuid=plan.vm_id,
        gpu=plan.gpu,
    )
    fault_point("vm.create.before_define")
    backend.define(xml)
    fault_point("vm.create.after_define")
    # libvirt's autostart stays off: the appliance starts the VMs at boot, in role
    # order and after their slices and VNets exist (vm_boot).
