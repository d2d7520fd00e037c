"""The diff, the policy it is built from, and the all-or-nothing step runner."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address

import pytest

from tests.unit.n6.factories import vnet
from towerbox_core.errors import BackendError
from upf_bridge import policy
from upf_bridge.backends.reconcile import Step, run_steps
from upf_bridge.naming import OVS_RANGES
from upf_bridge.state import (
    Action,
    Address,
    Link,
    OvsPort,
    Route,
    Rule,
    diff,
    state_of,
)


def test_policy_sends_each_pool_to_its_vnet_table_and_ends_it() -> None:
    v = vnet(upf_address=IPv4Address("10.1.1.2"))
    table = OVS_RANGES.table_for("n6", 100)
    found = policy.vnet_l3(v, "tbxp100-x", OVS_RANGES)
    assert Address("tbxp100-x", "10.1.1.1/24") in found
    assert Route(table, "10.1.1.0/24", dev="tbxp100-x") in found
    assert Route(table, "10.45.1.0/24", gateway="10.1.1.2", dev="tbxp100-x") in found
    assert Route(table, "0.0.0.0/0", route_type="unreachable") in found
    assert Rule(OVS_RANGES.priority, table, src="10.45.1.0/24") in found
    assert Rule(OVS_RANGES.iif_priority, table, iif="tbxp100-x") in found


def test_policy_uses_the_next_hop_or_the_upf_tun_when_given() -> None:
    v = vnet(next_hop=IPv4Address("10.1.1.254"), upf_dev="ogstun2")
    routes = policy.vnet_routes(v, "dev0", 7)
    assert Route(7, "0.0.0.0/0", gateway="10.1.1.254", dev="dev0") in routes
    assert Route(7, "10.45.1.0/24", dev="ogstun2") in routes
    assert all(r.route_type == "unicast" for r in routes)


def test_diff_orders_deletes_top_down_and_creates_bottom_up() -> None:
    old = policy.vnet_l3(vnet(), "p-old", OVS_RANGES)
    new = policy.vnet_l3(vnet(vlan=200), "p-new", OVS_RANGES)
    port_old = OvsPort("p-old", "n6", True, tag=100, internal=True, vnet="acme/a")
    port_new = OvsPort("p-new", "n6", True, tag=200, internal=True, vnet="acme/a")
    d = diff(state_of([port_old, *old]), state_of([port_new, *new]))
    delete_kinds = [c.resource.kind for c in d.delete]
    create_kinds = [c.resource.kind for c in d.create]
    assert delete_kinds == sorted(delete_kinds, key=["rule", "route", "address", "ovs-port"].index)
    assert create_kinds == sorted(create_kinds, key=["ovs-port", "address", "route", "rule"].index)
    assert d.changes[: len(d.delete)] == d.delete
    assert str(d).splitlines()[0].startswith("- rule ")


def test_equal_states_give_an_empty_diff() -> None:
    state = state_of(policy.vnet_l3(vnet(), "p", OVS_RANGES))
    d = diff(state, dict(state))
    assert d.empty
    assert str(d) == "no changes"


def test_in_place_fields_update_and_identity_fields_replace() -> None:
    port = OvsPort("p", "n6", True, tag=100, internal=True, mtu=1500, vnet="acme/a", up=True)
    d = diff(state_of([port]), state_of([replace(port, mtu=9000)]))
    assert [c.action for c in d.changes] == [Action.UPDATE]
    assert "MTU 9000" in str(d)
    assert "was:" in str(d)
    link = Link("eth1.100", "vlan", "acme/a", 1500, "eth1", 100, "tbxb100-a")
    d = diff(state_of([link]), state_of([replace(link, master="tbxb100-b", vnet="beta/b")]))
    assert [c.action for c in d.changes] == [Action.DELETE, Action.CREATE]


def test_run_steps_undoes_done_steps_in_reverse_when_one_fails() -> None:
    changes = list(diff({}, state_of(policy.vnet_l3(vnet(), "p", OVS_RANGES))).changes)
    steps = [Step("netlink", (c,)) for c in changes]
    log: list[str] = []

    def perform(step: Step) -> None:
        if step is steps[3]:
            raise BackendError("boom", code="netlink_error")
        log.append(str(step))

    with pytest.raises(BackendError, match="boom"):
        run_steps(steps, perform)
    done = [str(s) for s in steps[:3]]
    undone = [str(s.inverse()) for s in reversed(steps[:3])]
    assert log == done + undone
    assert all(line.startswith("- ") for line in undone)


def test_run_steps_wraps_library_errors_and_reports_a_failed_undo() -> None:
    step = Step("netlink", (diff({}, state_of([Address("p", "10.0.0.1/24")])).create[0],))
    calls = []

    def perform(s: Step) -> None:
        calls.append(s)
        if len(calls) >= 2:
            raise OSError("socket gone")

    with pytest.raises(BackendError) as err:
        run_steps([step, step], perform)
    assert err.value.code == "rollback_incomplete"
    assert "socket gone" in err.value.message

    def fails_once(s: Step) -> None:
        raise ValueError("library trouble")

    with pytest.raises(BackendError) as err:
        run_steps([step], fails_once)
    assert err.value.code == "apply_failed"
