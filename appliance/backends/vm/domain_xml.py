"""libvirt domain XML for a validated VM spec, and the ownership marker read back.

The document is built with ElementTree: every value reaches the XML as an attribute or
a text node and is escaped by the serializer, never formatted into markup. The same
builder serves KVM, QEMU software emulation (TCG) and libvirt's test driver, which
stands in for a KVM node and so gets the KVM document with only the domain type
changed; the test driver accepts every element written here.
"""

from __future__ import annotations

import os.path
import uuid as uuidlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from appliance.backends.vm.xml_parts import compact_cpuset, disk_targets, parse_pci_address
from appliance.domain.allocation import Allocation
from appliance.domain.vm_spec import DiskSpec, NicKind, NicSpec, PinUnit, VmSpec
from towerbox_core.errors import ConfigError, InvalidInput

OWNER_NS = "urn:towerbox:vm:1"
VIRT_TYPES = ("kvm", "qemu", "test")
_MARKER = f"{{{OWNER_NS}}}vm"
MODEL_DISK_SERIAL = "towerbox-model"
GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"
# q35 gives passthrough devices PCIe config space (GPUs and FEC accelerators need it).
_MACHINE = "q35"

ET.register_namespace("tbx", OWNER_NS)


@dataclass(frozen=True)
class DomainPaths:
    disks: tuple[str, ...]  # absolute path of each disk's qcow2 overlay, in spec.disks order
    kernel: str | None = None  # absolute paths for spec.boot
    initrd: str | None = None
    console_log: str | None = None  # serial console log file when spec.serial_log
    model: str | None = None  # spec.model_disk in the image folder, attached read-only
    seed: str | None = None  # the NoCloud seed ISO, attached as a read-only CD-ROM


@dataclass(frozen=True)
class Owner:
    node: str  # node name that owns this domain
    vm_id: str  # the appliance's VM id (uuid string)
    role: str
    tenant: str | None


@dataclass(frozen=True)
class GpuDevice:
    """The GPU a domain gets: a mediated device (a vGPU on a MIG slice) by its UUID,
    or a whole GPU by PCI address."""

    kind: str  # "mdev" | "pci"
    address: str


def build_domain_xml(
    spec: VmSpec,
    alloc: Allocation,
    paths: DomainPaths,
    owner: Owner,
    *,
    virt_type: str,
    uuid: str,
    gpu: GpuDevice | None = None,
) -> str:
    """The full <domain> document for libvirt's defineXML."""
    if virt_type not in VIRT_TYPES:
        raise ConfigError(
            f"virt_type {virt_type!r} is not one of {', '.join(VIRT_TYPES)}",
            code="invalid_virt_type",
        )
    _check_paths(spec, paths)
    if not (owner.node and owner.vm_id and owner.role):
        raise InvalidInput(
            "the owner marker needs a node, a VM id and a role", code="invalid_owner"
        )

    root = ET.Element("domain", type=virt_type)
    _text(root, "name", spec.name)
    _text(root, "uuid", uuid)
    marker = {"node": owner.node, "vm-id": owner.vm_id, "role": owner.role}
    if owner.tenant is not None:
        marker["tenant"] = owner.tenant
    ET.SubElement(ET.SubElement(root, "metadata"), _MARKER, marker)
    memory_kib = str(spec.memory_mib * 1024)
    _text(root, "memory", memory_kib, unit="KiB")
    _text(root, "currentMemory", memory_kib, unit="KiB")
    if alloc.hugepage_size_kib:
        # No nodeset on <page>: libvirt reads it as *guest* NUMA cells, and this guest
        # has none, so nodeset='1' is refused ("hugepages: node 1 not found"). The host
        # node the pages come from is set by <numatune> below.
        pages = ET.SubElement(ET.SubElement(root, "memoryBacking"), "hugepages")
        ET.SubElement(pages, "page", size=str(alloc.hugepage_size_kib), unit="KiB")
    _add_vcpus(root, spec, alloc)
    if alloc.numa_node is not None:
        numatune = ET.SubElement(root, "numatune")
        ET.SubElement(numatune, "memory", mode="strict", nodeset=str(alloc.numa_node))
    _add_os(root, spec, paths)
    features = ET.SubElement(root, "features")
    ET.SubElement(features, "acpi")  # without ACPI the guest ignores a graceful shutdown
    ET.SubElement(features, "apic")
    _add_cpu_model(root, spec, alloc, virt_type)
    ET.SubElement(root, "clock", offset="utc")
    # The appliance's reconciler decides restarts, not libvirt.
    _text(root, "on_poweroff", "destroy")
    _text(root, "on_reboot", "restart")
    _text(root, "on_crash", "destroy")

    devices = ET.SubElement(root, "devices")
    _add_disks(devices, spec.disks, paths)
    _add_nics(devices, spec.nics, alloc.sriov_vfs)
    vfs = set(alloc.sriov_vfs)
    for i, addr in enumerate(alloc.pci_devices):
        if addr in vfs:  # already attached as its NIC's <interface type='hostdev'>
            continue
        hostdev = ET.SubElement(devices, "hostdev", mode="subsystem", type="pci", managed="yes")
        source = ET.SubElement(hostdev, "source")
        ET.SubElement(source, "address", parse_pci_address(addr, f"pci_devices[{i}]").xml_attrs())
    if gpu is not None:
        _add_gpu(devices, gpu)
    _add_serial(devices, spec.serial_log, paths.console_log)
    _add_every_vms_devices(devices)

    ET.indent(root)
    return ET.tostring(root, encoding="unicode")


def _add_every_vms_devices(devices: ET.Element) -> None:
    # The QEMU guest agent's port (a guest-agent health check pings it). libvirt
    # picks the host socket's path and adds the virtio-serial controller; a guest
    # without an agent just leaves the port closed.
    channel = ET.SubElement(devices, "channel", type="unix")
    ET.SubElement(channel, "target", type="virtio", name=GUEST_AGENT_CHANNEL)
    # No USB: libvirt would otherwise add an xHCI controller on q35 that nothing uses.
    ET.SubElement(devices, "controller", type="usb", model="none")
    balloon = ET.SubElement(devices, "memballoon", model="virtio")
    ET.SubElement(balloon, "stats", period="10")  # guest-side memory figures every 10 s
    rng = ET.SubElement(devices, "rng", model="virtio")
    _text(rng, "backend", "/dev/urandom", model="random")


def _add_gpu(devices: ET.Element, gpu: GpuDevice) -> None:
    if gpu.kind == "pci":
        hostdev = ET.SubElement(devices, "hostdev", mode="subsystem", type="pci", managed="yes")
        source = ET.SubElement(hostdev, "source")
        ET.SubElement(source, "address", parse_pci_address(gpu.address, "gpu.gpu").xml_attrs())
        return
    if gpu.kind != "mdev":
        raise InvalidInput(f"unknown GPU device kind {gpu.kind!r}", code="invalid_gpu_request")
    try:
        mdev = str(uuidlib.UUID(gpu.address))
    except ValueError as err:
        raise InvalidInput(
            f"{gpu.address!r} is not a mediated device UUID", code="invalid_gpu_request"
        ) from err
    # managed='no': the appliance makes and removes the vGPU itself, on the slice it
    # claimed; display off because an inference vGPU has no console.
    hostdev = ET.SubElement(
        devices,
        "hostdev",
        mode="subsystem",
        type="mdev",
        model="vfio-pci",
        display="off",
        managed="no",
    )
    ET.SubElement(ET.SubElement(hostdev, "source"), "address", uuid=mdev)


def read_owner(domain_xml: str) -> Owner | None:
    """Towerbox's ownership marker from a domain's XML; None when Towerbox does not own it.

    Takes the full domain XML or the bare marker element (what virDomain.metadata
    returns for OWNER_NS). Unparsable XML, no metadata, a foreign namespace or a
    marker without node, vm-id and role all read as "not ours".
    """
    try:
        root = ET.fromstring(domain_xml)  # noqa: S314 - libvirt's output or ours
    except ET.ParseError:
        return None
    # virDomain.metadata(..., OWNER_NS) hands the marker back with its namespace
    # stripped on some drivers: a bare <vm> root can only have come from that lookup.
    marker = root if root.tag in (_MARKER, "vm") else root.find(f"metadata/{_MARKER}")
    if marker is None:
        return None
    node, vm_id, role = marker.get("node"), marker.get("vm-id"), marker.get("role")
    if not (node and vm_id and role):
        return None
    return Owner(node=node, vm_id=vm_id, role=role, tenant=marker.get("tenant"))


def _text(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    element.text = text
    return element


def _check_paths(spec: VmSpec, paths: DomainPaths) -> None:
    if len(paths.disks) != len(spec.disks):
        raise InvalidInput(
            f"{len(spec.disks)} disks in the spec but {len(paths.disks)} overlay paths",
            code="invalid_spec",
            field="disks",
        )
    if spec.boot is not None and paths.kernel is None:
        raise InvalidInput("kernel boot needs the kernel's path", code="invalid_spec", field="boot")
    if (spec.model_disk is None) != (paths.model is None):
        raise InvalidInput(
            "the model disk and its path go together", code="invalid_spec", field="model_disk"
        )
    named = [*paths.disks, paths.kernel, paths.initrd, paths.console_log, paths.model, paths.seed]
    for path in named:
        if path is not None and not os.path.isabs(path):
            raise InvalidInput(f"{path!r} is not an absolute path", code="invalid_path")


def _add_vcpus(root: ET.Element, spec: VmSpec, alloc: Allocation) -> None:
    vcpu = _text(root, "vcpu", str(spec.vcpus), placement="static")
    if alloc.vcpu_pins:
        if len(alloc.vcpu_pins) != spec.vcpus:
            raise InvalidInput(
                f"{len(alloc.vcpu_pins)} pinned host CPUs for {spec.vcpus} vCPUs",
                code="invalid_allocation",
                field="vcpus",
            )
        cputune = ET.SubElement(root, "cputune")
        for i, cpu in enumerate(alloc.vcpu_pins):
            ET.SubElement(cputune, "vcpupin", vcpu=str(i), cpuset=str(cpu))
        emulator = alloc.emulator_cpus or alloc.cpus or alloc.vcpu_pins
        ET.SubElement(cputune, "emulatorpin", cpuset=compact_cpuset(emulator))
    elif alloc.shared_cpus:
        vcpu.set("cpuset", compact_cpuset(alloc.shared_cpus))


def _add_cpu_model(root: ET.Element, spec: VmSpec, alloc: Allocation, virt_type: str) -> None:
    if virt_type == "qemu":
        # TCG cannot pass the host CPU through; qemu64 runs any x86-64 kernel.
        cpu = ET.SubElement(root, "cpu", mode="custom", match="exact", check="none")
        _text(cpu, "model", "qemu64", fallback="allow")
    else:
        cpu = ET.SubElement(root, "cpu", mode="host-passthrough")
    # Pinned on sibling threads: tell the guest its vCPUs pair up as hyperthreads.
    paired = bool(alloc.vcpu_pins) and spec.cpu.pin_unit is PinUnit.THREAD
    threads = 2 if paired and spec.vcpus % 2 == 0 else 1
    ET.SubElement(
        cpu,
        "topology",
        sockets="1",
        dies="1",
        cores=str(spec.vcpus // threads),
        threads=str(threads),
    )


def _add_os(root: ET.Element, spec: VmSpec, paths: DomainPaths) -> None:
    os_el = ET.SubElement(root, "os")
    _text(os_el, "type", "hvm", arch="x86_64", machine=_MACHINE)
    if spec.boot is None or paths.kernel is None:  # _check_paths refuses boot without kernel
        ET.SubElement(os_el, "boot", dev="hd")
        return
    _text(os_el, "kernel", paths.kernel)
    if paths.initrd is not None:
        _text(os_el, "initrd", paths.initrd)
    if spec.boot.cmdline:
        _text(os_el, "cmdline", spec.boot.cmdline)


def _add_disks(devices: ET.Element, disks: tuple[DiskSpec, ...], paths: DomainPaths) -> None:
    # The model and the seed come after the spec's disks, so those keep their names.
    targets = disk_targets([disk.bus for disk in disks] + ["virtio", "sata"])
    for disk, path, target in zip(disks, paths.disks, targets, strict=False):
        element = ET.SubElement(devices, "disk", type="file", device="disk")
        ET.SubElement(element, "driver", name="qemu", type="qcow2", cache="none", discard="unmap")
        ET.SubElement(element, "source", file=path)
        ET.SubElement(element, "target", dev=target, bus=disk.bus)
    if paths.model is not None:
        # Raw: the guest sees the bundle's bytes as they are (a filesystem image or a
        # plain file); the serial lets it find the disk whatever its name.
        element = ET.SubElement(devices, "disk", type="file", device="disk")
        ET.SubElement(element, "driver", name="qemu", type="raw")
        ET.SubElement(element, "source", file=paths.model)
        ET.SubElement(element, "target", dev=targets[len(disks)], bus="virtio")
        ET.SubElement(element, "readonly")
        _text(element, "serial", MODEL_DISK_SERIAL)
    if paths.seed is not None:
        # SATA on q35's built-in AHCI controller: every Linux guest reads it as sr0.
        element = ET.SubElement(devices, "disk", type="file", device="cdrom")
        ET.SubElement(element, "driver", name="qemu", type="raw")
        ET.SubElement(element, "source", file=paths.seed)
        ET.SubElement(element, "target", dev=targets[len(disks) + 1], bus="sata")
        ET.SubElement(element, "readonly")
    if any(disk.bus == "scsi" for disk in disks):
        # Without it libvirt picks an emulated LSI controller that some QEMU builds lack.
        ET.SubElement(devices, "controller", type="scsi", index="0", model="virtio-scsi")


def _add_nics(devices: ET.Element, nics: tuple[NicSpec, ...], vfs: tuple[str, ...]) -> None:
    sriov_seen = 0
    for i, nic in enumerate(nics):
        if nic.kind is NicKind.SRIOV:
            if sriov_seen >= len(vfs):
                raise InvalidInput(
                    f"NIC {i} is sriov but the allocation holds only {len(vfs)} VFs",
                    code="invalid_nic",
                    field=f"nics[{i}]",
                )
            address = parse_pci_address(vfs[sriov_seen], f"nics[{i}]")
            sriov_seen += 1
            element = ET.SubElement(devices, "interface", type="hostdev", managed="yes")
            if nic.mac is not None:
                ET.SubElement(element, "mac", address=nic.mac)
            source = ET.SubElement(element, "source")
            ET.SubElement(source, "address", {"type": "pci", **address.xml_attrs()})
            continue
        if nic.bridge is None:  # validate_spec refuses this; keep the XML well-formed anyway
            raise InvalidInput(f"NIC {i} needs a bridge", code="invalid_nic", field=f"nics[{i}]")
        element = ET.SubElement(devices, "interface", type="bridge")
        if nic.mac is not None:
            ET.SubElement(element, "mac", address=nic.mac)
        ET.SubElement(element, "source", bridge=nic.bridge)
        if nic.kind is NicKind.OVS:
            ET.SubElement(element, "virtualport", type="openvswitch")
            if nic.vlan is not None:
                ET.SubElement(ET.SubElement(element, "vlan"), "tag", id=str(nic.vlan))
        ET.SubElement(element, "model", type=nic.model)


def _add_serial(devices: ET.Element, serial_log: bool, console_log: str | None) -> None:
    if serial_log and console_log is not None:
        # ttyS0 writes straight to the file (through virtlogd under qemu:///system),
        # appended across restarts. The <console> mirrors serial 0, as libvirt expects.
        for tag in ("serial", "console"):
            element = ET.SubElement(devices, tag, type="file")
            ET.SubElement(element, "source", path=console_log, append="on")
            target = {"port": "0"} if tag == "serial" else {"type": "serial", "port": "0"}
            ET.SubElement(element, "target", target)
        return
    serial = ET.SubElement(devices, "serial", type="pty")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(devices, "console", type="pty")
    ET.SubElement(console, "target", type="serial", port="0")
