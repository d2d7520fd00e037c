"""Which OVS datapath a trunk gets, and how OVS's answers are read (captured from 3.1)."""

from __future__ import annotations

import pytest

from tests.unit.n6.factories import trunk, vnet
from towerbox_core.errors import Conflict
from upf_bridge.backends.datapaths import Datapaths, interface_fault, parse_datapath_types
from upf_bridge.backends.ovsdb import parse_interfaces
from upf_bridge.backends.simulated import SimulatedBackend
from upf_bridge.model import N6Config, TrunkKind, validate
from upf_bridge.state import OvsBridge

# ovs-vsctl --format=json --columns=_uuid,name,type,mtu_request,mac,external_ids,error,ofport
#   --if-exists list Interface ...: a port whose device is missing, a netdev bridge's
#   local port, and the local port of a system bridge on a host without the module.
INTERFACES = (
    '{"data":['
    '[["uuid","8e1c"],"nosuchdev0","",["set",[]],["set",[]],["map",[]],'
    '"could not open network device nosuchdev0 (No such device)",-1],'
    '[["uuid","4b47"],"tbxq1","internal",["set",[]],["set",[]],["map",[]],["set",[]],65534],'
    '[["uuid","57cf"],"tbxprobe0","internal",["set",[]],["set",[]],["map",[]],'
    '["set",[]],["set",[]]]],'
    '"headings":["_uuid","name","type","mtu_request","mac","external_ids","error","ofport"]}\n'
)

KERNEL_MISSING = Datapaths(
    usable=("netdev",), unavailable={"system": "failed to open datapath of type system"}
)


def test_datapath_types_as_ovs_vsctl_prints_them() -> None:
    assert parse_datapath_types("[netdev, system]\n") == ("netdev", "system")
    assert parse_datapath_types("[system]") == ("system",)
    assert parse_datapath_types("[]\n") == ()


def test_interface_rows_say_why_ovs_could_not_set_one_up() -> None:
    rows = parse_interfaces(INTERFACES)
    assert interface_fault(rows["nosuchdev0"]) == (
        "could not open network device nosuchdev0 (No such device)"
    )
    assert interface_fault(rows["tbxq1"]) is None
    assert interface_fault(rows["tbxprobe0"]) == "ovs-vswitchd gave it no OpenFlow port"
    assert interface_fault(None) == "it is not in OVSDB"
    assert parse_interfaces("") == {}


def test_auto_prefers_the_kernel_datapath_and_falls_back_to_userspace() -> None:
    assert Datapaths(usable=("system", "netdev")).resolve("auto") == "system"
    assert KERNEL_MISSING.resolve("auto") == "netdev"
    assert KERNEL_MISSING.resolve("netdev") == "netdev"
    assert KERNEL_MISSING.line() == (
        "datapath netdev (userspace); kernel (system) unavailable: "
        "failed to open datapath of type system"
    )


def test_a_datapath_the_host_cannot_run_is_refused_with_its_reason() -> None:
    with pytest.raises(Conflict) as refused:
        KERNEL_MISSING.resolve("system")
    assert refused.value.code == "datapath_unavailable"
    assert "failed to open datapath of type system" in refused.value.message
    assert refused.value.extra["usable"] == ["netdev"]
    nothing = Datapaths(usable=(), unavailable={"netdev": "no tun", "system": "no module"})
    with pytest.raises(Conflict) as none:
        nothing.resolve("auto")
    assert none.value.code == "datapath_unavailable"
    assert "netdev: no tun" in none.value.message
    assert nothing.line().startswith("no usable datapath")


def _config(datapath: str) -> N6Config:
    return validate([trunk(datapath_type=datapath)], [vnet()])


def test_the_simulated_backend_refuses_what_the_host_refuses_before_any_change() -> None:
    backend = SimulatedBackend(kind=TrunkKind.OVS, datapaths=KERNEL_MISSING)
    for call in (backend.check, backend.plan, backend.apply):
        with pytest.raises(Conflict) as refused:
            call(_config("system"))
        assert refused.value.code == "datapath_unavailable"
    assert backend.plan(N6Config()).empty  # nothing was made
    made = backend.apply(_config("auto"))
    bridges = [c.resource for c in made.create if isinstance(c.resource, OvsBridge)]
    assert [b.datapath_type for b in bridges] == ["netdev"]
