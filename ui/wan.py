"""The WAN banner's words from GET /api/v1/sync/status (pure, so it is tested on its own)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ui.api import ApiError
from ui.fmt import when


@dataclass(frozen=True)
class Banner:
    text: str
    tone: str  # online | offline | unknown | off


def from_error(error: ApiError) -> Banner:
    if error.status == 404:
        return Banner("Sync: not configured (this appliance has no sync status route)", "off")
    if error.status == 403:
        return Banner("Sync: not visible to your role", "off")
    return Banner(f"Sync status unavailable: {error.text}", "unknown")


def _agent_banner(status: dict[str, Any], backlog: str, last_sync: str) -> Banner | None:
    """With no live agent nobody knows the link; the banner says why."""
    agent = status.get("agent")
    if agent == "never reported":
        return Banner(f"WAN: unknown — the edge agent has not reported yet · {backlog}", "unknown")
    if agent == "not running":
        text = (
            f"WAN: unknown — edge agent not running (last report {when(status.get('reported_at'))})"
            f" · {backlog} · {last_sync}"
        )
        return Banner(text, "unknown")
    return None


def banner(status: dict[str, Any] | None, error: ApiError | None = None) -> Banner:
    if error is not None:
        return from_error(error)
    if status is None:
        return Banner("Sync: not configured", "off")
    queued = int(status.get("queued", 0))
    backlog = f"{queued} journal entr{'y' if queued == 1 else 'ies'} queued"
    last = status.get("last_sync_at")
    last_sync = f"last sync {when(last)}" if last else "never synced"
    agent = _agent_banner(status, backlog, last_sync)
    if agent is not None:
        return agent
    wan = status.get("wan")
    if wan == "online":
        return Banner(f"WAN online · {last_sync} · {backlog}", "online")
    if wan != "offline":
        return Banner(f"WAN: {wan or 'unknown'} · {backlog}", "unknown")
    since = status.get("offline_since")
    parts = [f"WAN offline since {when(since)}" if since else "WAN offline", backlog, last_sync]
    if status.get("last_error"):
        parts.append(f"last error: {status['last_error']}")
    return Banner(" · ".join(parts), "offline")
