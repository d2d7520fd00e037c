"""Opening the registry database (SQLite in WAL mode or PostgreSQL) and migrating it.

Migrations are append-only functions, each moving the schema one version up; the
version lives in the ``schema_version`` table so both engines record it the same
way. Several workers may start at once on PostgreSQL: an advisory lock makes one of
them migrate while the others wait and then find nothing to do.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import peewee

from registry.config import DatabaseUrl
from registry.store.ingest import refold_reported_objects
from registry.store.models import (
    TABLES_V1,
    BlobRow,
    JournalArchiveRow,
    PriceBookRow,
    ProvisioningCredential,
    SchemaVersion,
    Site,
    SiteEpoch,
    SiteIdentity,
    db_proxy,
    tuples,
)
from registry.store.rollout_models import RolloutRow, RolloutSiteRow, RolloutWaveRow
from towerbox_core.api.versions import valid_version
from towerbox_core.errors import ConfigError

log = logging.getLogger(__name__)

_SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    # NORMAL is durable in WAL mode except for the last commits on power loss; an
    # agent resends whatever the registry did not ack, so nothing is lost for good.
    "synchronous": "normal",
    "busy_timeout": 10000,
    "cache_size": -65536,  # 64 MiB of page cache: fleet queries stay in memory
}

# Any constant that no other program on the same PostgreSQL uses for its own lock.
_MIGRATION_LOCK_ID = 0x74627267  # "tbrg"


def _v1_initial(db: peewee.Database) -> None:
    db.create_tables(TABLES_V1)


def _v2_journal_actor(db: peewee.Database) -> None:
    """Journal rows keep the actor the node recorded (who made the change)."""
    if "actor" not in {c.name for c in db.get_columns("journal")}:
        db.execute_sql("ALTER TABLE journal ADD COLUMN actor TEXT")  # type: ignore[no-untyped-call]


def _v3_price_books(db: peewee.Database) -> None:
    """The registry's own price book, which rates fleet usage reports."""
    db.create_tables([PriceBookRow])


def _v4_blobs(db: peewee.Database) -> None:
    """Content-addressed blobs: the registry as an artifact origin for its sites."""
    db.create_tables([BlobRow])


def _v5_site_counters(db: peewee.Database) -> None:
    """Per-site journal head, entries and batches ingested: what /metrics aggregates."""
    have = {c.name for c in db.get_columns("site")}
    for column, ddl in (
        ("reported_head", "BIGINT"),
        ("ingested_entries", "BIGINT NOT NULL DEFAULT 0"),
        ("ingested_batches", "BIGINT NOT NULL DEFAULT 0"),
    ):
        if column not in have:
            db.execute_sql(f"ALTER TABLE site ADD COLUMN {column} {ddl}")  # type: ignore[no-untyped-call]
    # The head the sites last reported is in their stored heartbeat: lag is right at
    # once, not only after every site's next heartbeat.
    # Read whole before writing: no update while a cursor still walks the same table.
    for site_id, heartbeat in list(tuples(Site.select(Site.id, Site.heartbeat))):
        head = _heartbeat_head(heartbeat)
        if head is not None:
            Site.update(reported_head=head).where(Site.id == site_id).execute()


def _heartbeat_head(heartbeat: str | None) -> int | None:
    try:
        head = json.loads(heartbeat or "null")["appliance_head"]
    except (ValueError, TypeError, KeyError):
        return None
    # Heartbeats were stored unchecked before: a head the column cannot hold is left out.
    return head if isinstance(head, int) and 0 <= head < 2**63 else None


def _v6_rollouts(db: peewee.Database) -> None:
    """Staged rollouts: a rollout, its waves and its sites (docs/rollouts.md)."""
    db.create_tables([RolloutRow, RolloutWaveRow, RolloutSiteRow], safe=True)


def _v7_enrollment_epochs(db: peewee.Database) -> None:
    """Provisioning credentials, hardware identities of sites, and journal epochs: a
    site re-bound to a new node keeps its old journal in ``journal_archive``."""
    if "epoch" not in {c.name for c in db.get_columns("site")}:
        db.execute_sql("ALTER TABLE site ADD COLUMN epoch BIGINT NOT NULL DEFAULT 1")  # type: ignore[no-untyped-call]
    db.create_tables([ProvisioningCredential, SiteIdentity, SiteEpoch, JournalArchiveRow])


# The columns schema 8 adds to the site table, with the index each version gets.
_VERSION_COLUMNS = (
    "towerbox_version",
    "agent_version",
    "gpu_driver_version",
    "vgpu_manager_version",
)


def _v8_site_versions(db: peewee.Database) -> None:
    """Versions from the heartbeats in indexed columns, host facts kept apart from them."""
    have = {c.name for c in db.get_columns("site")}
    for column, ddl in (
        ("host_facts", "TEXT"),
        ("facts_hash", "VARCHAR(64)"),
        *((name, "VARCHAR(64)") for name in _VERSION_COLUMNS),
    ):
        if column not in have:
            db.execute_sql(f"ALTER TABLE site ADD COLUMN {column} {ddl}")  # type: ignore[no-untyped-call]
    for name in _VERSION_COLUMNS:
        db.execute_sql(f"CREATE INDEX IF NOT EXISTS site_{name} ON site ({name})")  # type: ignore[no-untyped-call]
    # The agent version is in the heartbeats already stored: the skew is right at once.
    for site_id, heartbeat in list(tuples(Site.select(Site.id, Site.heartbeat))):
        version = _heartbeat_field(heartbeat, "agent_version")
        if isinstance(version, str) and valid_version(version):
            Site.update(agent_version=version).where(Site.id == site_id).execute()


def _heartbeat_field(heartbeat: str | None, name: str) -> Any:
    try:
        return json.loads(heartbeat or "null")[name]
    except (ValueError, TypeError, KeyError):
        return None


def _v9_unfold_drift_reports(db: peewee.Database) -> None:
    """Objects the node's drift reports were folded into, folded again without them.

    Before ingest left ``drift.*`` entries out of the fold, a report after
    ``vm.deleted`` (or on a domain the node never had) stored a ghost VM, a name and
    no state, that no later entry cleared; a report on a live VM left its detail in
    the VM's state. The journal keeps the reports; the fleet views count from the
    objects table, so they follow.
    """
    folded, gone = refold_reported_objects()
    if folded:
        log.info(
            "%d objects with drift reports folded again from their journal; %d of them "
            "are deleted or were never created",
            folded,
            gone,
        )


# Append only: MIGRATIONS[i] moves the schema from version i to i + 1.
MIGRATIONS: tuple[Callable[[peewee.Database], None], ...] = (
    _v1_initial,
    _v2_journal_actor,
    _v3_price_books,
    _v4_blobs,
    _v5_site_counters,
    _v6_rollouts,
    _v7_enrollment_epochs,
    _v8_site_versions,
    _v9_unfold_drift_reports,
)
SCHEMA_VERSION = len(MIGRATIONS)


class _ReconnectingPostgres(peewee.PostgresqlDatabase):
    """PostgreSQL that drops a connection the server closed (a restart, a failover)
    before using it again.

    Each worker thread keeps its connection; after a server restart the first query
    on it fails (answered 503 store_unavailable) and psycopg2 marks it closed. Without
    this, the thread would keep it and fail every request after; with it, the next
    request on the thread connects afresh.
    """

    def cursor(self, named_cursor: Any = None) -> Any:
        state = self._state  # type: ignore[attr-defined]  # peewee's per-thread connection
        if state.conn is not None and state.conn.closed:
            log.warning("the database connection was closed by the server; reconnecting")
            state.reset()
        return super().cursor(named_cursor)  # type: ignore[no-untyped-call]


def connect(url: DatabaseUrl) -> peewee.Database:
    """Open the database the URL names and bind the models to it (no migration)."""
    db: peewee.Database
    if url.kind == "sqlite":
        Path(url.path).parent.mkdir(parents=True, exist_ok=True)
        db = peewee.SqliteDatabase(url.path, pragmas=_SQLITE_PRAGMAS)
    else:
        db = _ReconnectingPostgres(
            url.dbname,
            user=url.user or None,
            password=url.password or None,
            host=url.host or None,
            port=url.port,
        )
    db_proxy.initialize(db)
    try:
        db.connect(reuse_if_open=True)
    except peewee.OperationalError as err:
        raise ConfigError(
            f"cannot open the registry database: {err}".strip(), code="database_unavailable"
        ) from err
    if url.kind == "sqlite":
        # The database holds password, token and secret hashes: keep it private.
        for suffix in ("", "-wal", "-shm"):
            p = Path(url.path + suffix)
            if p.exists():
                os.chmod(p, 0o600)
    return db


def open_database(url: DatabaseUrl) -> peewee.Database:
    db = connect(url)
    migrate(db)
    return db


def current_version(db: peewee.Database) -> int:
    if not db.table_exists(SchemaVersion._meta.table_name):
        return 0
    row = SchemaVersion.get_or_none(SchemaVersion.id == 1)
    return int(row.version) if row else 0


def migrate(db: peewee.Database) -> None:
    with _migration_lock(db):
        current = current_version(db)
        if current > SCHEMA_VERSION:
            raise ConfigError(
                f"registry database schema is version {current}, newer than this Towerbox "
                f"({SCHEMA_VERSION}); upgrade Towerbox or restore a matching backup",
                code="schema_too_new",
            )
        for version in range(current, SCHEMA_VERSION):
            MIGRATIONS[version](db)
            SchemaVersion.insert(id=1, version=version + 1).on_conflict(
                conflict_target=[SchemaVersion.id], preserve=[SchemaVersion.version]
            ).execute()
            log.info("registry database migrated to schema version %d", version + 1)


@contextmanager
def _migration_lock(db: peewee.Database) -> Iterator[None]:
    """One transaction around all migrations; on PostgreSQL also a cluster-wide lock."""
    if isinstance(db, peewee.SqliteDatabase):
        with db.atomic(lock_type="IMMEDIATE"):
            yield
        return
    with db.atomic():
        db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_ID,))  # type: ignore[no-untyped-call]
        yield
