from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest

from towerbox_core.errors import InvalidInput
from upf_bridge.model import TrunkKind
from upf_bridge.parse import parse_config


def _doc(**vnet: Any) -> dict[str, Any]:
    base = {
        "tenant": "acme",
        "name": "a",
        "trunk": "n6",
        "vlan": 100,
        "subnet": "10.1.1.0/24",
        "gateway": "10.1.1.1",
        "ue_pools": ["10.45.1.0/24"],
        "dnns": ["internet"],
    }
    base.update(vnet)
    return {
        "trunks": [{"name": "n6", "kind": "ovs", "ports": ["eth1"], "datapath_type": "netdev"}],
        "vnets": [base],
    }


def test_a_document_becomes_typed_records() -> None:
    config = parse_config(_doc(upf_address="10.1.1.2", mtu=9000, app_ids=["llm"]))
    (trunk,) = config.trunks
    (vnet,) = config.vnets
    assert trunk.kind == TrunkKind.OVS
    assert trunk.datapath_type == "netdev"
    assert vnet.subnet == IPv4Network("10.1.1.0/24")
    assert vnet.upf_address == IPv4Address("10.1.1.2")
    assert vnet.ue_pools == (IPv4Network("10.45.1.0/24"),)
    assert vnet.mtu == 9000


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"vlan": "abc"}, "invalid_vlan"),
        ({"vlan": 4095}, "invalid_vlan"),
        ({"vlan": None}, "invalid_vlan"),
        ({"subnet": "10.1.1.1/24"}, "invalid_subnet"),
        ({"subnet": 42}, "invalid_type"),
        ({"gateway": "not-an-ip"}, "invalid_address"),
        ({"ue_pools": "10.45.0.0/16"}, "invalid_type"),
        ({"ue_pools": ["10.45.0.0/33"]}, "invalid_ue_pool"),
        ({"mtu": "1500"}, "invalid_mtu"),
        ({"next_hop": 5}, "invalid_type"),
        ({"colour": "blue"}, "unknown_field"),
        ({"gateway": "10.2.0.1"}, "gateway_outside_subnet"),
    ],
)
def test_bad_fields_get_stable_codes(overrides: dict[str, Any], code: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_config(_doc(**overrides))
    assert err.value.code == code


def test_the_document_shape_is_checked() -> None:
    with pytest.raises(InvalidInput):
        parse_config([])
    with pytest.raises(InvalidInput):
        parse_config({"vnets": {}})
    with pytest.raises(InvalidInput) as err:
        parse_config({"trunks": [{"name": "n6", "kind": "vxlan"}]})
    assert err.value.code == "invalid_trunk_kind"
