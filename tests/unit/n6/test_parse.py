from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest

from towerbox_core.errors import InvalidInput
from upf_bridge.model import TrunkKind
from upf_bridge.parse import parse_config, parse_trunk, parse_vnet


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


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"mtu": "1500"}, "mtu", "vnets[0].mtu must be an integer, not a string"),
        ({"mtu": True}, "mtu", "vnets[0].mtu must be an integer, not a boolean"),
        ({"vlan": 1.0}, "vlan", "VLAN id 1.0 is not valid: use a number from 1 to 4094"),
        ({"vlan": [100]}, "vlan", "VLAN id [100] is not valid"),
        ({"tenant": None}, "tenant", "vnets[0].tenant must be a string, not null"),
        ({"ue_pools": "10.45.0.0/16"}, "ue_pools", "vnets[0].ue_pools must be a list, not a"),
        ({"dnns": ["internet", 5]}, "dnns", "vnets[0].dnns[1] must be a string, not an integer"),
        ({"next_hop": 5}, "next_hop", "vnets[0].next_hop must be a string, not an integer"),
        ({"colour": "blue", "arity": 2}, "vnets[0]", "vnets[0] has unknown fields: arity, colour"),
        ({7: "seven"}, "vnets[0]", "vnets[0] has unknown fields: 7"),
    ],
)
def test_refusals_name_the_field_and_what_was_wrong(
    overrides: dict[Any, Any], field: str, words: str
) -> None:
    doc = _doc()
    doc["vnets"][0].update(overrides)
    with pytest.raises(InvalidInput) as err:
        parse_config(doc)
    assert err.value.extra["field"] == field
    assert words in err.value.message


def test_a_missing_field_is_named_with_the_callers_place() -> None:
    body = _doc()["vnets"][0]
    del body["gateway"]
    with pytest.raises(InvalidInput) as err:
        parse_vnet(body, "vnet")
    assert (err.value.code, err.value.extra["field"]) == ("invalid_type", "gateway")
    assert err.value.message == "vnet.gateway is required"
    del body["vlan"]
    body["gateway"] = "10.1.1.1"
    with pytest.raises(InvalidInput) as err:
        parse_vnet(body)
    assert err.value.code == "invalid_vlan"


def test_document_level_refusals() -> None:
    with pytest.raises(InvalidInput) as err:
        parse_config([])
    assert (err.value.extra["field"], err.value.message) == (
        "document",
        "document must be an object, not a list",
    )
    with pytest.raises(InvalidInput) as err:
        parse_config({"vnets": [], "extra": 1})
    assert err.value.message == "document has unknown fields: extra"
    with pytest.raises(InvalidInput) as err:
        parse_config({"trunks": None})
    assert (err.value.extra["field"], err.value.message) == (
        "trunks",
        "trunks must be a list, not null",
    )
    with pytest.raises(InvalidInput) as err:
        parse_trunk({"name": "n6", "kind": "ovs", "ports": ["eth1", None]}, "trunk")
    assert (err.value.extra["field"], err.value.message) == (
        "ports",
        "trunk.ports[1] must be a string, not null",
    )
