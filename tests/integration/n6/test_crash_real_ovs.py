"""Crash runs of an N6 apply on the real Open vSwitch: the daemon SIGKILLed between
the apply's steps (a bridge port made, its VLAN not yet set, its address not yet
given...), restarted, and the apply retried. What the host's switch holds must then be
exactly the declaration: every VNet's port with its VLAN, nothing half-made or extra.
On the simulated backend the switch's state dies with the daemon; here it outlives it,
as on a node."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import crash_ops
from tests.support.appliance import built
from tests.support.crash import Harness, Node, crash_seed
from tests.support.n6host import OCTET, OWNER, TAG
from towerbox_core import subp
from upf_bridge.model import N6Config, TrunkKind

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.slow]

BRIDGE = f"n6c{TAG}"
REAL_N6 = {"TOWERBOX_N6_BACKEND": "real", "TOWERBOX_N6_OWNER": OWNER}
VNETS = [
    {
        "tenant": tenant,
        "name": name,
        "trunk": BRIDGE,
        "vlan": vlan,
        "subnet": f"10.{OCTET}.{vlan - 160}.0/24",
        "gateway": f"10.{OCTET}.{vlan - 160}.1",
        "ue_pools": [f"10.{OCTET}.{vlan - 150}.0/24"],
    }
    for tenant, name, vlan in (("acme", "llm", 231), ("beta", "cams", 232))
]


def _switch_holds_the_declaration(node: Node) -> list[str]:
    """The bridge's ports carry exactly the VNets' VLANs, one port each."""
    del node  # what counts is the host's switch, read past the daemon
    ports = subp.run(["ovs-vsctl", "list-ports", BRIDGE], timeout=30, check=False).stdout.split()
    tags = []
    for port in ports:
        tag = subp.run(["ovs-vsctl", "get", "Port", port, "tag"], timeout=30).stdout.strip()
        tags.append(json.loads(tag) if tag != "[]" else None)
    want = sorted(v["vlan"] for v in VNETS)
    if sorted(t for t in tags if t is not None) != want or len(tags) != len(want):
        return [f"bridge {BRIDGE} has ports {ports} tagged {tags}; the declaration says {want}"]
    return []


N6_APPLY_REAL = crash_ops.n6_apply_operation(
    BRIDGE,
    {"kind": "ovs", "datapath_type": "netdev"},
    VNETS,
    name="n6_apply_real_ovs",
    host_check=_switch_holds_the_declaration,
)


@pytest.fixture
def harness(ovs: None, tmp_path: Path) -> Iterator[Harness]:
    yield Harness(tmp_path / "runs", REAL_N6)
    # Whatever a run left: an empty declaration removes all that this run's owner holds.
    node = built(tmp_path / "cleanup", **REAL_N6)
    try:
        node.n6.backend(TrunkKind.OVS).apply(N6Config())
    finally:
        subp.run(["ovs-vsctl", "--if-exists", "del-br", BRIDGE], timeout=30, check=False)
        node.close()


# Every step the killed daemon takes here, its start's and the request's together (a
# 9th is never reached; the test above fails on a point that is not).
STEPS = 8


@pytest.mark.parametrize(
    "point", [*(f"n6.apply.after_step:{n}" for n in range(1, STEPS + 1)), None]
)
def test_a_killed_n6_apply_on_real_ovs_leaves_the_switch_as_declared(
    harness: Harness, point: str | None
) -> None:
    result = harness.run_at(N6_APPLY_REAL, point, crash_seed())
    assert result.converged, result.line()
    assert "never reached" not in result.outcome, result.line()
