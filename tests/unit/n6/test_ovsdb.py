"""Parsing ovs-vsctl's JSON listing (captured from Open vSwitch 3.1) and building commands."""

from __future__ import annotations

import pytest

from towerbox_core.errors import BackendError
from upf_bridge.backends.ovsdb import Transaction, parse_view, quote

# ovs-vsctl --format=json -- --columns=... list Bridge -- ... list Port -- ... list Interface
LISTING = """\
{"data":[[["uuid","6ac3af0b-523a-4b17-a878-7ebeb477a656"],"smk0","netdev",["map",[]],["set",[["uuid","52ff0904-a1e7-4865-aa76-9e5970265913"],["uuid","7cbbc0d2-25fe-4ba6-a517-daaddfffb75c"],["uuid","82185ecb-43ef-4b4b-9605-2c02c76010d6"],["uuid","e91c7ca8-b5a5-4d72-9d8f-7f4de9c8e582"]]]]],"headings":["_uuid","name","datapath_type","external_ids","ports"]}
{"data":[[["uuid","e91c7ca8-b5a5-4d72-9d8f-7f4de9c8e582"],"up1",["set",[]],300,["map",[]],["uuid","918225b3-a376-4d38-93e0-be881e69970a"]],[["uuid","52ff0904-a1e7-4865-aa76-9e5970265913"],"up0",["set",[]],["set",[100,200]],["map",[]],["uuid","0f264f28-8153-43b5-b1b8-d71ec07b69fc"]],[["uuid","7cbbc0d2-25fe-4ba6-a517-daaddfffb75c"],"smk0",["set",[]],["set",[]],["map",[]],["uuid","7cb01580-0b88-4ddd-b5b4-d3cdbbcf69be"]],[["uuid","82185ecb-43ef-4b4b-9605-2c02c76010d6"],"tbxp100-abc",100,["set",[]],["map",[["towerbox-owner","towerbox"],["towerbox-vnet","acme/a"]]],["uuid","e99d5f01-e145-461f-81f0-fd2d762dd49a"]]],"headings":["_uuid","name","tag","trunks","external_ids","interfaces"]}
{"data":[[["uuid","7cb01580-0b88-4ddd-b5b4-d3cdbbcf69be"],"smk0","internal",["set",[]],["map",[]]],[["uuid","0f264f28-8153-43b5-b1b8-d71ec07b69fc"],"up0","internal",["set",[]],["map",[]]],[["uuid","e99d5f01-e145-461f-81f0-fd2d762dd49a"],"tbxp100-abc","internal",1400,["map",[]]],[["uuid","918225b3-a376-4d38-93e0-be881e69970a"],"up1","internal",["set",[]],["map",[]]]],"headings":["_uuid","name","type","mtu_request","external_ids"]}
"""


def test_listing_parses_sets_maps_and_single_values() -> None:
    view = parse_view(LISTING)
    assert view.bridges["smk0"].datapath_type == "netdev"
    assert len(view.bridges["smk0"].port_uuids) == 4
    assert view.ports["up0"].trunks == (100, 200)
    assert view.ports["up1"].trunks == (300,)  # a one-element set comes as a bare value
    assert view.ports["up0"].tag is None
    port = view.ports["tbxp100-abc"]
    assert port.tag == 100
    assert port.external_ids == {"towerbox-owner": "towerbox", "towerbox-vnet": "acme/a"}
    iface = view.interface_of(port)
    assert iface is not None
    assert (iface.type, iface.mtu_request) == ("internal", 1400)
    assert view.port_bridge == dict.fromkeys(("up0", "up1", "smk0", "tbxp100-abc"), "smk0")


def test_a_truncated_listing_is_an_error() -> None:
    with pytest.raises(BackendError):
        parse_view(LISTING.splitlines()[0])
    with pytest.raises(BackendError):
        parse_view("{}\n{}\n{}\n")


def test_transaction_joins_commands_and_quotes_values() -> None:
    txn = Transaction()
    assert not txn
    txn.add("add-port", "n6", "p1")
    txn.add("set", "Port", "p1", f"external_ids:towerbox-vnet={quote('acme/a')}")
    assert txn.argv() == [
        "--",
        "add-port",
        "n6",
        "p1",
        "--",
        "set",
        "Port",
        "p1",
        'external_ids:towerbox-vnet="acme/a"',
    ]
