"""N6 routes: trunks and tenant VNets as declared, plan and apply, live state, sessions.

Trunk and VNet bodies are checked by ``upf_bridge.parse``, which names the field and
gives each refusal a stable code, so the routes take them as plain objects. What the
node answers keeps the keys the operator declared: a key left out of a declaration is
left out of the answer (``UNSET``), one declared as null stays null.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

# A trunk or VNet declaration as sent: checked field by field by the node.
DeclarationBody = dict[str, Any]


class TrunkDeclaration(msgspec.Struct, frozen=True):
    name: str
    kind: str  # "ovs" or "linux"
    ports: list[str] | UnsetType = UNSET
    datapath_type: str | UnsetType = UNSET  # OVS: "auto" (default), "system" or "netdev"


class VnetDeclaration(msgspec.Struct, frozen=True):
    tenant: str
    name: str
    trunk: str
    vlan: int
    subnet: str
    gateway: str
    ue_pools: list[str] | UnsetType = UNSET
    dnns: list[str] | UnsetType = UNSET
    mtu: int | UnsetType = UNSET
    app_ids: list[str] | UnsetType = UNSET
    upf_address: str | UnsetType | None = UNSET
    upf_dev: str | UnsetType | None = UNSET
    next_hop: str | UnsetType | None = UNSET


class N6Changes(msgspec.Struct, frozen=True):
    # Per trunk kind ("ovs", "linux"): the changes planned or made, one line each.
    changes: dict[str, list[str]]


class InterfaceCounters(msgspec.Struct, frozen=True):
    name: str
    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int


class VnetState(msgspec.Struct, frozen=True):
    vnet: str  # "tenant/name"
    vlan: int
    trunk: str
    applied: bool
    attached_vms: list[str]
    interfaces: list[InterfaceCounters]
    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int


class PfcpSession(msgspec.Struct, frozen=True):
    imsi: str
    msisdn: str
    local_seid: int
    ue_addresses: list[str]


class UpfSessionEntry(msgspec.Struct, frozen=True):
    subnet: str
    gateway: str
    dev: str
    dnn: str | None = None


class UpfSection(msgspec.Struct, frozen=True):
    session: list[UpfSessionEntry]


class UpfConfig(msgspec.Struct, frozen=True):
    """What GET /api/v1/n6/upf-config answers, as YAML: Open5GS ``upf.yaml``'s part."""

    upf: UpfSection


# Per VNet ("tenant/name"): the eUPF's sessions whose UE address is in its pools.
SessionsByVnet = dict[str, list[PfcpSession]]


class OvsDatapaths(msgspec.Struct, frozen=True):
    """The Open vSwitch datapaths this host proved it can run (probed at start)."""

    usable: list[str]  # "system" (kernel), "netdev" (userspace)
    auto: str | None  # what a trunk with datapath_type "auto" gets; None: nothing works
    unavailable: dict[str, str]  # datapath -> why it does not work here
    simulated: bool = False  # the simulated N6 backend's stand-in host, nothing probed


class N6ApplyResult(msgspec.Struct, frozen=True):
    """The last apply of the N6 declaration (by an operator) or repair (by reconcile)."""

    ok: bool
    trigger: str  # "apply" or "repair"
    at: str  # ISO 8601, UTC
    journal_seq: int  # its n6.applied / n6.apply_failed / n6.repaired / n6.repair_failed
    changes: dict[str, list[str]]  # per trunk kind; empty when it failed
    code: str | None = None  # the error's code when it failed
    message: str | None = None


class N6Status(msgspec.Struct, frozen=True):
    backends: list[str]  # one line per N6 backend, as /healthz says it
    ovs_datapaths: OvsDatapaths | None  # None: no Open vSwitch backend on this node
    last_apply: N6ApplyResult | None  # None: never applied
    # Declared trunks and VNets the node does not have as declared yet, in words
    # ("trunk br-n6 added", "VNet acme/llm changed"); empty: nothing waits for an apply.
    pending: list[str] = []
