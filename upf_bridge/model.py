"""Tenant VNets on the N6 trunk: typed records and the rules they obey. Pure.

A trunk is where the UPF's N6 traffic arrives tagged: an Open vSwitch bridge (kind
``ovs``) or a NIC (kind ``linux``). A VNet gives one tenant a VLAN on a trunk, a subnet
whose gateway address lives on the node, and the UE pools whose traffic it carries.
``validate`` checks a whole declaration at once because most rules (VLANs, pools,
derived names) are about how VNets relate to each other.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from towerbox_core.errors import Conflict, InvalidInput
from towerbox_core.names import check_ifname, check_name
from upf_bridge import naming

VLAN_MIN = 1
VLAN_MAX = 4094  # 0 means untagged and 4095 is reserved by 802.1Q
MTU_MIN = 576
MTU_MAX = 9216
# The gateway needs a host address, and so does at least one inference VM.
SUBNET_MAX_PREFIX = 30
# OVS trunk datapaths: the kernel's (system), the userspace one (netdev), or the
# best one the host proves it can run (auto; see backends.datapaths).
DATAPATH_AUTO = "auto"
DATAPATH_TYPES = (DATAPATH_AUTO, "system", "netdev")

# DNNs are APN-style labels (TS 23.003 9.1): letters, digits, '-' and dots.
_DNN_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,98}[A-Za-z0-9])?\Z")
_APP_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}\Z")


class TrunkKind(enum.StrEnum):
    OVS = "ovs"  # an Open vSwitch bridge; each VNet is a tagged internal port on it
    LINUX = "linux"  # a NIC; each VNet is a <nic>.<vid> sub-interface in a Linux bridge


@dataclass(frozen=True)
class Trunk:
    name: str  # the OVS bridge (kind ovs) or the NIC (kind linux)
    kind: TrunkKind
    # Kind ovs: the uplink and UPF ports on the bridge that carry every VNet's tag.
    ports: tuple[str, ...] = ()
    # Kind ovs: datapath of the bridge when Towerbox creates it.
    datapath_type: str = DATAPATH_AUTO


@dataclass(frozen=True)
class VNet:
    tenant: str
    name: str
    trunk: str
    vlan: int
    subnet: IPv4Network
    gateway: IPv4Address  # the node's address on the VNet: VMs route through it
    ue_pools: tuple[IPv4Network, ...] = ()
    dnns: tuple[str, ...] = ()
    mtu: int = 1500
    app_ids: tuple[str, ...] = ()
    # The UPF's own address on this VNet: replies to the UE pools are routed to it.
    upf_address: IPv4Address | None = None
    # The UPF's tun device on this node (Open5GS ``dev``) when the UPF runs here.
    upf_dev: str | None = None
    # A tenant router on the VNet for destinations outside its subnet.
    next_hop: IPv4Address | None = None

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.name}"


@dataclass(frozen=True)
class N6Config:
    """A validated declaration; build it with ``validate`` or ``parse_config``."""

    trunks: tuple[Trunk, ...] = ()
    vnets: tuple[VNet, ...] = ()

    def trunk(self, name: str) -> Trunk:
        for trunk in self.trunks:
            if trunk.name == name:
                return trunk
        raise KeyError(name)

    def vnets_on(self, trunk: str) -> tuple[VNet, ...]:
        return tuple(v for v in self.vnets if v.trunk == trunk)

    def of_kind(self, kind: TrunkKind) -> N6Config:
        """The part of the declaration a backend for ``kind`` owns."""
        trunks = tuple(t for t in self.trunks if t.kind == kind)
        names = {t.name for t in trunks}
        return N6Config(trunks, tuple(v for v in self.vnets if v.trunk in names))


def check_vlan(value: object, field: str = "vlan") -> int:
    """A VLAN id as an int; refuses 0, 4095, bools, floats and non-numbers."""
    vid: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        vid = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        vid = int(value)
    if vid is None or not VLAN_MIN <= vid <= VLAN_MAX:
        hint = " (0 is untagged, 4095 is reserved)" if vid in (0, 4095) else ""
        raise InvalidInput(
            f"VLAN id {value!r} is not valid{hint}: use a number from {VLAN_MIN} to {VLAN_MAX}",
            code="invalid_vlan",
            field=field,
        )
    return vid


def _check_owned_ifname(value: str, field: str) -> None:
    """An interface name the operator gives: fits the kernel and is not ours to derive."""
    check_ifname(value, field)
    if naming.is_reserved(value):
        raise InvalidInput(
            f"interface name {value!r} starts with {naming.PREFIX!r}, which Towerbox "
            "keeps for the interfaces it creates: rename the interface",
            code="invalid_interface_name",
            field=field,
        )


def _check_trunk(trunk: Trunk) -> None:
    _check_owned_ifname(trunk.name, "trunk.name")
    if trunk.kind not in tuple(TrunkKind):
        raise InvalidInput(
            f"trunk kind {trunk.kind!r} is not known: use 'ovs' or 'linux'",
            code="invalid_trunk_kind",
            field="trunk.kind",
        )
    if trunk.kind == TrunkKind.LINUX and trunk.ports:
        raise InvalidInput(
            f"trunk {trunk.name} is a NIC (kind linux) and has no ports: list ports only "
            "for an Open vSwitch trunk",
            code="invalid_trunk_ports",
            field="trunk.ports",
        )
    if trunk.datapath_type not in DATAPATH_TYPES:
        raise InvalidInput(
            f"datapath type {trunk.datapath_type!r} is not valid: use one of "
            f"{', '.join(DATAPATH_TYPES)}",
            code="invalid_datapath_type",
            field="trunk.datapath_type",
        )
    for port in trunk.ports:
        _check_owned_ifname(port, "trunk.ports")
        if port == trunk.name:
            raise InvalidInput(
                f"port {port} has the name of its bridge: give the uplink or UPF port",
                code="invalid_trunk_ports",
                field="trunk.ports",
            )


def _check_in_subnet(vnet: VNet, address: IPv4Address, field: str, code: str) -> None:
    subnet = vnet.subnet
    if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
        raise InvalidInput(
            f"{field} {address} of VNet {vnet.key} is not a host address of its subnet "
            f"{subnet}: pick an address from {subnet[1]} to {subnet[-2]}",
            code=code,
            field=field,
        )


def _check_vnet(vnet: VNet, trunks: dict[str, Trunk]) -> None:
    # Tenant and VNet names share the project's one grammar, so every tenant the
    # appliance accepts can own a VNet.
    check_name("tenant", vnet.tenant, field="tenant")
    check_name("VNet", vnet.name, field="name")
    if vnet.trunk not in trunks:
        known = ", ".join(sorted(trunks)) or "none"
        raise InvalidInput(
            f"VNet {vnet.key} names trunk {vnet.trunk!r}, which is not declared (trunks: {known})",
            code="unknown_trunk",
            field="trunk",
        )
    check_vlan(vnet.vlan)
    if not isinstance(vnet.subnet, IPv4Network) or vnet.subnet.prefixlen > SUBNET_MAX_PREFIX:
        raise InvalidInput(
            f"subnet {vnet.subnet} of VNet {vnet.key} is not an IPv4 network of /"
            f"{SUBNET_MAX_PREFIX} or larger",
            code="invalid_subnet",
            field="subnet",
        )
    _check_in_subnet(vnet, vnet.gateway, "gateway", "gateway_outside_subnet")
    for field, address in (("upf_address", vnet.upf_address), ("next_hop", vnet.next_hop)):
        if address is None:
            continue
        _check_in_subnet(vnet, address, field, "address_outside_subnet")
        if address == vnet.gateway:
            raise InvalidInput(
                f"{field} {address} of VNet {vnet.key} is the VNet's own gateway address",
                code="address_is_gateway",
                field=field,
            )
    if vnet.upf_dev is not None:
        check_ifname(vnet.upf_dev, "upf_dev")
    _check_labels(vnet)


def _check_labels(vnet: VNet) -> None:
    if not isinstance(vnet.mtu, int) or not MTU_MIN <= vnet.mtu <= MTU_MAX:
        raise InvalidInput(
            f"MTU {vnet.mtu!r} of VNet {vnet.key} is out of range {MTU_MIN}-{MTU_MAX}",
            code="invalid_mtu",
            field="mtu",
        )
    for dnn in vnet.dnns:
        if not isinstance(dnn, str) or not _DNN_RE.match(dnn):
            raise InvalidInput(
                f"DNN {dnn!r} of VNet {vnet.key} is not valid: use letters, digits, '-' "
                "and '.', up to 100 characters",
                code="invalid_dnn",
                field="dnns",
            )
    for app_id in vnet.app_ids:
        if not isinstance(app_id, str) or not _APP_ID_RE.match(app_id):
            raise InvalidInput(
                f"application id {app_id!r} of VNet {vnet.key} is not valid",
                code="invalid_app_id",
                field="app_ids",
            )
    for pool in vnet.ue_pools:
        if not isinstance(pool, IPv4Network):
            raise InvalidInput(
                f"UE pool {pool!r} of VNet {vnet.key} is not an IPv4 network",
                code="invalid_ue_pool",
                field="ue_pools",
            )


def _check_unique(items: Iterable[tuple[str, str]], code: str, message: str) -> None:
    """Refuse a key held twice; ``message`` names {key}, {first} and {second}."""
    seen: dict[str, str] = {}
    for key, owner in items:
        if key in seen:
            raise Conflict(
                message.format(key=key, first=seen[key], second=owner), code=code, value=key
            )
        seen[key] = owner


def _check_overlaps(vnets: tuple[VNet, ...]) -> None:
    subnets = [(v.subnet, v) for v in vnets]
    pools = [(p, v) for v in vnets for p in v.ue_pools]
    for i, (net, owner) in enumerate(subnets):
        for other, other_owner in subnets[i + 1 :]:
            if net.overlaps(other):
                raise Conflict(
                    f"subnet {net} of VNet {owner.key} overlaps subnet {other} of VNet "
                    f"{other_owner.key}: VNet subnets share this node's routing and must "
                    "be disjoint",
                    code="subnet_overlap",
                )
    for i, (pool, owner) in enumerate(pools):
        for other, other_owner in pools[i + 1 :]:
            if pool.overlaps(other):
                raise Conflict(
                    f"UE pool {pool} of VNet {owner.key} overlaps UE pool {other} of VNet "
                    f"{other_owner.key}: a UE address must select exactly one VNet",
                    code="ue_pool_overlap",
                )
        for net, net_owner in subnets:
            if pool.overlaps(net):
                raise Conflict(
                    f"UE pool {pool} of VNet {owner.key} overlaps subnet {net} of VNet "
                    f"{net_owner.key}",
                    code="ue_pool_overlap",
                )


def validate(trunks: Iterable[Trunk], vnets: Iterable[VNet]) -> N6Config:
    """Check a whole declaration; return it as an ``N6Config`` or raise the first error."""
    trunk_list = tuple(trunks)
    vnet_list = tuple(vnets)
    for trunk in trunk_list:
        _check_trunk(trunk)
    _check_unique(
        ((t.name, "") for t in trunk_list),
        "duplicate_trunk",
        "trunk {key} is declared twice: declare each trunk once",
    )
    _check_unique(
        ((p, t.name) for t in trunk_list for p in t.ports),
        "duplicate_trunk_port",
        "port {key} is listed on trunk {first} and on trunk {second}: a port serves one trunk",
    )
    by_name = {t.name: t for t in trunk_list}
    for vnet in vnet_list:
        _check_vnet(vnet, by_name)
    _check_unique(
        ((v.key, "") for v in vnet_list),
        "duplicate_vnet",
        "VNet {key} is declared twice: a tenant's VNet names are unique",
    )
    _check_unique(
        ((f"{v.vlan} on trunk {v.trunk}", v.key) for v in vnet_list),
        "vlan_taken",
        "VLAN {key} is taken by VNet {first}, so VNet {second} cannot have it: "
        "a VLAN carries one tenant's VNet; pick a free VLAN id",
    )
    _check_overlaps(vnet_list)
    _check_unique(
        ((name, v.key) for v in vnet_list for name in naming.derived_names(v)),
        "derived_name_collision",
        "VNets {first} and {second} would both use interface name {key}: rename one",
    )
    _check_unique(
        ((hex(naming.trunk_block(t.name)), t.name) for t in trunk_list),
        "trunk_block_collision",
        "trunks {first} and {second} hash to the same routing table block: rename one",
    )
    return N6Config(trunk_list, vnet_list)
