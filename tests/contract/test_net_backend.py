"""One contract for the N6 NetBackend, written once against every backend:

- ``simulated-ovs``, ``simulated-linux``: always;
- ``ovs``: real Open vSwitch, bridges on the userspace (``netdev``) datapath, where
  OVS runs (root);
- ``linux``: the real Linux backend with the kernel's 802.1Q sub-interfaces, where the
  kernel has 8021q; elsewhere these tests skip naming the missing capability, and
  ``test_without_8021q_the_linux_backend_refuses_clearly_and_nothing_stays`` proves the
  backend refuses there with its clear error;
- ``linux-veth-vlans``: the same real Linux backend (bridges, addresses, routes and
  rules through netlink), its VLAN step made by a veth stand-in so that it runs on a
  kernel without 8021q.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest

from tests.integration.n6.lab import Lab, sh
from tests.support.n6host import (
    CONTRACT_LINUX_RANGES,
    CONTRACT_RANGES,
    NETNS_PREFIX,
    OCTET,
    OWNER,
    PID,
    RUN_KEY,
    TAG,
)
from towerbox_core.errors import BackendUnavailable, TowerboxError
from upf_bridge import naming
from upf_bridge.backends import netlink
from upf_bridge.backends.base import NetBackend
from upf_bridge.backends.linux import LinuxBackend
from upf_bridge.backends.netlink import LinkInfo
from upf_bridge.backends.ovs import OvsBackend
from upf_bridge.backends.reconcile import Reconciler, Step
from upf_bridge.backends.simulated import SimulatedBackend
from upf_bridge.model import N6Config, Trunk, TrunkKind, VNet, validate
from upf_bridge.naming import OwnedRanges

# The OVS trunk bridge, or the Linux trunk NIC (a veth the fixture makes).
BRIDGE = f"nc{TAG}"
CONTRACT_OWNER = f"{OWNER}-c"
NO_8021Q = (
    "kernel lacks 802.1Q (8021q): the Linux backend cannot make <nic>.<vid> sub-interfaces "
    "here (test_without_8021q_the_linux_backend_refuses_clearly_and_nothing_stays covers "
    "its refusal; linux-veth-vlans runs the rest of the backend)"
)


def _vnet(i: int) -> VNet:
    return VNet(
        tenant=f"tenant{i}",
        name="svc",
        trunk=BRIDGE,
        vlan=300 + i,
        subnet=IPv4Network(f"10.{OCTET}.{40 + i}.0/24"),
        gateway=IPv4Address(f"10.{OCTET}.{40 + i}.1"),
        ue_pools=(IPv4Network(f"10.{OCTET}.{60 + i}.0/24"),),
    )


def _config(kind: TrunkKind, *indexes: int) -> N6Config:
    trunk = Trunk(BRIDGE, kind, datapath_type="netdev")
    return validate([trunk], [_vnet(i) for i in indexes])


class VethVlans:
    """Makes a veth where the kernel would make ``<nic>.<vid>``; its peer stays down on
    the host and goes with it."""

    def __init__(self) -> None:
        self.made: dict[str, tuple[str, int]] = {}

    def create(self, nl: netlink.Netlink, name: str, parent: str, vid: int) -> None:
        netlink.add_link(nl, name, "veth", peer={"ifname": f"cv{vid}{TAG}"})
        self.made[name] = (parent, vid)

    def recognise(self, link: LinkInfo, links: dict[str, LinkInfo]) -> tuple[str, int] | None:
        return self.made.get(link.name) if link.link_kind == "veth" else None


@functools.cache
def _kernel_has_8021q() -> bool:
    """Asked once, on the trunk NIC the Linux fixtures make."""
    with netlink.session() as nl:
        try:
            netlink.add_vlan(nl, f"vq{TAG}", BRIDGE, 7)
        except BackendUnavailable:
            return False
        netlink.del_link(nl, f"vq{TAG}")
    return True


@pytest.fixture
def linux_trunk(n6_host: None, tmp_path: Path) -> Iterator[str]:
    """The Linux trunk NIC: a veth whose peer stands for the wire."""
    lab = Lab(f"{NETNS_PREFIX}-c", tmp_path, f"{RUN_KEY}={PID}")
    try:
        lab.veth(BRIDGE, f"ncp{TAG}")
        yield BRIDGE
    finally:
        lab.close()


def _backends() -> list[Any]:
    real = [pytest.mark.root]
    return [
        pytest.param("simulated-ovs"),
        pytest.param("simulated-linux"),
        pytest.param("ovs", marks=[*real, pytest.mark.ovs]),
        pytest.param("linux", marks=real),
        pytest.param("linux-veth-vlans", marks=real),
    ]


@pytest.fixture(params=_backends())
def backend(request: pytest.FixtureRequest) -> Iterator[Reconciler[object]]:
    chosen: Reconciler[Any]
    if request.param == "ovs":
        request.getfixturevalue("ovs")
        chosen = OvsBackend(owner=CONTRACT_OWNER, ranges=CONTRACT_RANGES)
    elif request.param.startswith("linux"):
        request.getfixturevalue("linux_trunk")
        if request.param == "linux":
            if not _kernel_has_8021q():
                pytest.skip(NO_8021Q)
            chosen = LinuxBackend(owner=CONTRACT_OWNER, ranges=CONTRACT_LINUX_RANGES)
        else:
            chosen = LinuxBackend(
                owner=CONTRACT_OWNER, ranges=CONTRACT_LINUX_RANGES, vlans=VethVlans()
            )
    else:
        kind = TrunkKind.OVS if request.param == "simulated-ovs" else TrunkKind.LINUX
        chosen = SimulatedBackend(kind=kind, owner=OWNER)
    try:
        yield chosen
    finally:
        chosen.apply(N6Config())


# -- what the node holds, read back from the node itself ----------------------------


# Columns ovs-vswitchd writes by itself, a moment after a bridge or port appears or
# whenever its datapath reports: not the backend's doing, so left out of the comparison.
_VSWITCHD_COLUMNS = {
    "Bridge": {"datapath_id", "datapath_version", "status", "rstp_status"},
    "Port": {"status", "statistics", "rstp_status", "rstp_statistics", "bond_active_slave"},
}
_INTERFACE_SETTINGS = ["_uuid", "name", "type", "mtu_request", "external_ids", "options"]


def _ovs_rows() -> list[list[dict[str, Any]]]:
    """Every Bridge and Port row with every column the backend could write, and the
    Interface rows' settings (their statistics and state change on their own)."""
    query = [
        "Open_vSwitch",
        {"op": "select", "table": "Bridge", "where": []},
        {"op": "select", "table": "Port", "where": []},
        {"op": "select", "table": "Interface", "where": [], "columns": _INTERFACE_SETTINGS},
    ]
    results = json.loads(sh("ovsdb-client", "transact", json.dumps(query)))
    tables = ("Bridge", "Port", "Interface")
    skip = {table: {"_version", *_VSWITCHD_COLUMNS.get(table, ())} for table in tables}
    return [
        sorted(
            ({k: v for k, v in row.items() if k not in skip[table]} for row in result["rows"]),
            key=lambda row: json.dumps(row, sort_keys=True),
        )
        for table, result in zip(tables, results, strict=True)
    ]


def _kernel_policy(ranges: OwnedRanges) -> tuple[list[str], list[str]]:
    with netlink.session() as nl:
        links = netlink.read_links(nl)
        rules = sorted(r.key for r in netlink.read_rules(nl, ranges))
        routes = sorted(r.key for r in netlink.read_routes(nl, links, ranges))
    return rules, routes


def _owned_links(owner: str) -> dict[str, LinkInfo]:
    with netlink.session() as nl:
        links = netlink.read_links(nl)
    return {
        name: link
        for name, link in links.items()
        if (marker := naming.parse_link_alias(link.alias)) is not None and marker[0] == owner
    }


def _node(backend: Reconciler[Any]) -> object:
    """What the node holds: every OVS row and every link, and the policy in this run's
    ranges; equal before and after means the node did not change at all (so a backend
    that touched anyone else's bridge or link fails too)."""
    if isinstance(backend, SimulatedBackend):
        return dict(backend._objects)
    policy = _kernel_policy(backend.ranges)
    if isinstance(backend, OvsBackend):
        return _ovs_rows(), policy
    with netlink.session() as nl:
        links = netlink.read_links(nl)
    return {n: (li.index, li.mtu, li.up) for n, li in links.items()}, policy


# -- the contract ---------------------------------------------------------------------


def test_apply_from_nothing_creates_then_reapply_is_empty(backend: NetBackend) -> None:
    config = _config(backend.kind, 1, 2)
    made = backend.apply(config)
    assert made.create
    assert not made.update
    assert not made.delete
    assert backend.plan(config).empty
    assert backend.apply(config).empty


def test_reapplying_is_a_no_op_that_changes_nothing(backend: Reconciler[Any]) -> None:
    config = _config(backend.kind, 1, 2)
    backend.apply(config)
    before = _node(backend)
    assert backend.plan(config).empty
    assert backend.apply(config).empty
    assert backend.apply(config, dry_run=True).empty
    assert _node(backend) == before


def test_dry_run_changes_nothing(backend: NetBackend) -> None:
    config = _config(backend.kind, 1)
    planned = backend.plan(config)
    assert backend.apply(config, dry_run=True) == planned
    assert backend.plan(config) == planned


def test_dry_run_returns_the_diff_and_changes_nothing(backend: Reconciler[Any]) -> None:
    backend.apply(_config(backend.kind, 1, 2))
    before = _node(backend)
    diff = backend.apply(_config(backend.kind, 1, 2, 3), dry_run=True)
    made = "+ ovs port tbxp303-" if backend.kind == TrunkKind.OVS else "+ bridge tbxb303-"
    assert any(line.startswith(made) for line in diff.lines())
    assert _node(backend) == before


def test_removing_a_vnet_only_deletes_and_its_counters_go(backend: NetBackend) -> None:
    backend.apply(_config(backend.kind, 1, 2))
    assert set(backend.counters()) == {"tenant1/svc", "tenant2/svc"}
    smaller = _config(backend.kind, 1)
    removed = backend.apply(smaller)
    assert removed.delete
    assert not removed.create
    assert backend.plan(smaller).empty
    assert set(backend.counters()) == {"tenant1/svc"}


def test_a_failing_step_rolls_everything_back(
    backend: Reconciler[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _config(backend.kind, 1)
    backend.apply(before)
    after = _config(backend.kind, 2, 3)
    steps = len(backend._steps(backend.plan(after)))
    real = backend._perform
    done: list[Step] = []

    def fail_halfway(step: Step) -> None:
        if len(done) == steps // 2:
            done.append(step)
            raise OSError("the kernel said no")
        done.append(step)
        real(step)

    monkeypatch.setattr(backend, "_perform", fail_halfway)
    with pytest.raises(TowerboxError) as err:
        backend.apply(after)
    assert err.value.code == "apply_failed"
    monkeypatch.undo()
    assert backend.plan(before).empty


def test_attachment_names_the_bridge_a_vm_joins(backend: NetBackend) -> None:
    config = _config(backend.kind, 1)
    backend.apply(config)
    where = backend.attachment(config.vnets[0])
    assert where.vnet == "tenant1/svc"
    if backend.kind == TrunkKind.OVS:
        assert (where.kind, where.bridge, where.vlan) == ("ovs", BRIDGE, 301)
    else:
        assert where.kind == "bridge"
        assert where.bridge.startswith("tbxb301-")


@pytest.mark.root
def test_without_8021q_the_linux_backend_refuses_clearly_and_nothing_stays(
    linux_trunk: str,
) -> None:
    if _kernel_has_8021q():
        pytest.skip("this kernel has 802.1Q: the kernel_lacks_8021q path cannot happen here")
    real = LinuxBackend(owner=CONTRACT_OWNER, ranges=CONTRACT_LINUX_RANGES)
    config = _config(TrunkKind.LINUX, 1, 2)
    before = real.plan(config)
    with pytest.raises(BackendUnavailable) as err:
        real.apply(config)
    assert err.value.code == "kernel_lacks_8021q"
    assert err.value.message.startswith("kernel lacks 802.1Q (8021q)")
    assert f"{linux_trunk}.301" in err.value.message
    assert real.plan(config) == before  # rolled back: everything is still to create
    assert _owned_links(CONTRACT_OWNER) == {}
    assert _kernel_policy(CONTRACT_LINUX_RANGES) == ([], [])
