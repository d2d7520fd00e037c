"""Journal compaction: past a count or age bound, keep only the latest entry per object.

A node offline for a week still writes its journal; without a bound the disk fills.
Entries older than the bound collapse to the newest entry of each kind of each object
(object_type, object_id, kind). Kinds carry different fields — ``vm.created`` the whole
spec and the state at creation, ``vm.state`` only the state — and the registry merges
them in seq order, so the newest entry of every kind is exactly what that merge needs:
each field's last writer is the newest entry of one of the kinds that write it. An
object whose newest entry is its deletion keeps only that. ``compacted_through``
records how far the collapse reached, so the registry accepts the gaps at or below it
and no others.
The sequence counter is untouched: new entries keep counting from where they were.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

import peewee

from appliance.store import journal
from appliance.store.models import JournalEntry, utcnow
from towerbox_core.faults import fault_point

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompactionResult:
    through: int  # compacted_through after the run
    deleted: int


def compaction_bound(keep_entries: int, keep_days: float, now: dt.datetime) -> int:
    """The highest seq that lies past the count or the age bound (0: nothing does)."""
    by_count = max(0, journal.head() - keep_entries)
    cutoff = now - dt.timedelta(days=keep_days)
    # created_at is informational, but "older than a week" is a statement about time;
    # the bound is still a seq, so what gets compacted is a prefix of the journal.
    oldest = (
        JournalEntry.select(peewee.fn.MAX(JournalEntry.seq))
        .where(JournalEntry.created_at < cutoff)
        .scalar()
    )
    return max(by_count, int(oldest or 0))


def compact(
    keep_entries: int,
    keep_days: float,
    now: dt.datetime | None = None,
    before: Callable[[int], None] | None = None,
) -> CompactionResult:
    """Compact the journal prefix past the bounds; one write transaction.

    ``before`` runs first in the same transaction with the bound: metering journals
    the usage the dropped entries prove (a rollup) there, so nothing billable is lost.
    """
    with journal.write_transaction():
        bound = compaction_bound(keep_entries, keep_days, now or utcnow())
        if bound <= journal.compacted_through():
            return CompactionResult(journal.compacted_through(), 0)
        if before is not None:
            before(bound)
        fault_point("journal.compact.before_delete")
        e = JournalEntry
        per_kind = e.select(peewee.fn.MAX(e.seq)).group_by(e.object_type, e.object_id, e.kind)
        newest = e.select(peewee.fn.MAX(e.seq)).group_by(e.object_type, e.object_id)
        gone = e.select(e.object_type, e.object_id).where(e.seq.in_(newest) & (e.state == "null"))
        superseded = e.seq.not_in(per_kind) | (
            peewee.Tuple(e.object_type, e.object_id).in_(gone) & e.seq.not_in(newest)
        )
        deleted = e.delete().where((e.seq <= bound) & superseded).execute()
        journal.record_compacted_through(bound)
        fault_point("journal.compact.before_commit")
    if deleted:
        log.info("journal compacted through seq %d: %d entries removed", bound, deleted)
    return CompactionResult(bound, int(deleted))
