"""The Linux backend: bridges, addresses, route tables and rules on the real kernel.

This kernel has no 802.1Q, so the VLAN step is exercised twice: for real, where it
must fail with ``kernel_lacks_8021q`` and leave nothing behind, and through a
stand-in that makes a veth instead of ``<nic>.<vid>``, whose far end sits in the UPF
namespace as the UPF's interface on that VLAN would. Everything else is the real
backend on the real kernel, with traffic between namespaces.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest
from pyroute2 import IPRoute

from tests.integration.n6.lab import Lab, received_from
from tests.support.n6host import LINUX_RANGES, NETNS_PREFIX, OWNER, PID, RUN_KEY, TAG
from upf_bridge import naming
from upf_bridge.backends import netlink, sysctl
from upf_bridge.backends.linux import LinuxBackend
from upf_bridge.backends.netlink import LinkInfo
from upf_bridge.model import N6Config, Trunk, TrunkKind, VNet, validate

pytestmark = [pytest.mark.root, pytest.mark.ovs]

OCTET = 10 + PID % 90  # apart from the OVS tests' 10.<100..199>
NIC = f"ln{TAG}"


def net(i: int, host: int) -> str:
    return f"10.{OCTET}.{i}.{host}"


def ue(i: int) -> str:
    return f"10.{OCTET}.{100 + i}.1"


def make_vnet(i: int, **kw: Any) -> VNet:
    base = VNet(
        tenant=f"tenant{i}",
        name="llm",
        trunk=NIC,
        vlan=200 + i,
        subnet=IPv4Network(f"10.{OCTET}.{i}.0/24"),
        gateway=IPv4Address(net(i, 1)),
        ue_pools=(IPv4Network(f"10.{OCTET}.{100 + i}.0/24"),),
        upf_address=IPv4Address(net(i, 2)),
    )
    return replace(base, **kw)


TRUNK = Trunk(NIC, TrunkKind.LINUX)
BASELINE = validate([TRUNK], [make_vnet(1), make_vnet(2)])


class VethStandIn:
    """Makes a veth where the kernel would make ``<nic>.<vid>``; its peer is the UPF's
    interface on that VLAN, in the UPF namespace, addressed as the UPF would be."""

    def __init__(self, lab: Lab, upf: str) -> None:
        self.lab, self.upf = lab, upf
        self.made: dict[str, tuple[str, int]] = {}

    def create(self, nl: netlink.Netlink, name: str, parent: str, vid: int) -> None:
        i = vid - 200
        netlink.add_link(nl, name, "veth", peer={"ifname": f"lu{vid}{TAG}"})
        self.made[name] = (parent, vid)
        nl.ipr.link("set", index=nl.index(f"lu{vid}{TAG}"), net_ns_fd=self.upf)
        nl.forget(f"lu{vid}{TAG}")
        self.lab.ip(self.upf, "link", "set", f"lu{vid}{TAG}", "name", f"upf{i}", "up")
        self.lab.ip(self.upf, "addr", "add", f"{net(i, 2)}/24", "dev", f"upf{i}")
        self.lab.ip(self.upf, "route", "add", "default", "via", net(i, 1), "table", str(i))

    def recognise(self, link: LinkInfo, links: dict[str, LinkInfo]) -> tuple[str, int] | None:
        return self.made.get(link.name) if link.link_kind == "veth" else None


@dataclass
class LinuxLab:
    lab: Lab
    backend: LinuxBackend
    upf: str
    tenant_ns: dict[int, str]


@pytest.fixture(scope="module")
def linux(ovs: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LinuxLab]:
    lab = Lab(NETNS_PREFIX + "-l", tmp_path_factory.mktemp("n6-linux"), f"{RUN_KEY}={PID}")
    backend: LinuxBackend | None = None
    try:
        lab.sink(f"lk{TAG}", f"10.{OCTET}.0.0/16")
        lab.veth(NIC, f"lnp{TAG}")
        upf = lab.netns("upf")
        backend = LinuxBackend(owner=OWNER, ranges=LINUX_RANGES, vlans=VethStandIn(lab, upf))
        tenant_ns = {}
        for i in (1, 2):
            lab.ip(upf, "addr", "add", f"{ue(i)}/32", "dev", "lo")
            lab.ip(upf, "rule", "add", "from", f"10.{OCTET}.{100 + i}.0/24", "lookup", str(i))
            ns = tenant_ns[i] = lab.netns(f"t{i}")
            lab.veth(f"w{i}{TAG}", "eth0", ns)
            lab.ip(ns, "addr", "add", f"{net(i, 10)}/24", "dev", "eth0")
            lab.ip(ns, "route", "add", "default", "via", net(i, 1))
        for i in (1, 2):
            lab.serve(tenant_ns[i], "0.0.0.0", f"t{i}.log")  # noqa: S104
            lab.serve(upf, ue(i), f"ue{i}.log")
        yield LinuxLab(lab, backend, upf, tenant_ns)
    finally:
        try:
            if backend is not None:
                backend.apply(N6Config())
        finally:
            lab.close()


def _attach_tenants(linux: LinuxLab) -> None:
    with IPRoute() as ipr:
        for i, vnet in enumerate(BASELINE.vnets, start=1):
            bridge = linux.backend.attachment(vnet).bridge
            ipr.link(
                "set",
                index=ipr.link_lookup(ifname=f"w{i}{TAG}")[0],
                master=ipr.link_lookup(ifname=bridge)[0],
            )


@pytest.fixture
def at_baseline(linux: LinuxLab) -> LinuxLab:
    if not linux.backend.apply(BASELINE).empty:
        _attach_tenants(linux)
        for ns in (linux.upf, *linux.tenant_ns.values()):
            linux.lab.ip(ns, "neigh", "flush", "all")
        for i in (1, 2):
            linux.lab.wait_reachable(linux.upf, ue(i), net(i, 10))
    return linux


def _kernel_policy() -> tuple[list[str], list[str]]:
    with netlink.session() as nl:
        links = netlink.read_links(nl)
        rules = sorted(r.key for r in netlink.read_rules(nl, LINUX_RANGES))
        routes = sorted(r.key for r in netlink.read_routes(nl, links, LINUX_RANGES))
    return rules, routes


def _owned_links() -> list[str]:
    with netlink.session() as nl:
        links = netlink.read_links(nl).values()
    return sorted(
        link.name
        for link in links
        if (marker := naming.parse_link_alias(link.alias)) is not None and marker[0] == OWNER
    )


def test_apply_makes_bridges_addresses_routes_and_rules(at_baseline: LinuxLab) -> None:
    vnet = BASELINE.vnets[0]
    bridge, vlan = naming.bridge_name(vnet), naming.vlan_name(vnet)
    assert vlan == f"{NIC}.201"
    expected = [n for v in BASELINE.vnets for n in (naming.bridge_name(v), naming.vlan_name(v))]
    assert _owned_links() == sorted(expected)
    with netlink.session() as nl:
        links = netlink.read_links(nl)
        addresses = netlink.read_addresses(nl, links, {bridge})
    assert links[vlan].master == links[bridge].index
    assert links[bridge].alias == naming.link_alias(OWNER, vnet.key)
    assert links[bridge].mac == naming.gateway_mac(vnet)
    assert [a.cidr for a in addresses] == [f"{net(1, 1)}/24"]
    assert sysctl.read_gateway_mode(bridge)
    rules, routes = _kernel_policy()
    table = LINUX_RANGES.table_for(NIC, 201)
    assert f"{LINUX_RANGES.priority}: from 10.{OCTET}.101.0/24 lookup {table}" in rules
    assert f"{LINUX_RANGES.iif_priority}: iif {bridge} lookup {table}" in rules
    assert f"10.{OCTET}.101.0/24 via {net(1, 2)} dev {bridge} table {table}" in routes
    assert f"unreachable default table {table}" in routes


def test_ue_traffic_stays_in_its_tenants_bridge(at_baseline: LinuxLab) -> None:
    lab, upf = at_baseline.lab, at_baseline.upf
    a, b = net(1, 10), net(2, 10)
    assert lab.send(upf, ue(1), a, b) == {a: "ok", b: "timeout"}
    assert lab.send(upf, ue(2), a, b) == {a: "timeout", b: "ok"}
    assert lab.send(at_baseline.tenant_ns[1], a, ue(1), ue(2), b) == {
        ue(1): "ok",
        ue(2): "timeout",
        b: "timeout",
    }
    assert ue(1) not in received_from(lab.workdir / "t2.log")
    assert a not in received_from(lab.workdir / "t2.log")
    assert ue(2) not in received_from(lab.workdir / "t1.log")


def test_mtu_changes_in_place(at_baseline: LinuxLab) -> None:
    smaller = validate([TRUNK], [make_vnet(1, mtu=1400), make_vnet(2)])
    diff = at_baseline.backend.apply(smaller)
    assert not diff.delete
    assert not diff.create
    assert {c.resource.key for c in diff.update} == {
        naming.bridge_name(smaller.vnets[0]),
        naming.vlan_name(smaller.vnets[0]),
    }
    with netlink.session() as nl:
        assert netlink.read_links(nl)[naming.bridge_name(smaller.vnets[0])].mtu == 1400


def test_counters_cover_the_bridge_and_its_ports(at_baseline: LinuxLab) -> None:
    key = BASELINE.vnets[0].key
    before = at_baseline.backend.counters()[key]
    assert {i.name for i in before.interfaces} == {
        naming.bridge_name(BASELINE.vnets[0]),
        naming.vlan_name(BASELINE.vnets[0]),
        f"w1{TAG}",
    }
    at_baseline.lab.send(at_baseline.upf, ue(1), net(1, 10))
    after = at_baseline.backend.counters()[key]
    assert after.rx_packets > before.rx_packets
    assert after.tx_bytes > before.tx_bytes


def test_deleting_a_vnet_removes_everything_it_made(at_baseline: LinuxLab) -> None:
    gone = BASELINE.vnets[1]
    table = LINUX_RANGES.table_for(NIC, gone.vlan)
    diff = at_baseline.backend.apply(validate([TRUNK], [make_vnet(1)]))
    assert all(c.action == "delete" for c in diff.changes)
    assert naming.bridge_name(gone) not in _owned_links()
    assert naming.vlan_name(gone) not in _owned_links()
    rules, routes = _kernel_policy()
    assert not [r for r in rules + routes if str(table) in r]
    lab = at_baseline.lab
    assert lab.send(at_baseline.upf, ue(1), net(1, 10)) == {net(1, 10): "ok"}
