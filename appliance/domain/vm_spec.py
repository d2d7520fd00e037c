"""The typed VM spec and its validation rules.

A spec arrives as JSON from the API, the CLI or a catalog file, is decoded once into
these structs (``parse_vm_spec``) and checked by ``validate_spec``; nothing inward
sees raw input. Checks that need the host (free cores, known PCI addresses, images
on disk) live in the allocator and the VM service.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated, Any

import msgspec

from towerbox_core.errors import InvalidInput
from towerbox_core.names import check_ifname, check_name

_PCI_RE = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]\Z")
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}\Z")
_VNET_REF_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,62}/)?[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")
_FILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*\Z")

MAX_VCPUS = 256
MIN_MEMORY_MIB = 32
MAX_MEMORY_MIB = 4 * 1024 * 1024


class CpuPolicy(enum.StrEnum):
    SHARED = "shared"  # vCPUs float over the shared pool
    PINNED = "pinned"  # vCPUs pinned to exclusive host cores on one NUMA node


class PinUnit(enum.StrEnum):
    CORE = "core"  # each vCPU gets a whole core; its sibling threads stay idle
    THREAD = "thread"  # vCPUs fill sibling threads of whole, exclusive cores


class Role(enum.StrEnum):
    VRAN = "vran"
    UPF = "upf"
    B2B = "b2b"
    OTHER = "other"


class RestartPolicy(enum.StrEnum):
    ALWAYS = "always"  # restart whenever it should run and does not
    ON_FAILURE = "on-failure"  # restart only after a crash
    NEVER = "never"


class NicKind(enum.StrEnum):
    BRIDGE = "bridge"  # Linux bridge
    OVS = "ovs"  # Open vSwitch bridge, optionally on a VLAN tag
    SRIOV = "sriov"  # a virtual function of an SR-IOV NIC, passed through
    VNET = "vnet"  # a tenant VNet by name: the appliance finds its bridge and VLAN


class HugepageSize(enum.StrEnum):
    NONE = "none"
    SIZE_2M = "2M"
    SIZE_1G = "1G"

    @property
    def kib(self) -> int:
        return {"none": 0, "2M": 2048, "1G": 1048576}[self.value]


class CpuSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    policy: CpuPolicy = CpuPolicy.SHARED
    pin_unit: PinUnit = PinUnit.CORE
    # Pinned only: keep QEMU's emulator threads off the VM's cores (on reserved ones).
    isolated: bool = False


class DiskSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # Base image file in the image directory; the VM gets a qcow2 overlay on it.
    # Without an image the disk is blank and needs size_gib.
    image: str | None = None
    size_gib: Annotated[int, msgspec.Meta(ge=1, le=65536)] | None = None
    bus: str = "virtio"


class KernelBoot(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Direct kernel boot (files in the image directory), for tiny appliances."""

    kernel: str
    initrd: str | None = None
    cmdline: Annotated[str, msgspec.Meta(max_length=1024)] = ""


class NicSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    kind: NicKind
    bridge: str | None = None  # bridge and ovs
    vlan: Annotated[int, msgspec.Meta(ge=1, le=4094)] | None = None  # ovs only
    pf: str | None = None  # sriov: the PF's interface name
    vnet: str | None = None  # vnet: "name" in the VM's tenant, or "tenant/name"
    mac: str | None = None
    model: str = "virtio"  # bridge and ovs


class GpuAttach(enum.StrEnum):
    MIG = "mig"  # a MIG slice, reaching the VM as an NVIDIA vGPU (mediated device)
    PASSTHROUGH = "passthrough"  # a whole GPU by PCI passthrough (MIG off)


class GpuRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The GPU a VM asks for; the node picks the instance when the VM starts.

    A MIG request names a profile ("1g.10gb"), a role ("b2b" or "vran"), or both; the
    role defaults to the VM's own. ``gpu`` narrows the choice to one GPU (UUID), or
    names the GPU to pass through (UUID or PCI address).
    """

    attach: GpuAttach = GpuAttach.MIG
    profile: str | None = None
    role: str | None = None
    gpu: str | None = None


class VmSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    vcpus: int = 1
    memory_mib: int = 512
    cpu: CpuSpec = CpuSpec()
    numa_node: int | None = None  # None: the node of the VM's PCI devices, or any
    hugepages: HugepageSize = HugepageSize.NONE
    disks: tuple[DiskSpec, ...] = ()
    boot: KernelBoot | None = None
    nics: tuple[NicSpec, ...] = ()
    pci_devices: tuple[str, ...] = ()  # host PCI addresses passed through whole
    gpu: GpuRequest | None = None
    serial_log: bool = True  # serial console to a log file the API can tail
    autostart: bool = False  # the appliance starts it after a host reboot (vm_boot)
    restart: RestartPolicy = RestartPolicy.ON_FAILURE
    role: Role = Role.OTHER
    tenant: str | None = None
    appliance: str | None = None  # catalog entry it was made from, for the record
    # A model bundle file in the image directory, attached read-only as a raw disk
    # after ``disks`` (virtio, serial "towerbox-model").
    model_disk: str | None = None


def parse_vm_spec(data: dict[str, Any]) -> VmSpec:
    """Decode untrusted JSON-like data into a validated spec."""
    try:
        spec = msgspec.convert(data, VmSpec)
    except msgspec.ValidationError as err:
        raise InvalidInput(f"invalid VM spec: {err}", code="invalid_spec") from err
    validate_spec(spec)
    return spec


def spec_to_dict(spec: VmSpec) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.to_builtins(spec)
    return result


def check_file_name(value: str, field: str) -> None:
    """Image and kernel names are plain file names inside the image directory."""
    if len(value) > 255 or not _FILE_RE.match(value) or ".." in value:
        raise InvalidInput(
            f"{value!r} is not a plain file name in the image directory",
            code="invalid_image_name",
            field=field,
        )


def check_pci_address(value: str, field: str) -> None:
    if not _PCI_RE.match(value):
        raise InvalidInput(
            f"{value!r} is not a PCI address like 0000:3b:00.0",
            code="invalid_pci_address",
            field=field,
        )


def validate_spec(spec: VmSpec) -> None:
    """Rules that need nothing but the spec itself."""
    check_name("VM", spec.name)
    if not 1 <= spec.vcpus <= MAX_VCPUS:
        raise InvalidInput(
            f"vcpus must be between 1 and {MAX_VCPUS}, got {spec.vcpus}",
            code="invalid_vcpus",
            field="vcpus",
        )
    if not MIN_MEMORY_MIB <= spec.memory_mib <= MAX_MEMORY_MIB:
        raise InvalidInput(
            f"memory_mib must be between {MIN_MEMORY_MIB} and {MAX_MEMORY_MIB}, "
            f"got {spec.memory_mib}",
            code="invalid_memory",
            field="memory_mib",
        )
    page_mib = spec.hugepages.kib // 1024
    if page_mib and spec.memory_mib % page_mib:
        raise InvalidInput(
            f"memory_mib {spec.memory_mib} is not a multiple of the {spec.hugepages.value} "
            "hugepage size",
            code="invalid_memory",
            field="memory_mib",
        )
    if spec.numa_node is not None and not 0 <= spec.numa_node < 1024:
        raise InvalidInput(
            f"numa_node {spec.numa_node} is out of range",
            code="unknown_numa_node",
            field="numa_node",
        )
    if spec.cpu.policy is CpuPolicy.SHARED and spec.cpu.isolated:
        raise InvalidInput(
            "cpu.isolated needs cpu.policy 'pinned'", code="invalid_cpu_policy", field="cpu"
        )
    if spec.tenant is not None:
        check_name("tenant", spec.tenant, field="tenant")
    if spec.appliance is not None:
        check_name("appliance", spec.appliance, field="appliance")
    _validate_disks(spec)
    _validate_nics(spec)
    seen: set[str] = set()
    for i, addr in enumerate(spec.pci_devices):
        check_pci_address(addr, f"pci_devices[{i}]")
        if addr in seen:
            raise InvalidInput(
                f"PCI device {addr} is listed twice",
                code="invalid_pci_address",
                field=f"pci_devices[{i}]",
            )
        seen.add(addr)
    if spec.gpu is not None:
        _validate_gpu(spec.gpu)
    if spec.disks == () and spec.boot is None:
        raise InvalidInput(
            "a VM needs a disk or a kernel to boot", code="invalid_spec", field="disks"
        )


_PROFILE_RE = re.compile(r"^([1-8])g\.[0-9]+gb(\+me|\+gfx|-me)?\Z")
_GPU_REF_RE = re.compile(r"^(GPU-[0-9a-fA-F-]{36}|[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7])\Z")


def profile_compute_slices(profile: str, field: str) -> int:
    """The compute slices a MIG profile name says it takes ("3g.40gb" takes 3)."""
    match = _PROFILE_RE.match(profile)
    if match is None:
        raise InvalidInput(
            f"{profile!r} is not a MIG profile name like 1g.10gb or 3g.40gb",
            code="invalid_gpu_request",
            field=field,
        )
    return int(match.group(1))


def _validate_gpu(req: GpuRequest) -> None:
    if req.gpu is not None and not _GPU_REF_RE.match(req.gpu):
        raise InvalidInput(
            f"{req.gpu!r} is not a GPU UUID (GPU-...) or a PCI address like 0000:3b:00.0",
            code="invalid_gpu_request",
            field="gpu.gpu",
        )
    if req.attach is GpuAttach.PASSTHROUGH:
        if req.profile is not None or req.role is not None:
            raise InvalidInput(
                "a passthrough GPU takes the whole board: leave out profile and role",
                code="invalid_gpu_request",
                field="gpu.profile" if req.profile is not None else "gpu.role",
            )
        return
    if req.profile is not None and not _PROFILE_RE.match(req.profile):
        raise InvalidInput(
            f"{req.profile!r} is not a MIG profile name like 1g.10gb or 3g.40gb",
            code="invalid_gpu_request",
            field="gpu.profile",
        )
    if req.role is not None and req.role not in ("vran", "b2b"):
        raise InvalidInput(
            f"gpu.role must be vran or b2b, not {req.role!r}",
            code="invalid_gpu_request",
            field="gpu.role",
        )


def _validate_disks(spec: VmSpec) -> None:
    if len(spec.disks) > 16:
        raise InvalidInput("at most 16 disks", code="invalid_spec", field="disks")
    for i, disk in enumerate(spec.disks):
        field = f"disks[{i}]"
        if disk.bus not in ("virtio", "sata", "scsi"):
            raise InvalidInput(
                f"disk bus {disk.bus!r} is not one of virtio, sata, scsi",
                code="invalid_spec",
                field=f"{field}.bus",
            )
        if disk.image is None and disk.size_gib is None:
            raise InvalidInput(
                "a disk needs a base image or a size_gib", code="invalid_spec", field=field
            )
        if disk.image is not None:
            check_file_name(disk.image, f"{field}.image")
    if spec.model_disk is not None:
        check_file_name(spec.model_disk, "model_disk")
    if spec.boot is not None:
        check_file_name(spec.boot.kernel, "boot.kernel")
        if spec.boot.initrd is not None:
            check_file_name(spec.boot.initrd, "boot.initrd")
        if any(ord(c) < 32 for c in spec.boot.cmdline):
            raise InvalidInput(
                "boot.cmdline has control characters", code="invalid_spec", field="boot.cmdline"
            )


def _validate_nics(spec: VmSpec) -> None:
    if len(spec.nics) > 16:
        raise InvalidInput("at most 16 NICs", code="invalid_spec", field="nics")
    for i, nic in enumerate(spec.nics):
        field = f"nics[{i}]"
        if nic.kind in (NicKind.BRIDGE, NicKind.OVS):
            if nic.bridge is None:
                raise InvalidInput(
                    f"a {nic.kind.value} NIC needs a bridge", code="invalid_nic", field=field
                )
            check_ifname(nic.bridge, f"{field}.bridge")
            if nic.model not in ("virtio", "e1000", "rtl8139"):
                raise InvalidInput(
                    f"NIC model {nic.model!r} is not one of virtio, e1000, rtl8139",
                    code="invalid_nic",
                    field=f"{field}.model",
                )
        if nic.vlan is not None and nic.kind is not NicKind.OVS:
            raise InvalidInput(
                "a VLAN tag needs an ovs NIC", code="invalid_nic", field=f"{field}.vlan"
            )
        if nic.kind is NicKind.VNET:
            if nic.vnet is None or not _VNET_REF_RE.match(nic.vnet):
                raise InvalidInput(
                    "a vnet NIC needs vnet: a VNet name, or tenant/name",
                    code="invalid_nic",
                    field=f"{field}.vnet",
                )
        elif nic.vnet is not None:
            raise InvalidInput(
                "vnet is only for NICs of kind 'vnet'", code="invalid_nic", field=f"{field}.vnet"
            )
        if nic.kind is NicKind.SRIOV:
            if nic.pf is None:
                raise InvalidInput(
                    "an sriov NIC needs the PF interface name", code="invalid_nic", field=field
                )
            check_ifname(nic.pf, f"{field}.pf")
        if nic.mac is not None and not _MAC_RE.match(nic.mac):
            raise InvalidInput(
                f"{nic.mac!r} is not a MAC address like 52:54:00:12:34:56",
                code="invalid_nic",
                field=f"{field}.mac",
            )
