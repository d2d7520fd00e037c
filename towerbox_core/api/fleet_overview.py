"""GET /api/v1/fleet/overview: the fleet at a glance, as the registry web UI shows it.

Counts by status, region and label, and the worst problems first. The registry
computes all of it in a few aggregate statements, whatever the fleet's size.
"""

from __future__ import annotations

from typing import Literal

import msgspec

# In the order an operator should look at them: a vRAN site that went dark first.
ProblemKind = Literal["offline_vran", "conflict", "rejected", "journal_lag"]
PROBLEM_KINDS: tuple[ProblemKind, ...] = ("offline_vran", "conflict", "rejected", "journal_lag")


class RegionCount(msgspec.Struct, frozen=True):
    region: str  # "" for sites created without one
    total: int
    online: int
    stale: int
    offline: int
    pending: int


class LabelCount(msgspec.Struct, frozen=True):
    label: str  # key=value
    total: int


class FleetProblem(msgspec.Struct, frozen=True):
    kind: ProblemKind
    site: str
    region: str
    detail: str  # what is wrong, for a person
    # offline_vran: vRAN VMs on the site; conflict/rejected: documents in that state;
    # journal_lag: entries the registry does not hold yet.
    value: int
    last_contact: str | None


class FleetOverview(msgspec.Struct, frozen=True):
    total: int
    by_status: dict[str, int]  # pending | online | stale | offline
    never_enrolled: int  # sites no node has enrolled as yet
    regions: list[RegionCount]
    labels: list[LabelCount]  # the most common first
    problem_counts: dict[str, int]  # kind -> sites with that problem
    problems: list[FleetProblem]  # worst first, at most the limit asked
