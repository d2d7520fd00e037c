"""The Open vSwitch backend with real 802.1Q traffic between namespaces.

    UPF namespace                    lab "upf" bridge          N6 trunk bridge (backend)
    ue pools on lo; per tenant  ──►  access ports tagged  ──►  trunk port carrying the
    veths upf1, upf2                 VLAN A / VLAN B    veth   VNet VLANs; gateway ports
                                                               tagged A / B; tenant ports
                                                               tagged A / B ──► ns A, ns B

The UPF routes each UE pool to its VNet's gateway on the node (as a UPF handing
traffic to the node over N6 does), so the node's policy routing decides where the
pools' traffic may go; ns A and ns B stand in for inference VMs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from tests.integration.n6.lab import Lab, received_from, sh
from tests.support.n6host import NETNS_PREFIX, OCTET, OVS_RANGES, OWNER, PID, RUN_KEY, TAG
from towerbox_core.errors import BackendError, Conflict
from upf_bridge import naming
from upf_bridge.backends import netlink, sysctl
from upf_bridge.backends.ovs import OvsBackend
from upf_bridge.model import N6Config, Trunk, TrunkKind, VNet, validate
from upf_bridge.state import Rule

pytestmark = [pytest.mark.root, pytest.mark.ovs]

N6 = f"n6{TAG}"
UPF_BRIDGE = f"up{TAG}"
UPLINK = f"n6u{TAG}"  # the trunk port the backend adds to its bridge
UPLINK_PEER = f"upu{TAG}"
TENANTS = {1: ("acme", 101), 2: ("beta", 102)}


def net(i: int, host: int) -> str:
    return f"10.{OCTET}.{i}.{host}"


def ue(i: int) -> str:
    return f"10.{OCTET}.{100 + i}.1"


def make_vnet(i: int, vlan: int | None = None, **kw: object) -> VNet:
    tenant, vid = TENANTS.get(i, (f"t{i}", 100 + i))
    base = VNet(
        tenant=tenant,
        name="llm",
        trunk=N6,
        vlan=vlan or vid,
        subnet=IPv4Network(f"10.{OCTET}.{i}.0/24"),
        gateway=IPv4Address(net(i, 1)),
        ue_pools=(IPv4Network(f"10.{OCTET}.{100 + i}.0/24"),),
        dnns=("internet",),
        upf_address=IPv4Address(net(i, 2)),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


TRUNK = Trunk(N6, TrunkKind.OVS, ports=(UPLINK,), datapath_type="netdev")
BASELINE = validate([TRUNK], [make_vnet(1), make_vnet(2)])


@dataclass
class N6Lab:
    lab: Lab
    backend: OvsBackend
    upf: str
    tenant_ns: dict[int, str]
    logs: dict[int, Path]

    def set_tag(self, port: str, vlan: int) -> None:
        sh("ovs-vsctl", "set", "port", port, f"tag={vlan}")


@pytest.fixture(scope="module")
def n6(ovs: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[N6Lab]:
    lab = Lab(NETNS_PREFIX, tmp_path_factory.mktemp("n6-ovs"), f"{RUN_KEY}={PID}")
    backend = OvsBackend(owner=OWNER, ranges=OVS_RANGES)
    try:
        lab.sink(f"sk{TAG}", f"10.{OCTET}.0.0/16")
        lab.ovs_bridge(UPF_BRIDGE)
        lab.veth(UPLINK, UPLINK_PEER)
        lab.ovs_port(UPF_BRIDGE, UPLINK_PEER)
        upf = lab.netns("upf")
        tenant_ns = {}
        for i, (_, vid) in TENANTS.items():
            lab.veth(f"u{i}{TAG}", f"upf{i}", upf)
            lab.ovs_port(UPF_BRIDGE, f"u{i}{TAG}", f"tag={vid}")
            lab.ip(upf, "addr", "add", f"{net(i, 2)}/24", "dev", f"upf{i}")
            lab.ip(upf, "addr", "add", f"{ue(i)}/32", "dev", "lo")
            lab.ip(upf, "rule", "add", "from", f"10.{OCTET}.{100 + i}.0/24", "lookup", str(i))
            lab.ip(upf, "route", "add", "default", "via", net(i, 1), "table", str(i))
            ns = tenant_ns[i] = lab.netns(f"t{i}")
            lab.veth(f"v{i}{TAG}", "eth0", ns)
            lab.ip(ns, "addr", "add", f"{net(i, 10)}/24", "dev", "eth0")
            lab.ip(ns, "route", "add", "default", "via", net(i, 1))
        backend.apply(BASELINE)
        for i, vnet in enumerate(BASELINE.vnets, start=1):
            where = backend.attachment(vnet)  # how a VM NIC joins the VNet
            lab.ovs_port(where.bridge, f"v{i}{TAG}", f"tag={where.vlan}")
        logs = {i: lab.serve(ns, "0.0.0.0", f"t{i}.log") for i, ns in tenant_ns.items()}  # noqa: S104
        for i in TENANTS:  # bound to the UE address, so that the echo comes from it
            lab.serve(upf, ue(i), f"ue{i}.log")
        for i in TENANTS:  # the first packets wait for ARP and OVS flow set-up
            lab.wait_reachable(upf, ue(i), net(i, 10))
        yield N6Lab(lab, backend, upf, tenant_ns, logs)
    finally:
        for i in TENANTS:
            sh("ovs-vsctl", "--if-exists", "del-port", N6, f"v{i}{TAG}")
        try:
            backend.apply(N6Config())  # the trunk goes, and with it the bridge
        finally:
            lab.close()
    assert N6 not in sh("ovs-vsctl", "list-br").split()


@pytest.fixture(autouse=True)
def _at_baseline(n6: N6Lab) -> None:
    for i, (_, vid) in TENANTS.items():
        n6.set_tag(f"u{i}{TAG}", vid)
        n6.set_tag(f"v{i}{TAG}", vid)
    if not n6.backend.apply(BASELINE).empty:
        for i in TENANTS:
            n6.lab.wait_reachable(n6.upf, ue(i), net(i, 10))


def _kernel_policy() -> tuple[list[str], list[str]]:
    with netlink.session() as nl:
        links = netlink.read_links(nl)
        rules = sorted(r.key for r in netlink.read_rules(nl, OVS_RANGES))
        routes = sorted(r.key for r in netlink.read_routes(nl, links, OVS_RANGES))
    return rules, routes


def test_apply_builds_tagged_gateway_ports_and_the_trunk(n6: N6Lab) -> None:
    gateway_macs = {naming.port_name(v): naming.gateway_mac(v) for v in BASELINE.vnets}
    ports = json.loads(
        sh("ovs-vsctl", "--format=json", "--columns=name,tag,trunks,external_ids", "list", "Port")
    )["data"]
    by_name = {row[0]: row for row in ports}
    for vnet in BASELINE.vnets:
        name, tag, _, ids = by_name[naming.port_name(vnet)]
        assert tag == vnet.vlan
        assert dict(ids[1]) == {
            naming.OWNER_KEY: OWNER,
            naming.VNET_KEY: vnet.key,
            naming.TRUNK_KEY: N6,
        }
        assert f"{vnet.gateway}/24" in sh("ip", "-br", "addr", "show", name)
        assert gateway_macs[name] in sh("ip", "-br", "link", "show", name)
        assert sysctl.read_gateway_mode(name)
    assert by_name[UPLINK][2] == ["set", [101, 102]]


def test_ue_pool_traffic_reaches_its_own_tenant_and_never_the_other(n6: N6Lab) -> None:
    a, b = net(1, 10), net(2, 10)
    assert n6.lab.send(n6.upf, ue(1), a, b) == {a: "ok", b: "timeout"}
    assert n6.lab.send(n6.upf, ue(2), a, b) == {a: "timeout", b: "ok"}
    assert ue(1) in received_from(n6.logs[1])
    assert ue(1) not in received_from(n6.logs[2])
    assert ue(2) in received_from(n6.logs[2])
    assert ue(2) not in received_from(n6.logs[1])


def test_tenants_reach_their_own_ues_and_not_the_other_tenant(n6: N6Lab) -> None:
    a, b = net(1, 10), net(2, 10)
    assert n6.lab.send(n6.tenant_ns[1], a, ue(1), ue(2), b) == {
        ue(1): "ok",
        ue(2): "timeout",
        b: "timeout",
    }
    assert n6.lab.send(n6.tenant_ns[2], b, ue(2), ue(1), a) == {
        ue(2): "ok",
        ue(1): "timeout",
        a: "timeout",
    }
    assert a not in received_from(n6.logs[2])
    assert b not in received_from(n6.logs[1])


def test_a_frame_forced_onto_the_wrong_mac_stays_in_its_vlan(n6: N6Lab) -> None:
    b = net(2, 10)
    b_mac = n6.lab.mac(n6.tenant_ns[2], "eth0")
    n6.lab.ip(n6.upf, "route", "add", f"{b}/32", "dev", "upf1", "table", "1")
    n6.lab.ip(n6.upf, "neigh", "replace", b, "lladdr", b_mac, "dev", "upf1", "nud", "permanent")
    try:
        assert n6.lab.send(n6.upf, ue(1), b) == {b: "timeout"}
    finally:
        n6.lab.ip(n6.upf, "route", "del", f"{b}/32", "dev", "upf1", "table", "1")
        n6.lab.ip(n6.upf, "neigh", "del", b, "dev", "upf1")
    assert ue(1) not in received_from(n6.logs[2])


def test_the_rules_keep_tenants_apart_and_reconcile_repairs_them(n6: N6Lab) -> None:
    b = net(2, 10)
    rules, _ = _kernel_policy()
    assert len(rules) == 6
    with netlink.session() as nl:
        for rule in netlink.read_rules(nl, OVS_RANGES):
            netlink.rule(nl, "del", rule)
    # Control: without the rules the node routes pool A into tenant B's VNet.
    n6.lab.send(n6.upf, ue(1), b)
    assert ue(1) in received_from(n6.logs[2])
    plan = n6.backend.plan(BASELINE)
    assert [c.resource.kind for c in plan.create] == ["rule"] * 6
    assert not plan.update
    assert not plan.delete
    n6.backend.apply(BASELINE)
    n6.logs[2].write_text("")
    assert n6.lab.send(n6.upf, ue(1), b) == {b: "timeout"}
    assert ue(1) not in received_from(n6.logs[2])


def test_counters_count_each_vnets_traffic(n6: N6Lab) -> None:
    before = n6.backend.counters()
    a = make_vnet(1).key
    assert {i.name for i in before[a].interfaces} == {
        naming.port_name(BASELINE.vnets[0]),
        f"v1{TAG}",
    }
    n6.lab.send(n6.upf, ue(1), net(1, 10))
    after = n6.backend.counters()
    assert after[a].rx_packets > before[a].rx_packets
    assert after[a].tx_packets > before[a].tx_packets
    assert after[a].tx_bytes > before[a].tx_bytes


def test_changing_a_vlan_takes_effect(n6: N6Lab) -> None:
    moved = validate([TRUNK], [make_vnet(1, vlan=111), make_vnet(2)])
    diff = n6.backend.apply(moved)
    gone = naming.port_name(BASELINE.vnets[0])
    made = naming.port_name(moved.vnets[0])
    assert f"- ovs port {gone} on {N6}: VLAN 101, MTU 1500 (VNet acme/llm)" in diff.lines()
    assert any(line.startswith(f"+ ovs port {made}") for line in diff.lines())
    assert gone not in sh("ovs-vsctl", "list-ports", N6).split()
    a = net(1, 10)
    # The UPF and the tenant are still on VLAN 101: the gateway is not there any more.
    assert n6.lab.send(n6.upf, ue(1), a) == {a: "timeout"}
    n6.set_tag(f"u1{TAG}", 111)
    n6.set_tag(f"v1{TAG}", 111)
    # The re-created gateway kept its MAC: nobody's ARP cache needs flushing.
    assert n6.lab.send(n6.upf, ue(1), a) == {a: "ok"}
    assert n6.lab.send(n6.tenant_ns[1], a, ue(1)) == {ue(1): "ok"}
    assert sh("ovs-vsctl", "get", "port", UPLINK, "trunks").strip() == "[102, 111]"


def test_deleting_a_vnet_removes_everything_it_made(n6: N6Lab) -> None:
    b = BASELINE.vnets[1]
    port, table = naming.port_name(b), OVS_RANGES.table_for(N6, b.vlan)
    n6.backend.apply(validate([TRUNK], [make_vnet(1)]))
    assert port not in sh("ovs-vsctl", "list-ports", N6).split()
    rules, routes = _kernel_policy()
    assert not [r for r in rules if str(table) in r]
    assert not [r for r in routes if str(table) in r]
    with netlink.session() as nl:
        assert port not in netlink.read_links(nl)
    assert n6.lab.send(n6.upf, ue(1), net(1, 10)) == {net(1, 10): "ok"}


def test_foreign_ports_and_rules_are_never_touched(n6: N6Lab) -> None:
    foreign = f"fr{TAG}"
    table = OVS_RANGES.table_for(N6, 101)
    n6.lab.ovs_port(N6, foreign, "tag=101")
    foreign_rules = [
        ("from", f"10.{OCTET}.250.0/24", "lookup", "main", "priority", str(OVS_RANGES.priority)),
        ("from", f"10.{OCTET}.251.0/24", "lookup", str(table), "priority", "20999"),
    ]
    for rule in foreign_rules:
        sh("ip", "rule", "add", *rule)
    try:
        n6.backend.apply(validate([TRUNK], [make_vnet(1)]))
        n6.backend.apply(BASELINE)
        assert foreign in sh("ovs-vsctl", "list-ports", N6).split()
        listed = sh("ip", "rule", "list")
        assert f"10.{OCTET}.250.0/24 lookup main" in listed
        assert f"10.{OCTET}.251.0/24 lookup {table}" in listed
    finally:
        sh("ovs-vsctl", "--if-exists", "del-port", N6, foreign)
        for rule in foreign_rules:
            sh("ip", "rule", "del", *rule)


def test_a_failed_apply_restores_the_previous_configuration(
    n6: N6Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    ovs_ports_before = sh("ovs-vsctl", "list-ports", N6)
    kernel_before = _kernel_policy()
    wanted = validate([TRUNK], [make_vnet(1, mtu=1400), make_vnet(2), make_vnet(3)])
    real_rule = netlink.rule
    calls: list[str] = []

    def flaky_rule(nl: netlink.Netlink, command: str, rule: Rule) -> None:
        calls.append(command)
        if command == "add" and calls.count("add") == 2:
            raise BackendError("injected failure", code="netlink_error")
        real_rule(nl, command, rule)

    monkeypatch.setattr(netlink, "rule", flaky_rule)
    with pytest.raises(BackendError, match="injected failure"):
        n6.backend.apply(wanted)
    monkeypatch.setattr(netlink, "rule", real_rule)
    assert n6.backend.plan(BASELINE).empty
    assert sh("ovs-vsctl", "list-ports", N6) == ovs_ports_before
    assert _kernel_policy() == kernel_before
    assert sh("ovs-vsctl", "get", "interface", naming.port_name(BASELINE.vnets[0]),
              "mtu_request").strip() == "1500"  # fmt: skip
    assert n6.lab.send(n6.upf, ue(1), net(1, 10)) == {net(1, 10): "ok"}


def test_a_name_held_by_a_foreign_interface_is_a_conflict(n6: N6Lab) -> None:
    third = make_vnet(3)
    taken = naming.port_name(third)
    n6.lab.veth(taken, f"x{TAG}")
    try:
        with pytest.raises(Conflict) as err:
            n6.backend.plan(validate([TRUNK], [*BASELINE.vnets, third]))
        assert err.value.code == "interface_name_in_use"
        assert taken in err.value.message
    finally:
        sh("ip", "link", "del", taken)
        n6.lab.links.remove(taken)


def test_the_backend_serves_several_threads(n6: N6Lab) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                assert n6.backend.plan(BASELINE).empty
                assert make_vnet(1).key in n6.backend.counters()
                n6.backend.apply(BASELINE)
        except BaseException as err:  # collected and re-raised below
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
