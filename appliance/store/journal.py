"""The journal: every state change, in the same transaction, with a gap-free seq.

Writers call ``append`` inside ``write_transaction()``; the sequence counter lives in
the Meta table (not max(seq)) so it stays gap-free and monotonic after compaction.

Every entry records its actor, so the journal is an audit trail. The actor is ambient
(a context variable) rather than a parameter of every service call: the API sets it
once per request from the authenticated principal, and the node's jobs set their own
with ``acting_as``; code that sets none writes ``job:node``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import msgspec
import peewee

from appliance.store import space
from appliance.store.journal_clock import MonotonicClock
from appliance.store.models import JournalEntry, Meta, db_proxy, utcnow
from towerbox_core.errors import StorageFull, StoreBusy, is_disk_full, is_lock_contention
from towerbox_core.metering.fold import CLOCK_STEPPED
from towerbox_core.wire import Actor, WireEntry, journal_checksum

log = logging.getLogger(__name__)

NODE_ACTOR = Actor(job="node")
_actor: ContextVar[Actor] = ContextVar("journal_actor", default=NODE_ACTOR)


def set_actor(actor: Actor) -> None:
    """Make ``actor`` the author of entries written from here on in this context.

    For a request's whole handling (each request runs in its own context, and worker
    threads get a copy of it); elsewhere use ``acting_as``, which restores the previous.
    """
    _actor.set(actor)


@contextmanager
def acting_as(actor: Actor) -> Iterator[None]:
    reset = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(reset)


def current_actor() -> Actor:
    return _actor.get()


# The time an entry records: metering bills by it. Tests and benchmarks replace it to
# drive a scripted day in seconds.
_clock: Callable[[], dt.datetime] = utcnow


def now() -> dt.datetime:
    """The journal's time now (the clock entries are stamped with)."""
    return _clock()


def set_clock(clock: Callable[[], dt.datetime]) -> Callable[[], dt.datetime]:
    """Use ``clock`` for new entries' times; returns the one it replaces."""
    global _clock  # one clock per process, like the database
    previous, _clock = _clock, clock
    return previous


def newest_time() -> dt.datetime | None:
    """The newest entry's time (None for an empty journal)."""
    row = JournalEntry.select(JournalEntry.created_at).order_by(JournalEntry.seq.desc()).first()
    if row is None:
        return None
    when: dt.datetime = row.created_at
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def follow_clock_step() -> bool:
    """Journal a forward step of the wall clock, when the daemon's clock saw one (see
    journal_clock); True when it did. Metering bills nothing inside the gap."""
    if not isinstance(_clock, MonotonicClock):
        return False
    step = _clock.forward_step()
    if step is None:
        return False
    with write_transaction():
        append(
            CLOCK_STEPPED, "node", "clock", {"from": step[0].isoformat(), "to": step[1].isoformat()}
        )
    return True


@contextmanager
def write_transaction(may_use_reserve: bool = False) -> Iterator[None]:
    """A write transaction that takes SQLite's write lock up front.

    BEGIN IMMEDIATE serialises writers, which is what makes the journal's counter
    gap-free without any lock of our own, even across processes. Taking the lock
    first is also what lets SQLite's busy handler wait for another writer: a
    transaction that reads and then writes (or a write while a read statement of the
    same connection is still open) is refused at once with "database is locked".
    A writer that still finds the lock held past the busy timeout raises
    ``StoreBusy`` (503 store_busy, Retry-After).

    On a full disk (below the state directory's reserve, see ``space``; or SQLite's
    SQLITE_FULL, or ENOSPC from a file the transaction writes) the transaction is
    refused or rolled back whole and raises ``StorageFull`` (507 storage_full).
    ``may_use_reserve``: a small write that should still work below the reserve
    (a login, so an operator can look at a full node).
    """
    db = db_proxy.obj
    if not isinstance(db, peewee.SqliteDatabase):
        raise TypeError("the state database is not open")
    space.check_writable(may_use_reserve)
    guard = space.current()
    mark = len(_pending())
    try:
        with db.atomic(lock_type="IMMEDIATE"):
            yield
    except BaseException as err:
        # What was appended here is rolled back with it: nobody hears of it.
        del _pending()[mark:]
        _raise_store_error(err, guard)
        raise
    if not db.in_transaction():  # the outermost transaction: committed now
        _announce_committed()


def _raise_store_error(err: BaseException, guard: space.StateSpace | None) -> None:
    """Translate a failed transaction's disk-full or lock error into ours."""
    if isinstance(err, peewee.OperationalError | OSError):
        if is_disk_full(err):
            if guard is None:
                raise StorageFull(f"the state database's disk is full: {err}") from err
            raise guard.hit() from err
        if is_lock_contention(err):
            raise StoreBusy(
                "the state database is busy with another writer; retry shortly"
            ) from err


# -- committed entries, told to whoever listens (the event stream) -----------------

CommitListener = Callable[[list[dict[str, Any]]], None]
_listeners: list[CommitListener] = []
# Entries appended by this thread's open transaction, told once it commits. Per thread:
# each writer thread holds its own connection and transaction.
_local = threading.local()


def _pending() -> list[dict[str, Any]]:
    pending: list[dict[str, Any]] | None = getattr(_local, "pending", None)
    if pending is None:
        pending = _local.pending = []
    return pending


def add_commit_listener(listener: CommitListener) -> Callable[[], None]:
    """Call ``listener`` with the entries of each write transaction, in seq order,
    right after it commits (on the writer's thread: it must be quick and not raise).
    Returns the function that removes it. Nothing is polled: a change is heard of
    as soon as it is durable, and never before."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


def _announce_committed() -> None:
    pending = _pending()
    if not pending:
        return
    entries = list(pending)
    pending.clear()
    for listener in list(_listeners):
        try:
            listener(entries)
        except Exception:  # a listener's bug must not fail a write that is already done
            log.exception("a journal commit listener failed")


@contextmanager
def read_transaction() -> Iterator[None]:
    """Several reads that see one state of the database.

    In WAL mode the snapshot is taken at the first read and kept to the end, so a
    writer (another process's compaction too) that commits meanwhile is not seen.
    """
    db = db_proxy.obj
    if not isinstance(db, peewee.SqliteDatabase):
        raise TypeError("the state database is not open")
    with db.atomic():
        yield


def append(kind: str, object_type: str, object_id: str, state: Any) -> int:
    """Add an entry; must run inside ``write_transaction()``. Returns its seq."""
    db = db_proxy.obj
    if not db.in_transaction():
        raise RuntimeError("journal.append outside a write transaction")
    counter = Meta.get_by_id("journal_next_seq")
    seq = int(counter.value)
    entry = JournalEntry.create(
        seq=seq,
        kind=kind,
        object_type=object_type,
        object_id=object_id,
        state=msgspec.json.encode(state).decode(),
        actor=msgspec.json.encode(_actor.get()).decode(),
        created_at=_clock(),
    )
    Meta.update(value=str(seq + 1)).where(Meta.key == "journal_next_seq").execute()
    if _listeners:
        _pending().append(_entry_dict(entry))
    return seq


def entries(
    after: int = 0, limit: int = 500, kind_prefix: str | None = None
) -> list[dict[str, Any]]:
    query = JournalEntry.select().where(JournalEntry.seq > after)
    if kind_prefix:
        query = query.where(JournalEntry.kind.startswith(kind_prefix))
    return [_entry_dict(e) for e in query.order_by(JournalEntry.seq).limit(limit)]


def _entry_dict(e: JournalEntry) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "kind": e.kind,
        "object_type": e.object_type,
        "object_id": e.object_id,
        "state": msgspec.json.decode(e.state),
        "created_at": e.created_at.isoformat() if e.created_at else None,
        "actor": msgspec.json.decode(e.actor) if e.actor else None,
    }


def entries_before(before: int, limit: int, kind_prefix: str | None = None) -> list[dict[str, Any]]:
    """Up to ``limit`` entries with seq < ``before``, newest first (history pages back)."""
    query = JournalEntry.select().where(JournalEntry.seq < before)
    if kind_prefix:
        query = query.where(JournalEntry.kind.startswith(kind_prefix))
    rows = query.order_by(JournalEntry.seq.desc()).limit(limit)
    return [_entry_dict(e) for e in rows]


def named_states(object_ids: Collection[str], before: int) -> Iterator[tuple[str, Any]]:
    """(object_id, state) of the entries before ``before`` that hold a state for one of
    ``object_ids``, newest first: where a deletion's name is found."""
    if not object_ids:
        return
    query = (
        JournalEntry.select(JournalEntry.object_id, JournalEntry.state)
        .where(
            (JournalEntry.seq < before)
            & JournalEntry.object_id.in_(list(object_ids))
            & (JournalEntry.state != "null")
        )
        .order_by(JournalEntry.seq.desc())
        .tuples()
    )
    for object_id, state in query.iterator():
        yield object_id, msgspec.json.decode(state)


def metering_entries(
    after: int = 0, kinds: tuple[str, ...] | None = None
) -> Iterator[tuple[int, str, str, Any, str | None]]:
    """(seq, kind, object_id, state, created_at) after ``after``, in seq order, streamed."""
    query = JournalEntry.select(
        JournalEntry.seq,
        JournalEntry.kind,
        JournalEntry.object_id,
        JournalEntry.state,
        JournalEntry.created_at,
    ).where(JournalEntry.seq > after)
    if kinds is not None:
        query = query.where(JournalEntry.kind.in_(kinds))
    for seq, kind, object_id, state, created in (
        query.order_by(JournalEntry.seq).tuples().iterator()
    ):
        at = created.isoformat() if isinstance(created, dt.datetime) else created
        yield seq, kind, object_id, msgspec.json.decode(state), at


def head() -> int:
    """The seq of the newest entry written (0 when none)."""
    return int(Meta.get_by_id("journal_next_seq").value) - 1


# -- sync bookkeeping: what the registry holds, and where compaction reached ------

_ACKED = "journal_acked_seq"
_COMPACTED = "journal_compacted_through"


def _meta_int(key: str) -> int:
    row = Meta.get_or_none(Meta.key == key)
    return int(row.value) if row else 0


def acked_seq() -> int:
    """The highest seq the registry is known to hold (0 before the first ack)."""
    return _meta_int(_ACKED)


def compacted_through() -> int:
    """Seqs at or below this may be gone for good: compaction kept one per object."""
    return _meta_int(_COMPACTED)


def record_ack(seq: int) -> int:
    """Move the acked seq forward (never back); must run inside ``write_transaction()``.

    Returns the acked seq after the call. An ack beyond the head is the caller's error.
    """
    current = acked_seq()
    if seq > current:
        Meta.insert(key=_ACKED, value=str(seq)).on_conflict_replace().execute()
        return seq
    return current


def record_compacted_through(seq: int) -> None:
    """Must run inside ``write_transaction()``; never moves backwards."""
    if seq > compacted_through():
        Meta.insert(key=_COMPACTED, value=str(seq)).on_conflict_replace().execute()


def position() -> tuple[int, int, dt.datetime | None]:
    """(head, acked seq, time of the oldest entry the registry has not acked) in one
    statement: read on every scrape, where building three queries costs more than
    running them."""
    db = db_proxy.obj
    row = db.execute_sql(
        "SELECT (SELECT value FROM meta WHERE key = 'journal_next_seq'),"
        " (SELECT value FROM meta WHERE key = ?),"
        " (SELECT created_at FROM journal WHERE seq >"
        "  COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?), 0)"
        "  ORDER BY seq LIMIT 1)",
        (_ACKED, _ACKED),
    ).fetchone()
    head, acked, oldest = int(row[0]) - 1, int(row[1] or 0), row[2]
    if oldest is None:
        return head, acked, None
    when = dt.datetime.fromisoformat(str(oldest))
    return head, acked, when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def kinds_between(
    after: int, through: int, kinds: Collection[str]
) -> list[tuple[int, str, str, str]]:
    """(seq, kind, object_id, created_at) of the entries of ``kinds`` in
    (``after``, ``through``], in seq order."""
    marks = ",".join("?" * len(kinds))
    cursor = db_proxy.obj.execute_sql(
        f"SELECT seq, kind, object_id, created_at FROM journal"  # noqa: S608 - placeholders only
        f" WHERE seq > ? AND seq <= ? AND kind IN ({marks}) ORDER BY seq",
        (after, through, *kinds),
    )
    return [(int(seq), kind, oid, str(at)) for seq, kind, oid, at in cursor.fetchall()]


def summary(through: int | None = None) -> dict[str, Any]:
    """Count, head and ``towerbox_core.wire.journal_checksum`` of the entries ≤ ``through``.

    The same figures the registry answers for a site, so the two can be compared.
    """
    limit = head() if through is None else min(through, head())
    query = (
        JournalEntry.select(
            JournalEntry.seq,
            JournalEntry.kind,
            JournalEntry.object_type,
            JournalEntry.object_id,
            JournalEntry.state,
            JournalEntry.actor,
        )
        .where(JournalEntry.seq <= limit)
        .order_by(JournalEntry.seq)
        .tuples()
    )
    count = 0
    last = 0

    def wire() -> Iterator[WireEntry]:
        nonlocal count, last
        for seq, kind, object_type, object_id, state, actor in query.iterator():
            count += 1
            last = seq
            yield WireEntry(
                seq,
                kind,
                object_type,
                object_id,
                msgspec.json.decode(state),
                actor=msgspec.json.decode(actor, type=Actor) if actor else None,
            )

    checksum = journal_checksum(wire())
    return {"count": count, "head": last, "checksum": checksum}
