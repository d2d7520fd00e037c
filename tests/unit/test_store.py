from __future__ import annotations

import threading
from pathlib import Path

import peewee
import pytest

from appliance.store import journal
from appliance.store.db import SCHEMA_VERSION, open_database
from appliance.store.models import JournalEntry, Service, ServiceVm, Tenant, Vm
from towerbox_core.errors import ConfigError


@pytest.fixture
def db(tmp_path: Path) -> peewee.SqliteDatabase:
    database = open_database(tmp_path / "state.db")
    yield database
    database.close()


def test_wal_mode_schema_version_and_private_file(
    db: peewee.SqliteDatabase, tmp_path: Path
) -> None:
    assert db.pragma("journal_mode") == "wal"
    assert db.pragma("user_version") == SCHEMA_VERSION
    assert (tmp_path / "state.db").stat().st_mode & 0o777 == 0o600


def test_reopening_does_not_migrate_twice(db: peewee.SqliteDatabase, tmp_path: Path) -> None:
    with journal.write_transaction():
        journal.append("x", "t", "1", {})
    db.close()
    again = open_database(tmp_path / "state.db")
    assert journal.head() == 1
    again.close()


def test_newer_schema_is_refused(db: peewee.SqliteDatabase, tmp_path: Path) -> None:
    db.pragma("user_version", SCHEMA_VERSION + 1)
    db.close()
    with pytest.raises(ConfigError, match="newer than this Towerbox"):
        open_database(tmp_path / "state.db")


def test_entry_is_written_with_the_change_or_not_at_all(db: peewee.SqliteDatabase) -> None:
    with journal.write_transaction():
        Tenant.create(name="acme")
        journal.append("tenant.created", "tenant", "acme", {"name": "acme"})
    with pytest.raises(RuntimeError):
        _failing_write()
    assert [t.name for t in Tenant.select()] == ["acme"]
    assert [e["seq"] for e in journal.entries()] == [1]
    # The rolled-back entry did not use up a number: the next one is 2.
    with journal.write_transaction():
        assert journal.append("tenant.created", "tenant", "gamma", None) == 2


def _failing_write() -> None:
    with journal.write_transaction():
        Tenant.create(name="beta")
        journal.append("tenant.created", "tenant", "beta", {"name": "beta"})
        raise RuntimeError("service failed after writing")


def test_append_outside_a_transaction_is_a_bug(db: peewee.SqliteDatabase) -> None:
    with pytest.raises(RuntimeError):
        journal.append("x", "t", "1", {})


def test_sequence_is_gap_free_under_concurrent_writers(db: peewee.SqliteDatabase) -> None:
    def writer(n: int) -> None:
        for i in range(50):
            with journal.write_transaction():
                journal.append("test", "t", f"{n}-{i}", {"i": i})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = [e.seq for e in JournalEntry.select().order_by(JournalEntry.seq)]
    assert seqs == list(range(1, 201))
    assert journal.head() == 200
    assert len(journal.entries(after=150, limit=1000)) == 50


def test_schema_4_adds_the_journal_actor_and_tenant_labels_to_an_older_database(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    old = open_database(path)
    with journal.write_transaction():
        journal.append("tenant.created", "tenant", "acme", {})
    old.execute_sql("ALTER TABLE journal DROP COLUMN actor")  # type: ignore[no-untyped-call]
    old.execute_sql("ALTER TABLE tenant DROP COLUMN labels")  # type: ignore[no-untyped-call]
    old.pragma("user_version", 3)
    old.close()
    db = open_database(path)
    try:
        assert db.pragma("user_version") == SCHEMA_VERSION
        # Entries from before the migration have no actor; new ones have one.
        assert journal.entries()[0]["actor"] is None
        with journal.write_transaction():
            Tenant.create(name="beta")
            journal.append("tenant.created", "tenant", "beta", {})
        assert journal.entries()[1]["actor"] == {"job": "node"}
        assert Tenant.get_by_id("beta").labels == "{}"
    finally:
        db.close()


def test_schema_5_adds_services_and_a_replica_goes_with_its_vm(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = open_database(path)
    old.execute_sql("DROP TABLE service_vm")  # type: ignore[no-untyped-call]
    old.execute_sql("DROP TABLE service")  # type: ignore[no-untyped-call]
    old.pragma("user_version", 4)
    old.close()
    db = open_database(path)
    try:
        assert db.pragma("user_version") == SCHEMA_VERSION
        assert {"service", "service_vm"} <= set(db.get_tables())
        Service.create(name="shop", tenant="acme", template="{}", state="ready")
        Vm.create(
            id="00000000-0000-0000-0000-000000000001",
            name="shop-db-1",
            spec="{}",
            allocation="{}",
            desired_state="stopped",
            role="other",
        )
        ServiceVm.create(
            vm="00000000-0000-0000-0000-000000000001", service="shop", role="db", number=1
        )
        Vm.delete().execute()
        assert ServiceVm.select().count() == 0  # the foreign key cascades
    finally:
        db.close()
