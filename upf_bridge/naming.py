"""Names, ownership markers and routing ranges that Towerbox derives for its VNets. Pure.

Every interface Towerbox creates starts with ``tbx`` (operators may not use that
prefix for trunks, see ``model.validate``) and carries an ownership marker: OVSDB
``external_ids`` on ports and bridges, the interface alias on kernel links. Reconcile
only ever deletes what carries its own owner's marker, so two owners (a production
daemon and a test run) never touch each other's objects.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from upf_bridge.model import VNet

PREFIX = "tbx"
IFNAME_MAX = 15
DEFAULT_OWNER = "towerbox"

# OVSDB external_ids keys on the ports and bridges Towerbox creates.
OWNER_KEY = "towerbox-owner"
VNET_KEY = "towerbox-vnet"
TRUNK_KEY = "towerbox-trunk"

_HASH_LEN = 6  # hex digits: 24 bits, checked for collisions by model.validate
_BLOCK_BITS = 12  # per-trunk block of route tables, one table per VLAN id in it
TABLE_SPAN = 1 << (2 * _BLOCK_BITS)


def is_reserved(name: str) -> bool:
    return name.startswith(PREFIX)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _derived(role: str, vnet: VNet) -> str:
    # tbx + role letter + VLAN id + '-' + 6 hex digits: at most 15 bytes.
    suffix = _digest(vnet.trunk, vnet.tenant, vnet.name)[:_HASH_LEN]
    return f"{PREFIX}{role}{vnet.vlan}-{suffix}"


def port_name(vnet: VNet) -> str:
    """The OVS internal port (and its kernel interface) that holds the VNet's gateway."""
    return _derived("p", vnet)


def bridge_name(vnet: VNet) -> str:
    """The Linux bridge of a VNet on a NIC trunk."""
    return _derived("b", vnet)


def vlan_name(vnet: VNet) -> str:
    """The VLAN sub-interface: ``<trunk>.<vid>`` when that fits in 15 bytes."""
    plain = f"{vnet.trunk}.{vnet.vlan}"
    return plain if len(plain.encode()) <= IFNAME_MAX else _derived("v", vnet)


def gateway_mac(vnet: VNet) -> str:
    """A locally administered MAC for the VNet's gateway, stable across VLAN changes:
    a re-created gateway port keeps it, so the UPF's and VMs' ARP caches stay right."""
    digest = _digest("mac", vnet.trunk, vnet.tenant, vnet.name)
    return ":".join(["02", *(digest[i : i + 2] for i in range(0, 10, 2))])


def derived_names(vnet: VNet) -> tuple[str, ...]:
    return (port_name(vnet), bridge_name(vnet), vlan_name(vnet))


def trunk_block(trunk: str) -> int:
    return int(_digest(trunk)[:3], 16)


def link_alias(owner: str, vnet_key: str) -> str:
    """The alias that marks a kernel link as Towerbox's (``ip link`` shows it)."""
    return f"{OWNER_KEY}={owner} vnet={vnet_key}"


def parse_link_alias(alias: str | None) -> tuple[str, str] | None:
    """``(owner, vnet key)`` from an alias written by ``link_alias``, else None."""
    if not alias:
        return None
    head, _, tail = alias.partition(" ")
    key, _, owner = head.partition("=")
    label, _, vnet = tail.partition("=")
    if key != OWNER_KEY or label != "vnet" or not owner or not vnet:
        return None
    return owner, vnet


@dataclass(frozen=True)
class OwnedRanges:
    """The ip rule priorities and route tables a backend owns; nothing else is touched.

    Three priorities: ``priority`` for ``from <UE pool>`` rules, ``priority + 1`` for
    ``iif <VNet interface>`` rules and ``priority + 2`` for ``to <UE pool>`` rules.
    Tables: ``table_base + (trunk block << 12) + vid``, so each VNet has its own table
    and the id says which trunk and VLAN it serves.
    """

    priority: int
    table_base: int

    def table_for(self, trunk: str, vlan: int) -> int:
        return self.table_base + (trunk_block(trunk) << _BLOCK_BITS) + vlan

    @property
    def iif_priority(self) -> int:
        return self.priority + 1

    @property
    def to_priority(self) -> int:
        return self.priority + 2

    def owns_table(self, table: int) -> bool:
        return self.table_base <= table < self.table_base + TABLE_SPAN

    def owns_rule(self, priority: int, table: int) -> bool:
        owned = (self.priority, self.iif_priority, self.to_priority)
        return priority in owned and self.owns_table(table)


# Below main (32766) and clear of the priorities distributions and VPNs commonly use.
OVS_RANGES = OwnedRanges(priority=21000, table_base=0x54000000)
LINUX_RANGES = OwnedRanges(priority=21010, table_base=0x55000000)
