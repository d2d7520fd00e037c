"""A ledger: the usage a journal proves, as closed hour buckets and what is open now.

Compaction drops old entries, so before it does, the node journals a rollup: the
meter's state at the compaction bound and the hour buckets the entries since the
previous rollup closed. A reader (the node at start, the registry for a report)
sums every rollup's buckets, resumes from the newest rollup's meter, and folds the
entries after its bound; with no rollup, it folds the whole journal. A ledger that
folded the entries itself ignores rollups: they say what it already knows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from towerbox_core.metering.fold import ROLLUP_KIND, Interval, Meter, MeterState
from towerbox_core.metering.report import HOUR_US, Buckets, add_interval

Entry = tuple[int, str, str, Any, str | None]  # seq, kind, object_id, state, created_at
# (tenant, resource) -> unit-microseconds since the journal began.
Totals = dict[tuple[str, str], int]
_FOREVER = 2**62


class Rollup(msgspec.Struct, frozen=True):
    """A ``usage.rollup`` entry's state (object id: its bound, so none replaces another)."""

    through: int  # the compaction bound: entries up to it may be gone
    meter: MeterState
    # (tenant, resource, hour in µs, unit-µs) closed by entries after the previous bound
    closed: list[tuple[str, str, int, int]]


class Ledger:
    def __init__(self, meter: MeterState | None = None, closed: Buckets | None = None) -> None:
        self.meter = Meter(meter)
        self.closed: Buckets = dict(closed or {})
        # Kept alongside the buckets so a counter never sums every hour the node has seen.
        self._totals: Totals = {}
        for (tenant, resource, _), unit_us in self.closed.items():
            self._add_total(tenant, resource, unit_us)
        # The first and last hour a closed bucket has: a period covering both takes
        # every bucket without looking at each.
        hours = [k[2] for k in self.closed]
        self._span = (min(hours), max(hours)) if hours else (_FOREVER, -1)

    @property
    def seq(self) -> int:
        return self.meter.state.seq

    def feed(
        self, seq: int, kind: str, object_id: str, state: Any, at: str | None
    ) -> list[Interval]:
        """Fold one entry; returns the intervals it closed."""
        if seq <= self.seq or kind == ROLLUP_KIND:
            return []
        closed = self.meter.feed(seq, kind, object_id, state, at)
        for interval in closed:
            add_interval(self.closed, interval, 0, _FOREVER)
            self._add_total(
                interval.tenant,
                interval.resource,
                interval.amount * (interval.end_us - interval.start_us),
            )
            lo, hi = self._span
            self._span = (
                min(lo, interval.start_us - interval.start_us % HOUR_US),
                max(hi, (interval.end_us - 1) - (interval.end_us - 1) % HOUR_US),
            )
        return closed

    def feed_all(self, entries: Iterable[Entry]) -> list[Interval]:
        """Fold entries in seq order; returns the intervals they closed."""
        closed: list[Interval] = []
        for entry in entries:
            closed += self.feed(*entry)
        return closed

    def buckets(self, from_us: int, to_us: int, now_us: int) -> Buckets:
        """Hour buckets in [from, to): closed ones, and the open holdings until now."""
        found = self.closed_buckets(from_us, to_us)
        for tenant, resource, amount, since, until in self.open_spans(now_us):
            held = Interval(tenant, resource, "", amount, since, until)
            add_interval(found, held, from_us, to_us)
        return found

    def closed_buckets(self, from_us: int, to_us: int, tenant: str | None = None) -> Buckets:
        """The closed hour buckets in [from's hour, to): a closed bucket counts whole
        (from and to fall on the hour, or ``to`` is now); one tenant's, or all."""
        return dict(self.closed_items(from_us, to_us, tenant))

    def closed_items(
        self, from_us: int, to_us: int, tenant: str | None = None
    ) -> Iterable[tuple[tuple[str, str, int], int]]:
        """The same as ``closed_buckets``, without copying them: read at once."""
        first = from_us - from_us % HOUR_US
        lo, hi = self._span
        if first <= lo and hi < to_us and tenant is None:
            return self.closed.items()
        return (
            (k, v)
            for k, v in self.closed.items()
            if first <= k[2] < to_us and (tenant is None or k[0] == tenant)
        )

    def open_spans(self, now_us: int) -> list[tuple[str, str, int, int, int]]:
        """(tenant, resource, amount, since, until) of the holdings open now, until now.
        Holdings open since the same time are one amount (a tenant's disks since the
        month began), so they are cut into hours once: the sums are the same integers."""
        until = max(now_us, self.meter.state.at_us)
        merged: dict[tuple[str, str, int], int] = {}
        for iv in self.meter.open_intervals(until):
            key = (iv.tenant, iv.resource, iv.start_us)
            merged[key] = merged.get(key, 0) + iv.amount
        return [(t, r, amount, since, until) for (t, r, since), amount in merged.items()]

    def totals(self, now_us: int) -> Totals:
        """Unit-microseconds per tenant and resource: every closed interval, and the
        open holdings until now. Costs the open holdings, not the hours behind."""
        found = dict(self._totals)
        for iv in self.meter.open_intervals(max(now_us, self.meter.state.at_us)):
            key = (iv.tenant, iv.resource)
            found[key] = found.get(key, 0) + iv.amount * (iv.end_us - iv.start_us)
        return found

    def _add_total(self, tenant: str, resource: str, unit_us: int) -> None:
        key = (tenant, resource)
        self._totals[key] = self._totals.get(key, 0) + unit_us


def from_rollups(rollups: list[Rollup]) -> Ledger:
    """A ledger resumed from a journal's rollups (in seq order), ready for the entries
    after the newest one's bound."""
    if not rollups:
        return Ledger()
    closed: Buckets = {}
    for rollup in rollups:
        for tenant, resource, hour, unit_us in rollup.closed:
            key = (tenant, resource, hour)
            closed[key] = closed.get(key, 0) + unit_us
    newest = rollups[-1]
    meter = msgspec.convert(msgspec.to_builtins(newest.meter), MeterState)
    return Ledger(meter, closed)


def rollup_of(state: Any) -> Rollup:
    """A ``usage.rollup`` entry's state, as the journal (or the registry) holds it."""
    return msgspec.convert(state, Rollup)


def rebuild(rollups: list[Rollup], entries_after: Callable[[int], Iterable[Entry]]) -> Ledger:
    """A ledger for a whole journal: its rollups, then the entries after the newest
    one's bound (``entries_after(seq)``, in seq order). The node at start and the
    registry for each site's report both build theirs this way."""
    ledger = from_rollups(rollups)
    ledger.feed_all(entries_after(rollups[-1].through if rollups else 0))
    return ledger


def next_rollup(previous: Rollup | None, entries: Iterable[Entry], through: int) -> Rollup:
    """The rollup for a compaction through ``through``: ``entries`` are those after the
    previous rollup's bound, up to ``through``."""
    start = msgspec.convert(msgspec.to_builtins(previous.meter), MeterState) if previous else None
    ledger = Ledger(start)
    ledger.feed_all(e for e in entries if e[0] <= through)
    ledger.meter.state.seq = max(ledger.seq, through)
    closed = [(t, r, h, v) for (t, r, h), v in sorted(ledger.closed.items())]
    return Rollup(through=through, meter=ledger.meter.state, closed=closed)
