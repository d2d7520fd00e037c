"""Metering on the node: usage reports from the journal, price books, rollups.

The ledger is built once from the journal (resuming from the newest rollup) and then
follows it: each report first folds the entries written since. Nothing is sampled
and nothing is kept outside the journal, so a crash loses nothing: the next start
folds the same entries to the same figures. Compaction asks for a rollup first.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import msgspec

from appliance.services.auth import Principal
from appliance.store import journal
from appliance.store.models import Meta, Tenant
from towerbox_core.api.usage import PriceBooks, UsageReport
from towerbox_core.errors import NotFound
from towerbox_core.metering.fold import METERED_KINDS, NODE_TENANT, ROLLUP_KIND, parse_time_us
from towerbox_core.metering.ledger import Ledger, Rollup, Totals, next_rollup, rebuild, rollup_of
from towerbox_core.metering.period import iso, parse_period
from towerbox_core.metering.prices import PriceBook, check_book, scheduled_version
from towerbox_core.metering.report import Buckets, Rated, Tally, rated_tally

log = logging.getLogger(__name__)

_BOOKS = "price_books"
_decode_books = msgspec.json.Decoder(list[PriceBook]).decode


def now_us() -> int:
    """Now on the journal's clock: a report's open intervals end where entries would."""
    return parse_time_us(journal.now().isoformat()) or 0


class MeteringService:
    def __init__(self, clock: Callable[[], int] = now_us) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._ledger: Ledger | None = None
        self._bound = 0  # the journal's compaction bound when the ledger last followed it

    # -- reports -----------------------------------------------------------------------

    def usage(
        self,
        principal: Principal,
        tenant: str | None,
        from_: str | None,
        to: str | None,
        group_by: str,
    ) -> UsageReport:
        scope = self._scope(principal, tenant)
        now = self._clock()
        start, end = parse_period(from_, to, now)
        found = self.report(start, end, now, group_by, scope)
        return UsageReport(
            from_=iso(start),
            to=iso(end),
            group_by=group_by,
            tenant=scope or None,
            currency=found.currency,
            total_cost=found.total_cost,
            lines=found.lines,
        )

    def report(
        self, start: int, end: int, now: int, group_by: str, tenant: str | None = None
    ) -> Rated:
        """[start, end) rated: the closed hours as the ledger keeps them, and the
        holdings still open cut only where a period or a price version begins."""
        tally = Tally(group_by, self.books().versions)
        with self._lock:
            ledger = self._follow()
            tally.add_buckets(ledger.closed_items(start, end, tenant))
            for held, resource, amount, since, until in ledger.open_spans(now):
                if tenant is None or held == tenant:
                    tally.add_span(held, resource, amount, max(since, start), min(until, end))
        return rated_tally(tally)

    def buckets(self, start: int, end: int, now: int) -> Buckets:
        with self._lock:
            ledger = self._follow()
            return ledger.buckets(start, end, now)

    def totals(self) -> Totals:
        """Unit-microseconds per tenant and resource since the journal began, up to now:
        what /metrics counts. Folds only the entries written since the last call."""
        now = self._clock()
        with self._lock:
            return self._follow().totals(now)

    def _follow(self) -> Ledger:
        # One snapshot: a compaction that commits between the two reads would drop
        # entries the feed then never sees.
        with journal.read_transaction():
            bound = journal.compacted_through()
            ledger = self._ledger
            # A compaction since the last follow may have dropped entries this ledger
            # has not folded yet (superseded before it read them: a VM's stop under
            # its later start). Its rollup stands for them, so the ledger is built
            # again from the rollups, as at start, instead of folding past the gap.
            if ledger is None or (bound != self._bound and bound > ledger.seq):
                ledger = rebuild(
                    self._rollups(), lambda after: journal.metering_entries(after, METERED_KINDS)
                )
            else:
                ledger.feed_all(journal.metering_entries(ledger.seq, METERED_KINDS))
        self._ledger, self._bound = ledger, bound
        return ledger

    @staticmethod
    def _scope(principal: Principal, tenant: str | None) -> str | None:
        """The tenant whose usage the caller gets (None: every tenant's)."""
        if principal.can_see(None):
            if tenant is not None and tenant != NODE_TENANT and not _tenant_exists(tenant):
                raise NotFound(f"no tenant {tenant!r}", code="tenant_not_found", field="tenant")
            return tenant
        principal.refuse_sync_agent()
        if principal.tenant is None or tenant not in (None, principal.tenant):
            raise NotFound(f"no tenant {tenant!r}", code="tenant_not_found", field="tenant")
        return principal.tenant

    # -- compaction --------------------------------------------------------------------

    @staticmethod
    def _rollups() -> list[Rollup]:
        return [
            rollup_of(state) for _, _, _, state, _ in journal.metering_entries(0, (ROLLUP_KIND,))
        ]

    def write_rollup(self, bound: int) -> None:
        """Journal the usage entries up to ``bound`` prove; in compaction's transaction."""
        rollups = self._rollups()
        previous = rollups[-1] if rollups else None
        if previous is not None and previous.through >= bound:
            return
        after = previous.through if previous else 0
        rollup = next_rollup(previous, journal.metering_entries(after, METERED_KINDS), bound)
        journal.append(ROLLUP_KIND, "usage", str(bound), msgspec.to_builtins(rollup))
        log.info("usage rolled up through seq %d before compaction", bound)

    # -- price books -------------------------------------------------------------------

    @staticmethod
    def books() -> PriceBooks:
        row = Meta.get_or_none(Meta.key == _BOOKS)
        return PriceBooks(versions=_decode_books(row.value) if row else [])

    def add_book(self, principal: Principal, book: PriceBook) -> PriceBooks:
        """A new version (infra-admin), effective on the hour and after the newest."""
        principal.require_infra_admin()
        with journal.write_transaction():
            versions = self.books().versions
            check_book(book, versions[-1] if versions else None, self._clock())
            for tenant in book.tenant_rates:
                if not _tenant_exists(tenant):
                    raise NotFound(
                        f"no tenant {tenant!r}",
                        code="tenant_not_found",
                        field=f"tenant_rates.{tenant}",
                    )
            versions = [*versions, book]
            value = msgspec.json.encode(versions).decode()
            Meta.insert(key=_BOOKS, value=value).on_conflict_replace().execute()
            journal.append(
                "prices.version", "prices", book.effective_from, msgspec.to_builtins(book)
            )
        log.info("price book effective %s added", book.effective_from)
        return PriceBooks(versions=versions)

    def remove_book(self, principal: Principal, effective_from: str) -> PriceBooks:
        """Withdraw a version not yet in effect (infra-admin)."""
        principal.require_infra_admin()
        with journal.write_transaction():
            versions = self.books().versions
            gone = versions.pop(scheduled_version(versions, effective_from, self._clock()))
            value = msgspec.json.encode(versions).decode()
            Meta.insert(key=_BOOKS, value=value).on_conflict_replace().execute()
            journal.append(
                "prices.version_removed", "prices", gone.effective_from, msgspec.to_builtins(gone)
            )
        log.info("price book version effective %s withdrawn", gone.effective_from)
        return PriceBooks(versions=versions)


def _tenant_exists(name: str) -> bool:
    return bool(Tenant.select().where(Tenant.name == name).exists())
