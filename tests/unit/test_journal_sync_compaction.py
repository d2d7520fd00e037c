"""Journal compaction and the sync bookkeeping kept beside the journal."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import msgspec
import peewee
import pytest

from appliance.store import journal
from appliance.store.compaction import compact
from appliance.store.db import open_database
from appliance.store.models import JournalEntry
from towerbox_core.wire import WireEntry, journal_checksum


@pytest.fixture
def db(tmp_path: Path) -> Iterator[peewee.SqliteDatabase]:
    database = open_database(tmp_path / "state.db")
    yield database
    database.close()


def _write(objects: list[str], rounds: int) -> None:
    with journal.write_transaction():
        for r in range(rounds):
            for obj in objects:
                journal.append("vm.state", "vm", obj, {"round": r})


def _seqs() -> list[int]:
    return [e.seq for e in JournalEntry.select(JournalEntry.seq).order_by(JournalEntry.seq)]


@pytest.mark.usefixtures("db")
def test_count_bound_keeps_latest_per_object_and_the_tail_whole() -> None:
    _write(["old1", "old2"], rounds=3)  # seqs 1..6, never written again
    _write(["a", "b", "c"], rounds=10)  # seqs 7..36
    result = compact(keep_entries=6, keep_days=365)
    assert result.through == 30
    # ≤ 30: only entries still the newest of their object survive (a, b and c have
    # newer ones in the tail); > 30: everything.
    kept = _seqs()
    assert [s for s in kept if s <= 30] == [5, 6]
    assert [s for s in kept if s > 30] == list(range(31, 37))
    assert result.deleted == 36 - len(kept)
    assert journal.compacted_through() == 30
    # The counter is untouched: the next entry is 37, not a reused number.
    with journal.write_transaction():
        assert journal.append("vm.state", "vm", "a", {"round": 99}) == 37


@pytest.mark.usefixtures("db")
def test_latest_entry_of_an_object_is_never_deleted_even_when_old() -> None:
    with journal.write_transaction():
        journal.append("tenant.created", "tenant", "lonely", {"x": 1})  # seq 1, only entry
    _write(["a"], rounds=20)
    compact(keep_entries=1, keep_days=365)
    states = {(e.object_type, e.object_id): e.seq for e in JournalEntry.select()}
    assert states[("tenant", "lonely")] == 1
    assert states[("vm", "a")] == 21
    assert _seqs() == [1, 21]


@pytest.mark.usefixtures("db")
def test_age_bound_compacts_old_entries_only() -> None:
    _write(["x"], rounds=2)  # 1..2
    _write(["a", "b"], rounds=5)  # 3..12
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    JournalEntry.update(created_at=old).where(JournalEntry.seq <= 8).execute()
    result = compact(keep_entries=1000, keep_days=7)
    assert result.through == 8
    assert _seqs() == [2, 9, 10, 11, 12]


@pytest.mark.usefixtures("db")
def test_compaction_never_moves_back_and_is_idempotent() -> None:
    _write(["a"], rounds=10)
    first = compact(keep_entries=2, keep_days=365)
    again = compact(keep_entries=2, keep_days=365)
    assert (first.through, again.through, again.deleted) == (8, 8, 0)
    compact(keep_entries=1000, keep_days=365)  # a looser bound later
    assert journal.compacted_through() == 8


@pytest.mark.usefixtures("db")
def test_compacted_journal_still_rebuilds_every_objects_current_state() -> None:
    _write([f"vm{i}" for i in range(50)], rounds=7)
    with journal.write_transaction():
        journal.append("vm.deleted", "vm", "vm3", None)
    before = {(e["object_type"], e["object_id"]): e["state"] for e in journal.entries(0, 10_000)}
    compact(keep_entries=10, keep_days=365)
    after = {(e["object_type"], e["object_id"]): e["state"] for e in journal.entries(0, 10_000)}
    assert after == before
    assert after[("vm", "vm3")] is None


def _merged() -> dict[tuple[str, str], object]:
    """Objects rebuilt as the registry does: each entry's fields merged in seq order."""
    objects: dict[tuple[str, str], object] = {}
    for e in journal.entries(0, 10_000):
        key = (e["object_type"], e["object_id"])
        current = objects.get(key)
        if e["state"] is None:
            objects[key] = None
        elif isinstance(current, dict):
            objects[key] = {**current, **e["state"]}
        else:
            objects[key] = e["state"]
    return objects


@pytest.mark.usefixtures("db")
def test_partial_updates_keep_the_full_state_they_merge_onto() -> None:
    with journal.write_transaction():
        journal.append("vm.created", "vm", "v1", {"tenant": "acme", "role": "b2b", "d": "stopped"})
        journal.append("vm.created", "vm", "v2", {"tenant": "beta", "role": "b2b", "d": "stopped"})
        for r in range(20):
            journal.append("vm.state", "vm", "v1", {"state": f"s{r}"})
            journal.append("vm.start" if r % 2 else "vm.stop", "vm", "v1", {"d": f"d{r}"})
        journal.append("vm.deleted", "vm", "v2", None)
    before = _merged()
    result = compact(keep_entries=1, keep_days=365)
    assert result.deleted > 0
    assert _merged() == before
    assert before[("vm", "v1")] == {"tenant": "acme", "role": "b2b", "d": "d19", "state": "s19"}
    kinds = [(e.object_id, e.kind) for e in JournalEntry.select().order_by(JournalEntry.seq)]
    # v1: one entry per kind; v2: only its deletion.
    assert sorted(kinds) == [
        ("v1", "vm.created"),
        ("v1", "vm.start"),
        ("v1", "vm.state"),
        ("v1", "vm.stop"),
        ("v2", "vm.deleted"),
    ]


@pytest.mark.usefixtures("db")
def test_ack_only_moves_forward() -> None:
    _write(["a"], rounds=5)
    with journal.write_transaction():
        assert journal.record_ack(3) == 3
        assert journal.record_ack(2) == 3
        assert journal.record_ack(5) == 5
    assert journal.acked_seq() == 5


@pytest.mark.usefixtures("db")
def test_summary_is_the_wire_checksum_of_the_entries() -> None:
    _write(["a", "b"], rounds=3)
    with journal.write_transaction():
        journal.append("n6.vnet_declared", "n6", "acme/llm", {"z": [1, {"b": 2, "a": 1}]})
    # The actor is part of the checksum: it is what the sync path ships.
    wire = msgspec.convert(journal.entries(0, 100), list[WireEntry])
    assert all(e.actor == journal.NODE_ACTOR for e in wire)
    assert journal.summary() == {"count": 7, "head": 7, "checksum": journal_checksum(wire)}
    assert journal.summary(through=4) == {
        "count": 4,
        "head": 4,
        "checksum": journal_checksum(wire[:4]),
    }
    # Any change to any entry changes the checksum.
    JournalEntry.update(state='{"round": 9}').where(JournalEntry.seq == 2).execute()
    assert journal.summary()["checksum"] != journal_checksum(wire)
