"""The conflict rule for central documents, as a pure function (docs/sync-protocol.md).

An object named by a central document is centrally owned, and central policy wins
for it unless the local change is marked as a local override. "Changed locally"
means the object's local state differs both from what the last central document put
there and from what the new one asks for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

States = dict[str, Any]  # object id -> the object's state as plain data


def fingerprint(state: Any) -> str:
    if state is None:
        return "absent"
    return hashlib.sha256(msgspec.json.encode(state, order="sorted")).hexdigest()[:32]


@dataclass
class Decision:
    puts: States = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)
    owned: dict[str, str] = field(default_factory=dict)
    conflicts: list[dict[str, str]] = field(default_factory=list)


def decide(
    central: States, current: States, owned: Mapping[str, str], overrides: set[str]
) -> Decision:
    """The conflict rule as a pure function of the four inputs."""
    d = Decision()
    for oid, state in sorted(central.items()):
        local = current.get(oid)
        known = oid in current or oid in owned
        changed = known and fingerprint(local) not in (owned.get(oid), fingerprint(state))
        if changed and oid in overrides:
            d.conflicts.append({"object_id": oid, "resolution": "local_override"})
            continue
        if changed:
            d.conflicts.append({"object_id": oid, "resolution": "central"})
        if fingerprint(local) != fingerprint(state):
            d.puts[oid] = state
        d.owned[oid] = fingerprint(state)
    for oid in sorted(set(owned) - set(central)):
        if oid not in current:
            continue
        if fingerprint(current[oid]) != owned[oid]:
            resolution = "local_override" if oid in overrides else "central"
            d.conflicts.append({"object_id": oid, "resolution": resolution})
            if oid in overrides:
                continue
        d.deletes.append(oid)
    return d
