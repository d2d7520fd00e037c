"""The sync protocol's wire shapes, shared by the registry, the agent and the appliance.

One module so the three processes cannot drift apart: the registry validates with
these structs, the agent builds them, and the checksum that proves "the registry holds
exactly the node's journal" is computed the same way on both ends.
See docs/sync-protocol.md for the routes and rules.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import msgspec

from towerbox_core.api.versions import NodeVersions

# Bounds on one journal batch; larger batches are refused with `batch_too_large`.
MAX_BATCH_ENTRIES = 1000
MAX_BATCH_BYTES = 4 * 1024 * 1024  # after gzip decompression

# Desired-state document kinds the registry hands down and the appliance applies, in
# the order the agent hands them over: tenants before the vnets that name them, and
# services last (a service needs its tenant, VNets and catalog entries).
DESIRED_KINDS = ("gpu", "tenants", "vnets", "catalog", "services")


class Actor(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Who made a journalled change: the journal is the node's audit trail.

    A person or program calling the API is ``user`` (with the API token's name when it
    used one rather than a login) and the ``tenant`` it acts for; the node's own work
    (monitor, reconcile, schedules, compaction) is a ``job``; both are set when a
    caller hands the node work it does as a job (a desired-state document).
    """

    user: str | None = None
    token: str | None = None
    tenant: str | None = None
    job: str | None = None

    def describe(self) -> str:
        """A short form for tables and logs: ``alice@acme (token ci)``, ``job:monitor``,
        ``sync-agent (token edge) for desired:tenants``."""
        if self.user is None:
            return f"job:{self.job or 'node'}"
        who = self.user if self.tenant is None else f"{self.user}@{self.tenant}"
        who = who if self.token is None else f"{who} (token {self.token})"
        return who if self.job is None else f"{who} for {self.job}"


class WireEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One journal entry exactly as the appliance's journal API serves it.

    ``actor`` is null only on entries written before the node recorded actors.
    """

    seq: int
    kind: str
    object_type: str
    object_id: str
    state: Any
    created_at: str | None = None
    actor: Actor | None = None


class JournalBatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """POST /api/v1/sync/journal body (gzip-encoded on the wire).

    `compacted_through`: the appliance compacted its journal up to this seq, so seqs
    at or below it may be missing for good; the registry accepts such gaps, no others.
    """

    entries: list[WireEntry]
    compacted_through: int = 0


class JournalAck(msgspec.Struct, frozen=True):
    """The registry's answer: the highest contiguous seq it holds for the site."""

    acked_seq: int
    stored: int  # entries newly stored by this request (0 on a pure replay)


class Heartbeat(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """POST /api/v1/sync/heartbeat body; sent on its own timer, also during a backlog.

    ``facts_hash`` (``facts_hash()`` of the agent version, host facts and versions)
    lets a quiet site send the facts only when they change: a heartbeat carries
    ``host`` and ``versions`` when they differ from what the registry last
    acknowledged, else only the hash. Agents before the hash send neither hash nor
    versions and always the host facts; the registry takes both forms.
    """

    agent_version: str
    appliance_head: int  # newest seq in the node's journal
    queued: int  # entries the registry does not hold yet, as far as the agent knows
    host: dict[str, Any] = msgspec.field(default_factory=dict)  # health/host facts
    facts_hash: str | None = None
    versions: NodeVersions | None = None

    @property
    def carries_facts(self) -> bool:
        return self.facts_hash is None or bool(self.host) or self.versions is not None


def facts_hash(agent_version: str, host: dict[str, Any], versions: NodeVersions | None) -> str:
    """What the agent and the registry both compute over a node's facts: 16 hex digits
    of sha256 over their canonical JSON (a change detector, not a proof)."""
    doc = {"agent": agent_version, "host": host, "versions": msgspec.to_builtins(versions)}
    return hashlib.sha256(canonical_json(doc)).hexdigest()[:16]


class DesiredIndexItem(msgspec.Struct, frozen=True):
    kind: str
    etag: str  # opaque; changes whenever the effective document changes
    version: int
    source: str  # "site" or "group:<label>=<value>"


class DesiredDocument(msgspec.Struct, frozen=True):
    """GET /api/v1/sync/desired/{kind} body; also what the agent hands the appliance."""

    kind: str
    etag: str
    version: int
    source: str
    document: dict[str, Any]


def canonical_line(entry: WireEntry) -> bytes:
    """One entry's canonical bytes: independent of key order and JSON spacing.

    The actor is part of what is proven held; entries without one (written before
    actors were recorded) keep the line they always had, so old checksums still match.
    """
    state = canonical_json(entry.state)
    head = f"{entry.seq}\t{entry.kind}\t{entry.object_type}\t{entry.object_id}\t"
    actor = b"" if entry.actor is None else b"\t" + msgspec.json.encode(entry.actor)
    return head.encode() + state + actor + b"\n"


def journal_checksum(entries: Iterable[WireEntry]) -> str:
    """sha256 over the canonical lines, in seq order (the caller sorts)."""
    digest = hashlib.sha256()
    for entry in entries:
        digest.update(canonical_line(entry))
    return digest.hexdigest()


def canonical_json(value: Any) -> bytes:
    """Compact JSON with every object's keys sorted, at any depth.

    The bytes ``msgspec.json.encode`` gives for the key-sorted value, built with an
    explicit stack rather than recursion: an entry stored deeper than the edge now
    allows must still get a checksum, not a RecursionError on every summary.
    """
    out: list[bytes] = []
    # (False, value) still to encode, or (True, bytes) to emit as they are; last first.
    stack: list[tuple[bool, Any]] = [(False, value)]
    while stack:
        raw, item = stack.pop()
        if raw:
            out.append(item)
        elif isinstance(item, dict):
            out.append(b"{")
            stack.append((True, b"}"))
            keys = sorted(item)
            for i in range(len(keys) - 1, -1, -1):
                stack.append((False, item[keys[i]]))
                key = msgspec.json.encode(keys[i] if isinstance(keys[i], str) else str(keys[i]))
                stack.append((True, (b"," if i else b"") + key + b":"))
        elif isinstance(item, list):
            out.append(b"[")
            stack.append((True, b"]"))
            for i in range(len(item) - 1, -1, -1):
                stack.append((False, item[i]))
                if i:
                    stack.append((True, b","))
        else:
            out.append(msgspec.json.encode(item))
    return b"".join(out)


class AgentStatus(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """PUT /api/v1/sync/status body: the agent's view of the WAN, kept by the appliance.

    `since`: when `state` last changed (the agent's clock; shown, never ordered on).
    `heartbeat_s`: the agent's interval, so the appliance can tell when it went quiet.
    """

    state: str  # "online" | "offline"
    registry_url: str
    site: str
    queued: int
    acked_seq: int
    since: str | None = None
    last_sync_at: str | None = None
    last_error: str | None = None
    heartbeat_s: float = 15.0
