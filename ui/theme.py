"""Colours and labels shared by the pages: one meaning per colour everywhere."""

from __future__ import annotations

ROLE_COLOURS = {
    "vran": "#c2410c",  # protected, real-time: the warm colour
    "b2b": "#1d4ed8",
    "upf": "#7e22ce",
    "other": "#0f766e",
    "free": "#d1d5db",
}

STATE_COLOURS = {
    "running": "positive",
    "shutoff": "grey-7",
    "paused": "warning",
    "crashed": "negative",
    "missing": "negative",
    "unresponsive": "negative",
}

BANNER_CLASSES = {
    "online": "bg-green-1 text-green-10",
    "offline": "bg-red-1 text-red-10",
    "unknown": "bg-amber-1 text-amber-10",
    "off": "bg-grey-2 text-grey-9",
}

NAV = (
    ("dashboard", "Dashboard", "/"),
    ("vms", "VMs", "/vms"),
    ("top", "Top", "/top"),
    ("services", "Services", "/services"),
    ("gpus", "GPUs", "/gpus"),
    ("n6", "N6", "/n6"),
    ("artifacts", "Artifacts", "/artifacts"),
    ("events", "Events", "/events"),
    ("usage", "Usage", "/usage"),
    ("tenants", "Tenants", "/tenants"),
)

# Pages only an infra-admin has a use for: left out of others' navigation.
INFRA_ONLY_PAGES = frozenset({"tenants", "artifacts"})


def nav_for(infra_admin: bool) -> tuple[tuple[str, str, str], ...]:
    return tuple(item for item in NAV if infra_admin or item[0] not in INFRA_ONLY_PAGES)


def role_colour(role: str | None) -> str:
    return ROLE_COLOURS.get(role or "", ROLE_COLOURS["other"])
