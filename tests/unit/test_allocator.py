"""The CPU / hugepage / PCI allocator on a two-socket host built in code."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.domain.allocation import Allocation, decode_allocation, encode_allocation
from appliance.domain.allocator import Allocator
from appliance.domain.host import (
    HUGEPAGE_1G_KIB,
    HUGEPAGE_2M_KIB,
    CpuThread,
    HostInventory,
    Hugepages,
    NumaNode,
    PciDevice,
)
from appliance.domain.vm_spec import (
    CpuPolicy,
    CpuSpec,
    HugepageSize,
    KernelBoot,
    NicKind,
    NicSpec,
    PinUnit,
    VmSpec,
)
from towerbox_core.errors import (
    ConfigError,
    Conflict,
    InsufficientResources,
    InvalidInput,
    TowerboxError,
)

PF0 = "0000:3b:00.0"  # ens1f0, node 0, 4 VFs
VFS0 = tuple(f"0000:3b:02.{i}" for i in range(4))
PF0_NOVF = "0000:3b:00.1"  # ens1f1, node 0, SR-IOV capable with no VFs enabled
PF1 = "0000:d8:00.0"  # ens2f0, node 1, 2 VFs
VFS1 = ("0000:d8:02.0", "0000:d8:02.1")
GPU = "0000:af:00.0"  # node 1
NVME = "0000:5e:00.0"  # node 0
AUDIO = "0000:00:1f.3"  # firmware reports no node
ONBOARD = "0000:19:00.0"  # eno1, plain NIC
# Core 0 of each socket (both threads) keeps the host and QEMU's emulator threads.
RESERVED = frozenset({0, 16, 8, 24})


def _pci(address: str, node: int | None, **kw: Any) -> PciDevice:
    defaults: dict[str, Any] = {"vendor_id": "0x8086", "device_id": "0x1592"}
    defaults |= {"class_id": "0x020000", "iommu_group": None}
    return PciDevice(address=address, numa_node=node, **(defaults | kw))


def make_host(
    hugepages_2m: tuple[int, int] = (1024, 1024), hugepages_1g: tuple[int, int] = (4, 4)
) -> HostInventory:
    """2 sockets x 8 cores x 2 threads, Linux numbering: siblings are N and N+16."""
    threads = tuple(
        CpuThread(cpu=cpu, core=core, socket=node, node=node)
        for node in (0, 1)
        for core in range(8)
        for cpu in (node * 8 + core, node * 8 + core + 16)
    )
    nodes = tuple(
        NumaNode(
            id=n,
            cpus=tuple(sorted(t.cpu for t in threads if t.node == n)),
            memory_total_kib=64 << 20,
            memory_free_kib=48 << 20,
            hugepages=(
                Hugepages(size_kib=HUGEPAGE_2M_KIB, total=hugepages_2m[n], free=hugepages_2m[n]),
                Hugepages(size_kib=HUGEPAGE_1G_KIB, total=hugepages_1g[n], free=hugepages_1g[n]),
            ),
        )
        for n in (0, 1)
    )
    pci = (
        _pci(PF0, 0, netdev="ens1f0", sriov_totalvfs=8, sriov_numvfs=4, vfs=VFS0),
        *(_pci(vf, 0, device_id="0x1889", physfn=PF0) for vf in VFS0),
        _pci(PF0_NOVF, 0, netdev="ens1f1", sriov_totalvfs=8),
        _pci(PF1, 1, netdev="ens2f0", sriov_totalvfs=8, sriov_numvfs=2, vfs=VFS1),
        *(_pci(vf, 1, device_id="0x1889", physfn=PF1) for vf in VFS1),
        _pci(GPU, 1, vendor_id="0x10de", device_id="0x2330", class_id="0x030200"),
        _pci(NVME, 0, class_id="0x010802"),
        _pci(AUDIO, None, class_id="0x040300"),
        _pci(ONBOARD, 0, netdev="eno1"),
    )
    return HostInventory(
        hostname="cell-0042",
        cpu_model="Xeon",
        threads=threads,
        nodes=nodes,
        pci=pci,
        has_vmx=True,
        has_svm=False,
        memory_total_kib=128 << 20,
        memory_available_kib=96 << 20,
        kvm_device=True,
        sockets=2,
    )


def vm(
    name: str = "du1",
    vcpus: int = 4,
    *,
    policy: CpuPolicy = CpuPolicy.PINNED,
    unit: PinUnit = PinUnit.CORE,
    isolated: bool = False,
    **kw: Any,
) -> VmSpec:
    cpu = CpuSpec(policy=policy, pin_unit=unit, isolated=isolated)
    return VmSpec(name=name, vcpus=vcpus, cpu=cpu, boot=KernelBoot(kernel="k"), **kw)


def shared(name: str = "b2b1", vcpus: int = 2, **kw: Any) -> VmSpec:
    return vm(name, vcpus, policy=CpuPolicy.SHARED, **kw)


def sriov(pf: str = "ens1f0") -> NicSpec:
    return NicSpec(kind=NicKind.SRIOV, pf=pf)


@pytest.fixture
def host() -> HostInventory:
    return make_host()


@pytest.fixture
def alloc(host: HostInventory) -> Allocator:
    return Allocator(host, RESERVED)


def node_usage(allocator: Allocator, node: int) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = allocator.usage()["nodes"]
    return next(n for n in nodes if n["id"] == node)


# -- pinned CPUs ----------------------------------------------------------------------


def test_pinned_core_unit_takes_whole_cores_and_pins_first_threads(alloc: Allocator) -> None:
    a = alloc.allocate("du1", vm(vcpus=4))
    assert a.numa_node == 0  # both nodes have 7 free cores: the lower id wins
    assert a.vcpu_pins == (1, 2, 3, 4)
    assert a.cpus == (1, 2, 3, 4, 17, 18, 19, 20)
    assert a.emulator_cpus == a.cpus
    assert a.shared_cpus == ()
    assert (a.hugepages, a.hugepage_size_kib) == (0, 0)


def test_pinned_thread_unit_fills_sibling_threads(alloc: Allocator) -> None:
    a = alloc.allocate("du1", vm(vcpus=5, unit=PinUnit.THREAD))
    assert a.vcpu_pins == (1, 17, 2, 18, 3)
    assert a.cpus == (1, 2, 3, 17, 18, 19)  # ceil(5 / 2) cores; the spare thread stays idle


def test_core_with_a_reserved_thread_is_not_allocatable(host: HostInventory) -> None:
    allocator = Allocator(host, frozenset({17}))
    a = allocator.allocate("du1", vm(vcpus=2, numa_node=0))
    assert a.vcpu_pins == (0, 2)
    assert not {1, 17} & set(a.cpus)
    assert node_usage(allocator, 0)["cores"] == {"total": 8, "free": 5}


def test_pinned_vms_never_share_a_core(alloc: Allocator) -> None:
    first = alloc.allocate("du1", vm("du1", 4, numa_node=0))
    second = alloc.allocate("du2", vm("du2", 3, numa_node=0, unit=PinUnit.THREAD))
    assert not set(first.cpus) & set(second.cpus)
    assert second.cpus == (5, 6, 21, 22)


def test_not_enough_cores_names_vm_ask_and_what_is_free(alloc: Allocator) -> None:
    alloc.allocate("du1", vm("du1", 5, numa_node=0))
    with pytest.raises(InsufficientResources) as err:
        alloc.allocate("du2", vm("du2", 6, numa_node=0))
    assert err.value.code == "insufficient_cpus"
    assert err.value.extra["field"] == "vcpus"
    assert err.value.message == (
        "VM du2 needs 6 exclusive cores on NUMA node 0; 2 free "
        "(8 total, 1 reserved, 5 pinned by other VMs)"
    )
    assert alloc.held("du2") is None


def test_auto_node_takes_the_node_with_most_free_cores(alloc: Allocator) -> None:
    alloc.allocate("du1", vm("du1", 2, numa_node=0))
    assert alloc.allocate("du2", vm("du2", 2)).numa_node == 1
    assert alloc.allocate("du3", vm("du3", 3)).numa_node == 0  # 5 free on each: tie
    assert alloc.allocate("du4", vm("du4", 1)).numa_node == 1


def test_auto_node_tie_goes_to_the_lowest_id(alloc: Allocator) -> None:
    alloc.allocate("du1", vm("du1", 2, numa_node=0))
    alloc.allocate("du2", vm("du2", 2, numa_node=1))
    assert alloc.allocate("du3", vm("du3", 1)).numa_node == 0


def test_auto_node_skips_a_node_where_the_vm_does_not_fit() -> None:
    allocator = Allocator(make_host(hugepages_1g=(0, 4)), RESERVED)
    a = allocator.allocate("du1", vm(memory_mib=2048, hugepages=HugepageSize.SIZE_1G))
    assert a.numa_node == 1
    assert (a.hugepages, a.hugepage_size_kib) == (2, HUGEPAGE_1G_KIB)


def test_auto_node_that_fits_nowhere_reports_every_node(alloc: Allocator) -> None:
    with pytest.raises(InsufficientResources) as err:
        alloc.allocate("big", vm("big", 8))
    assert err.value.code == "insufficient_cpus"
    assert err.value.message.startswith("VM big fits on no NUMA node: needs 8 exclusive cores")
    assert "NUMA node 0" in err.value.message
    assert "NUMA node 1" in err.value.message


# -- isolation ------------------------------------------------------------------------


def test_isolated_vm_runs_emulator_on_reserved_cpus_of_its_node(alloc: Allocator) -> None:
    on0 = alloc.allocate("du1", vm("du1", 2, isolated=True, numa_node=0))
    on1 = alloc.allocate("du2", vm("du2", 2, isolated=True, numa_node=1))
    assert on0.emulator_cpus == (0, 16)
    assert on1.emulator_cpus == (8, 24)
    assert not set(on0.emulator_cpus) & set(on0.cpus)


def test_isolated_vm_uses_all_reserved_cpus_when_its_node_has_none(
    host: HostInventory,
) -> None:
    allocator = Allocator(host, frozenset({0, 16}))
    a = allocator.allocate("du1", vm(vcpus=2, isolated=True, numa_node=1))
    assert a.emulator_cpus == (0, 16)


def test_isolated_vm_without_reserved_cpus_is_refused(host: HostInventory) -> None:
    with pytest.raises(InvalidInput) as err:
        Allocator(host).allocate("du1", vm(vcpus=2, isolated=True))
    assert err.value.code == "invalid_cpu_policy"
    assert err.value.extra["field"] == "cpu.isolated"


# -- shared CPUs ----------------------------------------------------------------------


def test_shared_vm_is_unbound_and_floats_over_the_shared_pool(alloc: Allocator) -> None:
    pinned = alloc.allocate("du1", vm(vcpus=4, numa_node=0))
    a = alloc.allocate("b2b1", shared())
    assert a.numa_node is None
    assert (a.vcpu_pins, a.cpus, a.emulator_cpus) == ((), (), ())
    assert set(a.shared_cpus) == set(range(32)) - RESERVED - set(pinned.cpus)
    assert a.shared_cpus == alloc.shared_pool()


def test_shared_vm_on_a_node_uses_that_nodes_pool(alloc: Allocator) -> None:
    a = alloc.allocate("b2b1", shared(numa_node=1))
    assert a.numa_node == 1
    assert a.shared_cpus == (*range(9, 16), *range(25, 32))


def test_shared_vm_holds_no_cores(alloc: Allocator) -> None:
    alloc.allocate("b2b1", shared(numa_node=1))
    a = alloc.allocate("du1", vm(vcpus=7, numa_node=1))
    assert len(a.vcpu_pins) == 7
    assert alloc.shared_pool(1) == ()


def test_shared_vm_with_an_empty_pool_is_refused(alloc: Allocator) -> None:
    alloc.allocate("du1", vm(vcpus=7, numa_node=1))
    with pytest.raises(InsufficientResources) as err:
        alloc.allocate("b2b1", shared(numa_node=1))
    assert err.value.code == "insufficient_cpus"
    assert err.value.message.startswith("VM b2b1 needs shared CPUs on NUMA node 1")


def test_shared_vm_with_hugepages_is_bound_to_a_node(alloc: Allocator) -> None:
    a = alloc.allocate("b2b1", shared(memory_mib=1024, hugepages=HugepageSize.SIZE_2M))
    assert a.numa_node == 0
    assert a.shared_cpus == (*range(1, 8), *range(17, 24))
    assert (a.hugepages, a.hugepage_size_kib) == (512, HUGEPAGE_2M_KIB)


# -- NUMA node choice -----------------------------------------------------------------


def test_unknown_numa_node_lists_the_nodes_that_exist(alloc: Allocator) -> None:
    with pytest.raises(InvalidInput) as err:
        alloc.plan("du1", vm(numa_node=2))
    assert err.value.code == "unknown_numa_node"
    assert err.value.extra["field"] == "numa_node"
    assert "0, 1" in err.value.message


@pytest.mark.parametrize(
    ("spec", "node"),
    [
        (vm(pci_devices=(GPU,)), 1),
        (vm(nics=(sriov("ens1f0"),)), 0),
        (vm(nics=(sriov("ens2f0"),)), 1),
        (shared(pci_devices=(GPU,)), 1),
        (vm(pci_devices=(AUDIO, GPU)), 1),
        (shared(pci_devices=(AUDIO,)), None),
    ],
)
def test_auto_node_follows_the_devices(alloc: Allocator, spec: VmSpec, node: int | None) -> None:
    assert alloc.plan(spec.name, spec).numa_node == node


def test_devices_on_different_nodes_conflict(alloc: Allocator) -> None:
    with pytest.raises(InvalidInput) as err:
        alloc.plan("du1", vm(pci_devices=(GPU,), nics=(sriov("ens1f0"),)))
    assert err.value.code == "numa_conflict"
    assert err.value.extra["field"] == "nics[0].pf"
    assert f"{GPU} on node 1, ens1f0 on node 0" in err.value.message


def test_explicit_node_against_the_devices_conflicts(alloc: Allocator) -> None:
    with pytest.raises(InvalidInput) as err:
        alloc.plan("du1", vm(numa_node=0, pci_devices=(GPU,)))
    assert err.value.code == "numa_conflict"
    assert err.value.extra["field"] == "numa_node"


# -- hugepages ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "memory_mib", "pages"),
    [(HugepageSize.SIZE_2M, 1024, 512), (HugepageSize.SIZE_1G, 3072, 3)],
)
def test_hugepages_are_counted_on_the_chosen_node(
    alloc: Allocator, size: HugepageSize, memory_mib: int, pages: int
) -> None:
    a = alloc.allocate("du1", vm(vcpus=2, numa_node=1, memory_mib=memory_mib, hugepages=size))
    assert (a.numa_node, a.hugepages, a.hugepage_size_kib) == (1, pages, size.kib)
    held = node_usage(alloc, 1)["hugepages"][size.value]
    assert held["held"] == pages
    assert held["free"] == held["total"] - pages


def test_not_enough_hugepages_says_needed_and_free(alloc: Allocator) -> None:
    two_m: dict[str, Any] = {"hugepages": HugepageSize.SIZE_2M, "numa_node": 0}
    alloc.allocate("du1", vm("du1", 1, memory_mib=1536, **two_m))
    with pytest.raises(InsufficientResources) as err:
        alloc.allocate("du2", vm("du2", 1, memory_mib=1024, **two_m))
    assert err.value.code == "insufficient_hugepages"
    assert err.value.extra["field"] == "hugepages"
    assert err.value.message == (
        "VM du2 needs 512 2M hugepages (1024 MiB) on NUMA node 0; 256 are free "
        "(1024 total, 768 held by other VMs)"
    )


def test_hugepage_size_not_configured_on_the_node() -> None:
    allocator = Allocator(make_host(hugepages_1g=(0, 0)), RESERVED)
    one_g: dict[str, Any] = {"memory_mib": 1024, "hugepages": HugepageSize.SIZE_1G}
    with pytest.raises(InsufficientResources) as err:
        allocator.allocate("du1", vm(numa_node=0, **one_g))
    assert err.value.code == "insufficient_hugepages"
    assert "none of that size are configured" in err.value.message
    with pytest.raises(InsufficientResources) as err:
        allocator.allocate("du1", vm(**one_g))
    assert err.value.code == "insufficient_hugepages"
    assert err.value.message.startswith("VM du1 fits on no NUMA node")


# -- PCI passthrough and SR-IOV -------------------------------------------------------


def test_pci_device_is_handed_out_whole(alloc: Allocator) -> None:
    a = alloc.allocate("gpu1", shared("gpu1", pci_devices=(GPU,)))
    assert a.pci_devices == (GPU,)
    assert node_usage(alloc, 1)["pci_held"] == {GPU: "gpu1"}


def test_unknown_pci_device_points_at_the_field(alloc: Allocator) -> None:
    with pytest.raises(InvalidInput) as err:
        alloc.plan("gpu1", shared("gpu1", pci_devices=(GPU, "0000:00:00.7")))
    assert err.value.code == "unknown_pci_device"
    assert err.value.extra["field"] == "pci_devices[1]"


def test_pci_device_in_use_names_the_holder(alloc: Allocator) -> None:
    alloc.allocate("gpu1", shared("gpu1", pci_devices=(GPU,)))
    with pytest.raises(Conflict) as err:
        alloc.allocate("gpu2", shared("gpu2", pci_devices=(AUDIO, GPU)))
    assert err.value.code == "pci_device_in_use"
    assert err.value.extra == {"field": "pci_devices[1]", "vm": "gpu1"}
    assert "gpu1" in err.value.message


def test_vf_held_for_a_nic_cannot_be_passed_through(alloc: Allocator) -> None:
    alloc.allocate("du1", vm(vcpus=1, nics=(sriov(),)))
    with pytest.raises(Conflict) as err:
        alloc.allocate("du2", vm("du2", 1, pci_devices=(VFS0[0],)))
    assert err.value.code == "pci_device_in_use"


def test_sriov_vfs_follow_nic_order_and_skip_passed_through_vfs(alloc: Allocator) -> None:
    bridge = NicSpec(kind=NicKind.BRIDGE, bridge="br0")
    spec = vm(nics=(sriov(), bridge, sriov()), pci_devices=(VFS0[0],))
    a = alloc.allocate("du1", spec)
    assert a.sriov_vfs == (VFS0[1], VFS0[2])
    assert a.pci_devices == (VFS0[0],)
    assert alloc.allocate("du2", vm("du2", 1, nics=(sriov(),))).sriov_vfs == (VFS0[3],)


@pytest.mark.parametrize("pf", ["eth9", "eno1"])
def test_unknown_sriov_pf(alloc: Allocator, pf: str) -> None:
    with pytest.raises(InvalidInput) as err:
        alloc.plan("du1", vm(nics=(sriov(pf),)))
    assert err.value.code == "unknown_sriov_pf"
    assert err.value.extra["field"] == "nics[0].pf"


def test_vfs_run_out(alloc: Allocator) -> None:
    for i in range(4):
        alloc.allocate(f"du{i}", vm(f"du{i}", 1, nics=(sriov(),)))
    with pytest.raises(InsufficientResources) as err:
        alloc.allocate("du9", vm("du9", 1, nics=(sriov(),)))
    assert err.value.code == "insufficient_vfs"
    assert err.value.extra["field"] == "nics[0]"
    assert "all 4 of its VFs are in use" in err.value.message


def test_one_vm_asking_more_vfs_than_exist(alloc: Allocator) -> None:
    with pytest.raises(InsufficientResources) as err:
        alloc.plan("du1", vm(nics=(sriov("ens2f0"),) * 3))
    assert err.value.code == "insufficient_vfs"
    assert err.value.extra["field"] == "nics[2]"


def test_pf_without_vfs_enabled(alloc: Allocator) -> None:
    with pytest.raises(InsufficientResources) as err:
        alloc.plan("du1", vm(nics=(sriov("ens1f1"),)))
    assert err.value.code == "insufficient_vfs"
    assert "no VFs enabled" in err.value.message


# -- plan, allocate, release ----------------------------------------------------------


def test_plan_records_nothing(alloc: Allocator) -> None:
    before = alloc.usage()
    spec = vm(nics=(sriov(),), memory_mib=1024, hugepages=HugepageSize.SIZE_2M)
    planned = alloc.plan("du1", spec)
    assert alloc.plan("du1", spec) == planned
    assert alloc.usage() == before
    assert alloc.held("du1") is None
    assert alloc.allocate("du1", spec) == planned


def test_refused_allocation_holds_nothing(alloc: Allocator) -> None:
    before = alloc.usage()
    greedy = vm(vcpus=2, pci_devices=(GPU,), memory_mib=8192, hugepages=HugepageSize.SIZE_1G)
    with pytest.raises(InsufficientResources):
        alloc.allocate("du1", greedy)
    assert alloc.usage() == before
    assert alloc.held("du1") is None
    assert alloc.allocate("gpu1", shared("gpu1", pci_devices=(GPU,))).pci_devices == (GPU,)


def test_allocating_a_vm_twice_is_refused(alloc: Allocator) -> None:
    alloc.allocate("du1", vm(vcpus=1))
    for call in (alloc.allocate, alloc.plan):
        with pytest.raises(Conflict) as err:
            call("du1", shared("du1"))
        assert err.value.code == "already_allocated"


def test_release_frees_everything_and_is_idempotent(alloc: Allocator) -> None:
    before = alloc.usage()
    spec = vm(pci_devices=(NVME,), nics=(sriov(),), memory_mib=1024, hugepages=HugepageSize.SIZE_2M)
    first = alloc.allocate("du1", spec)
    alloc.release("du1")
    alloc.release("du1")
    alloc.release("never-existed")
    assert alloc.held("du1") is None
    assert alloc.usage() == before
    assert alloc.allocate("du1", spec) == first


# -- restore --------------------------------------------------------------------------


def _populate(allocator: Allocator) -> None:
    allocator.allocate(
        "du1",
        vm(
            "du1",
            4,
            isolated=True,
            nics=(sriov(),),
            memory_mib=2048,
            hugepages=HugepageSize.SIZE_1G,
        ),
    )
    allocator.allocate(
        "gpu1",
        vm(
            "gpu1",
            3,
            unit=PinUnit.THREAD,
            pci_devices=(GPU,),
            memory_mib=1024,
            hugepages=HugepageSize.SIZE_2M,
        ),
    )
    allocator.allocate("b2b1", shared("b2b1", pci_devices=(AUDIO,)))


def test_restore_rebuilds_the_same_state(host: HostInventory, alloc: Allocator) -> None:
    _populate(alloc)
    stored = {
        name: encode_allocation(alloc.held(name) or Allocation())
        for name in ("du1", "gpu1", "b2b1")
    }
    rebuilt = Allocator(host, RESERVED)
    for name, raw in stored.items():
        rebuilt.restore(name, decode_allocation(raw))
    assert rebuilt.usage() == alloc.usage()
    assert all(rebuilt.held(n) == alloc.held(n) for n in stored)
    rebuilt.release("du1")
    rebuilt.restore("du1", decode_allocation(stored["du1"]))
    assert rebuilt.usage() == alloc.usage()


def test_restored_resources_are_not_handed_out_again(alloc: Allocator) -> None:
    alloc.restore(
        "old", Allocation(numa_node=0, vcpu_pins=(1,), cpus=(1, 17), sriov_vfs=(VFS0[0],))
    )
    a = alloc.allocate("du1", vm(vcpus=1, numa_node=0, nics=(sriov(),)))
    assert a.cpus == (2, 18)
    assert a.sriov_vfs == (VFS0[1],)


@pytest.mark.parametrize(
    ("allocation", "says"),
    [
        (Allocation(numa_node=0, vcpu_pins=(1,), cpus=(1, 17)), "CPU 1 is pinned by VM du1"),
        (Allocation(numa_node=0, vcpu_pins=(0,), cpus=(0, 16)), "CPU 0 is reserved"),
        (Allocation(pci_devices=(GPU,)), f"{GPU} is held by VM gpu1"),
        (Allocation(sriov_vfs=(VFS0[0],)), f"{VFS0[0]} is held by VM du1"),
        (Allocation(cpus=(5, 5)), "CPU 5 is pinned by VM late"),
        (
            Allocation(numa_node=0, hugepage_size_kib=HUGEPAGE_1G_KIB, hugepages=3),
            "3 1G hugepages on NUMA node 0 do not fit: 2 of 4 are free",
        ),
        (Allocation(hugepage_size_kib=HUGEPAGE_2M_KIB, hugepages=1), "0 of 0 are free"),
    ],
)
def test_restore_refuses_overlaps(alloc: Allocator, allocation: Allocation, says: str) -> None:
    alloc.allocate(
        "du1",
        vm("du1", 1, numa_node=0, nics=(sriov(),), memory_mib=2048, hugepages=HugepageSize.SIZE_1G),
    )
    alloc.allocate("gpu1", shared("gpu1", pci_devices=(GPU,)))
    before = alloc.usage()
    with pytest.raises(Conflict) as err:
        alloc.restore("late", allocation)
    assert err.value.code == "allocation_conflict"
    assert says in err.value.message
    assert alloc.held("late") is None
    assert alloc.usage() == before


def test_restore_of_a_held_vm_is_refused(alloc: Allocator) -> None:
    alloc.allocate("du1", vm(vcpus=1))
    with pytest.raises(Conflict) as err:
        alloc.restore("du1", Allocation())
    assert err.value.code == "already_allocated"


# -- usage and construction -----------------------------------------------------------


def test_usage_is_json_and_counts_per_node(alloc: Allocator) -> None:
    _populate(alloc)
    usage = json.loads(json.dumps(alloc.usage()))
    node0, node1 = usage["nodes"]
    assert node0["cpus"] == {"total": 16, "reserved": 2, "pinned": 8, "free": 6}
    assert node0["cores"] == {"total": 8, "free": 3}
    assert node0["hugepages"]["1G"] == {
        "size_kib": HUGEPAGE_1G_KIB,
        "total": 4,
        "held": 2,
        "free": 2,
    }
    assert node0["pci_held"] == {VFS0[0]: "du1"}
    assert node1["cpus"] == {"total": 16, "reserved": 2, "pinned": 4, "free": 10}
    assert node1["hugepages"]["2M"]["held"] == 512
    assert node1["pci_held"] == {GPU: "gpu1"}
    assert usage["pci_held_without_node"] == {AUDIO: "b2b1"}
    assert usage["vms"] == ["b2b1", "du1", "gpu1"]


def test_reserved_cpus_must_exist(host: HostInventory) -> None:
    with pytest.raises(ConfigError) as err:
        Allocator(host, frozenset({3, 99}))
    assert err.value.code == "invalid_reserved_cpus"
    assert "99" in err.value.message


# -- property: nothing is ever double-booked ------------------------------------------

HOST = make_host()
CORES = {cpu: core for core in HOST.cores().values() for cpu in core}
NODE_OF = {t.cpu: t.node for t in HOST.threads}
NAMES = [f"vm{i}" for i in range(6)]


@st.composite
def specs(draw: st.DrawFn) -> VmSpec:
    policy = draw(st.sampled_from(CpuPolicy))
    device = draw(st.sampled_from([(), (GPU,), (NVME,), (AUDIO,), (VFS0[0],)]))
    pfs = draw(st.lists(st.sampled_from(["ens1f0", "ens2f0"]), max_size=2))
    # An explicit node mostly on device-free specs, so most specs are placeable.
    nodes = [None, None, 0, 1] if not (device or pfs) else [None, None, None, None, 0]
    return vm(
        "x",
        draw(st.integers(1, 6)),
        policy=policy,
        unit=draw(st.sampled_from(PinUnit)),
        isolated=policy is CpuPolicy.PINNED and draw(st.booleans()),
        numa_node=draw(st.sampled_from(nodes)),
        memory_mib=1024 * draw(st.integers(1, 3)),
        hugepages=draw(st.sampled_from(HugepageSize)),
        pci_devices=device,
        nics=tuple(sriov(pf) for pf in pfs),
    )


ops = st.lists(
    st.one_of(
        st.tuples(st.just("allocate"), st.sampled_from(NAMES), specs()),
        st.tuples(st.just("release"), st.sampled_from(NAMES), st.none()),
    ),
    max_size=25,
)


def _check(
    allocator: Allocator, live: dict[str, tuple[VmSpec, Allocation]], reserved: frozenset[int]
) -> None:
    allocs = [a for _, a in live.values()]
    cpus = Counter(c for a in allocs for c in a.cpus)
    assert all(n == 1 for n in cpus.values()), cpus
    assert not set(cpus) & reserved
    devices = Counter(d for a in allocs for d in (*a.pci_devices, *a.sriov_vfs))
    assert all(n == 1 for n in devices.values()), devices
    for spec, a in live.values():
        assert allocator.held(spec.name) == a
        if a.cpus:
            assert {c for cpu in a.cpus for c in CORES[cpu]} == set(a.cpus)  # whole cores
            assert {NODE_OF[c] for c in a.cpus} == {a.numa_node}
            assert len(a.vcpu_pins) == spec.vcpus
            assert set(a.vcpu_pins) <= set(a.cpus)
    usage = allocator.usage()
    assert usage["vms"] == sorted(live)
    for node in usage["nodes"]:
        on_node = [c for c in cpus if NODE_OF[c] == node["id"]]
        assert node["cpus"]["pinned"] == len(on_node)
        for label, pages in node["hugepages"].items():
            held = sum(
                a.hugepages
                for a in allocs
                if a.numa_node == node["id"]
                and a.hugepages
                and HugepageSize(label).kib == a.hugepage_size_kib
            )
            assert pages["held"] == held <= pages["total"]
            assert pages["free"] == pages["total"] - held
    held_pci = {**usage["pci_held_without_node"]}
    for node in usage["nodes"]:
        held_pci |= node["pci_held"]
    assert set(held_pci) == set(devices)


@settings(max_examples=200, deadline=None)
@given(
    steps=ops,
    reserved=st.sampled_from([RESERVED, frozenset({16}), frozenset()]),
)
def test_no_resource_is_ever_double_booked(
    steps: list[tuple[str, str, VmSpec | None]], reserved: frozenset[int]
) -> None:
    allocator = Allocator(HOST, reserved)
    live: dict[str, tuple[VmSpec, Allocation]] = {}
    for op, name, spec in steps:
        if op == "release":
            allocator.release(name)
            live.pop(name, None)
        else:
            assert spec is not None
            named = msgspec.structs.replace(spec, name=name)
            before = allocator.usage()
            try:
                live[name] = (named, allocator.allocate(name, named))
            except TowerboxError:
                assert allocator.usage() == before
        _check(allocator, live, reserved)
    rebuilt = Allocator(HOST, reserved)
    for name, (_, a) in live.items():
        rebuilt.restore(name, a)
    assert rebuilt.usage() == allocator.usage()
