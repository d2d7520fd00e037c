"""Hand-written statements for the agent's hot paths (ingest, auth, heartbeat).

peewee builds SQL text in Python for every query, which costs more than SQLite takes
to run it: a 10-entry batch spent most of its time there. These statements are plain
SQL that both engines accept (ON CONFLICT ... DO UPDATE, ``||``, boolean columns used
as predicates), written once with the driver's placeholder; many rows go through the
driver's executemany (psycopg2: execute_batch, a few round trips per page).
Everything else keeps using the models.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import peewee

# peewee's own translation of the driver's errors, which its queries run under: a
# statement here fails with peewee.OperationalError, IntegrityError, ... as a model
# query does (the driver's error as its context), never with sqlite3's or psycopg2's.
from peewee import __exception_wrapper__ as _driver_errors  # type: ignore[attr-defined]

from registry.store.models import db_proxy


def _db() -> peewee.Database:
    db: peewee.Database = db_proxy.obj
    return db


def _cursor(db: peewee.Database) -> Any:
    return db.cursor()  # type: ignore[no-untyped-call]


@cache
def _statement(template: str, placeholder: str) -> str:
    return template.replace("?", placeholder)


def fetchall(template: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    db = _db()
    with _driver_errors:
        cursor = _cursor(db)
        try:
            cursor.execute(_statement(template, db.param), params)
            rows: list[tuple[Any, ...]] = cursor.fetchall()
        finally:
            cursor.close()
    return rows


def fetchone(template: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    rows = fetchall(template, params)
    return rows[0] if rows else None


def execute(template: str, params: Sequence[Any]) -> int:
    db = _db()
    with _driver_errors:
        cursor = _cursor(db)
        try:
            cursor.execute(_statement(template, db.param), params)
            count: int = cursor.rowcount
        finally:
            cursor.close()
    return count


def executemany(template: str, rows: Sequence[Sequence[Any]]) -> None:
    if not rows:
        return
    db = _db()
    sql = _statement(template, db.param)
    with _driver_errors:
        cursor = _cursor(db)
        try:
            if isinstance(db, peewee.PostgresqlDatabase):
                from psycopg2.extras import execute_batch  # type: ignore[import-untyped]

                execute_batch(cursor, sql, rows, page_size=250)
            else:
                cursor.executemany(sql, rows)
        finally:
            cursor.close()


def in_list(count: int) -> str:
    """``(?, ?, ...)`` for an IN clause of ``count`` values."""
    return "(" + ", ".join("?" * count) + ")"


INSERT_JOURNAL = (
    "INSERT INTO journal (site_id, seq, kind, object_type, object_id, state, created_at, actor) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
UPSERT_OBJECT = (
    "INSERT INTO objects (site_id, object_type, object_id, state, seq, as_of, name, status, "
    "tenant, role) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (site_id, object_type, object_id) DO UPDATE SET state = excluded.state, "
    "seq = excluded.seq, as_of = excluded.as_of, name = excluded.name, "
    "status = excluded.status, tenant = excluded.tenant, role = excluded.role"
)
DELETE_OBJECT = "DELETE FROM objects WHERE site_id = ? AND object_type = ? AND object_id = ?"
INSERT_CONFLICT = (
    "INSERT INTO conflicts (site_id, seq, kind, result, version, etag, reason, detail, "
    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
OBJECT_STATES = (
    "SELECT object_type, object_id, state FROM objects WHERE site_id = ? AND object_id IN "
)
SITE_HEAD = "SELECT acked_seq, compacted_through FROM site WHERE id = ?"
SITE_HEAD_FOR_UPDATE = SITE_HEAD + " FOR UPDATE"
SITE_ADVANCE = (
    "UPDATE site SET acked_seq = ?, compacted_through = ?, last_contact = ?, "
    "ingested_entries = ingested_entries + ?, ingested_batches = ingested_batches + 1 "
    "WHERE id = ?"
)
HELD_ENTRIES = (
    "SELECT seq, kind, object_type, object_id, state, actor FROM journal "
    "WHERE site_id = ? AND seq BETWEEN ? AND ?"
)
SITE_BY_SECRET = "SELECT id, name FROM site WHERE secret_hash = ?"  # noqa: S105 - a hash
HEARTBEAT = "UPDATE site SET last_contact = ?, heartbeat = ?, reported_head = ? WHERE id = ?"
# The site's own documents and those of every group its labels put it in; where a
# rollout has not released the site yet, the version it held before (none when it had
# none). Parameters: site id, own scope, site id; _DOCUMENT_FOR_SITE adds the kind.
_DESIRED_SITE = (
    "FROM desired d LEFT JOIN rollout_site rs ON rs.site_id = ? AND rs.doc_id = d.id "
    "AND rs.released_at IS NULL LEFT JOIN desired h ON h.id = rs.hold_doc_id "
    'WHERE d."current" AND (d.scope = ? OR d.scope IN '
    "(SELECT 'group:' || key || '=' || value FROM site_label WHERE site_id = ?)) "
    "AND (rs.site_id IS NULL OR h.id IS NOT NULL)"
)
DESIRED_FOR_SITE = (
    "SELECT d.scope, d.kind, COALESCE(h.version, d.version), COALESCE(h.etag, d.etag) "
    + _DESIRED_SITE
)
DOCUMENT_FOR_SITE = (
    "SELECT d.scope, d.kind, COALESCE(h.version, d.version), COALESCE(h.etag, d.etag), "
    "COALESCE(h.document, d.document) " + _DESIRED_SITE + " AND d.kind = ?"
)
