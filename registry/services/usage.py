"""Fleet usage: each site's usage folded from the journal the registry holds for it.

The node's code does the folding (``towerbox_core.metering``): a site's ledger is its
rollups' closed hours, resumed from the newest rollup's meter, then the metered
entries after that rollup's bound, exactly as the node rebuilds its own. Entries
the node compacted before they were shipped are covered by the rollup it wrote
first, so a site that was offline through a compaction still adds up.

Open intervals (a VM still running) end at the site's newest entry time, not at the
registry's clock: the registry knows nothing past what the node sent, and a site
that went quiet may have stopped its VMs meanwhile. So a period that ends before
that entry gives the node's figures exactly; one that reaches past it gives less
than the node reports, until the next entry arrives.

Ledgers are kept per site, keyed by the seq up to which the registry holds the
site's journal: a report folds only what arrived since the last one, and a site
that sent nothing new answers a report asked before from memory. Reports asked with
no ``to`` end at the registry's clock and so are asked anew each time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import msgspec

from registry.services.sites import SiteService
from registry.store import sql
from registry.store.models import Site, now_ms, tuples
from towerbox_core.api.usage import FleetUsageLine, FleetUsageReport, SiteUsageAsOf
from towerbox_core.errors import InvalidInput
from towerbox_core.metering.fold import METERED_KINDS, ROLLUP_KIND, parse_time_us
from towerbox_core.metering.ledger import Entry, Ledger, rebuild, rollup_of
from towerbox_core.metering.period import iso, parse_period
from towerbox_core.metering.prices import PriceBook
from towerbox_core.metering.report import GROUPS, Buckets, Rated, only_tenant, rated

_decode = msgspec.json.decode
_KINDS = tuple(k for k in METERED_KINDS if k != ROLLUP_KIND)
_ENTRIES = (
    "SELECT seq, kind, object_id, state, created_at FROM journal WHERE site_id = ? "  # noqa: S608 - placeholders only
    "AND seq > ? AND seq <= ? AND kind IN " + sql.in_list(len(_KINDS)) + " ORDER BY seq"
)
_ROLLUPS = (
    "SELECT state FROM journal WHERE site_id = ? AND seq > ? AND seq <= ? AND kind = ? ORDER BY seq"
)
_REPORTS_KEPT = 16  # per site
_NEWEST = "SELECT created_at FROM journal WHERE site_id = ? AND seq <= ? ORDER BY seq DESC LIMIT 1"


@dataclass
class _SiteLedger:
    created_at: int  # the site row's: a site deleted and made again starts over
    acked_seq: int
    ledger: Ledger
    as_of: str | None  # the newest entry's node time
    # Reports already made from this ledger (a dashboard asks the same month again).
    reports: dict[tuple[object, ...], Rated] = field(default_factory=dict)


def site_entries(site_id: int, after: int, through: int) -> Iterator[Entry]:
    """The site's metered entries in (after, through], in seq order."""
    for seq, kind, object_id, state, created_at in sql.fetchall(
        _ENTRIES, (site_id, after, through, *_KINDS)
    ):
        yield seq, kind, object_id, _decode(state), created_at


def site_ledger(site_id: int, acked_seq: int) -> Ledger:
    """The ledger of a site's whole journal as the registry holds it (up to acked)."""
    rollups = [
        rollup_of(_decode(state))
        for (state,) in sql.fetchall(_ROLLUPS, (site_id, 0, acked_seq, ROLLUP_KIND))
    ]
    return rebuild(rollups, lambda after: site_entries(site_id, after, acked_seq))


class UsageService:
    def __init__(self, sites: SiteService) -> None:
        self._sites = sites
        self._lock = threading.Lock()
        self._ledgers: dict[int, _SiteLedger] = {}

    def report(
        self,
        site: str | None,
        tenant: str | None,
        from_: str | None,
        to: str | None,
        group_by: str,
        books: list[PriceBook],
    ) -> FleetUsageReport:
        if group_by not in GROUPS:
            raise InvalidInput(
                f"group_by must be one of {', '.join(GROUPS)}",
                code="invalid_group_by",
                field="group_by",
            )
        start, end = parse_period(from_, to, now_ms() * 1000)
        query = Site.select(Site.id, Site.name, Site.acked_seq, Site.created_at)
        if site is not None:
            query = query.where(Site.id == self._sites.get(site).id)
        lines: list[FleetUsageLine] = []
        reach: list[SiteUsageAsOf] = []
        total = 0.0
        asked = (tenant, start, end, group_by, msgspec.json.encode(books))
        for site_id, name, acked, created in tuples(query.order_by(Site.name)):
            with self._lock:  # a ledger is folded further by one report at a time
                held = self._ledger(site_id, acked, created)
                found = held.reports.get(asked)
                if found is None:
                    buckets = self._buckets(held, tenant, start, end)
                    found = rated(buckets, group_by, books)
                    if len(held.reports) >= _REPORTS_KEPT:
                        held.reports.clear()
                    held.reports[asked] = found
            total += found.total_cost or 0.0
            reach.append(SiteUsageAsOf(site=name, acked_seq=acked, as_of=held.as_of))
            lines += [FleetUsageLine(site=name, **msgspec.structs.asdict(x)) for x in found.lines]
        return FleetUsageReport(
            from_=iso(start),
            to=iso(end),
            group_by=group_by,
            site=site,
            tenant=tenant,
            currency=books[-1].currency if books else None,
            total_cost=round(total, 6) if books else None,
            sites=reach,
            lines=lines,
        )

    @staticmethod
    def _buckets(held: _SiteLedger, tenant: str | None, start: int, end: int) -> Buckets:
        # Open holdings end at the newest entry (the ledger never ends them earlier
        # than the last metered one).
        until = parse_time_us(held.as_of) or 0
        return only_tenant(held.ledger.buckets(start, end, until), tenant)

    def _ledger(self, site_id: int, acked: int, created: int) -> _SiteLedger:
        cached = self._ledgers.get(site_id)
        if cached is None or cached.created_at != created or cached.acked_seq > acked:
            cached = _SiteLedger(created, acked, site_ledger(site_id, acked), None)
        elif cached.acked_seq < acked:
            self._follow(site_id, cached, acked)
        else:
            return cached
        newest = sql.fetchone(_NEWEST, (site_id, acked))
        cached.as_of = newest[0] if newest else None
        cached.acked_seq = acked
        cached.reports.clear()
        self._ledgers[site_id] = cached
        return cached

    @staticmethod
    def _follow(site_id: int, cached: _SiteLedger, acked: int) -> None:
        """Fold what arrived since; a new rollup may cover entries never shipped, so
        the ledger is then rebuilt from the rollups."""
        fresh = sql.fetchall(_ROLLUPS, (site_id, cached.acked_seq, acked, ROLLUP_KIND))
        if fresh:
            cached.ledger = site_ledger(site_id, acked)
        else:
            cached.ledger.feed_all(site_entries(site_id, cached.acked_seq, acked))
