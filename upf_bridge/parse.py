"""Untrusted N6 declarations (API bodies, registry documents) into typed records.

Parsed once, here: the document's shape and types are checked field by field, then
``model.validate`` checks what the values mean together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from ipaddress import AddressValueError, IPv4Address, IPv4Network, NetmaskValueError
from typing import Any

from towerbox_core.errors import InvalidInput
from upf_bridge.model import N6Config, Trunk, TrunkKind, VNet, check_vlan, validate

_TRUNK_FIELDS = {"name", "kind", "ports", "datapath_type"}
_VNET_FIELDS = {
    "tenant",
    "name",
    "trunk",
    "vlan",
    "subnet",
    "gateway",
    "ue_pools",
    "dnns",
    "mtu",
    "app_ids",
    "upf_address",
    "upf_dev",
    "next_hop",
}


def _object(value: object, field: str, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{field} must be an object", code="invalid_type", field=field)
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise InvalidInput(
            f"{field} has unknown fields: {', '.join(map(str, unknown))}",
            code="unknown_field",
            field=field,
        )
    return value


def _str(doc: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str):
        raise InvalidInput(f"{where}.{key} must be a string", code="invalid_type", field=key)
    return value


def _strings(doc: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = doc.get(key, [])
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidInput(f"{where}.{key} must be a list", code="invalid_type", field=key)
    if not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{where}.{key} must hold strings", code="invalid_type", field=key)
    return tuple(value)


def _network(text: str, field: str, code: str) -> IPv4Network:
    try:
        return IPv4Network(text, strict=True)
    except (AddressValueError, NetmaskValueError, ValueError) as err:
        raise InvalidInput(
            f"{field} {text!r} is not an IPv4 network like 10.45.0.0/16 ({err})",
            code=code,
            field=field,
        ) from err


def _address(text: str, field: str) -> IPv4Address:
    try:
        return IPv4Address(text)
    except (AddressValueError, ValueError) as err:
        raise InvalidInput(
            f"{field} {text!r} is not an IPv4 address", code="invalid_address", field=field
        ) from err


def parse_trunk(value: object, where: str = "trunk") -> Trunk:
    doc = _object(value, where, _TRUNK_FIELDS)
    kind = _str(doc, "kind", where)
    if kind not in tuple(TrunkKind):
        raise InvalidInput(
            f"{where}.kind {kind!r} is not known: use 'ovs' or 'linux'",
            code="invalid_trunk_kind",
            field="kind",
        )
    return Trunk(
        name=_str(doc, "name", where),
        kind=TrunkKind(kind),
        ports=_strings(doc, "ports", where),
        datapath_type=_str(doc, "datapath_type", where, "system"),
    )


def parse_vnet(value: object, where: str = "vnet") -> VNet:
    doc = _object(value, where, _VNET_FIELDS)
    mtu = doc.get("mtu", 1500)
    if not isinstance(mtu, int) or isinstance(mtu, bool):
        raise InvalidInput(f"{where}.mtu must be a number", code="invalid_mtu", field="mtu")
    optional = {k: doc.get(k) for k in ("upf_address", "upf_dev", "next_hop")}
    for key, text in optional.items():
        if text is not None and not isinstance(text, str):
            raise InvalidInput(f"{where}.{key} must be a string", code="invalid_type", field=key)
    upf_address, next_hop = optional["upf_address"], optional["next_hop"]
    return VNet(
        tenant=_str(doc, "tenant", where),
        name=_str(doc, "name", where),
        trunk=_str(doc, "trunk", where),
        vlan=check_vlan(doc.get("vlan"), "vlan"),
        subnet=_network(_str(doc, "subnet", where), "subnet", "invalid_subnet"),
        gateway=_address(_str(doc, "gateway", where), "gateway"),
        ue_pools=tuple(
            _network(p, "ue_pools", "invalid_ue_pool") for p in _strings(doc, "ue_pools", where)
        ),
        dnns=_strings(doc, "dnns", where),
        mtu=mtu,
        app_ids=_strings(doc, "app_ids", where),
        upf_address=_address(upf_address, "upf_address") if upf_address else None,
        upf_dev=optional["upf_dev"],
        next_hop=_address(next_hop, "next_hop") if next_hop else None,
    )


def parse_config(document: object) -> N6Config:
    """``{"trunks": [...], "vnets": [...]}`` into a validated ``N6Config``."""
    doc = _object(document, "document", {"trunks", "vnets"})
    trunks = doc.get("trunks", [])
    vnets = doc.get("vnets", [])
    for key, items in (("trunks", trunks), ("vnets", vnets)):
        if not isinstance(items, list):
            raise InvalidInput(f"{key} must be a list", code="invalid_type", field=key)
    return validate(
        [parse_trunk(t, f"trunks[{i}]") for i, t in enumerate(trunks)],
        [parse_vnet(v, f"vnets[{i}]") for i, v in enumerate(vnets)],
    )
