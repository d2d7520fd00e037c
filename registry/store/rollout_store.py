"""Rollout rows under a lock, and the few set-wise reads that move a rollout on.

Every worker may run a rollout's step at once (several uvicorn workers, a restarted
registry): the step holds the rollout's row lock — BEGIN IMMEDIATE on SQLite, which
takes one writer at a time, SELECT ... FOR UPDATE on PostgreSQL — so a wave is
released once and a site judged once. The reads take whole waves at a time: a step
over a 1,500-site wave is a handful of statements, not one per site.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import peewee

from registry.store import sql
from registry.store.models import db_proxy
from registry.store.rollout_models import RolloutRow

_LOCK = "SELECT id FROM rollout WHERE id = ? FOR UPDATE"
RUNNING = "SELECT id FROM rollout WHERE state = 'running' ORDER BY id"
# Completed rollouts still following a deferred site until it reports.
FOLLOWING = (
    "SELECT DISTINCT r.id FROM rollout r JOIN rollout_site rs ON rs.rollout_id = r.id "
    "WHERE r.state = 'completed' AND rs.status IN ('deferred', 'applied') ORDER BY r.id"
)
# Sites still being watched: released and not yet judged, or deferred (a deferred
# site that comes back is followed to the end).
WATCHED = (
    "SELECT rs.site_id, s.name, rs.wave, rs.status, rs.applied_at, s.last_contact "
    "FROM rollout_site rs JOIN site s ON s.id = rs.site_id "
    "WHERE rs.rollout_id = ? AND rs.status IN ('released', 'applied', 'deferred')"
)
# What each watched site last reported for the kind (the fold of desired.* entries).
REPORTS = (
    "SELECT o.site_id, o.status, o.state FROM objects o JOIN rollout_site rs "
    "ON rs.site_id = o.site_id AND rs.rollout_id = ? "
    "WHERE rs.status IN ('released', 'applied', 'deferred') "
    "AND o.object_type = 'desired' AND o.object_id = ?"
)
# Alerts a watched site fired after it was released.
NEW_ALERTS = (
    "SELECT j.site_id, j.state FROM journal j JOIN rollout_site rs "
    "ON rs.site_id = j.site_id AND rs.rollout_id = ? "
    "WHERE rs.status IN ('released', 'applied', 'deferred') AND j.seq > rs.release_seq "
    "AND j.kind = 'alert.fired'"
)
VRAN_DOWN = (
    "SELECT o.site_id, o.name, o.status FROM objects o JOIN rollout_site rs "
    "ON rs.site_id = o.site_id AND rs.rollout_id = ? "
    "WHERE rs.status IN ('released', 'applied', 'deferred') AND o.object_type = 'vm' "
    "AND o.role = 'vran' AND o.status IS NOT NULL AND o.status <> 'running'"
)
# A resumed wave's failed sites are judged afresh: alerts the operator saw before
# resuming are behind them, the soak starts again.
RESUME_FAILED = (
    "UPDATE rollout_site SET status = 'released', reason = '', applied_at = NULL, "
    "finished_at = NULL, "
    "release_seq = (SELECT acked_seq FROM site WHERE site.id = rollout_site.site_id) "
    "WHERE rollout_id = ? AND wave = ? AND status = 'failed'"
)
RELEASE = (
    "UPDATE rollout_site SET status = ?, reason = ?, released_at = ?, "
    "release_seq = (SELECT acked_seq FROM site WHERE site.id = rollout_site.site_id), "
    "finished_at = ? WHERE rollout_id = ? AND site_id = ?"
)
WAVE_SITES = (
    "SELECT rs.site_id, s.last_contact FROM rollout_site rs JOIN site s ON s.id = rs.site_id "
    "WHERE rs.rollout_id = ? AND rs.wave = ?"
)
JUDGE = (
    "UPDATE rollout_site SET status = ?, reason = ?, applied_at = ?, finished_at = ? "
    "WHERE rollout_id = ? AND site_id = ?"
)
WAVE_COUNTS = (
    "SELECT wave, status, COUNT(*) FROM rollout_site WHERE rollout_id = ? GROUP BY wave, status"
)
FAILED_IN_WAVE = (
    "SELECT s.name, rs.reason FROM rollout_site rs JOIN site s ON s.id = rs.site_id "
    "WHERE rs.rollout_id = ? AND rs.wave = ? AND rs.status = 'failed' ORDER BY s.name"
)
# Where a site already sits in an earlier rollout of the same document: it keeps what
# that rollout still holds it on.
HELD_BY_EARLIER = (
    "SELECT site_id, hold_doc_id FROM rollout_site WHERE doc_id = ? AND released_at IS NULL"
)


@contextmanager
def write_transaction() -> Iterator[None]:
    """A transaction that reads, then writes. On SQLite it takes the write lock up
    front: a deferred one that read before another connection wrote cannot upgrade
    (SQLITE_BUSY at once, whatever the busy timeout)."""
    db = db_proxy.obj
    if isinstance(db, peewee.SqliteDatabase):
        with db.atomic(lock_type="IMMEDIATE"):
            yield
        return
    with db.atomic():
        yield


@contextmanager
def rollout_lock(rollout_id: int) -> Iterator[RolloutRow | None]:
    """A transaction holding the rollout's row lock; yields the row (None: gone)."""
    with write_transaction():
        if not isinstance(db_proxy.obj, peewee.SqliteDatabase):
            sql.fetchone(_LOCK, (rollout_id,))
        yield RolloutRow.get_or_none(RolloutRow.id == rollout_id)


def wave_counts(rollout_id: int) -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = {}
    for wave, status, count in sql.fetchall(WAVE_COUNTS, (rollout_id,)):
        counts.setdefault(int(wave), {})[str(status)] = int(count)
    return counts
