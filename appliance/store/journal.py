"""The journal: every state change, in the same transaction, with a gap-free seq.

Writers call ``append`` inside ``write_transaction()``; the sequence counter lives in
the Meta table (not max(seq)) so it stays gap-free and monotonic after compaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
import peewee

from appliance.store.models import JournalEntry, Meta, db_proxy


@contextmanager
def write_transaction() -> Iterator[None]:
    """A write transaction that takes SQLite's write lock up front.

    BEGIN IMMEDIATE serialises writers, which is what makes the journal's counter
    gap-free without any lock of our own, even across processes.
    """
    db = db_proxy.obj
    if not isinstance(db, peewee.SqliteDatabase):
        raise TypeError("the state database is not open")
    with db.atomic(lock_type="IMMEDIATE"):
        yield


def append(kind: str, object_type: str, object_id: str, state: Any) -> int:
    """Add an entry; must run inside ``write_transaction()``. Returns its seq."""
    db = db_proxy.obj
    if not db.in_transaction():
        raise RuntimeError("journal.append outside a write transaction")
    counter = Meta.get_by_id("journal_next_seq")
    seq = int(counter.value)
    JournalEntry.create(
        seq=seq,
        kind=kind,
        object_type=object_type,
        object_id=object_id,
        state=msgspec.json.encode(state).decode(),
    )
    Meta.update(value=str(seq + 1)).where(Meta.key == "journal_next_seq").execute()
    return seq


def entries(
    after: int = 0, limit: int = 500, kind_prefix: str | None = None
) -> list[dict[str, Any]]:
    query = JournalEntry.select().where(JournalEntry.seq > after)
    if kind_prefix:
        query = query.where(JournalEntry.kind.startswith(kind_prefix))
    return [
        {
            "seq": e.seq,
            "kind": e.kind,
            "object_type": e.object_type,
            "object_id": e.object_id,
            "state": msgspec.json.decode(e.state),
            "created_at": e.created_at.isoformat() if e.created_at else None,
        }
        for e in query.order_by(JournalEntry.seq).limit(limit)
    ]


def head() -> int:
    """The seq of the newest entry written (0 when none)."""
    return int(Meta.get_by_id("journal_next_seq").value) - 1
