"""The fleet overview: counts by status, region and label, and the worst problems first.

A fixed number of aggregate statements over indexed columns whatever the fleet's
size (site.last_contact, objects by (object_type, role) and (object_type, status),
site_label by (key, value)): 10,000 sites cost the same few queries as ten, and no
row is looked at in Python but the ones the page shows.
"""

from __future__ import annotations

from typing import Any

from registry.services.sites import SiteStatus
from registry.store import sql
from registry.store.models import ms_to_iso, now_ms
from towerbox_core.api.fleet_overview import (
    PROBLEM_KINDS,
    FleetOverview,
    FleetProblem,
    LabelCount,
    ProblemKind,
    RegionCount,
)

# Per-status columns, bound as (online_since, online_since, stale_since, stale_since).
_STATUS_COLUMNS = (
    "COALESCE(SUM(CASE WHEN last_contact >= ? THEN 1 ELSE 0 END), 0), "
    "COALESCE(SUM(CASE WHEN last_contact < ? AND last_contact >= ? THEN 1 ELSE 0 END), 0), "
    "COALESCE(SUM(CASE WHEN last_contact < ? THEN 1 ELSE 0 END), 0), "
    "COALESCE(SUM(CASE WHEN last_contact IS NULL THEN 1 ELSE 0 END), 0)"
)
_TOTALS = (
    f"SELECT COUNT(*), {_STATUS_COLUMNS}, "  # noqa: S608 - constants only; values are bound
    "COALESCE(SUM(CASE WHEN secret_hash IS NULL THEN 1 ELSE 0 END), 0) FROM site"
)
_REGIONS = (
    f"SELECT region, COUNT(*), {_STATUS_COLUMNS} FROM site "  # noqa: S608
    "GROUP BY region ORDER BY COUNT(*) DESC, region LIMIT ?"
)
_LABELS = (
    "SELECT key, value, COUNT(*) FROM site_label GROUP BY key, value "
    "ORDER BY COUNT(*) DESC, key, value LIMIT ?"
)
# Each problem: its sites, worst first, and how many sites have it in all.
_OFFLINE_VRAN = (
    "FROM objects o JOIN site s ON s.id = o.site_id "
    "WHERE o.object_type = 'vm' AND o.role = 'vran' AND s.last_contact < ?"
)
_DOCUMENTS = (
    "FROM objects o JOIN site s ON s.id = o.site_id "
    "WHERE o.object_type = 'desired' AND o.status = ?"
)
_PER_SITE = (
    "SELECT s.name, s.region, s.last_contact, COUNT(*), MIN(o.object_id) {where} "
    "GROUP BY s.id, s.name, s.region, s.last_contact ORDER BY {order} LIMIT ?"
)
_LAG_WHERE = "FROM site WHERE reported_head IS NOT NULL AND reported_head - acked_seq >= ?"
_LAG_ROWS = (
    "SELECT name, region, last_contact, reported_head - acked_seq, '' "
    f"{_LAG_WHERE} ORDER BY reported_head - acked_seq DESC, name LIMIT ?"
)

# A few entries behind is a batch in flight; this many is a site that does not catch up.
LAG_BEHIND = 100


def _statements(kind: ProblemKind) -> tuple[str, str]:
    """(rows, count) statements of one problem kind; all text here is constant."""
    if kind == "journal_lag":
        return _LAG_ROWS, f"SELECT COUNT(*) {_LAG_WHERE}"
    where = _OFFLINE_VRAN if kind == "offline_vran" else _DOCUMENTS
    # Offline the longest first; most documents in trouble first.
    order = "s.last_contact, s.name" if kind == "offline_vran" else "COUNT(*) DESC, s.name"
    rows = _PER_SITE.format(where=where, order=order)
    return rows, f"SELECT COUNT(DISTINCT o.site_id) {where}"


def _detail(kind: ProblemKind, value: int, example: str) -> str:
    if kind == "offline_vran":
        return f"offline with {value} vRAN VM{'s' if value != 1 else ''}"
    if kind == "journal_lag":
        return f"{value} journal entries behind"
    what = "in conflict with a local change" if kind == "conflict" else "rejected by the node"
    others = f" and {value - 1} more" if value > 1 else ""
    return f"{example} document{others} {what}"


class FleetOverviewService:
    def __init__(self, status: SiteStatus) -> None:
        self._status = status

    def overview(self, limit: int, lag_behind: int = LAG_BEHIND) -> FleetOverview:
        now = now_ms()
        online_since, stale_since = self._status.since(now)
        bounds = (online_since, online_since, stale_since, stale_since)
        totals = sql.fetchall(_TOTALS, bounds)[0]
        total, online, stale, offline, pending, never = (int(v) for v in totals)
        regions = [
            RegionCount(str(r[0]), *(int(v) for v in r[1:]))
            for r in sql.fetchall(_REGIONS, (*bounds, limit))
        ]
        labels = [
            LabelCount(f"{key}={value}", int(count))
            for key, value, count in sql.fetchall(_LABELS, (limit,))
        ]
        counts: dict[str, int] = {}
        problems: list[FleetProblem] = []
        for kind in PROBLEM_KINDS:
            rows_sql, count_sql = _statements(kind)
            param: Any = {
                "offline_vran": stale_since,
                "conflict": "conflict",
                "rejected": "rejected",
                "journal_lag": lag_behind,
            }[kind]
            counts[kind] = int(sql.fetchall(count_sql, (param,))[0][0])
            room = limit - len(problems)
            if room <= 0 or not counts[kind]:
                continue
            for name, region, last, value, example in sql.fetchall(rows_sql, (param, room)):
                problems.append(
                    FleetProblem(
                        kind=kind,
                        site=name,
                        region=region,
                        detail=_detail(kind, int(value), str(example)),
                        value=int(value),
                        last_contact=ms_to_iso(last),
                    )
                )
        return FleetOverview(
            total=total,
            by_status={"online": online, "stale": stale, "offline": offline, "pending": pending},
            never_enrolled=never,
            regions=regions,
            labels=labels,
            problem_counts=counts,
            problems=problems,
        )
