"""Registry schema migrations on a database made by an older registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.config import DatabaseUrl, parse_database_url
from registry.store import db as store_db
from registry.store.models import BlobRow, JournalRow, Site


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


def test_schema_5_takes_the_journal_head_from_the_last_heartbeat(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if engine == "postgresql":
        url = parse_database_url(request.getfixturevalue("pg_server").create_database(), tmp_path)
    else:
        url = DatabaseUrl("sqlite", path=str(tmp_path / "registry.db"))
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
