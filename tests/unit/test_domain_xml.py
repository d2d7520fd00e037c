"""The libvirt domain XML builder: schema-valid for every kind of VM, and what it holds."""

from __future__ import annotations

import shutil
import subprocess
import uuid as uuidlib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import libvirt
import pytest

from appliance.backends.vm.domain_xml import (
    OWNER_NS,
    DomainPaths,
    GpuDevice,
    Owner,
    build_domain_xml,
    read_owner,
)
from appliance.backends.vm.xml_parts import (
    PciAddress,
    compact_cpuset,
    disk_targets,
    parse_pci_address,
)
from appliance.domain.allocation import Allocation
from appliance.domain.vm_spec import VmSpec, parse_vm_spec
from towerbox_core.errors import ConfigError, InvalidInput

VIRT_XML_VALIDATE = shutil.which("virt-xml-validate")
OWNER = Owner(
    node="cell-0042", vm_id="6f1c2a9e-3d4b-4c5e-8f70-1a2b3c4d5e6f", role="vran", tenant=None
)
TBX = f"{{{OWNER_NS}}}"
IMAGES = "/var/lib/towerbox/images"


def _paths(spec: VmSpec, serial: bool = True) -> DomainPaths:
    return DomainPaths(
        disks=tuple(f"/var/lib/towerbox/disks/vm-{i}.qcow2" for i in range(len(spec.disks))),
        kernel=f"{IMAGES}/{spec.boot.kernel}" if spec.boot else None,
        initrd=f"{IMAGES}/{spec.boot.initrd}" if spec.boot and spec.boot.initrd else None,
        console_log="/var/lib/towerbox/console/vm.log" if serial else None,
    )


def _build(spec: VmSpec, alloc: Allocation, virt_type: str = "kvm", **kw: Any) -> str:
    paths = kw.pop("paths", None) or _paths(spec)
    owner = kw.pop("owner", OWNER)
    uuid = kw.pop("uuid", OWNER.vm_id)
    return build_domain_xml(spec, alloc, paths, owner, virt_type=virt_type, uuid=uuid, **kw)


DISK = {"image": "debian-12.qcow2"}
KERNEL = {"kernel": "vmlinuz", "initrd": "initrd.img", "cmdline": "console=ttyS0 quiet"}

# name -> (spec, allocation): every CPU policy, hugepage size, boot mode, NIC kind.
SCENARIOS: dict[str, tuple[dict[str, Any], Allocation]] = {
    "shared": (
        {
            "name": "b2b-web",
            "vcpus": 2,
            "disks": [DISK],
            "role": "b2b",
            "tenant": "acme",
            "nics": [{"kind": "bridge", "bridge": "br-mgmt", "mac": "52:54:00:12:34:56"}],
        },
        Allocation(shared_cpus=(2, 3, 4, 5, 6, 7, 18, 19, 20, 21, 22, 23)),
    ),
    "shared-numa-no-serial": (
        {
            "name": "probe",
            "numa_node": 1,
            "disks": [DISK],
            "serial_log": False,
            "nics": [{"kind": "bridge", "bridge": "br0", "model": "e1000"}],
        },
        Allocation(numa_node=1, shared_cpus=(8, 9)),
    ),
    "pinned-core-2M-kernel": (
        {
            "name": "du-1",
            "vcpus": 4,
            "memory_mib": 1024,
            "hugepages": "2M",
            "boot": KERNEL,
            "cpu": {"policy": "pinned", "pin_unit": "core"},
            "role": "vran",
        },
        Allocation(
            numa_node=0,
            vcpu_pins=(4, 5, 6, 7),
            cpus=(4, 5, 6, 7, 44, 45, 46, 47),
            hugepage_size_kib=2048,
            hugepages=512,
        ),
    ),
    "pinned-thread-even": (
        {
            "name": "cu-1",
            "vcpus": 4,
            "disks": [DISK],
            "cpu": {"policy": "pinned", "pin_unit": "thread"},
        },
        Allocation(numa_node=0, vcpu_pins=(8, 48, 9, 49), cpus=(8, 48, 9, 49)),
    ),
    "pinned-thread-odd": (
        {
            "name": "cu-2",
            "vcpus": 3,
            "disks": [DISK],
            "cpu": {"policy": "pinned", "pin_unit": "thread"},
        },
        Allocation(numa_node=0, vcpu_pins=(10, 50, 11), cpus=(10, 50, 11, 51)),
    ),
    "isolated-1G-passthrough": (
        {
            "name": "du-2",
            "vcpus": 2,
            "memory_mib": 2048,
            "hugepages": "1G",
            "disks": [DISK],
            "cpu": {"policy": "pinned", "isolated": True},
            "pci_devices": ["0000:af:00.0"],
        },
        Allocation(
            numa_node=1,
            vcpu_pins=(20, 21),
            cpus=(20, 21, 60, 61),
            emulator_cpus=(0, 40),
            hugepage_size_kib=1048576,
            hugepages=2,
            pci_devices=("0000:af:00.0",),
        ),
    ),
    "every-nic-and-bus": (
        {
            "name": "upf-1",
            "vcpus": 2,
            "role": "upf",
            "disks": [DISK, {"size_gib": 4, "bus": "sata"}, {"size_gib": 2, "bus": "scsi"}],
            "nics": [
                {"kind": "ovs", "bridge": "br-n6", "vlan": 100},
                {"kind": "ovs", "bridge": "br-n3"},
                {"kind": "sriov", "pf": "ens1f0", "mac": "52:54:00:aa:bb:01"},
                {"kind": "bridge", "bridge": "br-mgmt", "model": "rtl8139"},
                {"kind": "sriov", "pf": "ens1f1"},
            ],
            "pci_devices": ["0000:3b:00.0", "0000:d8:1f.7"],
        },
        Allocation(
            shared_cpus=(1, 2),
            pci_devices=("0000:3b:00.0", "0000:d8:1f.7"),
            sriov_vfs=("0000:5e:02.1", "0000:5e:0a.3"),
        ),
    ),
    "kernel-only": (
        {"name": "tiny", "memory_mib": 64, "boot": {"kernel": "bzImage"}},
        Allocation(),
    ),
}


def _scenario(name: str) -> tuple[VmSpec, Allocation]:
    data, alloc = SCENARIOS[name]
    return parse_vm_spec(data), alloc


def _parse(xml: str) -> ET.Element:
    return ET.fromstring(xml)  # noqa: S314 - the builder's or libvirt's own output


def _tree(name: str, virt_type: str = "kvm") -> ET.Element:
    spec, alloc = _scenario(name)
    return _parse(_build(spec, alloc, virt_type))


def _validate(xml: str, tmp_path: Path) -> None:
    if VIRT_XML_VALIDATE is None:
        pytest.skip("virt-xml-validate is not installed (Debian: libvirt-clients)")
    path = tmp_path / "domain.xml"
    path.write_text(xml)
    done = subprocess.run(
        [VIRT_XML_VALIDATE, str(path), "domain"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{done.stdout}{done.stderr}\n{xml}"


@pytest.mark.parametrize("virt_type", ["kvm", "qemu", "test"])
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_is_schema_valid(name: str, virt_type: str, tmp_path: Path) -> None:
    spec, alloc = _scenario(name)
    xml = _build(spec, alloc, virt_type)
    _validate(xml, tmp_path)
    root = _parse(xml)
    assert root.get("type") == virt_type
    assert root.findtext("name") == spec.name
    assert root.findtext("uuid") == OWNER.vm_id
    assert root.findtext("memory") == str(spec.memory_mib * 1024)
    assert root.find("memory").get("unit") == "KiB"
    assert root.findtext("currentMemory") == str(spec.memory_mib * 1024)
    assert root.findtext("vcpu") == str(spec.vcpus)
    assert root.find("features/acpi") is not None
    assert [root.findtext(t) for t in ("on_poweroff", "on_reboot", "on_crash")] == [
        "destroy",
        "restart",
        "destroy",
    ]
    assert root.find(f"metadata/{TBX}vm").get("node") == OWNER.node
    assert len(root.findall("devices/disk")) == len(spec.disks)
    assert len(root.findall("devices/interface")) == len(spec.nics)
    assert root.find("devices/memballoon").get("model") == "virtio"
    assert root.find("devices/graphics") is None
    assert root.find("devices/controller[@type='usb']").get("model") == "none"
    topology = root.find("cpu/topology")
    assert int(topology.get("cores")) * int(topology.get("threads")) == spec.vcpus


def test_shared_vm_floats_over_a_compact_cpuset() -> None:
    root = _tree("shared")
    assert root.find("vcpu").get("cpuset") == "2-7,18-23"
    assert root.find("vcpu").get("placement") == "static"
    assert root.find("cputune") is None
    assert root.find("numatune") is None
    assert root.find("memoryBacking") is None


def test_pinned_core_vm_pins_each_vcpu_and_the_emulator() -> None:
    root = _tree("pinned-core-2M-kernel")
    pins = {p.get("vcpu"): p.get("cpuset") for p in root.findall("cputune/vcpupin")}
    assert pins == {"0": "4", "1": "5", "2": "6", "3": "7"}
    # No separate emulator CPUs: the emulator shares the VM's exclusive cores.
    assert root.find("cputune/emulatorpin").get("cpuset") == "4-7,44-47"
    assert root.find("vcpu").get("cpuset") is None
    assert root.find("cpu").get("mode") == "host-passthrough"
    assert root.find("cpu/topology").attrib == {
        "sockets": "1",
        "dies": "1",
        "cores": "4",
        "threads": "1",
    }


def test_isolated_vm_puts_its_emulator_on_the_reserved_cpus() -> None:
    root = _tree("isolated-1G-passthrough")
    assert root.find("cputune/emulatorpin").get("cpuset") == "0,40"
    assert [p.get("cpuset") for p in root.findall("cputune/vcpupin")] == ["20", "21"]


@pytest.mark.parametrize(
    ("name", "cores", "threads"),
    [
        ("pinned-thread-even", "2", "2"),
        ("pinned-thread-odd", "3", "1"),
        ("shared", "2", "1"),
    ],
)
def test_topology_follows_the_pin_unit(name: str, cores: str, threads: str) -> None:
    topology = _tree(name).find("cpu/topology")
    assert (topology.get("cores"), topology.get("threads")) == (cores, threads)


def test_qemu_emulation_uses_a_cpu_model_that_tcg_runs() -> None:
    cpu = _tree("pinned-thread-even", "qemu").find("cpu")
    assert cpu.get("mode") == "custom"
    assert cpu.findtext("model") == "qemu64"
    assert cpu.find("topology").get("threads") == "2"


@pytest.mark.parametrize(
    ("name", "node", "page_kib"),
    [
        ("pinned-core-2M-kernel", "0", "2048"),
        ("isolated-1G-passthrough", "1", "1048576"),
    ],
)
def test_hugepages_come_from_the_vms_numa_node(name: str, node: str, page_kib: str) -> None:
    root = _tree(name)
    memory = root.find("numatune/memory")
    assert (memory.get("mode"), memory.get("nodeset")) == ("strict", node)
    page = root.find("memoryBacking/hugepages/page")
    assert (page.get("size"), page.get("unit")) == (page_kib, "KiB")
    # A page nodeset names guest cells, not host nodes; numatune binds the host node.
    assert page.get("nodeset") is None


def test_shared_vm_bound_to_a_numa_node_without_hugepages() -> None:
    root = _tree("shared-numa-no-serial")
    assert root.find("numatune/memory").get("nodeset") == "1"
    assert root.find("memoryBacking") is None


def test_kernel_boot_names_kernel_initrd_and_cmdline() -> None:
    os_el = _tree("pinned-core-2M-kernel").find("os")
    assert os_el.findtext("kernel") == f"{IMAGES}/vmlinuz"
    assert os_el.findtext("initrd") == f"{IMAGES}/initrd.img"
    assert os_el.findtext("cmdline") == "console=ttyS0 quiet"
    assert os_el.find("boot") is None
    assert os_el.findtext("type") == "hvm"
    assert os_el.find("type").get("arch") == "x86_64"


def test_kernel_without_initrd_or_cmdline() -> None:
    os_el = _tree("kernel-only").find("os")
    assert os_el.findtext("kernel") == f"{IMAGES}/bzImage"
    assert os_el.find("initrd") is None
    assert os_el.find("cmdline") is None


def test_disk_boot() -> None:
    os_el = _tree("shared").find("os")
    assert os_el.find("boot").get("dev") == "hd"
    assert os_el.find("kernel") is None


def test_disks_are_qcow2_overlays_named_per_bus() -> None:
    root = _tree("every-nic-and-bus")
    disks = root.findall("devices/disk")
    assert [(d.find("target").get("dev"), d.find("target").get("bus")) for d in disks] == [
        ("vda", "virtio"),
        ("sda", "sata"),
        ("sdb", "scsi"),
    ]
    assert [d.find("source").get("file") for d in disks] == [
        f"/var/lib/towerbox/disks/vm-{i}.qcow2" for i in range(3)
    ]
    assert disks[0].find("driver").attrib == {
        "name": "qemu",
        "type": "qcow2",
        "cache": "none",
        "discard": "unmap",
    }
    assert root.find("devices/controller[@type='scsi']").get("model") == "virtio-scsi"
    assert _tree("shared").find("devices/controller[@type='scsi']") is None


def test_nics_of_every_kind() -> None:
    ovs_vlan, ovs, vf0, bridge, vf1 = _tree("every-nic-and-bus").findall("devices/interface")
    assert ovs_vlan.get("type") == "bridge"
    assert ovs_vlan.find("source").get("bridge") == "br-n6"
    assert ovs_vlan.find("virtualport").get("type") == "openvswitch"
    assert ovs_vlan.find("vlan/tag").get("id") == "100"
    assert ovs.find("virtualport").get("type") == "openvswitch"
    assert ovs.find("vlan") is None
    assert bridge.find("virtualport") is None
    assert bridge.find("model").get("type") == "rtl8139"
    assert bridge.find("mac") is None
    assert (vf0.get("type"), vf0.get("managed")) == ("hostdev", "yes")
    assert vf0.find("mac").get("address") == "52:54:00:aa:bb:01"
    assert vf0.find("source/address").attrib == {
        "type": "pci",
        "domain": "0x0000",
        "bus": "0x5e",
        "slot": "0x02",
        "function": "0x1",
    }
    assert vf1.find("source/address").get("slot") == "0x0a"
    assert vf1.find("source/address").get("function") == "0x3"
    assert vf0.find("model") is None


def test_bridge_nic_with_mac_and_model() -> None:
    (nic,) = _tree("shared").findall("devices/interface")
    assert nic.find("source").get("bridge") == "br-mgmt"
    assert nic.find("mac").get("address") == "52:54:00:12:34:56"
    assert nic.find("model").get("type") == "virtio"


def test_passthrough_devices_become_managed_hostdevs() -> None:
    hostdevs = _tree("every-nic-and-bus").findall("devices/hostdev")
    assert [h.attrib for h in hostdevs] == [
        {"mode": "subsystem", "type": "pci", "managed": "yes"}
    ] * 2
    assert [h.find("source/address").attrib for h in hostdevs] == [
        {"domain": "0x0000", "bus": "0x3b", "slot": "0x00", "function": "0x0"},
        {"domain": "0x0000", "bus": "0xd8", "slot": "0x1f", "function": "0x7"},
    ]


def test_a_vf_listed_among_pci_devices_is_attached_once() -> None:
    spec, alloc = _scenario("every-nic-and-bus")
    alloc = Allocation(
        pci_devices=(*alloc.pci_devices, *alloc.sriov_vfs), sriov_vfs=alloc.sriov_vfs
    )
    root = _parse(_build(spec, alloc))
    assert len(root.findall("devices/hostdev")) == 2
    assert len(root.findall("devices/interface[@type='hostdev']")) == 2


def test_too_few_vfs_for_the_sriov_nics() -> None:
    spec, alloc = _scenario("every-nic-and-bus")
    short = Allocation(
        shared_cpus=alloc.shared_cpus, pci_devices=alloc.pci_devices, sriov_vfs=alloc.sriov_vfs[:1]
    )
    with pytest.raises(InvalidInput) as err:
        _build(spec, short)
    assert err.value.code == "invalid_nic"
    assert err.value.extra["field"] == "nics[4]"


def test_serial_console_goes_to_the_log_file() -> None:
    devices = _tree("shared").find("devices")
    for tag in ("serial", "console"):
        element = devices.find(tag)
        assert element.get("type") == "file"
        assert element.find("source").attrib == {
            "path": "/var/lib/towerbox/console/vm.log",
            "append": "on",
        }
        assert element.find("target").get("port") == "0"
    assert devices.find("console/target").get("type") == "serial"


def test_without_serial_log_the_console_is_a_pty() -> None:
    devices = _tree("shared-numa-no-serial").find("devices")
    assert devices.find("serial").get("type") == "pty"
    assert devices.find("serial/source") is None
    assert devices.find("console").get("type") == "pty"
    # serial_log on but no log path given: a pty as well, never a file with no name.
    spec, alloc = _scenario("shared")
    root = _parse(_build(spec, alloc, paths=_paths(spec, serial=False)))
    assert root.find("devices/serial").get("type") == "pty"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_vm_gets_a_guest_agent_channel(name: str) -> None:
    channels = _tree(name).findall("devices/channel")
    assert len(channels) == 1
    assert channels[0].get("type") == "unix"
    # No <source>: libvirt picks the socket's path under its own run directory.
    assert channels[0].find("source") is None
    assert channels[0].find("target").attrib == {
        "type": "virtio",
        "name": "org.qemu.guest_agent.0",
    }


def test_values_are_escaped_and_round_trip(tmp_path: Path) -> None:
    cmdline = """console=ttyS0 tbx.x=<&"'> a&&b </cmdline><evil/>"""
    spec = parse_vm_spec({"name": "esc", "boot": {"kernel": "k", "cmdline": cmdline}})
    owner = Owner(node="n\"'<&>", vm_id="id", role="other", tenant="t&t")
    xml = _build(spec, Allocation(), owner=owner)
    assert "&lt;&amp;" in xml
    assert "<evil/>" not in xml
    _validate(xml, tmp_path)
    root = _parse(xml)
    assert root.findtext("os/cmdline") == cmdline
    assert root.find("os/evil") is None
    assert read_owner(xml) == owner


def test_read_owner_round_trip() -> None:
    spec, alloc = _scenario("shared")
    owner = Owner(node="cell-7", vm_id=str(uuidlib.uuid4()), role="b2b", tenant="acme")
    assert read_owner(_build(spec, alloc, owner=owner)) == owner
    assert read_owner(_build(spec, alloc)) == OWNER  # tenant None stays None


def test_read_owner_accepts_the_bare_marker_element() -> None:
    marker = f"<tbx:vm xmlns:tbx='{OWNER_NS}' node='n1' vm-id='v1' role='upf' tenant='t1'/>"
    assert read_owner(marker) == Owner(node="n1", vm_id="v1", role="upf", tenant="t1")


@pytest.mark.parametrize(
    "xml",
    [
        "<domain type='kvm'><name>x</name></domain>",
        "<domain type='kvm'><name>x</name><metadata/></domain>",
        "<domain><metadata><vm xmlns='urn:example:other' node='n' vm-id='v' role='r'/></metadata>"
        "</domain>",
        "<domain><metadata><vm node='n' vm-id='v' role='r'/></metadata></domain>",
        f"<domain><metadata><t:vm xmlns:t='{OWNER_NS}' node='n' role='r'/></metadata></domain>",
        f"<domain><metadata><t:vm xmlns:t='{OWNER_NS}' node='' vm-id='v' role='r'/></metadata>"
        "</domain>",
        f"<domain><devices><t:vm xmlns:t='{OWNER_NS}' node='n' vm-id='v' role='r'/></devices>"
        "</domain>",
        "",
        "not xml at all",
        "<domain><metadata>",
        "\x00\x01garbage",
    ],
)
def test_read_owner_is_none_for_domains_not_ours(xml: str) -> None:
    assert read_owner(xml) is None


def test_mismatched_inputs_are_refused() -> None:
    spec, alloc = _scenario("pinned-core-2M-kernel")
    with pytest.raises(InvalidInput, match="pinned host CPUs") as err:
        _build(spec, Allocation(vcpu_pins=(1, 2)))
    assert err.value.code == "invalid_allocation"
    with pytest.raises(InvalidInput, match="overlay paths"):
        _build(spec, alloc, paths=DomainPaths(disks=("/d.qcow2",), kernel="/k"))
    with pytest.raises(InvalidInput, match="kernel"):
        _build(spec, alloc, paths=DomainPaths(disks=()))
    with pytest.raises(InvalidInput, match="absolute") as err:
        _build(spec, alloc, paths=DomainPaths(disks=(), kernel="images/vmlinuz"))
    assert err.value.code == "invalid_path"
    with pytest.raises(InvalidInput) as err:
        _build(spec, alloc, owner=Owner(node="", vm_id="v", role="r", tenant=None))
    assert err.value.code == "invalid_owner"
    with pytest.raises(ConfigError) as cfg_err:
        _build(spec, alloc, "xen")
    assert cfg_err.value.code == "invalid_virt_type"


@pytest.mark.parametrize(
    ("cpus", "expected"),
    [
        ([5], "5"),
        ([2, 3, 4, 7], "2-4,7"),
        ([23, 2, 3, 4, 5, 6, 7, 18, 19, 20, 21, 22], "2-7,18-23"),
        ([0, 2, 4], "0,2,4"),
        ([1, 1, 2, 2], "1-2"),
        (range(64), "0-63"),
    ],
)
def test_compact_cpuset(cpus: list[int], expected: str) -> None:
    assert compact_cpuset(cpus) == expected


@pytest.mark.parametrize("cpus", [[], [-1, 0]])
def test_compact_cpuset_refuses_nonsense(cpus: list[int]) -> None:
    with pytest.raises(ValueError, match=r"cpuset|negative"):
        compact_cpuset(cpus)


def test_parse_pci_address() -> None:
    assert parse_pci_address("0000:3b:00.0") == PciAddress(0, 0x3B, 0, 0)
    addr = parse_pci_address("10de:ff:1f.7")
    assert addr == PciAddress(0x10DE, 0xFF, 0x1F, 7)
    assert addr.xml_attrs() == {
        "domain": "0x10de",
        "bus": "0xff",
        "slot": "0x1f",
        "function": "0x7",
    }


@pytest.mark.parametrize(
    "bad",
    ["3b:00.0", "0000:3b:00", "0000:3B:00.0", "0000:3b:20.0", "0000:3b:00.8", "0000:3b:00.0 ", "x"],
)
def test_parse_pci_address_refuses_malformed(bad: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_pci_address(bad, "pci_devices[0]")
    assert err.value.code == "invalid_pci_address"
    assert err.value.extra["field"] == "pci_devices[0]"


def test_disk_targets() -> None:
    assert disk_targets(["virtio", "sata", "virtio", "scsi"]) == ["vda", "sda", "vdb", "sdb"]
    assert disk_targets([]) == []
    with pytest.raises(InvalidInput):
        disk_targets(["ide"])


@pytest.fixture
def test_driver() -> Any:
    conn = libvirt.open("test:///default")
    before = {d.UUIDString() for d in conn.listAllDomains()}
    yield conn
    # All connections in a process share the test driver's state: leave it as found.
    assert {d.UUIDString() for d in conn.listAllDomains()} == before
    conn.close()


def _define_and_undefine(conn: Any, xml: str, uuid: str) -> str:
    dom = conn.defineXML(xml)
    try:
        assert dom.UUIDString() == uuid
        return str(dom.XMLDesc(0))
    finally:
        dom.undefine()


def test_test_driver_defines_a_shared_kernel_boot_vm(test_driver: Any) -> None:
    spec = parse_vm_spec(
        {
            "name": f"tbx-xml-{uuidlib.uuid4().hex[:8]}",
            "disks": [DISK],
            "boot": KERNEL,
            "nics": [{"kind": "bridge", "bridge": "br0"}],
            "serial_log": True,
            "tenant": "acme",
        }
    )
    owner = Owner(node="sim-node", vm_id=str(uuidlib.uuid4()), role="other", tenant="acme")
    xml = _build(spec, Allocation(shared_cpus=(2, 3)), "test", owner=owner, uuid=owner.vm_id)
    stored = _define_and_undefine(test_driver, xml, owner.vm_id)
    assert read_owner(stored) == owner
    root = _parse(stored)
    assert root.findtext("os/kernel") == f"{IMAGES}/vmlinuz"
    assert root.find("devices/serial").get("type") == "file"
    assert root.find("devices/interface/source").get("bridge") == "br0"
    # The guest-agent channel is kept, with the virtio-serial controller it needs.
    assert root.find("devices/channel/target").get("name") == "org.qemu.guest_agent.0"
    assert root.find("devices/controller[@type='virtio-serial']") is not None


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_test_driver_defines_every_scenario(name: str, test_driver: Any) -> None:
    spec, alloc = _scenario(name)
    vm_uuid = str(uuidlib.uuid4())
    spec_name = f"tbx-xml-{vm_uuid[:8]}"
    spec = parse_vm_spec({**SCENARIOS[name][0], "name": spec_name})
    xml = _build(spec, alloc, "test", uuid=vm_uuid)
    stored = _define_and_undefine(test_driver, xml, vm_uuid)
    assert read_owner(stored) == OWNER


def _gpu_spec() -> tuple[VmSpec, Allocation]:
    spec = parse_vm_spec({"name": "llm1", "boot": KERNEL, "gpu": {"profile": "1g.10gb"}})
    return spec, Allocation(shared_cpus=(2, 3))


@pytest.mark.parametrize(
    "device",
    [
        GpuDevice("mdev", "7a6f1f9e-2a4b-5c3d-8e1f-0a1b2c3d4e5f"),
        GpuDevice("pci", "0000:17:00.0"),
    ],
)
def test_gpu_devices_are_schema_valid(device: GpuDevice, tmp_path: Path) -> None:
    spec, alloc = _gpu_spec()
    xml = _build(spec, alloc, "kvm", gpu=device)
    _validate(xml, tmp_path)
    hostdev = _parse(xml).find(f"devices/hostdev[@type='{device.kind}']")
    assert hostdev is not None
    address = hostdev.find("source/address")
    assert address is not None
    if device.kind == "mdev":
        # The appliance makes the vGPU on the slice it claimed, so libvirt must not.
        assert (hostdev.get("managed"), hostdev.get("model")) == ("no", "vfio-pci")
        assert address.get("uuid") == device.address
    else:
        assert hostdev.get("managed") == "yes"
        assert (address.get("bus"), address.get("slot")) == ("0x17", "0x00")


@pytest.mark.parametrize(
    "device", [GpuDevice("mdev", "not-a-uuid'/>"), GpuDevice("pci", "17:00"), GpuDevice("x", "")]
)
def test_bad_gpu_devices_are_refused(device: GpuDevice) -> None:
    spec, alloc = _gpu_spec()
    with pytest.raises(InvalidInput):
        _build(spec, alloc, gpu=device)
