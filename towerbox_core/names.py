"""One name grammar for everything an operator or tenant names.

VMs, tenants, VNets, sites, users, tokens, layouts and schedules all share it, so a
name accepted in one place is accepted everywhere it travels (a tenant's name ends up
in a VNet, a journal entry and the registry). Names land in libvirt XML, OVSDB
``external_ids``, interface aliases and log lines, so the grammar is narrow: 1 to 63
letters, digits, ``-``, ``_`` or ``.``, starting with a letter or digit.

``fullmatch`` and not ``match`` with ``$``: ``$`` also matches before a final newline,
which would let ``"ab\\n"`` through. For the same reason there is no ``^…$`` pattern
for msgspec's ``Meta``: msgspec checks one with ``re.search``, where ``$`` has the same
hole, so structs take a plain ``str`` and the service calls ``check_name``.
"""

from __future__ import annotations

import re

from towerbox_core.errors import InvalidInput

NAME_MAX = 63
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

IFNAME_MAX = 15  # the kernel's IFNAMSIZ less the NUL
_IFNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def is_valid_name(value: object, max_len: int = NAME_MAX) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= max_len
        and _NAME_RE.fullmatch(value) is not None
    )


def check_name(kind: str, value: object, *, max_len: int = NAME_MAX, field: str = "name") -> None:
    """Refuse a name outside the grammar with ``invalid_name`` and the field it came in."""
    if not is_valid_name(value, max_len):
        raise InvalidInput(
            f"{kind} name {value!r} is not valid: use 1 to {max_len} letters, digits, "
            "'-', '_' or '.', starting with a letter or digit",
            code="invalid_name",
            field=field,
        )


def check_ifname(value: str, field: str) -> None:
    """An interface or bridge name the kernel accepts (at most 15 bytes)."""
    if len(value.encode()) > IFNAME_MAX or _IFNAME_RE.fullmatch(value) is None:
        raise InvalidInput(
            f"interface name {value!r} is not valid: use 1 to {IFNAME_MAX} letters, digits, "
            "'-', '_' or '.'",
            code="invalid_interface_name",
            field=field,
        )


def check_labels(labels: dict[str, str], field: str = "labels") -> None:
    """Labels (sites, tenants): keys and values both follow the name grammar."""
    for key, value in labels.items():
        check_name("label key", key, field=field)
        check_name("label value", value, field=field)


def parse_label(text: str, field: str = "label") -> tuple[str, str]:
    """``key=value`` from a command line or a URL, checked like ``check_labels``."""
    key, sep, value = text.partition("=")
    if not sep:
        raise InvalidInput(f"label {text!r} must be key=value", code="invalid_label", field=field)
    check_labels({key: value}, field)
    return key, value
