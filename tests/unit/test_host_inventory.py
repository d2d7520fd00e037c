"""Host inventory from sysfs/procfs: parsers, fixture machines, damaged trees, this host."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from appliance.backends.host.sysfs_inventory import (
    inventory_to_dict,
    parse_cpuinfo,
    parse_cpulist,
    parse_meminfo,
    read_inventory,
)
from appliance.domain.host import HUGEPAGE_1G_KIB, HUGEPAGE_2M_KIB, HostInventory, Hugepages
from tests.fixtures.hosts import dual_socket_host, laptop_host, read_host_tree

E810_PF = "0000:3b:00.0"
E810_VFS = ("0000:3b:01.0", "0000:3b:01.1", "0000:3b:01.2", "0000:3b:01.3")
H100 = "0000:ca:00.0"
PF_PATH = Path("sys/devices/pci0000:3a/0000:3a:00.0") / E810_PF


@pytest.fixture(scope="module")
def dual_socket(tmp_path_factory: pytest.TempPathFactory) -> HostInventory:
    return read_host_tree(dual_socket_host(tmp_path_factory.mktemp("hosts")))


@pytest.fixture(scope="module")
def laptop(tmp_path_factory: pytest.TempPathFactory) -> HostInventory:
    return read_host_tree(laptop_host(tmp_path_factory.mktemp("hosts")))


def _damaged(tmp_path: Path, damage: Callable[[Path], object]) -> HostInventory:
    root = dual_socket_host(tmp_path)
    damage(root)
    return read_host_tree(root)


# --- parsers


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("0-3,8,10-11\n", (0, 1, 2, 3, 8, 10, 11)),
        ("0-7,16-23", (*range(8), *range(16, 24))),
        ("5", (5,)),
        (" 2 , 0-1 ", (0, 1, 2)),
        ("", ()),
        ("\n", ()),
    ],
)
def test_parse_cpulist(text: str, cpus: tuple[int, ...]) -> None:
    assert parse_cpulist(text) == cpus


@pytest.mark.parametrize("text", ["a", "3-1", "-1", "0-", "1,x-3"])
def test_parse_cpulist_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_cpulist(text)


def test_parse_meminfo_reads_host_and_node_formats() -> None:
    host = parse_meminfo("MemTotal:       16274872 kB\nHugePages_Total:      12\nbogus\n")
    node = parse_meminfo("Node 1 MemTotal:  100663296 kB\nNode 1 MemFree:   42 kB\n")
    assert host == {"MemTotal": 16274872, "HugePages_Total": 12}
    assert node == {"MemTotal": 100663296, "MemFree": 42}


def test_parse_cpuinfo_takes_the_first_cpu() -> None:
    text = "processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu vmx ept\n\nprocessor\t: 1\n"
    model, flags = parse_cpuinfo(text)
    assert model == "Xeon"
    assert {"vmx", "ept"} <= flags
    assert parse_cpuinfo("processor\t: 0\nCPU part\t: 0xd0c\n") == ("unknown", frozenset())


# --- the dual-socket SR-IOV server


def test_dual_socket_topology(dual_socket: HostInventory) -> None:
    assert dual_socket.sockets == 2
    assert len(dual_socket.threads) == 32
    assert len(dual_socket.cores()) == 16
    assert dual_socket.cpu_model.startswith("Intel(R) Xeon(R)")
    # Siblings are cpu N and N+16, on the same socket and node.
    assert dual_socket.cores()[(0, 0)] == (0, 16)
    assert dual_socket.cores()[(1, 11)] == (15, 31)


def test_dual_socket_cpu_to_node(dual_socket: HostInventory) -> None:
    node_of = {t.cpu: t.node for t in dual_socket.threads}
    assert [c for c, n in node_of.items() if n == 0] == [*range(8), *range(16, 24)]
    assert [c for c, n in node_of.items() if n == 1] == [*range(8, 16), *range(24, 32)]
    assert all(t.node == t.socket for t in dual_socket.threads)


def test_dual_socket_numa_memory_and_hugepages(dual_socket: HostInventory) -> None:
    assert [n.id for n in dual_socket.nodes] == [0, 1]
    node0, node1 = dual_socket.nodes
    assert node0.cpus == (*range(8), *range(16, 24))
    assert node0.memory_total_kib == node1.memory_total_kib == 96 * 1024 * 1024
    assert 0 < node0.memory_free_kib < node0.memory_total_kib
    assert node0.hugepages_of(HUGEPAGE_2M_KIB) == Hugepages(HUGEPAGE_2M_KIB, total=1024, free=1024)
    assert node0.hugepages_of(HUGEPAGE_1G_KIB).total == 8
    assert node1.hugepages_of(HUGEPAGE_2M_KIB).free == 512
    assert node1.hugepages_of(HUGEPAGE_1G_KIB).free == 4


def test_dual_socket_host_memory_and_virt(dual_socket: HostInventory) -> None:
    assert dual_socket.memory_total_kib == 192 * 1024 * 1024
    assert 0 < dual_socket.memory_available_kib < dual_socket.memory_total_kib
    assert dual_socket.has_vmx
    assert not dual_socket.has_svm
    assert dual_socket.hw_virt
    assert dual_socket.kvm_device


def test_dual_socket_sriov_pf_and_vfs(dual_socket: HostInventory) -> None:
    pf = dual_socket.pf_by_netdev("ens1f0")
    assert pf is not None
    assert (pf.address, pf.driver, pf.numa_node) == (E810_PF, "ice", 0)
    assert (pf.sriov_totalvfs, pf.sriov_numvfs, pf.vfs) == (8, 4, E810_VFS)
    groups = {pf.iommu_group}
    for address in E810_VFS:
        vf = dual_socket.pci_device(address)
        assert vf is not None
        assert vf.physfn == E810_PF
        assert not vf.is_sriov_pf
        assert vf.driver in {"iavf", "vfio-pci"}
        groups.add(vf.iommu_group)
    assert len(groups) == 5  # each function in its own IOMMU group
    mellanox = dual_socket.pf_by_netdev("ens3f0np0")
    assert mellanox is not None
    assert (mellanox.numa_node, mellanox.sriov_numvfs, mellanox.vfs) == (1, 0, ())


def test_dual_socket_gpu_and_iommu_groups(dual_socket: HostInventory) -> None:
    gpu = dual_socket.pci_device(H100)
    assert gpu is not None
    assert (gpu.vendor_id, gpu.device_id, gpu.class_id) == ("0x10de", "0x2330", "0x030200")
    assert (gpu.numa_node, gpu.iommu_group, gpu.driver) == (1, 101, "nvidia")
    groups = [d.iommu_group for d in dual_socket.pci]
    assert None not in groups
    assert len(set(groups)) == len(groups)


def test_inventory_to_dict_summarises_each_node(dual_socket: HostInventory) -> None:
    data = inventory_to_dict(dual_socket)
    assert json.loads(json.dumps(data)) == data
    assert (data["sockets"], data["core_count"], data["thread_count"]) == (2, 16, 32)
    node0, node1 = data["numa"]
    assert (node0["cpu_count"], node0["core_count"]) == (16, 8)
    assert node0["hugepages"] == [
        {"size_kib": HUGEPAGE_2M_KIB, "total": 1024, "free": 1024},
        {"size_kib": HUGEPAGE_1G_KIB, "total": 8, "free": 8},
    ]
    assert {E810_PF, *E810_VFS} <= {d["address"] for d in node0["pci"]}
    assert H100 in {d["address"] for d in node1["pci"]}
    assert H100 not in {d["address"] for d in node0["pci"]}


# --- the laptop: no NUMA, no hugepages, no IOMMU, no SR-IOV


def test_laptop_falls_back_to_one_node(laptop: HostInventory) -> None:
    assert (laptop.sockets, len(laptop.cores()), len(laptop.threads)) == (1, 4, 8)
    assert [n.id for n in laptop.nodes] == [0]
    node = laptop.nodes[0]
    assert node.cpus == tuple(range(8))
    assert all(t.node == 0 for t in laptop.threads)
    assert node.memory_total_kib == laptop.memory_total_kib > 0
    assert node.hugepages_of(HUGEPAGE_2M_KIB).total == 0
    assert node.hugepages_of(HUGEPAGE_1G_KIB).free == 0


def test_laptop_devices_and_virt(laptop: HostInventory) -> None:
    assert laptop.has_svm
    assert not laptop.has_vmx
    assert not laptop.kvm_device
    assert all(d.numa_node is None and d.iommu_group is None for d in laptop.pci)
    assert not any(d.is_sriov_pf or d.vfs or d.physfn for d in laptop.pci)
    unbound = laptop.pci_device("0000:04:00.0")
    assert unbound is not None
    assert unbound.driver is None
    summary = inventory_to_dict(laptop)["numa"]
    assert len(summary[0]["pci"]) == len(laptop.pci)


# --- damaged trees: a missing or unreadable file costs that value, never the read


def test_numa_node_that_is_not_a_file(tmp_path: Path) -> None:
    def damage(root: Path) -> None:
        (root / PF_PATH / "numa_node").unlink()
        (root / PF_PATH / "numa_node").mkdir()

    pf = _damaged(tmp_path, damage).pci_device(E810_PF)
    assert pf is not None
    assert pf.numa_node is None
    assert pf.vfs == E810_VFS


def test_numa_node_permission_denied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Root reads a chmod 000 file anyway, so refuse the read itself.
    root = dual_socket_host(tmp_path)
    locked = (root / PF_PATH / "numa_node").resolve()
    read_text = Path.read_text

    def refuse(path: Path, *args: str, **kwargs: str) -> str:
        if path.resolve() == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return read_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", refuse)
    with caplog.at_level(logging.DEBUG, logger="appliance.backends.host.sysfs_inventory"):
        inventory = read_host_tree(root)
    pf = inventory.pci_device(E810_PF)
    assert pf is not None
    assert pf.numa_node is None
    assert pf.sriov_numvfs == 4
    assert any("numa_node" in r.getMessage() and "denied" in r.getMessage() for r in caplog.records)


def test_garbage_numa_node_reads_as_none(tmp_path: Path) -> None:
    inventory = _damaged(tmp_path, lambda root: (root / PF_PATH / "numa_node").write_text("x\n"))
    pf = inventory.pci_device(E810_PF)
    assert pf is not None
    assert pf.numa_node is None


def test_device_gone_between_listing_and_reading(tmp_path: Path) -> None:
    gpu_dir = Path("sys/devices/pci0000:c9/0000:c9:02.0") / H100
    inventory = _damaged(tmp_path, lambda root: shutil.rmtree(root / gpu_dir))
    assert inventory.pci_device(H100) is None
    assert inventory.pci_device(E810_PF) is not None
    assert len(inventory.pci) == 11


def test_vf_link_gone(tmp_path: Path) -> None:
    inventory = _damaged(tmp_path, lambda root: (root / PF_PATH / "virtfn1").unlink())
    pf = inventory.pci_device(E810_PF)
    assert pf is not None
    assert pf.vfs == (E810_VFS[0], E810_VFS[2], E810_VFS[3])


def test_offline_cpu_and_missing_topology_are_skipped(tmp_path: Path) -> None:
    def damage(root: Path) -> None:
        cpu_root = root / "sys/devices/system/cpu"
        (cpu_root / "online").write_text("0-30\n")
        shutil.rmtree(cpu_root / "cpu5" / "topology")

    inventory = _damaged(tmp_path, damage)
    cpus = [t.cpu for t in inventory.threads]
    assert len(cpus) == 30
    assert 5 not in cpus
    assert 31 not in cpus


def test_missing_online_list_uses_cpu_directories(tmp_path: Path) -> None:
    inventory = _damaged(tmp_path, lambda root: (root / "sys/devices/system/cpu/online").unlink())
    assert len(inventory.threads) == 32


def test_missing_meminfo_and_cpuinfo(tmp_path: Path) -> None:
    def damage(root: Path) -> None:
        (root / "sys/devices/system/node/node1/meminfo").unlink()
        shutil.rmtree(root / "sys/devices/system/node/node1/hugepages")
        (root / "proc/cpuinfo").unlink()

    inventory = _damaged(tmp_path, damage)
    node1 = inventory.node(1)
    assert node1 is not None
    assert (node1.memory_total_kib, node1.hugepages) == (0, ())
    assert node1.cpus == (*range(8, 16), *range(24, 32))
    assert (inventory.cpu_model, inventory.hw_virt) == ("unknown", False)


# --- this machine


def test_reads_this_host() -> None:
    inventory = read_inventory()
    assert inventory.threads
    assert inventory.sockets >= 1
    assert inventory.nodes
    assert inventory.memory_total_kib > 0
    assert inventory.memory_total_kib == psutil.virtual_memory().total // 1024
    assert {t.cpu for t in inventory.threads} <= {c for n in inventory.nodes for c in n.cpus}
    json.dumps(inventory_to_dict(inventory))
