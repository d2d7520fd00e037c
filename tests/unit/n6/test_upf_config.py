from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import yaml

from tests.unit.n6.factories import vnet
from upf_bridge.upf_config import render_upf_yaml, session_entries


def test_one_session_entry_per_pool_and_dnn_with_the_pool_gateway() -> None:
    vnets = [
        vnet(
            ue_pools=(IPv4Network("10.45.0.0/16"), IPv4Network("10.46.0.0/24")),
            dnns=("internet", "ims"),
        ),
        vnet("beta", "b", vlan=200, n=2, dnns=(), upf_dev="ogstun2"),
    ]
    entries = session_entries(vnets)
    assert [(str(e.subnet), e.dnn, e.dev) for e in entries] == [
        ("10.45.0.0/16", "internet", "ogstun"),
        ("10.45.0.0/16", "ims", "ogstun"),
        ("10.46.0.0/24", "internet", "ogstun"),
        ("10.46.0.0/24", "ims", "ogstun"),
        ("10.45.2.0/24", None, "ogstun2"),
    ]
    assert entries[0].gateway == IPv4Address("10.45.0.1")


def test_rendered_yaml_parses_to_open5gs_session_entries() -> None:
    text = render_upf_yaml(
        [vnet(dnns=("on",)), vnet("beta", "b", vlan=200, n=2, dnns=("1.5",))],
        pfcp_address=IPv4Address("127.0.0.7"),
        gtpu_address=IPv4Address("127.0.0.7"),
    )
    doc = yaml.safe_load(text)
    assert doc["upf"]["pfcp"]["server"] == [{"address": "127.0.0.7"}]
    assert doc["upf"]["gtpu"]["server"] == [{"address": "127.0.0.7"}]
    assert doc["upf"]["session"] == [
        {"subnet": "10.45.1.0/24", "gateway": "10.45.1.1", "dnn": "on", "dev": "ogstun"},
        {"subnet": "10.45.2.0/24", "gateway": "10.45.2.1", "dnn": "1.5", "dev": "ogstun"},
    ]
    assert "# VNet acme/a, VLAN 100" in text


def test_no_vnets_renders_an_empty_session_list() -> None:
    assert yaml.safe_load(render_upf_yaml([])) == {"upf": {"session": []}}
