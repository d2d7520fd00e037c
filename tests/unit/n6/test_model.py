from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest

from tests.unit.n6.factories import trunk, vnet
from towerbox_core.errors import Conflict, InvalidInput
from upf_bridge.model import TrunkKind, check_vlan, validate


def test_a_sound_declaration_validates() -> None:
    config = validate(
        [trunk(ports=("eth1", "upf0"))],
        [vnet(), vnet("beta", "b", vlan=200, n=2, upf_address=IPv4Address("10.1.2.2"))],
    )
    assert [v.key for v in config.vnets_on("n6")] == ["acme/a", "beta/b"]
    assert config.trunk("n6").ports == ("eth1", "upf0")


@pytest.mark.parametrize("value", [0, 4095, -1, 5000, "abc", "1.5", 1.0, True, None, ""])
def test_vlan_ids_outside_1_to_4094_and_non_numbers_are_refused(value: object) -> None:
    with pytest.raises(InvalidInput) as err:
        check_vlan(value)
    assert err.value.code == "invalid_vlan"
    assert "1 to 4094" in err.value.message


@pytest.mark.parametrize("value", [0, 4095])
def test_reserved_vlan_ids_say_why(value: int) -> None:
    with pytest.raises(InvalidInput, match=r"untagged|reserved"):
        validate([trunk()], [vnet(vlan=value)])


def test_vlan_digit_strings_are_numbers() -> None:
    assert check_vlan("42") == 42


def test_a_vlan_belongs_to_one_tenant_per_trunk() -> None:
    with pytest.raises(Conflict) as err:
        validate([trunk()], [vnet("acme", "a", vlan=100), vnet("beta", "b", vlan=100, n=2)])
    assert err.value.code == "vlan_taken"
    assert "acme/a" in err.value.message
    assert "beta/b" in err.value.message


def test_the_same_vlan_on_two_trunks_is_fine() -> None:
    validate(
        [trunk("n6"), trunk("n6b")],
        [vnet("acme", "a", vlan=100), vnet("beta", "b", vlan=100, n=2, trunk="n6b")],
    )


def test_ue_pools_never_overlap_across_vnets() -> None:
    with pytest.raises(Conflict) as err:
        validate(
            [trunk()],
            [
                vnet(ue_pools=(IPv4Network("10.45.0.0/16"),)),
                vnet("beta", "b", vlan=200, n=2, ue_pools=(IPv4Network("10.45.7.0/24"),)),
            ],
        )
    assert err.value.code == "ue_pool_overlap"
    assert "10.45.0.0/16" in err.value.message
    assert "10.45.7.0/24" in err.value.message


def test_a_ue_pool_may_not_overlap_a_vnet_subnet() -> None:
    with pytest.raises(Conflict) as err:
        validate([trunk()], [vnet(ue_pools=(IPv4Network("10.1.1.128/25"),))])
    assert err.value.code == "ue_pool_overlap"


def test_vnet_subnets_are_disjoint() -> None:
    with pytest.raises(Conflict) as err:
        validate([trunk()], [vnet(), vnet("beta", "b", vlan=200, n=1, ue_pools=())])
    assert err.value.code == "subnet_overlap"


@pytest.mark.parametrize("gateway", ["10.1.2.1", "10.1.1.0", "10.1.1.255"])
def test_the_gateway_is_a_host_of_the_subnet(gateway: str) -> None:
    with pytest.raises(InvalidInput) as err:
        validate([trunk()], [vnet(gateway=IPv4Address(gateway))])
    assert err.value.code == "gateway_outside_subnet"
    assert "10.1.1.1 to 10.1.1.254" in err.value.message


def test_upf_address_and_next_hop_lie_in_the_subnet() -> None:
    with pytest.raises(InvalidInput) as err:
        validate([trunk()], [vnet(upf_address=IPv4Address("10.9.9.9"))])
    assert err.value.code == "address_outside_subnet"
    with pytest.raises(InvalidInput) as err:
        validate([trunk()], [vnet(next_hop=IPv4Address("10.1.1.1"))])
    assert err.value.code == "address_is_gateway"


def test_unknown_trunk_is_refused_and_names_the_known_ones() -> None:
    with pytest.raises(InvalidInput) as err:
        validate([trunk("n6")], [vnet(trunk="n7")])
    assert err.value.code == "unknown_trunk"
    assert "n6" in err.value.message


@pytest.mark.parametrize(
    "name",
    ["", "a-name-longer-than-15", "eth 0", "eth/0", "tbx-mine", "-eth"],
)
def test_trunk_names_fit_the_kernel_and_stay_out_of_the_reserved_prefix(name: str) -> None:
    with pytest.raises(InvalidInput) as err:
        validate([trunk(name)], [])
    assert err.value.code == "invalid_interface_name"


def test_trunk_port_names_are_checked_too() -> None:
    with pytest.raises(InvalidInput) as err:
        validate([trunk(ports=("ünicode-port",))], [])
    assert err.value.code == "invalid_interface_name"


def test_a_nic_trunk_has_no_ports() -> None:
    with pytest.raises(InvalidInput) as err:
        validate([trunk(kind=TrunkKind.LINUX, ports=("eth2",))], [])
    assert err.value.code == "invalid_trunk_ports"


def test_duplicates_are_conflicts() -> None:
    with pytest.raises(Conflict) as err:
        validate([trunk(), trunk()], [])
    assert err.value.code == "duplicate_trunk"
    with pytest.raises(Conflict) as err:
        validate([trunk()], [vnet(), vnet(vlan=200, n=2)])
    assert err.value.code == "duplicate_vnet"
    with pytest.raises(Conflict) as err:
        validate([trunk("n6", ports=("p",)), trunk("n7", ports=("p",))], [])
    assert err.value.code == "duplicate_trunk_port"


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("tenant", "Acme Corp", "invalid_name"),
        ("name", "", "invalid_name"),
        ("name", "llm\n", "invalid_name"),  # `$` would match before the newline
        ("tenant", "acme\n", "invalid_name"),
        ("mtu", 100, "invalid_mtu"),
        ("mtu", 10000, "invalid_mtu"),
        ("dnns", ("bad dnn",), "invalid_dnn"),
        ("app_ids", ("x y",), "invalid_app_id"),
        ("subnet", IPv4Network("10.1.1.0/31"), "invalid_subnet"),
        ("upf_dev", "not/a/dev", "invalid_interface_name"),
    ],
)
def test_field_rules(field: str, value: object, code: str) -> None:
    changes: dict[str, Any] = {field: value}
    with pytest.raises(InvalidInput) as err:
        validate([trunk()], [replace(vnet(), **changes)])
    assert err.value.code == code


def test_a_trunk_name_ending_in_a_newline_is_refused() -> None:
    with pytest.raises(InvalidInput) as err:
        validate([trunk("brx\n")], [])
    assert err.value.code == "invalid_interface_name"


def test_a_tenant_named_with_capitals_can_own_a_vnet() -> None:
    # One name grammar: a tenant the appliance accepts can get a VNet.
    config = validate([trunk()], [replace(vnet(), tenant="Acme")])
    assert config.vnets[0].tenant == "Acme"


def test_of_kind_keeps_only_that_kinds_trunks_and_vnets() -> None:
    config = validate(
        [trunk("n6"), trunk("eth1", TrunkKind.LINUX)],
        [vnet(), vnet("beta", "b", vlan=200, n=2, trunk="eth1")],
    )
    linux = config.of_kind(TrunkKind.LINUX)
    assert [t.name for t in linux.trunks] == ["eth1"]
    assert [v.key for v in linux.vnets] == ["beta/b"]
