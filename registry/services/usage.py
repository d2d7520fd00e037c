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
site's journal: a report folds only what arrived since the last one. Each question
asked of a site (tenant, period, grouping, prices) keeps a tally of the closed usage
it covers; the intervals newly arrived entries close are added to it, so a fleet
whose sites all sent something since the last report costs one fold and a few
intervals per site, not every hour of the month again. Only the holdings still open
are cut anew, where a period or a price version changes. A site that sent nothing new
answers from memory. Reports asked with no ``to`` end at the registry's clock and so
are asked anew each time.

A site re-bound to a replacement node keeps its ended journal epochs in
``journal_archive``: each is folded once into a ledger of its own (its seqs restart
with the next node), whose holdings still open end at the epoch's newest entry, and
counts in the site's figures beside the current epoch's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import msgspec

from registry.services.sites import SiteService
from registry.store import sql
from registry.store.models import Site, SiteEpoch, now_ms, tuples
from towerbox_core.api.usage import FleetUsageLine, FleetUsageReport, SiteUsageAsOf
from towerbox_core.metering.fold import METERED_KINDS, ROLLUP_KIND, Interval, parse_time_us
from towerbox_core.metering.ledger import Entry, Ledger, rebuild, rollup_of
from towerbox_core.metering.period import iso, parse_period
from towerbox_core.metering.prices import PriceBook
from towerbox_core.metering.report import HOUR_US, Rated, Tally, check_group, rated_tally

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
# The same over one ended epoch of a site (registry.store.epochs).
_EPOCH_ENTRIES = (
    "SELECT seq, kind, object_id, state, created_at FROM journal_archive WHERE site_id = ? "  # noqa: S608 - placeholders only
    "AND epoch = ? AND seq > ? AND kind IN " + sql.in_list(len(_KINDS)) + " ORDER BY seq"
)
_EPOCH_ROLLUPS = (
    "SELECT state FROM journal_archive WHERE site_id = ? AND epoch = ? AND kind = ? ORDER BY seq"
)
_EPOCH_NEWEST = (
    "SELECT created_at FROM journal_archive WHERE site_id = ? AND epoch = ? "
    "ORDER BY seq DESC LIMIT 1"
)


Question = tuple[object, ...]  # tenant, from, to, group_by, the price books encoded


@dataclass
class _Asked:
    """One question asked of a site: the closed usage it covers, and its last answer."""

    tenant: str | None
    start: int
    end: int
    closed: Tally
    answer: Rated | None = None

    def add_closed(self, intervals: list[Interval]) -> None:
        """Closed hours count whole, as the ledger's buckets do: [from's hour, to's)."""
        lo = self.start - self.start % HOUR_US
        hi = -(-self.end // HOUR_US) * HOUR_US
        for iv in intervals:
            if self.tenant is None or iv.tenant == self.tenant:
                start, end = max(iv.start_us, lo), min(iv.end_us, hi)
                self.closed.add_span(iv.tenant, iv.resource, iv.amount, start, end)
        self.answer = None


@dataclass
class _SiteLedger:
    created_at: int  # the site row's: a site deleted and made again starts over
    acked_seq: int
    ledger: Ledger
    as_of: str | None  # the newest entry's node time
    epoch: int  # the site's current journal epoch: a re-bound site starts over
    # The ended epochs' ledgers, each with its newest entry's node time.
    ended: list[tuple[Ledger, str | None]] = field(default_factory=list)
    # Questions asked before (a dashboard asks the same month again).
    asked: dict[Question, _Asked] = field(default_factory=dict)


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


def ended_epochs(site_id: int) -> list[tuple[Ledger, str | None]]:
    """A ledger per ended journal epoch of the site, with its newest entry's time."""
    found = []
    for (epoch,) in tuples(
        SiteEpoch.select(SiteEpoch.epoch).where(SiteEpoch.site == site_id).order_by(SiteEpoch.epoch)
    ):
        rollups = [
            rollup_of(_decode(state))
            for (state,) in sql.fetchall(_EPOCH_ROLLUPS, (site_id, epoch, ROLLUP_KIND))
        ]

        def entries(after: int, epoch: int = epoch) -> Iterator[Entry]:
            for seq, kind, object_id, state, created_at in sql.fetchall(
                _EPOCH_ENTRIES, (site_id, epoch, after, *_KINDS)
            ):
                yield seq, kind, object_id, _decode(state), created_at

        newest = sql.fetchone(_EPOCH_NEWEST, (site_id, epoch))
        found.append((rebuild(rollups, entries), newest[0] if newest else None))
    return found


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
        check_group(group_by)
        start, end = parse_period(from_, to, now_ms() * 1000)
        query = Site.select(Site.id, Site.name, Site.acked_seq, Site.created_at, Site.epoch)
        if site is not None:
            query = query.where(Site.id == self._sites.get(site).id)
        lines: list[FleetUsageLine] = []
        reach: list[SiteUsageAsOf] = []
        total = 0.0
        asked = (tenant, start, end, group_by, msgspec.json.encode(books))
        for site_id, name, acked, created, epoch in tuples(query.order_by(Site.name)):
            with self._lock:  # a ledger is folded further by one report at a time
                held = self._ledger(site_id, acked, created, epoch)
                question = held.asked.get(asked)
                if question is None:
                    closed = Tally(group_by, books)
                    closed.add_buckets(held.ledger.closed_items(start, end, tenant))
                    question = _Asked(tenant, start, end, closed)
                    for ledger, as_of in held.ended:  # all closed: those nodes are gone
                        closed.add_buckets(ledger.closed_items(start, end, tenant))
                        _add_open(closed, ledger, as_of, question)
                    if len(held.asked) >= _REPORTS_KEPT:
                        held.asked.clear()
                    held.asked[asked] = question
                if question.answer is None:
                    question.answer = self._answer(held, question)
                found = question.answer
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
    def _answer(held: _SiteLedger, question: _Asked) -> Rated:
        """The closed tally and the holdings still open, which end at the site's newest
        entry (the ledger never ends them earlier than the last metered one)."""
        tally = question.closed.copy()
        _add_open(tally, held.ledger, held.as_of, question)
        return rated_tally(tally)

    def _ledger(self, site_id: int, acked: int, created: int, epoch: int) -> _SiteLedger:
        cached = self._ledgers.get(site_id)
        if (
            cached is None
            or cached.created_at != created
            or cached.epoch != epoch
            or cached.acked_seq > acked
        ):
            cached = _SiteLedger(
                created, acked, site_ledger(site_id, acked), None, epoch, ended_epochs(site_id)
            )
        elif cached.acked_seq < acked:
            self._follow(site_id, cached, acked)
        else:
            return cached
        newest = sql.fetchone(_NEWEST, (site_id, acked))
        cached.as_of = newest[0] if newest else None
        cached.acked_seq = acked
        for question in cached.asked.values():
            question.answer = None  # the open holdings end later now
        self._ledgers[site_id] = cached
        return cached

    @staticmethod
    def _follow(site_id: int, cached: _SiteLedger, acked: int) -> None:
        """Fold what arrived since; a new rollup may cover entries never shipped, so
        the ledger is then rebuilt from the rollups."""
        fresh = sql.fetchall(_ROLLUPS, (site_id, cached.acked_seq, acked, ROLLUP_KIND))
        if fresh:
            cached.ledger = site_ledger(site_id, acked)
            cached.asked.clear()
            return
        closed = cached.ledger.feed_all(site_entries(site_id, cached.acked_seq, acked))
        for question in cached.asked.values():
            question.add_closed(closed)


def _add_open(tally: Tally, ledger: Ledger, as_of: str | None, question: _Asked) -> None:
    """The ledger's holdings still open, ending at its newest entry (``as_of``)."""
    until = parse_time_us(as_of) or 0
    for tenant, resource, amount, since, end in ledger.open_spans(until):
        if question.tenant is None or tenant == question.tenant:
            start, stop = max(since, question.start), min(end, question.end)
            tally.add_span(tenant, resource, amount, start, stop)
