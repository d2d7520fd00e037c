"""Small builders for N6 records in tests."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from upf_bridge.model import Trunk, TrunkKind, VNet


def trunk(name: str = "n6", kind: TrunkKind = TrunkKind.OVS, **kw: Any) -> Trunk:
    return Trunk(name=name, kind=kind, **kw)


def vnet(tenant: str = "acme", name: str = "a", vlan: int = 100, n: int = 1, **kw: Any) -> VNet:
    """A VNet on trunk "n6" with subnet 10.1.<n>.0/24 and UE pool 10.45.<n>.0/24."""
    base = VNet(
        tenant=tenant,
        name=name,
        trunk="n6",
        vlan=vlan,
        subnet=IPv4Network(f"10.1.{n}.0/24"),
        gateway=IPv4Address(f"10.1.{n}.1"),
        ue_pools=(IPv4Network(f"10.45.{n}.0/24"),),
        dnns=("internet",),
    )
    return replace(base, **kw)
