"""Registry schema migrations on a database made by an older registry."""

from __future__ import annotations

from pathlib import Path

from registry.config import DatabaseUrl
from registry.store import db as store_db
from registry.store.models import BlobRow, JournalRow


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
        assert store_db.current_version(db) == store_db.SCHEMA_VERSION == 4
        assert BlobRow.select().count() == 0
    finally:
        db.close()
