"""Registry schema migrations on a database made by an older registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.config import DatabaseUrl, parse_database_url
from registry.store import db as store_db
from registry.store.models import (
    BlobRow,
    JournalArchiveRow,
    JournalRow,
    SchemaVersion,
    Site,
    SiteEpoch,
)


def test_schema_2_adds_the_journal_actor_and_keeps_old_rows(tmp_path: Path) -> None:
    url = DatabaseUrl("sqlite", path=str(tmp_path / "registry.db"))
    old = store_db.open_database(url)
    old.execute_sql("ALTER TABLE journal DROP COLUMN actor")  # type: ignore[no-untyped-call]
    old.execute_sql("UPDATE schema_version SET version = 1")  # type: ignore[no-untyped-call]
    old.close()
    db = store_db.open_database(url)
    try:
        assert store_db.current_version(db) == store_db.SCHEMA_VERSION
        assert "actor" in {c.name for c in db.get_columns("journal")}
        assert JournalRow.select().count() == 0
    finally:
        db.close()


def test_schema_4_adds_the_blob_table_to_an_older_database(tmp_path: Path) -> None:
    url = DatabaseUrl("sqlite", path=str(tmp_path / "registry.db"))
    old = store_db.open_database(url)
    old.execute_sql("DROP TABLE blob")  # type: ignore[no-untyped-call]
    old.execute_sql("UPDATE schema_version SET version = 3")  # type: ignore[no-untyped-call]
    old.close()
    db = store_db.open_database(url)
    try:
        assert store_db.current_version(db) == store_db.SCHEMA_VERSION
        assert BlobRow.select().count() == 0
    finally:
        db.close()


def _url(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> DatabaseUrl:
    if engine == "postgresql":
        return parse_database_url(request.getfixturevalue("pg_server").create_database(), tmp_path)
    return DatabaseUrl("sqlite", path=str(tmp_path / "registry.db"))


def test_schema_5_takes_the_journal_head_from_the_last_heartbeat(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = _url(engine, tmp_path, request)
    old = store_db.open_database(url)
    beat = '{"agent_version":"1","appliance_head":70,"queued":3,"host":{}}'
    Site.insert(name="beat", heartbeat=beat, acked_seq=60).execute()
    Site.insert(name="quiet").execute()
    huge = '{"agent_version":"1","appliance_head":18446744073709551616,"queued":0,"host":{}}'
    Site.insert(name="huge", heartbeat=huge).execute()
    for column in ("reported_head", "ingested_entries", "ingested_batches"):
        old.execute_sql(f"ALTER TABLE site DROP COLUMN {column}")  # type: ignore[no-untyped-call]
    old.execute_sql("UPDATE schema_version SET version = 4")  # type: ignore[no-untyped-call]
    old.close()
    db = store_db.open_database(url)
    try:
        assert store_db.current_version(db) == store_db.SCHEMA_VERSION
        heads = {s.name: (s.reported_head, s.acked_seq, s.ingested_entries) for s in Site.select()}
        assert heads == {"beat": (70, 60, 0), "quiet": (None, 0, 0), "huge": (None, 0, 0)}
    finally:
        db.close()


def test_schema_7_adds_epochs_and_identities_and_keeps_sites(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = _url(engine, tmp_path, request)
    old = store_db.open_database(url)
    Site.insert(name="kept", acked_seq=7).execute()
    for table in ("journal_archive", "site_epoch", "site_identity", "provisioning_credential"):
        old.execute_sql(f"DROP TABLE {table}")  # type: ignore[no-untyped-call]
    old.execute_sql("ALTER TABLE site DROP COLUMN epoch")  # type: ignore[no-untyped-call]
    before = store_db.MIGRATIONS.index(store_db._v7_enrollment_epochs)
    SchemaVersion.update(version=before).execute()
    old.close()
    db = store_db.open_database(url)
    try:
        assert store_db.current_version(db) == store_db.SCHEMA_VERSION
        kept = Site.get(Site.name == "kept")
        assert (kept.epoch, kept.acked_seq) == (1, 7)
        assert SiteEpoch.select().count() == JournalArchiveRow.select().count() == 0
    finally:
        db.close()


def test_schema_8_adds_the_version_columns_and_takes_the_agents_from_heartbeats(
    tmp_path: Path,
) -> None:
    url = DatabaseUrl("sqlite", path=str(tmp_path / "registry.db"))
    old = store_db.open_database(url)
    beat = '{"agent_version":"0.1.0","appliance_head":7,"queued":0,"host":{"node":"n"}}'
    Site.insert(name="beat", heartbeat=beat).execute()
    odd = '{"agent_version":"0.1 beta","appliance_head":7,"queued":0}'
    Site.insert(name="odd", heartbeat=odd).execute()
    Site.insert(name="quiet").execute()
    columns = ("towerbox_version", "agent_version", "gpu_driver_version", "vgpu_manager_version")
    for column in columns:
        old.execute_sql(f"DROP INDEX site_{column}")  # type: ignore[no-untyped-call]
    for column in ("host_facts", "facts_hash", *columns):
        old.execute_sql(f"ALTER TABLE site DROP COLUMN {column}")  # type: ignore[no-untyped-call]
    before = store_db.MIGRATIONS.index(store_db._v8_site_versions)
    old.execute_sql("UPDATE schema_version SET version = ?", (before,))  # type: ignore[no-untyped-call]
    old.close()
    db = store_db.open_database(url)
    try:
        assert store_db.current_version(db) == store_db.SCHEMA_VERSION
        indexes = {i.name for i in db.get_indexes("site")}
        assert {f"site_{c}" for c in columns} <= indexes
        agents = {s.name: s.agent_version for s in Site.select()}
        assert agents == {"beat": "0.1.0", "odd": None, "quiet": None}
        assert Site.get(Site.name == "beat").host_facts is None  # read from the heartbeat
    finally:
        db.close()
