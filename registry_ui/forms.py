"""The enrollment page's form fields as the registry's request fields (pure).

The registry checks each value and answers with its code; here only the text's shape
is read (labels are checked as the registry checks them, before anything is sent).
"""

from __future__ import annotations

from typing import Any

from towerbox_core.errors import InvalidInput
from towerbox_core.names import parse_label


def labels_from(text: str) -> dict[str, str]:
    """``tier=gold, zone=north`` as a dict, each label checked as the registry does."""
    labels: dict[str, str] = {}
    for part in (p.strip() for p in text.replace("\n", ",").split(",")):
        if part:
            key, value = parse_label(part, "labels")
            labels[key] = value
    return labels


def allow_from(text: str) -> list[Any]:
    """``SN-1, 4c4c...=cell-0042``: plain identities, or identity=site name."""
    allow: list[Any] = []
    for part in (p.strip() for p in text.replace("\n", ",").split(",")):
        if part:
            identity, _, site = part.partition("=")
            allow.append({"hardware_id": identity, "site": site} if site else identity)
    return allow


def expiry_from(text: str) -> int | None:
    """Days as the credential's lifetime in seconds; empty: no expiry."""
    text = text.strip()
    if not text:
        return None
    try:
        days = float(text)
    except ValueError as err:
        raise InvalidInput(
            f"expiry is a number of days, not {text!r}", code="invalid_ttl", field="expires"
        ) from err
    return int(days * 86400)
