"""A site's reported objects turned into what the detail page draws (pure).

The registry holds each object as the node last reported it, with the node's time
(``as_of``); it holds no GPU catalog. A MIG profile's name carries its compute
slices by NVIDIA's naming ("3g.40gb": 3 of 7 slices; 4 on an A30), which is
enough to place each instance on the compute ruler.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from towerbox_core.fmt import problem_line
from towerbox_core.slotmap import Block, Geometry, compute_blocks
from towerbox_core.wire import Actor

_PROFILE = re.compile(r"(\d+)g\.")

# Role colours of the node UI's slot map: the protected vRAN slice is the warm one.
ROLE_COLOURS = {
    "vran": "#c2410c",
    "b2b": "#1d4ed8",
    "free": "#d1d5db",
}


def actor_text(actor: Any) -> str:
    if not isinstance(actor, dict):
        return "-"
    try:
        return msgspec.convert(actor, Actor).describe()
    except msgspec.ValidationError:
        return "-"


def gpu_layout(state: Any) -> tuple[str, list[dict[str, Any]]] | None:
    """(model, instances) of a GPU object whose last report was a whole layout."""
    layout = state.get("layout") if isinstance(state, dict) else None
    if not isinstance(layout, dict):
        return None
    instances = [i for i in layout.get("instances") or [] if isinstance(i, dict) and "profile" in i]
    return str(layout.get("gpu_model") or "?"), instances


def compute_ruler(model: str, instances: list[dict[str, Any]]) -> tuple[list[Block], int]:
    """The instances on the compute slices of ``model``, free slices in between."""
    total = 4 if "A30" in model.upper() else 7
    compute = {}
    for inst in instances:
        found = _PROFILE.match(str(inst["profile"]))
        compute[str(inst["profile"])] = int(found.group(1)) if found else 1
    geo = Geometry(memory_slots=0, compute_slices=total, sizes={}, compute=compute)
    return compute_blocks(instances, geo), total


def vnet_line(state: Any) -> str:
    """A VNet's declaration in one line: VLAN, subnet, gateway."""
    if not isinstance(state, dict):
        return "-"
    parts = [
        f"{key} {state[key]}" for key in ("vlan", "subnet", "gateway", "bridge") if state.get(key)
    ]
    return ", ".join(parts) or msgspec.json.encode(state).decode()[:120]


# What each service of a ``services`` document came to on the site (sync-protocol.md).
SERVICE_COLOURS = {
    "deployed": "positive",
    "rejected": "negative",
    "failed": "negative",
    "conflict": "negative",
}


def service_outcomes(state: Any) -> list[tuple[str, str, str]]:
    """(service, status, why) of each service a ``services`` document names, as the
    site last reported them; ``why`` is the code and detail of a refusal or failure."""
    services = state.get("services") if isinstance(state, dict) else None
    if not isinstance(services, dict):
        return []
    outcomes = []
    for name, outcome in sorted(services.items()):
        if not isinstance(outcome, dict):
            continue
        outcomes.append((str(name), str(outcome.get("status") or "?"), problem_line(outcome)))
    return outcomes


def by_type(objects: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        grouped.setdefault(str(obj["object_type"]), []).append(obj)
    return grouped
