"""Staged rollouts of a group's desired document: what the registry's rollout routes
take and answer (docs/rollouts.md).

Times are ISO 8601 text in UTC, as the registry records them.
"""

from __future__ import annotations

from typing import Any

import msgspec

ROLLOUT_STATES: tuple[str, ...] = (
    "running",
    "paused",
    "halted",
    "aborted",
    "rolled_back",
    "completed",
)
SITE_STATUSES: tuple[str, ...] = ("pending", "released", "applied", "healthy", "failed", "deferred")


class RolloutCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """POST /api/v1/rollouts. Unset options take the registry's [rollouts] defaults."""

    group: str  # "label=value"
    kind: str
    document: Any
    if_match: str | None = None  # the group's current version or ETag, as for PUT
    waves: list[float] | None = None  # cumulative percent of the group's sites, ending at 100
    canary: int | None = None  # sites in wave 0; 0: no canary wave
    soak_s: float | None = None
    canary_failure_pct: float | None = None
    failure_pct: float | None = None
    offline_wait_s: float | None = None


class RolloutWave(msgspec.Struct, frozen=True):
    wave: int  # 0 is the canary wave when there is one
    percent: float | None  # cumulative percent of the group; None for the canary wave
    state: str  # pending | running | done | halted
    sites: int
    released: int
    applied: int
    healthy: int
    failed: int
    deferred: int
    started_at: str | None
    finished_at: str | None


class Rollout(msgspec.Struct, frozen=True):
    id: int
    group: str
    kind: str
    state: str  # one of ROLLOUT_STATES
    reason: str  # why it halted, or who paused, aborted or rolled it back
    version: int  # the version this rollout publishes
    etag: str
    previous_version: int | None  # the group's version before it; None when there was none
    rollback_version: int | None  # the version a rollback published
    current_wave: int
    waves: list[RolloutWave]
    canary: int
    soak_s: float
    canary_failure_pct: float
    failure_pct: float
    offline_wait_s: float
    created_by: str
    created_at: str
    updated_at: str
    finished_at: str | None


class RolloutList(msgspec.Struct, frozen=True):
    rollouts: list[Rollout]
    total: int


class RolloutSite(msgspec.Struct, frozen=True):
    site: str
    wave: int
    status: str  # one of SITE_STATUSES
    reason: str
    released_at: str | None
    applied_at: str | None
    finished_at: str | None  # healthy after the soak, failed, or deferred


class RolloutSites(msgspec.Struct, frozen=True):
    rollout: int
    sites: list[RolloutSite]
    total: int
