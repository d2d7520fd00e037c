"""Fleet-wide figures for /metrics, aggregated in SQL at scrape time.

A fixed number of statements whatever the fleet's size: one pass over the site table
(statuses, lag, contact age, ingest counts), one GROUP BY over conflicts and one over
the desired-state results sites reported. Nothing is labelled by site: 10,000 sites
make the same few series as ten. Every figure comes from the database, so it is the
same whichever worker answers the scrape.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from registry.store import sql
from registry.store.fleet_versions import version_counts
from towerbox_core.api.versions import Component
from towerbox_core.wire import DESIRED_KINDS

# Upper bounds of the lag buckets, in journal entries (cumulative, as Prometheus' le).
LAG_BOUNDS = (0, 10, 100, 1_000, 10_000, 100_000)
# Contact ages a site can be silent past, in seconds: 5 minutes, 1 hour, 1 day, 1 week.
SILENT_BOUNDS = (300, 3_600, 86_400, 604_800)
RESULTS = ("applied", "conflict", "rejected")
OTHER_KIND = "other"
# Series per component on towerbox_registry_sites_by_version; rarer versions are summed.
MAX_VERSIONS_PER_COMPONENT = 20
OTHER_VERSION = "other"  # conflicts a node reported for a kind the registry does not know

# A site's lag: entries its agent reported in its journal that the registry does not
# hold yet; NULL until the site's first heartbeat. CASE, not GREATEST/MAX(a, b): the
# two engines spell those differently.
_LAG = (
    "CASE WHEN reported_head IS NULL THEN NULL "
    "WHEN reported_head > acked_seq THEN reported_head - acked_seq ELSE 0 END"
)


def _count(condition: str) -> str:
    return f"COALESCE(SUM(CASE WHEN {condition} THEN 1 ELSE 0 END), 0)"


def _site_statement() -> str:
    columns = [
        _count("last_contact IS NULL"),
        _count("last_contact >= ?"),
        _count("last_contact < ? AND last_contact >= ?"),
        _count("last_contact < ?"),
        *(_count(f"lag <= {bound}") for bound in LAG_BOUNDS),
        _count("lag IS NOT NULL"),
        "COALESCE(SUM(lag), 0)",
        "COALESCE(MAX(lag), 0)",
        *(_count("last_contact < ?") for _ in SILENT_BOUNDS),
        "COALESCE(SUM(ingested_entries), 0)",
        "COALESCE(SUM(ingested_batches), 0)",
    ]
    # Only this module's constants are formatted into the text; the values are bound.
    return (
        f"SELECT {', '.join(columns)} FROM (SELECT last_contact, ingested_entries, "  # noqa: S608
        f"ingested_batches, {_LAG} AS lag FROM site) AS s"
    )


_SITES = _site_statement()
_CONFLICTS = "SELECT kind, result, COUNT(*) FROM conflicts GROUP BY kind, result"
# Only the kinds and results the registry knows become labels: a node cannot add series.
_RESULTS = (
    "SELECT object_id, status, COUNT(*) FROM objects WHERE object_type = 'desired' "  # noqa: S608
    f"AND object_id IN {sql.in_list(len(DESIRED_KINDS))} "
    f"AND status IN {sql.in_list(len(RESULTS))} GROUP BY object_id, status"
)
_DOCUMENTS = (
    "SELECT kind, CASE WHEN SUBSTR(scope, 1, 5) = 'site:' THEN 'site' ELSE 'group' END AS source, "
    'COUNT(*) FROM desired WHERE "current" GROUP BY kind, source'
)

_ROLLOUTS = "SELECT state, COUNT(*) FROM rollout GROUP BY state"


@dataclass
class FleetStats:
    sites_by_status: dict[str, int]
    lag_at_most: dict[int, int]  # bound -> sites whose lag is at most that
    lag_sites: int  # sites that have reported a journal head
    lag_sum: int
    lag_max: int
    silent_for: dict[int, int]  # seconds -> sites whose last contact is older
    ingested_entries: int
    ingested_batches: int
    conflicts: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, result)
    results: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, result)
    documents: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, source)
    versions: dict[tuple[str, str], int] = field(default_factory=dict)  # (component, version)
    rollouts: dict[str, int] = field(default_factory=dict)  # state -> rollouts


def fleet_stats(now_ms: int, online_since: int, stale_since: int) -> FleetStats:
    params = (
        online_since,
        online_since,
        stale_since,
        stale_since,
        *(now_ms - seconds * 1000 for seconds in SILENT_BOUNDS),
    )
    # An aggregate without GROUP BY answers exactly one row.
    values = [int(v) for v in sql.fetchall(_SITES, params)[0]]
    statuses = dict(zip(("pending", "online", "stale", "offline"), values[:4], strict=True))
    rest = values[4:]
    lag_at_most = dict(zip(LAG_BOUNDS, rest[: len(LAG_BOUNDS)], strict=True))
    rest = rest[len(LAG_BOUNDS) :]
    lag_sites, lag_sum, lag_max = rest[:3]
    rest = rest[3:]
    silent_for = dict(zip(SILENT_BOUNDS, rest[: len(SILENT_BOUNDS)], strict=True))
    entries, batches = rest[len(SILENT_BOUNDS) :]
    stats = FleetStats(
        statuses, lag_at_most, lag_sites, lag_sum, lag_max, silent_for, entries, batches
    )
    for kind, result, count in sql.fetchall(_CONFLICTS, ()):
        key = (kind if kind in DESIRED_KINDS else OTHER_KIND, result)
        stats.conflicts[key] = stats.conflicts.get(key, 0) + int(count)
    for kind, result, count in sql.fetchall(_RESULTS, (*DESIRED_KINDS, *RESULTS)):
        stats.results[(kind, result)] = int(count)
    for kind, source, count in sql.fetchall(_DOCUMENTS, ()):
        stats.documents[(kind, source)] = int(count)
    stats.versions = bounded_versions(version_counts())
    for state, count in sql.fetchall(_ROLLOUTS, ()):
        stats.rollouts[str(state)] = int(count)
    return stats


def bounded_versions(counts: dict[Component, dict[str, int]]) -> dict[tuple[str, str], int]:
    """The most common versions of each component; the rest summed as "other": a fleet
    of odd builds cannot add series without bound."""
    out: dict[tuple[str, str], int] = {}
    for component, by_version in counts.items():
        ranked = sorted(by_version.items(), key=lambda item: (-item[1], item[0]))
        for version, count in ranked[:MAX_VERSIONS_PER_COMPONENT]:
            out[(component, version)] = count
        rest = sum(count for _, count in ranked[MAX_VERSIONS_PER_COMPONENT:])
        if rest:
            out[(component, OTHER_VERSION)] = rest
    return out
