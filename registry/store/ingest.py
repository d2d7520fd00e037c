"""Storing a site's journal batch: idempotent by (site, seq), all or nothing.

One transaction per batch. The site's row is locked first (BEGIN IMMEDIATE on
SQLite, SELECT ... FOR UPDATE on PostgreSQL), so two requests for the same site —
from two workers, or an agent resending after a cut — run one after the other and
the second sees what the first stored. The unique (site, seq) key is the backstop.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import msgspec
import peewee

from registry.errors import BadRequest, JournalConflict, SequenceGap
from registry.store import sql
from registry.store.models import db_proxy
from towerbox_core.fmt import problem_line
from towerbox_core.wire import Actor, JournalAck, JournalBatch, WireEntry

CHUNK = 400  # values per IN (...) list: under both engines' bound-parameter limits
MAX_SEQ = 2**63 - 1
_LIMITS = {"kind": 64, "object_type": 64, "object_id": 255}
_ACTOR_PART_MAX = 128
_REASON_CHARS = 1000  # a reason is a line on a page; the whole entry stays in detail
_CONFLICT_KINDS = {"desired.rejected": "rejected", "desired.conflict": "conflict"}
# Kinds that report on an object without changing it: drift the node's reconciler
# found. They stay in the journal; folded, a report on a VM the node no longer has
# came back as a live VM with a name and no state, and no later entry cleared it.
_REPORT_PREFIXES = ("drift.",)
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


@dataclass
class _Fold:
    """Where one object ends after the batch; ``merge`` when it builds on stored state."""

    state: Any
    seq: int
    as_of: str | None
    merge: bool


@contextmanager
def site_write_lock(site_id: int) -> Iterator[tuple[int, int]]:
    """A transaction holding the site's write lock; yields (acked_seq, compacted_through)."""
    db = db_proxy.obj
    if isinstance(db, peewee.SqliteDatabase):
        # One writer at a time for the whole file; taken up front, so no deadlock.
        with db.atomic(lock_type="IMMEDIATE"):
            yield _site_head(sql.SITE_HEAD, site_id)
        return
    with db.atomic():
        yield _site_head(sql.SITE_HEAD_FOR_UPDATE, site_id)


def _site_head(statement: str, site_id: int) -> tuple[int, int]:
    row = sql.fetchone(statement, (site_id,))
    if row is None:  # deleted between authentication and now
        raise BadRequest("this site no longer exists", code="site_not_found")
    return int(row[0]), int(row[1])


def check_batch(batch: JournalBatch) -> None:
    """Refuse what no database state could make valid: order, ranges, field sizes."""
    previous = 0
    if not 0 <= batch.compacted_through <= MAX_SEQ:
        # Past 2^63-1 it once reached the database and answered 500.
        raise BadRequest(
            f"compacted_through {batch.compacted_through} out of range (0 to 2^63-1)",
            code="invalid_batch",
        )
    for index, entry in enumerate(batch.entries):
        if not 0 < entry.seq <= MAX_SEQ:
            raise BadRequest(
                f"entries[{index}]: seq {entry.seq} out of range", code="invalid_entry"
            )
        if entry.seq <= previous:
            raise BadRequest(
                f"entries[{index}]: seq {entry.seq} after {previous}; "
                "entries must be in strictly increasing seq order",
                code="batch_not_ordered",
            )
        previous = entry.seq
        for name, limit in _LIMITS.items():
            value: str = getattr(entry, name)
            if not value or len(value) > limit or "\x00" in value:
                raise BadRequest(
                    f"entries[{index}].{name} must be 1 to {limit} characters without NUL",
                    code="invalid_entry",
                )
        if entry.created_at is not None and (
            len(entry.created_at) > 64 or "\x00" in entry.created_at
        ):
            raise BadRequest(f"entries[{index}].created_at is not valid", code="invalid_entry")
        if entry.actor is not None:
            for name in ("user", "token", "tenant", "job"):
                part: str | None = getattr(entry.actor, name)
                if part is not None and (len(part) > _ACTOR_PART_MAX or "\x00" in part):
                    raise BadRequest(
                        f"entries[{index}].actor.{name} must be at most {_ACTOR_PART_MAX} "
                        "characters without NUL",
                        code="invalid_entry",
                    )


def ingest(site_id: int, batch: JournalBatch, contact_ms: int) -> JournalAck:
    """Store what is new in the batch; see docs/sync-protocol.md for the rules."""
    check_batch(batch)
    entries = batch.entries
    with site_write_lock(site_id) as (held_through, held_compacted):
        acked = held_through
        compacted = max(held_compacted, batch.compacted_through)
        split = 0
        while split < len(entries) and entries[split].seq <= acked:
            split += 1
        if split:
            _check_replays(site_id, entries[:split])
        new = entries[split:]
        expected = acked + 1
        for entry in new:
            # Missing seqs are acceptable only where the node compacted them away.
            if entry.seq != expected and entry.seq - 1 > compacted:
                raise SequenceGap(
                    f"seq {entry.seq} does not follow the {expected - 1} entries held; "
                    f"resend from seq {expected}",
                    expected_seq=expected,
                    acked_seq=acked,
                )
            expected = entry.seq + 1
        if new:
            _store(site_id, new)
            acked = new[-1].seq
        sql.execute(sql.SITE_ADVANCE, (acked, compacted, contact_ms, len(new), site_id))
    return JournalAck(acked_seq=acked, stored=len(new))


def _check_replays(site_id: int, held: Sequence[WireEntry]) -> None:
    """Entries at or below the head must match what is stored, in meaning."""
    stored = {
        row[0]: row[1:]
        for row in sql.fetchall(sql.HELD_ENTRIES, (site_id, held[0].seq, held[-1].seq))
    }
    for entry in held:
        row = stored.get(entry.seq)
        if row is None:
            continue  # at or below compacted_through: a seq the node had compacted away
        kind, object_type, object_id, state, actor = row
        if (kind, object_type, object_id, actor) != (
            entry.kind,
            entry.object_type,
            entry.object_id,
            _encode_actor(entry.actor),
        ) or _decode(state) != entry.state:
            raise JournalConflict(
                f"seq {entry.seq} is already held with different content; the node's "
                "journal was reset or another node uses this site's secret",
                seq=entry.seq,
            )


def _store(site_id: int, new: Sequence[WireEntry]) -> None:
    rows = []
    folds: dict[tuple[str, str], _Fold] = {}
    conflicts = []
    for e in new:
        state = _encode(e.state).decode()
        actor = _encode_actor(e.actor)
        rows.append(
            (site_id, e.seq, e.kind, e.object_type, e.object_id, state, e.created_at, actor)
        )
        if not e.kind.startswith(_REPORT_PREFIXES):
            _fold(folds, e)
        result = _CONFLICT_KINDS.get(e.kind)
        if result is not None:
            conflicts.append(_conflict_row(site_id, e, result, state))
    sql.executemany(sql.INSERT_JOURNAL, rows)
    _apply_folds(site_id, folds)
    sql.executemany(sql.INSERT_CONFLICT, conflicts)


def _encode_actor(actor: Actor | None) -> str | None:
    return None if actor is None else _encode(actor).decode()


def _fold(folds: dict[tuple[str, str], _Fold], e: WireEntry) -> None:
    """An object's state is its entries merged key by key, reset by create or delete.

    Entries like ``vm.state`` carry only what changed ({name, state}); merging keeps
    the spec (tenant, role) that ``vm.created`` brought, with the state it was made in.
    """
    key = (e.object_type, e.object_id)
    previous = folds.get(key)
    resets = e.state is None or not isinstance(e.state, dict) or e.kind.endswith(".created")
    if resets or previous is None or not isinstance(previous.state, dict):
        folds[key] = _Fold(e.state, e.seq, e.created_at, merge=not resets and previous is None)
        return
    folds[key] = _Fold({**previous.state, **e.state}, e.seq, e.created_at, previous.merge)


def _apply_folds(site_id: int, folds: dict[tuple[str, str], _Fold]) -> None:
    to_merge = [key for key, fold in folds.items() if fold.merge]
    if to_merge:
        for key, state in _stored_states(site_id, to_merge).items():
            fold = folds[key]
            if isinstance(state, dict):
                fold.state = {**state, **fold.state}
    deleted = []
    upserts = []
    for (object_type, object_id), fold in folds.items():
        if fold.state is None:
            deleted.append((site_id, object_type, object_id))
            continue
        name, status, tenant, role = summarize(fold.state)
        state = _encode(fold.state).decode()
        upserts.append(
            (
                site_id,
                object_type,
                object_id,
                state,
                fold.seq,
                fold.as_of,
                name,
                status,
                tenant,
                role,
            )
        )
    sql.executemany(sql.DELETE_OBJECT, deleted)
    sql.executemany(sql.UPSERT_OBJECT, upserts)


# The objects a report was journalled for, and the entries of some of a site's objects.
_REPORT_KINDS = " OR ".join("substr(kind, 1, ?) = ?" for _ in _REPORT_PREFIXES)
_REPORTED_OBJECTS = (
    "SELECT DISTINCT site_id, object_type, object_id FROM journal "  # noqa: S608 - placeholders only
    f"WHERE {_REPORT_KINDS}"
)
_OBJECT_ENTRIES = (
    "SELECT seq, kind, object_type, object_id, state, created_at FROM journal "
    "WHERE site_id = ? AND object_id IN "
)


def refold_reported_objects() -> tuple[int, int]:
    """Fold every object a report was journalled for again from its journal, reports
    left out; call inside a transaction. Returns (objects folded, of them gone).

    A registry before reports stopped folding (``_store``) merged them into objects:
    a report after ``vm.deleted``, or on a VM the node never had, left a ghost VM
    with a name and no state, and a report on a live VM left its ``detail`` in the
    VM's state. The current epoch's journal holds every entry the objects were folded
    from, so the fold ``_store`` makes now, run again over it, is what they should be.
    Running it twice changes nothing.
    """
    params = [p for prefix in _REPORT_PREFIXES for p in (len(prefix), prefix)]
    by_site: dict[int, list[tuple[str, str]]] = {}
    for site_id, object_type, object_id in sql.fetchall(_REPORTED_OBJECTS, params):
        by_site.setdefault(int(site_id), []).append((object_type, object_id))
    folded = gone = 0
    for site_id, keys in sorted(by_site.items()):
        folds = _refold(site_id, keys)
        _apply_folds(site_id, folds)
        folded += len(folds)
        gone += sum(1 for fold in folds.values() if fold.state is None)
    return folded, gone


def _refold(site_id: int, keys: list[tuple[str, str]]) -> dict[tuple[str, str], _Fold]:
    # Each object starts from nothing, as it did in this epoch; one the journal holds
    # no change for (only reports) stays nothing and is deleted.
    folds = {key: _Fold(None, 0, None, merge=False) for key in keys}
    ids = sorted({object_id for _, object_id in keys})
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        statement = _OBJECT_ENTRIES + sql.in_list(len(chunk)) + " ORDER BY seq"
        for seq, kind, object_type, object_id, state, created_at in sql.fetchall(
            statement, (site_id, *chunk)
        ):
            if (object_type, object_id) in folds and not kind.startswith(_REPORT_PREFIXES):
                entry = WireEntry(seq, kind, object_type, object_id, _decode(state), created_at)
                _fold(folds, entry)
    return folds


def _stored_states(site_id: int, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    wanted = set(keys)
    ids = sorted({object_id for _, object_id in keys})
    found: dict[tuple[str, str], Any] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        # Only placeholders are formatted into the text; the values are bound.
        statement = sql.OBJECT_STATES + sql.in_list(len(chunk))
        for object_type, object_id, state in sql.fetchall(statement, (site_id, *chunk)):
            if (object_type, object_id) in wanted:
                found[(object_type, object_id)] = _decode(state)
    return found


def _text(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def summarize(state: Any) -> tuple[str | None, str | None, str | None, str | None]:
    """name, status, tenant, role of an object state, for indexed fleet queries and
    /metrics."""
    if not isinstance(state, dict):
        return None, None, None, None
    spec = state.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    return (
        _text(state.get("name", spec.get("name")), 255),
        # A desired-state report says its outcome as "result" (applied, conflict, ...).
        _text(state.get("state", state.get("result")), 32),
        _text(state.get("tenant", spec.get("tenant")), 63),
        _text(state.get("role", spec.get("role")), 32),
    )


def _conflict_row(site_id: int, e: WireEntry, result: str, detail: str) -> tuple[Any, ...]:
    state = e.state if isinstance(e.state, dict) else {}
    version = state.get("version")
    etag = state.get("etag")
    return (
        site_id,
        e.seq,
        e.object_id[:16],
        result,
        version if isinstance(version, int) and -(2**31) <= version < 2**31 else None,
        etag[:64] if isinstance(etag, str) else None,
        _conflict_reason(state),
        detail,
        e.created_at,
    )


def _conflict_reason(state: dict[str, Any]) -> str:
    """Why, in a line: a rejection's code and message (the node reports them as
    ``{"code", "detail"}``), or what a conflict found (``shop: local_override``)."""
    reason = state.get("reason")
    if isinstance(reason, (str, dict)):
        return problem_line(reason)[:_REASON_CHARS]
    found = state.get("conflicts")
    if isinstance(found, list):
        pairs = [
            f"{c.get('object_id')}: {c.get('resolution')}" for c in found if isinstance(c, dict)
        ]
        return "; ".join(pairs)[:_REASON_CHARS]
    return ""
