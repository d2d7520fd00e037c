"""Untrusted N6 declarations (API bodies, registry documents) into typed records.

Parsed once, here: msgspec checks the document's shape and types against the structs
below, its refusals become ``InvalidInput`` with the codes and field names clients
match on, then ``model.validate`` checks what the values mean together.
"""

from __future__ import annotations

import re
from ipaddress import AddressValueError, IPv4Address, IPv4Network, NetmaskValueError
from typing import Any, TypeVar, get_args

import msgspec

from towerbox_core.errors import InvalidInput
from upf_bridge.model import DATAPATH_AUTO, N6Config, Trunk, TrunkKind, VNet, check_vlan, validate


class _TrunkDoc(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    kind: str  # checked against TrunkKind below, for a message that lists the kinds
    ports: tuple[str, ...] = ()
    datapath_type: str = DATAPATH_AUTO


class _VNetDoc(msgspec.Struct, forbid_unknown_fields=True):
    tenant: str
    name: str
    trunk: str
    subnet: str
    gateway: str
    # A number or a string of digits; check_vlan says which ids are valid and why.
    vlan: int | str | None = None
    ue_pools: tuple[str, ...] = ()
    dnns: tuple[str, ...] = ()
    mtu: int = 1500
    app_ids: tuple[str, ...] = ()
    upf_address: str | None = None
    upf_dev: str | None = None
    next_hop: str | None = None


class _Document(msgspec.Struct, forbid_unknown_fields=True):
    trunks: list[_TrunkDoc] = []
    vnets: list[_VNetDoc] = []


_T = TypeVar("_T", bound=msgspec.Struct)

# Fields whose wrong type has a code of its own rather than invalid_type.
_FIELD_CODES = {"mtu": "invalid_mtu"}
# msgspec's names for JSON types, as the operator reads them.
_TYPE_WORDS = {
    "str": "a string",
    "str | null": "a string",
    "int": "an integer",
    "array": "a list",
    "object": "an object",
    "null": "null",
    "bool": "a boolean",
    "float": "a decimal number",
}
# "Expected `int`, got `str` - at `$.vnets[0].mtu`" and its kin.
# A key that is no string reads "Expected `str` - at `key` in `$.vnets[0]`".
_ERROR = re.compile(
    r"(?P<what>.*?)(?: - at (?P<key>`key` in )?`\$(?P<path>(?:\.\w+|\[\d+\])*)`)?", re.DOTALL
)
_EXPECTED = re.compile(r"Expected `(?P<want>[^`]+)`(?:, got `(?P<got>[^`]+)`)?")
_FIELD_NAMED = re.compile(r"Object (?P<how>missing required|contains unknown) field `(?P<key>.*)`")
_STEP = re.compile(r"\.(\w+)|\[(\d+)\]")


def _words(msgspec_type: str) -> str:
    return _TYPE_WORDS.get(msgspec_type, msgspec_type)


def _place(where: str, path: list[str | int]) -> str:
    """``where`` and a path below it as the messages name places: ``vnets[0].mtu``."""
    text = where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return text.lstrip(".") or "document"


def _struct_at(kind: Any, path: list[str | int]) -> Any:
    """The struct type that describes the object at ``path`` of a ``kind`` document."""
    for step in path:
        if isinstance(step, int):
            kind = get_args(kind)[0]
        else:
            kind = {f.name: f.type for f in msgspec.structs.fields(kind)}[step]
    return kind


def _at(value: Any, path: list[str | int]) -> Any:
    for step in path:
        value = value[step]
    return value


def _unknown(value: object, kind: type[Any], path: list[str | int]) -> list[str]:
    """Every unknown key of the object at ``path``: msgspec names only the first."""
    allowed = {f.name for f in msgspec.structs.fields(_struct_at(kind, path))}
    return sorted(str(k) for k in _at(value, path) if k not in allowed)


def _refusal(
    value: object, kind: type[Any], where: str, err: msgspec.ValidationError
) -> InvalidInput:
    """msgspec's refusal of ``value`` as the InvalidInput an operator or client reads.

    msgspec says what it wanted and where (``Expected `int`, got `str` - at
    `$.vnets[0].mtu```); the message keeps both, in the document's own terms, and
    ``field`` is the key at fault, as the hand-written checks named it before.
    """
    found = _ERROR.fullmatch(str(err))
    what = found["what"] if found else str(err)
    path: list[str | int] = [
        name or int(index) for name, index in _STEP.findall((found and found["path"]) or "")
    ]
    named = _FIELD_NAMED.fullmatch(what)
    if (named and named["how"] == "contains unknown") or (found and found["key"]):
        place = _place(where, path)
        return InvalidInput(
            f"{place} has unknown fields: {', '.join(_unknown(value, kind, path))}",
            code="unknown_field",
            field=place,
        )
    if named:
        key = named["key"]
        return InvalidInput(
            f"{_place(where, [*path, key])} is required", code="invalid_type", field=key
        )
    # The key at fault: the last name on the path (ue_pools for vnets[0].ue_pools[1]).
    names = [p for p in path if isinstance(p, str)]
    key = names[-1] if names else _place(where, [])
    if path and path[-1] == "vlan":
        try:
            check_vlan(_at(value, path), "vlan")
        except InvalidInput as bad:
            return bad  # its message gives the valid range
    expected = _EXPECTED.fullmatch(what)
    if expected is None:
        return InvalidInput(f"{_place(where, path)}: {what}", code="invalid_type", field=key)
    got = f", not {_words(expected['got'])}" if expected["got"] else ""
    return InvalidInput(
        f"{_place(where, path)} must be {_words(expected['want'])}{got}",
        code=_FIELD_CODES.get(key, "invalid_type"),
        field=key,
    )


def _decode(value: object, kind: type[_T], where: str) -> _T:
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as err:
        raise _refusal(value, kind, where, err) from err


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


def _trunk(doc: _TrunkDoc, where: str) -> Trunk:
    if doc.kind not in tuple(TrunkKind):
        raise InvalidInput(
            f"{where}.kind {doc.kind!r} is not known: use 'ovs' or 'linux'",
            code="invalid_trunk_kind",
            field="kind",
        )
    return Trunk(
        name=doc.name, kind=TrunkKind(doc.kind), ports=doc.ports, datapath_type=doc.datapath_type
    )


def _vnet(doc: _VNetDoc) -> VNet:
    return VNet(
        tenant=doc.tenant,
        name=doc.name,
        trunk=doc.trunk,
        vlan=check_vlan(doc.vlan, "vlan"),
        subnet=_network(doc.subnet, "subnet", "invalid_subnet"),
        gateway=_address(doc.gateway, "gateway"),
        ue_pools=tuple(_network(p, "ue_pools", "invalid_ue_pool") for p in doc.ue_pools),
        dnns=doc.dnns,
        mtu=doc.mtu,
        app_ids=doc.app_ids,
        upf_address=_address(doc.upf_address, "upf_address") if doc.upf_address else None,
        upf_dev=doc.upf_dev,
        next_hop=_address(doc.next_hop, "next_hop") if doc.next_hop else None,
    )


def parse_trunk(value: object, where: str = "trunk") -> Trunk:
    return _trunk(_decode(value, _TrunkDoc, where), where)


def parse_vnet(value: object, where: str = "vnet") -> VNet:
    return _vnet(_decode(value, _VNetDoc, where))


def parse_config(document: object) -> N6Config:
    """``{"trunks": [...], "vnets": [...]}`` into a validated ``N6Config``."""
    doc = _decode(document, _Document, "")
    return validate(
        [_trunk(t, f"trunks[{i}]") for i, t in enumerate(doc.trunks)],
        [_vnet(v) for v in doc.vnets],
    )
