from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.unit.n6.factories import vnet
from upf_bridge import naming
from upf_bridge.naming import OVS_RANGES, OwnedRanges


@given(
    vlan=st.integers(1, 4094),
    tenant=st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,62}", fullmatch=True),
    name=st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,62}", fullmatch=True),
    trunk=st.from_regex(r"[a-z][a-z0-9]{0,14}", fullmatch=True),
)
def test_derived_names_fit_the_kernel_and_carry_the_reserved_prefix(
    vlan: int, tenant: str, name: str, trunk: str
) -> None:
    v = vnet(tenant, name, vlan, trunk=trunk)
    for derived in naming.derived_names(v):
        assert len(derived.encode()) <= 15
    assert naming.is_reserved(naming.port_name(v))
    assert naming.is_reserved(naming.bridge_name(v))
    assert str(vlan) in naming.port_name(v)


def test_derived_names_are_deterministic_and_differ_per_vnet() -> None:
    a = vnet("acme", "a", 100)
    assert naming.port_name(a) == naming.port_name(vnet("acme", "a", 100))
    names = {
        naming.port_name(vnet(t, n, 100, trunk=tr))
        for t in ("acme", "beta")
        for n in ("a", "b")
        for tr in ("n6", "n7")
    }
    assert len(names) == 8
    assert naming.port_name(a) != naming.port_name(vnet("acme", "a", 101))


def test_vlan_name_is_trunk_dot_vid_when_it_fits() -> None:
    assert naming.vlan_name(vnet(vlan=100, trunk="eth1")) == "eth1.100"
    long = naming.vlan_name(vnet(vlan=4094, trunk="enp59s0f0np0"))
    assert long.startswith("tbxv4094-")
    assert len(long) <= 15


def test_tables_are_per_trunk_and_vlan_inside_the_owned_range() -> None:
    table = OVS_RANGES.table_for("n6", 100)
    assert OVS_RANGES.owns_table(table)
    assert table != OVS_RANGES.table_for("n6", 101)
    assert table != OVS_RANGES.table_for("n7", 100)
    assert not OVS_RANGES.owns_table(254)
    assert OVS_RANGES.owns_rule(OVS_RANGES.priority, table)
    assert OVS_RANGES.owns_rule(OVS_RANGES.iif_priority, table)
    assert not OVS_RANGES.owns_rule(32766, table)
    assert not OVS_RANGES.owns_rule(OVS_RANGES.priority, 254)


def test_the_two_backends_own_disjoint_ranges() -> None:
    other = naming.LINUX_RANGES
    assert not other.owns_table(OVS_RANGES.table_for("n6", 4094))
    assert not other.owns_rule(OVS_RANGES.priority, other.table_for("n6", 1))
    assert OwnedRanges(1, 2) == OwnedRanges(1, 2)


def test_link_alias_round_trips_and_rejects_foreign_aliases() -> None:
    alias = naming.link_alias("towerbox", "acme/a")
    assert naming.parse_link_alias(alias) == ("towerbox", "acme/a")
    for foreign in (None, "", "uplink to switch 3", "towerbox-owner= vnet=x", "owner=x vnet=y"):
        assert naming.parse_link_alias(foreign) is None
