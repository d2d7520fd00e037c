"""The node's journal and sync routes: positions, pages, acks, the agent's status,
desired-state documents and their outcome."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from towerbox_core.wire import AgentStatus, WireEntry


class AckRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    seq: Annotated[int, msgspec.Meta(ge=0)]


class JournalAcked(msgspec.Struct, frozen=True):
    acked_seq: int
    head: int


class JournalSummary(msgspec.Struct, frozen=True):
    """Count, head and checksum of the entries up to a seq, as the registry has them."""

    count: int
    head: int
    checksum: str


class JournalPage(msgspec.Struct, frozen=True):
    head: int
    compacted_through: int
    acked_seq: int
    entries: list[WireEntry]


class SyncStatusView(msgspec.Struct, frozen=True):
    """The WAN banner's facts. Before the agent's first report only ``agent``, ``wan``,
    ``report`` and the journal positions are sent."""

    agent: str  # "running", "not running" or "never reported"
    wan: str  # "online", "offline" or "unknown"
    offline_since: str | msgspec.UnsetType | None = msgspec.UNSET
    last_sync_at: str | msgspec.UnsetType | None = msgspec.UNSET
    last_error: str | msgspec.UnsetType | None = msgspec.UNSET
    reported_s_ago: float | msgspec.UnsetType = msgspec.UNSET
    reported_at: str | msgspec.UnsetType = msgspec.UNSET
    report: AgentStatus | None = None
    head: int = 0
    acked_seq: int = 0
    compacted_through: int = 0
    queued: int = 0  # the appliance's own count: right even when the agent is gone


class AgentTokenRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str = "edge-agent"


class AgentToken(msgspec.Struct, frozen=True):
    token: str
    name: str
    role: str


class OverrideRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    object_id: str
    local_override: bool


class Overrides(msgspec.Struct, frozen=True):
    kind: str
    local_overrides: list[str]


class DesiredConflict(msgspec.Struct, frozen=True):
    object_id: str
    resolution: str  # "central" or "local_override"


class DesiredKept(msgspec.Struct, frozen=True):
    """An object a new version drops that the node keeps, and why (it is still in use)."""

    object_id: str
    reason: str


class DesiredApplied(msgspec.Struct, frozen=True):
    """The outcome of a desired-state document; ``unchanged`` only on a resend."""

    kind: str
    version: int
    etag: str
    result: str  # "applied" or "conflict"
    changed: list[str]
    conflicts: list[DesiredConflict]
    kept: list[DesiredKept] = []
    unchanged: bool | msgspec.UnsetType = msgspec.UNSET
    # ``services`` documents: per service {status, code?, detail?} as the apply left it.
    services: dict[str, dict[str, str]] | msgspec.UnsetType = msgspec.UNSET


class DesiredKindSummary(msgspec.Struct, frozen=True):
    version: int | None
    etag: str | None
    source: str | None
    result: str | None  # "applied", "conflict", or the refusal's code
    owned: list[str]
    local_overrides: list[str]


# Per desired-state kind ("gpu", "tenants", "vnets", "catalog", "services").
DesiredSummary = dict[str, DesiredKindSummary]
# A journal entry's state and a desired document's body are open-ended by design.
OpenDocument = dict[str, Any]
