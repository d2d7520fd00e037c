"""The journal as history: GET /api/v1/journal/history (newest first, for people)."""

from __future__ import annotations

from typing import Any

import msgspec


class HistoryEntry(msgspec.Struct, frozen=True):
    """One journal entry as an audit line.

    ``object_name`` is the object's name where the entry or an older one gives it
    (null when none does, e.g. a deletion whose history was compacted away);
    ``actor`` is the short form of who made the change (``alice@acme (token ci)``,
    ``job:monitor``); ``summary`` says what changed in a line, ``state`` is all of it.
    """

    seq: int
    at: str | None
    kind: str
    object_type: str
    object_id: str
    object_name: str | None
    actor: str
    summary: str
    state: Any


class HistoryPage(msgspec.Struct, frozen=True):
    """Entries older than ``before``, newest first; ``next_before`` pages further back
    (null at the start of the journal)."""

    head: int
    entries: list[HistoryEntry]
    next_before: int | None
