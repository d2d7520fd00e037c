"""Host inventory read from sysfs, procfs and psutil.

Every path is built from the roots handed to :func:`read_inventory`, so the daemon
reads ``/sys`` and ``/proc`` while tests point the same code at a fixture tree.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from pathlib import Path
from typing import Any

import msgspec
import psutil

from appliance.domain.host import CpuThread, HostInventory, Hugepages, NumaNode, PciDevice

log = logging.getLogger(__name__)

REAL_PROCFS = Path("/proc")
_NODE_DIR = re.compile(r"node(\d+)")
_CPU_DIR = re.compile(r"cpu(\d+)")
_HUGEPAGES_DIR = re.compile(r"hugepages-(\d+)kB")
_VIRTFN = re.compile(r"virtfn(\d+)")


def parse_cpulist(text: str) -> tuple[int, ...]:
    """Parse a kernel CPU list such as ``"0-3,8,10-11"`` into sorted CPU ids."""
    cpus: set[int] = set()
    for raw in text.strip().split(","):
        part = raw.strip()
        if not part:
            continue
        first, dash, last = part.partition("-")
        low = int(first)
        high = int(last) if dash else low
        if low < 0 or high < low:
            raise ValueError(f"bad CPU range {part!r}")
        cpus.update(range(low, high + 1))
    return tuple(sorted(cpus))


def parse_meminfo(text: str) -> dict[str, int]:
    """Parse ``/proc/meminfo`` or a node's ``meminfo`` into ``{field: value}``.

    Values keep the file's unit (kB for sizes, a count for ``HugePages_*``). A node
    file prefixes each line with ``Node N``; the field name is the last word.
    """
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, colon, rest = line.partition(":")
        names, numbers = key.split(), rest.split()
        if not colon or not names or not numbers:
            continue
        try:
            values[names[-1]] = int(numbers[0])
        except ValueError:
            continue
    return values


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """The first CPU's model name and flags from ``/proc/cpuinfo``."""
    first: dict[str, str] = {}
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        if colon:
            first.setdefault(key.strip(), value.strip())
    return first.get("model name", "unknown"), frozenset(first.get("flags", "").split())


def _read(path: Path) -> str | None:
    # sysfs and procfs files may be absent on an older kernel, unreadable without
    # privileges, or gone between listing a directory and opening a file in it (a VF
    # removed, a CPU taken offline). One such file must not cost the whole inventory.
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        log.debug("skipped %s: %s", path, err)
        return None


def _read_int(path: Path) -> int | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        log.debug("skipped %s: not an integer: %r", path, text[:40])
        return None


def _read_cpulist(path: Path) -> tuple[int, ...] | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return parse_cpulist(text)
    except ValueError:
        log.debug("skipped %s: not a CPU list: %r", path, text[:80])
        return None


def _link_name(path: Path) -> str | None:
    """The last component of a symlink's target (driver, iommu_group, virtfnN)."""
    try:
        return Path(os.readlink(path)).name
    except OSError as err:
        log.debug("skipped %s: %s", path, err)
        return None


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError as err:
        log.debug("skipped %s: %s", path, err)
        return []


def _numbered(names: list[str], pattern: re.Pattern[str]) -> list[tuple[int, str]]:
    """Names such as ``node1``/``virtfn10`` matching ``pattern``, in numeric order."""
    found = [(int(m.group(1)), name) for name in names if (m := pattern.fullmatch(name))]
    return sorted(found)


def _read_hugepages(directory: Path) -> tuple[Hugepages, ...]:
    pages = []
    for size_kib, name in _numbered(_listdir(directory), _HUGEPAGES_DIR):
        total = _read_int(directory / name / "nr_hugepages")
        free = _read_int(directory / name / "free_hugepages")
        pages.append(Hugepages(size_kib=size_kib, total=total or 0, free=free or 0))
    return tuple(pages)


def _read_nodes(sysfs_root: Path) -> list[NumaNode] | None:
    """NUMA nodes, or None where the kernel has no node directory (no CONFIG_NUMA)."""
    node_root = sysfs_root / "devices" / "system" / "node"
    if not os.path.isdir(node_root):
        return None
    nodes = []
    for node_id, name in _numbered(_listdir(node_root), _NODE_DIR):
        meminfo = parse_meminfo(_read(node_root / name / "meminfo") or "")
        nodes.append(
            NumaNode(
                id=node_id,
                cpus=_read_cpulist(node_root / name / "cpulist") or (),
                memory_total_kib=meminfo.get("MemTotal", 0),
                memory_free_kib=meminfo.get("MemFree", 0),
                hugepages=_read_hugepages(node_root / name / "hugepages"),
            )
        )
    return nodes


def _read_threads(sysfs_root: Path, node_of: dict[int, int]) -> tuple[CpuThread, ...]:
    cpu_root = sysfs_root / "devices" / "system" / "cpu"
    online = _read_cpulist(cpu_root / "online")
    if online is None:
        online = tuple(cpu for cpu, _ in _numbered(_listdir(cpu_root), _CPU_DIR))
    threads = []
    for cpu in online:
        topology = cpu_root / f"cpu{cpu}" / "topology"
        package = _read_int(topology / "physical_package_id")
        core = _read_int(topology / "core_id")
        if package is None or core is None:
            continue
        # Some arm64 firmware reports package -1: there is still one package.
        socket_id = max(package, 0)
        node = node_of.get(cpu, 0)
        threads.append(CpuThread(cpu=cpu, core=core, socket=socket_id, node=node))
    return tuple(threads)


def _count_if_present(path: Path, names: list[str], name: str) -> int:
    return (_read_int(path / name) or 0) if name in names else 0


def _read_pci_device(path: Path, address: str) -> PciDevice | None:
    vendor, device, class_id = (_read(path / name) for name in ("vendor", "device", "class"))
    if vendor is None or device is None or class_id is None:
        log.debug("skipped PCI device %s: no vendor/device/class", address)
        return None
    numa_node = _read_int(path / "numa_node")
    names = _listdir(path)
    # Absent entries are ordinary (no IOMMU, no driver bound, not a NIC, no SR-IOV),
    # so only the ones listed are read and a debug line means something went wrong.
    group = _link_name(path / "iommu_group") if "iommu_group" in names else None
    netdevs = _listdir(path / "net") if "net" in names else []
    return PciDevice(
        address=address,
        vendor_id=vendor.strip(),
        device_id=device.strip(),
        class_id=class_id.strip(),
        numa_node=numa_node if numa_node is not None and numa_node >= 0 else None,
        iommu_group=int(group) if group is not None and group.isdigit() else None,
        driver=_link_name(path / "driver") if "driver" in names else None,
        netdev=netdevs[0] if netdevs else None,
        sriov_totalvfs=_count_if_present(path, names, "sriov_totalvfs"),
        sriov_numvfs=_count_if_present(path, names, "sriov_numvfs"),
        vfs=tuple(
            vf
            for _, link in _numbered(names, _VIRTFN)
            if (vf := _link_name(path / link)) is not None
        ),
        physfn=_link_name(path / "physfn") if "physfn" in names else None,
    )


def _read_pci(sysfs_root: Path) -> tuple[PciDevice, ...]:
    root = sysfs_root / "bus" / "pci" / "devices"
    found = (_read_pci_device(root / address, address) for address in _listdir(root))
    return tuple(device for device in found if device is not None)


def _host_memory(procfs_root: Path) -> tuple[int, int, int]:
    """Host memory (total, available, free) in KiB."""
    if procfs_root == REAL_PROCFS:
        vm = psutil.virtual_memory()
        return vm.total // 1024, vm.available // 1024, vm.free // 1024
    meminfo = parse_meminfo(_read(procfs_root / "meminfo") or "")
    free = meminfo.get("MemFree", 0)
    return meminfo.get("MemTotal", 0), meminfo.get("MemAvailable", free), free


def read_inventory(
    sysfs_root: Path = Path("/sys"),
    procfs_root: Path = REAL_PROCFS,
    dev_root: Path = Path("/dev"),
) -> HostInventory:
    """Read CPU topology, NUMA memory, hugepages and PCI devices of this host."""
    memory_total, memory_available, memory_free = _host_memory(procfs_root)
    nodes = _read_nodes(sysfs_root)
    node_of = {cpu: node.id for node in nodes or () for cpu in node.cpus}
    threads = _read_threads(sysfs_root, node_of)
    if nodes is None:
        nodes = [
            NumaNode(
                id=0,
                cpus=tuple(sorted(t.cpu for t in threads)),
                memory_total_kib=memory_total,
                memory_free_kib=memory_free,
                hugepages=_read_hugepages(sysfs_root / "kernel" / "mm" / "hugepages"),
            )
        ]
    model, flags = parse_cpuinfo(_read(procfs_root / "cpuinfo") or "")
    inventory = HostInventory(
        hostname=socket.gethostname(),
        cpu_model=model,
        threads=threads,
        nodes=tuple(nodes),
        pci=_read_pci(sysfs_root),
        has_vmx="vmx" in flags,
        has_svm="svm" in flags,
        memory_total_kib=memory_total,
        memory_available_kib=memory_available,
        kvm_device=os.path.exists(dev_root / "kvm"),
        sockets=len({t.socket for t in threads}),
    )
    log.debug(
        "host inventory from %s: %d sockets, %d threads, %d NUMA nodes, %d PCI devices",
        sysfs_root,
        inventory.sockets,
        len(threads),
        len(inventory.nodes),
        len(inventory.pci),
    )
    return inventory


def _node_summary(inv: HostInventory, node: NumaNode) -> dict[str, Any]:
    # A host with one node often reports numa_node -1 for every device: they are
    # all on that node, as there is no other.
    alone = len(inv.nodes) == 1
    devices = [d for d in inv.pci if d.numa_node == node.id or (alone and d.numa_node is None)]
    cores = {(t.socket, t.core) for t in inv.threads if t.cpu in node.cpus}
    return {
        "id": node.id,
        "cpus": list(node.cpus),
        "cpu_count": len(node.cpus),
        "core_count": len(cores),
        "memory_total_kib": node.memory_total_kib,
        "memory_free_kib": node.memory_free_kib,
        "hugepages": [
            {"size_kib": h.size_kib, "total": h.total, "free": h.free} for h in node.hugepages
        ],
        "pci": [
            {
                "address": d.address,
                "vendor_id": d.vendor_id,
                "device_id": d.device_id,
                "class_id": d.class_id,
                "driver": d.driver,
                "netdev": d.netdev,
            }
            for d in devices
        ],
    }


def inventory_to_dict(inv: HostInventory) -> dict[str, Any]:
    """A JSON-able view of the inventory, with a summary per NUMA node under ``numa``."""
    # A JSON round trip rather than to_builtins, which keeps tuples as tuples.
    data: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(inv))
    data["hw_virt"] = inv.hw_virt
    data["core_count"] = len(inv.cores())
    data["thread_count"] = len(inv.threads)
    data["numa"] = [_node_summary(inv, node) for node in inv.nodes]
    return data
